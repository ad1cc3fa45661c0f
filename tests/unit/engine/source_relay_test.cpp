// The stream-mode relay: ffmpeg's view of the source is exactly the source, from any offset, and
// nothing but the one random path is served.
#include "common/http/client.hpp"
#include "transcoding_engine/source_relay.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <string>

using namespace distconv;
using namespace distconv::engine;

namespace {

std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
    return s;
}

struct RelayFixture {
    std::string source = pattern((9 << 20) + 12345);  // more than two of the relay's 4 MiB fetches
    std::atomic<int> fetches{0};
    bool fail = false;
    SourceRelay relay{source.size(), [this](uint64_t offset, uint64_t length) -> Result<std::string> {
                          ++fetches;
                          if (fail) return Error(ErrorCode::Unavailable, "server gone");
                          if (offset >= source.size() || length == 0)
                              return Error(ErrorCode::Internal, "out of range");
                          return source.substr(offset, length);
                      }};
    http::Client client{http::ClientOptions{}};

    Result<http::Response> get(const std::string& url, const std::string& range = "") {
        http::Request r;
        r.path_or_url = url;
        if (!range.empty()) r.headers.emplace_back("Range", range);
        r.retry = false;
        return client.request(r);
    }
};

}  // namespace

TEST(SourceRelay, ServesTheWholeSourceAndAnyRange) {
    RelayFixture f;
    ASSERT_TRUE(f.relay.start());
    EXPECT_EQ(f.relay.url().rfind("http://127.0.0.1:", 0), 0u);

    auto whole = f.get(f.relay.url());
    ASSERT_TRUE(whole);
    EXPECT_EQ(whole->status, 200);
    EXPECT_EQ(whole->body.size(), f.source.size());
    EXPECT_TRUE(whole->body == f.source);
    EXPECT_EQ(whole->header("Accept-Ranges").value_or(""), "bytes");

    // What ffmpeg sends: an open range from the start, and after a seek from the middle.
    for (uint64_t start : {uint64_t{0}, uint64_t{1}, uint64_t{4 << 20}, uint64_t{(5 << 20) + 77}, uint64_t{f.source.size() - 1}}) {
        auto r = f.get(f.relay.url(), "bytes=" + std::to_string(start) + "-");
        ASSERT_TRUE(r) << start;
        EXPECT_EQ(r->status, 206) << start;
        EXPECT_EQ(r->header("Content-Range").value_or(""),
                  "bytes " + std::to_string(start) + "-" + std::to_string(f.source.size() - 1) + "/" +
                      std::to_string(f.source.size()));
        EXPECT_TRUE(r->body == f.source.substr(start)) << "range from " << start;
    }
    auto closed = f.get(f.relay.url(), "bytes=100-199");
    ASSERT_TRUE(closed);
    EXPECT_EQ(closed->status, 206);
    EXPECT_EQ(closed->body, f.source.substr(100, 100));
    EXPECT_EQ(f.relay.bytes_served() >= f.source.size(), true);
    f.relay.stop();
}

TEST(SourceRelay, OnlyItsRandomPathIsServedAndBadRangesAre416) {
    RelayFixture f;
    ASSERT_TRUE(f.relay.start());
    std::string url = f.relay.url();
    std::string base = url.substr(0, url.rfind('/'));
    for (const std::string& other : {base + "/", base + "/source", base + "/../etc/passwd", url + "x"}) {
        auto r = f.get(other);
        ASSERT_TRUE(r) << other;
        EXPECT_EQ(r->status, 404) << other;
    }
    EXPECT_EQ(f.fetches.load(), 0);
    for (const std::string& bad : {std::string("bytes=99999999999-"), std::string("items=0-1"), std::string("bytes=5-1")}) {
        auto r = f.get(url, bad);
        ASSERT_TRUE(r) << bad;
        EXPECT_EQ(r->status, 416) << bad;
    }
}

TEST(SourceRelay, AFailedFetchEndsTheBodyAndIsKept) {
    RelayFixture f;
    f.fail = true;
    ASSERT_TRUE(f.relay.start());
    auto r = f.get(f.relay.url());
    // The headers went out before the fetch failed: the client sees a cut body, never wrong bytes.
    EXPECT_TRUE(!r || r->body.size() < f.source.size());
    ASSERT_TRUE(f.relay.error());
    EXPECT_NE(f.relay.error()->message.find("server gone"), std::string::npos);
}
