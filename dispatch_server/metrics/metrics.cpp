#include "dispatch_server/metrics/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <tuple>

namespace distconv::dispatch {
namespace {

std::string number(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    // The shortest form that reads back as the same double ("0.005", not "0.0050000000000000001").
    char buf[64];
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
        return buf;
    }
    for (int precision = 1; precision <= 17; ++precision) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels, const std::string& value) {
    out.append(name);
    if (!labels.empty()) out.append("{").append(labels).append("}");
    out.append(" ").append(value).append("\n");
}

void histogram(std::string& out, std::string_view name, std::string_view help, const Histogram& h) {
    header(out, name, "histogram", help);
    auto s = h.snapshot();
    std::string bucket = std::string(name) + "_bucket";
    for (size_t i = 0; i < s.upper_bounds.size(); ++i)
        sample(out, bucket, "le=\"" + number(s.upper_bounds[i]) + "\"", std::to_string(s.cumulative[i]));
    sample(out, bucket, "le=\"+Inf\"", std::to_string(s.cumulative.back()));
    sample(out, std::string(name) + "_sum", "", number(s.sum));
    sample(out, std::string(name) + "_count", "", std::to_string(s.count));
}

std::string label(std::string_view key, std::string_view value) {
    return std::string(key) + "=\"" + escape_label_value(value) + "\"";
}

}  // namespace

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

Histogram::Histogram(std::vector<double> upper_bounds) : m_bounds(std::move(upper_bounds)) {
    std::sort(m_bounds.begin(), m_bounds.end());
    m_counts.assign(m_bounds.size() + 1, 0);
}

void Histogram::observe(double value) {
    if (std::isnan(value)) return;
    size_t i =
        static_cast<size_t>(std::lower_bound(m_bounds.begin(), m_bounds.end(), value) - m_bounds.begin());
    std::lock_guard lock(m_mutex);
    ++m_counts[i];
    m_sum += value;
    ++m_count;
}

Histogram::Snapshot Histogram::snapshot() const {
    std::lock_guard lock(m_mutex);
    Snapshot s;
    s.upper_bounds = m_bounds;
    uint64_t running = 0;
    for (auto c : m_counts) {
        running += c;
        s.cumulative.push_back(running);
    }
    s.sum = m_sum;
    s.count = m_count;
    return s;
}

Metrics::Metrics()
    : m_request_seconds({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      m_job_seconds({1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200}),
      m_queue_wait_seconds({0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 3600, 14400}) {}

void Metrics::request_served(std::string_view method, std::string_view route, int status, double seconds,
                             uint64_t bytes_received, uint64_t bytes_sent) {
    m_request_seconds.observe(seconds);
    m_bytes_received += bytes_received;
    m_bytes_sent += bytes_sent;
    std::lock_guard lock(m_mutex);
    ++m_requests[RequestKey{std::string(method), std::string(route), status}];
}

void Metrics::job_assigned(double queue_wait_seconds) {
    ++m_assignments;
    m_queue_wait_seconds.observe(std::max(0.0, queue_wait_seconds));
}

std::string Metrics::render(const MetricGauges& g) const {
    std::string out;
    out.reserve(8192);
    header(out, "distconv_jobs", "gauge", "Jobs by state.");
    for (const auto& [state, n] : g.jobs_by_state)
        sample(out, "distconv_jobs", label("state", state), std::to_string(n));
    header(out, "distconv_queue_depth", "gauge", "Jobs waiting for an engine.");
    sample(out, "distconv_queue_depth", "", std::to_string(g.queue_depth));
    header(out, "distconv_engines", "gauge", "Engines by state.");
    for (const auto& [state, n] : g.engines_by_state)
        sample(out, "distconv_engines", label("state", state), std::to_string(n));
    header(out, "distconv_assignments_active", "gauge", "Assignments holding a lease.");
    sample(out, "distconv_assignments_active", "", std::to_string(g.assignments_active));

    header(out, "distconv_assignments_total", "counter", "Jobs handed to an engine.");
    sample(out, "distconv_assignments_total", "", std::to_string(m_assignments.load()));
    header(out, "distconv_lease_expiries_total", "counter", "Assignments ended because their lease expired.");
    sample(out, "distconv_lease_expiries_total", "", std::to_string(m_lease_expiries.load()));
    header(out, "distconv_engines_offline_total", "counter", "Engines marked offline after going silent.");
    sample(out, "distconv_engines_offline_total", "", std::to_string(m_engines_offline.load()));
    header(out, "distconv_job_retries_total", "counter",
           "Jobs requeued after a transient failure or a lost engine.");
    sample(out, "distconv_job_retries_total", "", std::to_string(m_retries.load()));
    histogram(out, "distconv_job_duration_seconds",
              "Run time of the attempt that completed a job (claim to complete).", m_job_seconds);
    histogram(out, "distconv_queue_wait_seconds", "Time a job waited queued before an engine received it.",
              m_queue_wait_seconds);
    header(out, "distconv_bytes_received_total", "counter",
           "HTTP request body bytes received (uploads included).");
    sample(out, "distconv_bytes_received_total", "", std::to_string(m_bytes_received.load()));
    header(out, "distconv_bytes_sent_total", "counter",
           "HTTP response body bytes sent (downloads included).");
    sample(out, "distconv_bytes_sent_total", "", std::to_string(m_bytes_sent.load()));
    {
        header(out, "distconv_http_requests_total", "counter", "HTTP requests by method, route and status.");
        std::lock_guard lock(m_mutex);
        for (const auto& [key, n] : m_requests)
            sample(out, "distconv_http_requests_total",
                   label("method", key.method) + "," + label("route", key.route) + "," +
                       label("status", std::to_string(key.status)),
                   std::to_string(n));
    }
    histogram(out, "distconv_http_request_duration_seconds",
              "HTTP request latency (headers in to answer written).", m_request_seconds);
    if (g.connections) {
        const auto& c = *g.connections;
        header(out, "distconv_http_connections", "gauge",
               "Open client connections: waiting for a request, or being served.");
        sample(out, "distconv_http_connections", label("state", "waiting"), std::to_string(c.waiting));
        sample(out, "distconv_http_connections", label("state", "serving"), std::to_string(c.serving));
        header(
            out, "distconv_http_connections_closed_total", "counter",
            "Connections the server closed early: a request not complete within the header or body time, or "
            "over max-connections.");
        sample(out, "distconv_http_connections_closed_total", label("reason", "slow_headers"),
               std::to_string(c.closed_slow_headers));
        sample(out, "distconv_http_connections_closed_total", label("reason", "slow_body"),
               std::to_string(c.closed_slow_bodies));
        sample(out, "distconv_http_connections_closed_total", label("reason", "over_limit"),
               std::to_string(c.closed_over_limit));
        header(out, "distconv_http_workers", "gauge",
               "HTTP worker threads running (started as requests need them, up to http-threads).");
        sample(out, "distconv_http_workers", "", std::to_string(c.workers));
    }
    return out;
}

}  // namespace distconv::dispatch
