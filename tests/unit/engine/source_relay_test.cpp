// The stream-mode relay: ffmpeg's view of the source is exactly the source, from any offset, and
// nothing but the one random path is served; and what it fetched verifies the source's SHA-256
// however ffmpeg read it.
#include "transcoding_engine/source_relay.hpp"
#include "common/hash.hpp"
#include "common/http/client.hpp"

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
    std::string stored = source;  // what the "server" holds: a test corrupts or truncates it
    std::atomic<int> fetches{0};
    std::atomic<uint64_t> fetched_bytes{0};
    bool fail = false;
    SourceRelay relay{source.size(), [this](uint64_t offset, uint64_t length) -> Result<std::string> {
                          ++fetches;
                          if (fail) return Error(ErrorCode::Unavailable, "server gone");
                          if (length == 0) return Error(ErrorCode::Internal, "empty range");
                          if (offset >= stored.size()) return std::string();
                          fetched_bytes += std::min<uint64_t>(length, stored.size() - offset);
                          return stored.substr(offset, length);
                      }};
    http::Client client{http::ClientOptions{}};

    Result<http::Response> get(const std::string& url, const std::string& range = "") {
        http::Request r;
        r.path_or_url = url;
        if (!range.empty()) r.headers.emplace_back("Range", range);
        // As ffmpeg's exit does: no connection outlives the request, so stop() need not wait for one.
        r.headers.emplace_back("Connection", "close");
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
    for (uint64_t start : {uint64_t{0}, uint64_t{1}, uint64_t{4 << 20}, uint64_t{(5 << 20) + 77},
                           uint64_t{f.source.size() - 1}}) {
        auto r = f.get(f.relay.url(), "bytes=" + std::to_string(start) + "-");
        ASSERT_TRUE(r) << start;
        EXPECT_EQ(r->status, 206) << start;
        EXPECT_EQ(r->header("Content-Range").value_or(""), "bytes " + std::to_string(start) + "-" +
                                                               std::to_string(f.source.size() - 1) + "/" +
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
    for (const std::string& bad :
         {std::string("bytes=99999999999-"), std::string("items=0-1"), std::string("bytes=5-1")}) {
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

namespace {

std::string expected_sha(const RelayFixture& f) {
    return sha256_hex(f.source);
}

}  // namespace

TEST(PrefixHash, ExtendsOnlyFromItsEndAndIgnoresEverythingElse) {
    const std::string src = pattern(1000);
    PrefixHash h(src.size());
    h.add(0, std::string_view(src).substr(0, 100));
    EXPECT_EQ(h.hashed(), 100u);
    h.add(500, std::string_view(src).substr(500, 100));  // a seek ahead: not buffered, not hashed
    EXPECT_EQ(h.hashed(), 100u);
    h.add(20, std::string_view(src).substr(20, 50));  // wholly inside the prefix: nothing new
    EXPECT_EQ(h.hashed(), 100u);
    h.add(60, std::string_view(src).substr(60, 140));  // a seek back that runs past the end extends it
    EXPECT_EQ(h.hashed(), 200u);
    h.add(200, std::string_view(src).substr(200, 300));  // exactly at the end
    EXPECT_EQ(h.hashed(), 500u);
    h.add(500, "");
    EXPECT_EQ(h.hashed(), 500u);

    std::vector<std::pair<uint64_t, uint64_t>> asked;
    auto d = h.finish(
        [&](uint64_t offset, uint64_t length) -> Result<std::string> {
            asked.emplace_back(offset, length);
            return src.substr(offset, length);
        },
        128);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->sha256, sha256_hex(src));
    EXPECT_EQ(d->size, 1000u);
    EXPECT_EQ(d->fetched_to_finish, 500u);
    // Only the unhashed rest, in pieces of at most 128 bytes.
    ASSERT_EQ(asked.size(), 4u);
    EXPECT_EQ(asked.front(), (std::pair<uint64_t, uint64_t>{500, 128}));
    EXPECT_EQ(asked.back(), (std::pair<uint64_t, uint64_t>{884, 116}));
    // Once only.
    EXPECT_FALSE(h.finish([&](uint64_t, uint64_t) -> Result<std::string> { return std::string(); }, 128));
}

TEST(PrefixHash, AShortSourceEndsTheDigestWhereItEndsAndAFailedFetchIsTheError) {
    const std::string src = pattern(300);
    PrefixHash shorter(400);
    shorter.add(0, src);
    auto d = shorter.finish([&](uint64_t, uint64_t) -> Result<std::string> { return std::string(); }, 64);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->size, 300u);
    EXPECT_EQ(d->sha256, sha256_hex(src));

    PrefixHash failing(400);
    auto e = failing.finish(
        [&](uint64_t, uint64_t) -> Result<std::string> {
            return Error(ErrorCode::Unavailable, "server gone");
        },
        64);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().message, "server gone");

    // Bytes past the size a block may carry are not hashed.
    PrefixHash exact(100);
    exact.add(0, src);
    EXPECT_EQ(exact.hashed(), 100u);
    auto x =
        exact.finish([&](uint64_t, uint64_t) -> Result<std::string> { return std::string("never"); }, 64);
    ASSERT_TRUE(x);
    EXPECT_EQ(x->sha256, sha256_hex(src.substr(0, 100)));
    EXPECT_EQ(x->fetched_to_finish, 0u);
}

TEST(SourceRelay, ASequentialReadIsHashedAsItGoesAndNeedsNoFetchToFinish) {
    RelayFixture f;
    ASSERT_TRUE(f.relay.start());
    auto whole = f.get(f.relay.url());
    ASSERT_TRUE(whole);
    ASSERT_EQ(whole->body.size(), f.source.size());
    EXPECT_EQ(f.relay.hashed_prefix(), f.source.size());
    const int fetches = f.fetches.load();
    auto d = f.relay.finish_hash();
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->sha256, expected_sha(f));
    EXPECT_EQ(d->size, f.source.size());
    EXPECT_EQ(d->fetched_to_finish, 0u);
    EXPECT_EQ(f.fetches.load(), fetches);
}

TEST(SourceRelay, SeeksForwardAndBackStillHashTheSourceWithoutFetchingItTwice) {
    RelayFixture f;
    ASSERT_TRUE(f.relay.start());
    // What ffmpeg does with an MP4 whose index is at the end: the head, the tail, then from the head on.
    auto head = f.get(f.relay.url(), "bytes=0-4095");
    ASSERT_TRUE(head);
    EXPECT_EQ(f.relay.hashed_prefix(), 4096u);
    const uint64_t tail_start = f.source.size() - 50000;
    auto tail = f.get(f.relay.url(), "bytes=" + std::to_string(tail_start) + "-");
    ASSERT_TRUE(tail);
    EXPECT_TRUE(tail->body == f.source.substr(tail_start));
    EXPECT_EQ(f.relay.hashed_prefix(), 4096u);  // ahead of the prefix: not hashed
    auto rest = f.get(f.relay.url(), "bytes=40-");
    ASSERT_TRUE(rest);
    EXPECT_TRUE(rest->body == f.source.substr(40));
    EXPECT_EQ(f.relay.hashed_prefix(), f.source.size());
    auto d = f.relay.finish_hash();
    ASSERT_TRUE(d);
    EXPECT_EQ(d->sha256, expected_sha(f));
    EXPECT_EQ(d->fetched_to_finish, 0u);
}

TEST(SourceRelay, ReadingOnlyTheEndLeavesTheRestForTheCompletionFetch) {
    RelayFixture f;
    ASSERT_TRUE(f.relay.start());
    const uint64_t tail_start = f.source.size() - 1000;
    auto tail = f.get(f.relay.url(), "bytes=" + std::to_string(tail_start) + "-");
    ASSERT_TRUE(tail);
    EXPECT_EQ(f.relay.hashed_prefix(), 0u);
    // A partial read ahead of the prefix, then a read of the head that stops early (ffmpeg's -t).
    auto head = f.get(f.relay.url(), "bytes=0-99999");
    ASSERT_TRUE(head);
    EXPECT_EQ(f.relay.hashed_prefix(), 100000u);
    const uint64_t before = f.fetched_bytes.load();
    auto d = f.relay.finish_hash();
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->sha256, expected_sha(f));
    EXPECT_EQ(d->size, f.source.size());
    // Exactly the bytes never hashed were fetched to finish, in the relay's 4 MiB pieces.
    EXPECT_EQ(d->fetched_to_finish, f.source.size() - 100000);
    EXPECT_EQ(f.fetched_bytes.load() - before, f.source.size() - 100000);
}

TEST(SourceRelay, AFlippedByteIsFoundWhereverItIs) {
    // In the part ffmpeg read in order, and in the part only the completion fetch reads.
    for (uint64_t at : {uint64_t{5 << 20}, uint64_t{(9 << 20) + 100}}) {
        RelayFixture f;
        f.stored[at] = static_cast<char>(f.stored[at] ^ 0x01);
        ASSERT_TRUE(f.relay.start());
        auto head = f.get(f.relay.url(), "bytes=0-" + std::to_string((6 << 20) - 1));
        ASSERT_TRUE(head);
        auto d = f.relay.finish_hash();
        ASSERT_TRUE(d) << d.error().message;
        EXPECT_EQ(d->size, f.source.size());
        EXPECT_NE(d->sha256, expected_sha(f)) << "flipped byte at " << at;
        EXPECT_EQ(d->sha256, sha256_hex(f.stored)) << at;
    }
}

TEST(SourceRelay, ATruncatedSourceIsShortAndAFailedCompletionFetchIsAnError) {
    RelayFixture f;
    f.stored.resize(f.source.size() - 10);
    ASSERT_TRUE(f.relay.start());
    auto d = f.relay.finish_hash();
    ASSERT_TRUE(d);
    EXPECT_EQ(d->size, f.source.size() - 10);

    RelayFixture g;
    ASSERT_TRUE(g.relay.start());
    g.fail = true;
    auto e = g.relay.finish_hash();
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("server gone"), std::string::npos);
}

TEST(SourceRelay, TheCompletionFetchCanGoThroughTheCallersFetch) {
    RelayFixture f;
    ASSERT_TRUE(f.relay.start());
    int calls = 0;
    auto d = f.relay.finish_hash([&](uint64_t offset, uint64_t length) -> Result<std::string> {
        ++calls;
        return f.source.substr(offset, length);
    });
    ASSERT_TRUE(d);
    EXPECT_EQ(d->sha256, expected_sha(f));
    EXPECT_EQ(calls, 3);  // 9 MiB and a bit in 4 MiB pieces
    EXPECT_EQ(f.fetches.load(), 0);
}
