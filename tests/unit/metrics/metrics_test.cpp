// The Prometheus text the dispatch server renders: families with HELP/TYPE, cumulative histogram
// buckets, escaped label values, request counters keyed by method, route and status.

#include "dispatch_server/metrics/metrics.hpp"

#include <gtest/gtest.h>

namespace distconv::dispatch {
namespace {

bool has(const std::string& text, const std::string& line) {
    return text.find(line + "\n") != std::string::npos;
}

TEST(Histogram, BucketsAreCumulativeWithSumAndCount) {
    Histogram h({0.1, 1, 10});
    for (double v : {0.05, 0.1, 0.5, 3.0, 50.0}) h.observe(v);
    auto s = h.snapshot();
    ASSERT_EQ(s.cumulative.size(), 4u);
    EXPECT_EQ(s.cumulative[0], 2u);  // <= 0.1 (le is inclusive)
    EXPECT_EQ(s.cumulative[1], 3u);
    EXPECT_EQ(s.cumulative[2], 4u);
    EXPECT_EQ(s.cumulative[3], 5u);  // +Inf
    EXPECT_EQ(s.count, 5u);
    EXPECT_DOUBLE_EQ(s.sum, 53.65);
}

TEST(Metrics, RendersGaugesCountersAndHistograms) {
    Metrics m;
    m.request_served("GET", "/api/v1/jobs/{id}", 200, 0.003, 0, 512);
    m.request_served("GET", "/api/v1/jobs/{id}", 200, 0.02, 0, 512);
    m.request_served("PUT", "/api/v1/jobs/{id}/source", 201, 1.5, 1 << 20, 100);
    m.lease_expired();
    m.job_requeued();
    m.job_assigned(0.5);
    m.job_completed(42);
    MetricGauges g;
    g.jobs_by_state = {{"queued", 3}, {"running", 1}};
    g.queue_depth = 3;
    g.engines_by_state = {{"idle", 2}};
    g.assignments_active = 1;
    auto text = m.render(g);
    EXPECT_TRUE(has(text, "# TYPE distconv_jobs gauge")) << text;
    EXPECT_TRUE(has(text, "distconv_jobs{state=\"queued\"} 3"));
    EXPECT_TRUE(has(text, "distconv_queue_depth 3"));
    EXPECT_TRUE(has(text, "distconv_engines{state=\"idle\"} 2"));
    EXPECT_TRUE(has(text, "distconv_assignments_active 1"));
    EXPECT_TRUE(has(text, "distconv_lease_expiries_total 1"));
    EXPECT_TRUE(has(text, "distconv_job_retries_total 1"));
    EXPECT_TRUE(has(text, "distconv_assignments_total 1"));
    EXPECT_TRUE(has(text, "distconv_bytes_received_total 1048576"));
    EXPECT_TRUE(has(text, "distconv_bytes_sent_total 1124"));
    EXPECT_TRUE(has(
        text, "distconv_http_requests_total{method=\"GET\",route=\"/api/v1/jobs/{id}\",status=\"200\"} 2"));
    EXPECT_TRUE(has(
        text,
        "distconv_http_requests_total{method=\"PUT\",route=\"/api/v1/jobs/{id}/source\",status=\"201\"} 1"));
    EXPECT_TRUE(has(text, "# TYPE distconv_http_request_duration_seconds histogram"));
    EXPECT_TRUE(has(text, "distconv_http_request_duration_seconds_bucket{le=\"0.005\"} 1"));
    EXPECT_TRUE(has(text, "distconv_http_request_duration_seconds_bucket{le=\"0.025\"} 2"));
    EXPECT_TRUE(has(text, "distconv_http_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
    EXPECT_TRUE(has(text, "distconv_http_request_duration_seconds_count 3"));
    EXPECT_TRUE(has(text, "distconv_job_duration_seconds_bucket{le=\"30\"} 0"));
    EXPECT_TRUE(has(text, "distconv_job_duration_seconds_bucket{le=\"60\"} 1"));
    EXPECT_TRUE(has(text, "distconv_queue_wait_seconds_sum 0.5"));
    // Every family is declared once, before its samples.
    for (const char* family :
         {"distconv_jobs", "distconv_http_requests_total", "distconv_queue_wait_seconds"}) {
        auto type = text.find(std::string("# TYPE ") + family + " ");
        ASSERT_NE(type, std::string::npos) << family;
        EXPECT_EQ(text.find(std::string("# TYPE ") + family + " ", type + 1), std::string::npos) << family;
    }
}

TEST(Metrics, LabelValuesAreEscaped) {
    EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace distconv::dispatch
