#pragma once
// The dispatch server's counters and histograms, rendered in the Prometheus text format (0.0.4).
// Services record events (a lease expired, a job requeued, a job finished); the HTTP layer records
// each request. Gauges (jobs by state, engines by state...) are read from the store at scrape time
// and passed to render(). Free of HTTP and SQL; safe to use from any thread.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace distconv::dispatch {

class Histogram {
  public:
    explicit Histogram(std::vector<double> upper_bounds);
    void observe(double value);

    struct Snapshot {
        std::vector<double> upper_bounds;
        std::vector<uint64_t> cumulative;  // one per bound, then +Inf
        double sum = 0;
        uint64_t count = 0;
    };
    Snapshot snapshot() const;

  private:
    mutable std::mutex m_mutex;
    std::vector<double> m_bounds;
    std::vector<uint64_t> m_counts;  // per bucket (not cumulative), last one is +Inf
    double m_sum = 0;
    uint64_t m_count = 0;
};

// The HTTP server's connections (plain HTTP only: the connection gate keeps these).
struct ConnectionGauges {
    int64_t waiting = 0;               // between requests, or a request still arriving
    int64_t serving = 0;               // a worker is serving (or about to serve) a request
    uint64_t closed_slow_headers = 0;  // counters: closed because a request did not arrive in time
    uint64_t closed_slow_bodies = 0;
    uint64_t closed_over_limit = 0;  // refused at once: max-connections reached
    int64_t workers = 0;             // HTTP worker threads running (started as requests need them)
};

struct MetricGauges {
    std::vector<std::pair<std::string, int64_t>> jobs_by_state;
    int64_t queue_depth = 0;
    std::vector<std::pair<std::string, int64_t>> engines_by_state;
    int64_t assignments_active = 0;
    std::optional<ConnectionGauges> connections;
};

class Metrics {
  public:
    Metrics();

    // One HTTP request: `route` is the route's pattern ("/api/v1/jobs/{id}") or "unmatched".
    void request_served(std::string_view method, std::string_view route, int status, double seconds,
                        uint64_t bytes_received, uint64_t bytes_sent);
    void lease_expired(int n = 1) { m_lease_expiries += static_cast<uint64_t>(n); }
    void engine_went_offline(int n = 1) { m_engines_offline += static_cast<uint64_t>(n); }
    void job_requeued() { ++m_retries; }
    void job_assigned(double queue_wait_seconds);
    // A job completed; `run_seconds` is how long its final attempt ran (claim to complete).
    void job_completed(double run_seconds) { m_job_seconds.observe(run_seconds < 0 ? 0 : run_seconds); }

    std::string render(const MetricGauges& gauges) const;

  private:
    struct RequestKey {
        std::string method, route;
        int status = 0;
        bool operator<(const RequestKey& o) const {
            return std::tie(method, route, status) < std::tie(o.method, o.route, o.status);
        }
    };
    mutable std::mutex m_mutex;
    std::map<RequestKey, uint64_t> m_requests;
    Histogram m_request_seconds;
    Histogram m_job_seconds;
    Histogram m_queue_wait_seconds;
    std::atomic<uint64_t> m_bytes_received{0};
    std::atomic<uint64_t> m_bytes_sent{0};
    std::atomic<uint64_t> m_lease_expiries{0};
    std::atomic<uint64_t> m_engines_offline{0};
    std::atomic<uint64_t> m_retries{0};
    std::atomic<uint64_t> m_assignments{0};
};

// Escapes a label value for the text format (backslash, double quote, newline).
std::string escape_label_value(std::string_view value);

}  // namespace distconv::dispatch
