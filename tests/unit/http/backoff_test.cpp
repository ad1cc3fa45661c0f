// Pure parts of the HTTP client: backoff, URL redaction, Content-Range, status -> Error mapping.

#include "common/http/client.hpp"

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using distconv::ErrorCode;
namespace http = distconv::http;

TEST(BackoffDelay, GrowsExponentiallyWithoutJitterAtMidpoint) {
    http::RetryPolicy p;  // 200 ms, x2, cap 10 s
    EXPECT_EQ(http::backoff_delay(p, 1, 0.5), 200ms);
    EXPECT_EQ(http::backoff_delay(p, 2, 0.5), 400ms);
    EXPECT_EQ(http::backoff_delay(p, 3, 0.5), 800ms);
    EXPECT_EQ(http::backoff_delay(p, 4, 0.5), 1600ms);
}

TEST(BackoffDelay, IsCappedAtMaxBackoffEvenForHugeAttempts) {
    http::RetryPolicy p;
    p.max_backoff = 1s;
    EXPECT_EQ(http::backoff_delay(p, 10, 0.5), 1s);
    EXPECT_EQ(http::backoff_delay(p, 10'000, 0.5), 1s);  // no overflow
    for (double r : {0.0, 0.3, 0.99, 1.0}) EXPECT_LE(http::backoff_delay(p, 50, r), 1s);
}

TEST(BackoffDelay, JitterStaysWithinBounds) {
    http::RetryPolicy p;                               // jitter 0.2
    EXPECT_EQ(http::backoff_delay(p, 2, 0.0), 320ms);  // 400 * 0.8
    EXPECT_EQ(http::backoff_delay(p, 2, 1.0), 480ms);  // 400 * 1.2
    for (int i = 0; i <= 100; ++i) {
        auto d = http::backoff_delay(p, 2, i / 100.0);
        EXPECT_GE(d, 320ms);
        EXPECT_LE(d, 480ms);
    }
    // Out-of-range random values are clamped, attempt < 1 counts as the first.
    EXPECT_EQ(http::backoff_delay(p, 2, 7.0), 480ms);
    EXPECT_EQ(http::backoff_delay(p, 0, 0.5), 200ms);
}

TEST(BackoffDelay, ZeroJitterIsDeterministic) {
    http::RetryPolicy p;
    p.jitter = 0;
    p.initial_backoff = 10ms;
    p.multiplier = 3;
    EXPECT_EQ(http::backoff_delay(p, 3, 0.0), 90ms);
    EXPECT_EQ(http::backoff_delay(p, 3, 1.0), 90ms);
}

TEST(RedactUrl, RemovesCredentialsAndQueryValues) {
    EXPECT_EQ(http::redact_url("https://user:pw@example.com:8443/a/b?token=abc&x=1#frag"),
              "https://example.com:8443/a/b?token=REDACTED&x=REDACTED");
    EXPECT_EQ(http::redact_url("http://127.0.0.1:8080/api/v1/jobs"), "http://127.0.0.1:8080/api/v1/jobs");
    EXPECT_EQ(http::redact_url("http://h/p?secret"), "http://h/p?REDACTED");
    EXPECT_EQ(http::redact_url("http://u@h"), "http://h");
}

TEST(ParseContentRange, ReadsStartAndTotal) {
    auto cr = http::parse_content_range("bytes 100-199/1000");
    ASSERT_TRUE(cr);
    EXPECT_EQ(cr->start, 100u);
    EXPECT_EQ(cr->total, 1000u);
    cr = http::parse_content_range("bytes */5000");
    ASSERT_TRUE(cr);
    EXPECT_FALSE(cr->start);
    EXPECT_EQ(cr->total, 5000u);
    cr = http::parse_content_range("bytes 0-9/*");
    ASSERT_TRUE(cr);
    EXPECT_EQ(cr->start, 0u);
    EXPECT_FALSE(cr->total);
    EXPECT_FALSE(http::parse_content_range(""));
    EXPECT_FALSE(http::parse_content_range("items 0-9/10"));
    EXPECT_FALSE(http::parse_content_range("bytes 0-9"));
    EXPECT_FALSE(http::parse_content_range("bytes x-9/10"));
}

TEST(ErrorFromStatus, MapsStatusesToCodes) {
    EXPECT_EQ(http::error_from_status(400, "u").code, ErrorCode::InvalidArgument);
    EXPECT_EQ(http::error_from_status(401, "u").code, ErrorCode::Unauthenticated);
    EXPECT_EQ(http::error_from_status(404, "u").code, ErrorCode::NotFound);
    EXPECT_EQ(http::error_from_status(409, "u").code, ErrorCode::Conflict);
    EXPECT_EQ(http::error_from_status(413, "u").code, ErrorCode::FileTooLarge);
    EXPECT_EQ(http::error_from_status(418, "u").code, ErrorCode::InvalidArgument);
    EXPECT_EQ(http::error_from_status(429, "u").code, ErrorCode::TooManyRequests);
    EXPECT_EQ(http::error_from_status(500, "u").code, ErrorCode::Internal);
    EXPECT_EQ(http::error_from_status(599, "u").code, ErrorCode::Internal);
    auto e = http::error_from_status(502, "http://h/x");
    EXPECT_EQ(e.code, ErrorCode::Unavailable);
    EXPECT_TRUE(e.retryable);
    EXPECT_EQ(e.message, "HTTP 502 from http://h/x");
    EXPECT_EQ(e.details["status"], 502);
}

TEST(Response, ApiErrorPrefersTheEnvelope) {
    http::Response r;
    r.status = 404;
    r.url = "http://h/jobs/1";
    r.body = distconv::Error(ErrorCode::JobNotFound, "no job 1").to_json().dump();
    auto e = r.api_error();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, ErrorCode::JobNotFound);
    EXPECT_EQ(e->message, "no job 1");

    r.body = "<html>bad gateway</html>";
    r.status = 502;
    e = r.api_error();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, ErrorCode::Unavailable);
    EXPECT_EQ(e->details["body"], "<html>bad gateway</html>");

    r.status = 204;
    r.body.clear();
    EXPECT_FALSE(r.api_error());
    ASSERT_TRUE(r.json().ok());
    EXPECT_TRUE(r.json()->is_null());
    r.body = "{not json";
    EXPECT_FALSE(r.json().ok());
}

TEST(Headers, LookupIsCaseInsensitive) {
    http::Headers h;
    h.add("Content-Type", "application/json");
    h.add("X-A", "1");
    h.add("x-a", "2");
    EXPECT_EQ(h.get("content-type"), "application/json");
    EXPECT_EQ(h.get("X-A"), "1");  // the first
    EXPECT_FALSE(h.get("missing"));
}
