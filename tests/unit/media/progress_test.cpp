#include "common/media/progress.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <random>

namespace distconv::media {
namespace {

// progress_x264.txt: `ffmpeg -f lavfi -i testsrc2=640x360:rate=25:duration=4 -f lavfi -i sine...
// -c:v libx264 -preset medium -c:a aac -stats_period 0.1 -progress pipe:1 -nostats`, captured once.
std::string captured_x264() {
    return test::read_file(test::data_path("media/progress_x264.txt"));
}
constexpr double k_x264_duration = 4.0;

std::vector<ProgressUpdate> feed_in_chunks(const std::string& text, std::optional<double> duration,
                                           std::mt19937& rng, size_t max_chunk) {
    ProgressParser parser(duration);
    std::vector<ProgressUpdate> all;
    std::uniform_int_distribution<size_t> size(1, max_chunk);
    for (size_t pos = 0; pos < text.size();) {
        size_t n = std::min(size(rng), text.size() - pos);
        auto got = parser.feed(std::string_view(text).substr(pos, n));
        all.insert(all.end(), got.begin(), got.end());
        pos += n;
    }
    return all;
}

void expect_same(const ProgressUpdate& a, const ProgressUpdate& b) {
    EXPECT_EQ(a.out_time_seconds, b.out_time_seconds);
    EXPECT_EQ(a.frame, b.frame);
    EXPECT_EQ(a.fps, b.fps);
    EXPECT_EQ(a.speed, b.speed);
    EXPECT_EQ(a.bitrate_kbps, b.bitrate_kbps);
    EXPECT_EQ(a.total_size, b.total_size);
    EXPECT_EQ(a.percent, b.percent);
    EXPECT_EQ(a.eta_seconds, b.eta_seconds);
    EXPECT_EQ(a.done, b.done);
}

TEST(Progress, RealX264CaptureInOneChunk) {
    const std::string text = captured_x264();
    ASSERT_FALSE(text.empty());
    ProgressParser parser(k_x264_duration);
    auto updates = parser.feed(text);
    ASSERT_EQ(updates.size(), 5u);

    const auto& first = updates.front();
    EXPECT_EQ(first.frame, 1);
    EXPECT_EQ(first.out_time_seconds, 0.0);
    EXPECT_EQ(first.percent, 0.0);
    EXPECT_EQ(first.speed, 0.0);                   // "speed=   0x"
    EXPECT_FALSE(first.bitrate_kbps.has_value());  // N/A
    EXPECT_FALSE(first.eta_seconds.has_value());   // no speed yet
    EXPECT_FALSE(first.done);

    const auto& mid = updates[2];
    EXPECT_DOUBLE_EQ(mid.out_time_seconds, 0.853333);
    EXPECT_NEAR(*mid.percent, 0.853333 / 4 * 100, 1e-9);
    EXPECT_DOUBLE_EQ(*mid.speed, 3.92);
    ASSERT_TRUE(mid.eta_seconds.has_value());
    EXPECT_NEAR(*mid.eta_seconds, (4 - 0.853333) / 3.92, 1e-9);

    double last_percent = -1;
    for (const auto& u : updates) {
        ASSERT_TRUE(u.percent.has_value());
        EXPECT_GE(*u.percent, last_percent);
        EXPECT_LE(*u.percent, 100.0);
        last_percent = *u.percent;
    }
    const auto& last = updates.back();
    EXPECT_TRUE(last.done);
    EXPECT_EQ(last.frame, 100);
    EXPECT_DOUBLE_EQ(last.out_time_seconds, 4.010667);
    EXPECT_EQ(last.percent, 100.0);
    EXPECT_EQ(last.eta_seconds, 0.0);
    EXPECT_DOUBLE_EQ(*last.bitrate_kbps, 873.2);  // "bitrate= 873.2kbits/s"
    EXPECT_EQ(last.total_size, 437754);
    EXPECT_DOUBLE_EQ(*last.speed, 7.34);
}

TEST(Progress, RealX264CaptureInRandomChunksGivesTheSameUpdates) {
    const std::string text = captured_x264();
    ProgressParser whole(k_x264_duration);
    auto expected = whole.feed(text);
    std::mt19937 rng(12345);
    for (size_t max_chunk : {1u, 2u, 7u, 64u, 1000u}) {
        for (int round = 0; round < 20; ++round) {
            auto got = feed_in_chunks(text, k_x264_duration, rng, max_chunk);
            ASSERT_EQ(got.size(), expected.size()) << "max_chunk " << max_chunk;
            for (size_t i = 0; i < got.size(); ++i) expect_same(got[i], expected[i]);
        }
    }
}

TEST(Progress, RealX265CaptureWithNegativeOutTime) {
    // x265's lookahead makes ffmpeg report out_time_us=-39922 in an early block.
    ProgressParser parser(2.0);
    auto updates = parser.feed(test::read_file(test::data_path("media/progress_x265.txt")));
    ASSERT_GE(updates.size(), 3u);
    EXPECT_EQ(updates[1].out_time_seconds, 0.0);
    EXPECT_EQ(updates[1].percent, 0.0);
    for (const auto& u : updates) {
        EXPECT_GE(*u.percent, 0.0);
        EXPECT_LE(*u.percent, 100.0);
    }
    EXPECT_TRUE(updates.back().done);
}

TEST(Progress, UnknownDurationGivesNoPercent) {
    ProgressParser parser(std::nullopt);
    auto updates = parser.feed(captured_x264());
    ASSERT_EQ(updates.size(), 5u);
    for (const auto& u : updates) EXPECT_FALSE(u.percent.has_value());
    EXPECT_FALSE(updates[2].eta_seconds.has_value());
    EXPECT_DOUBLE_EQ(updates.back().out_time_seconds, 4.010667);
    ProgressParser zero(0.0);  // a zero duration is "unknown", not a division by zero
    EXPECT_FALSE(zero.feed("out_time_us=5\nprogress=continue\n").at(0).percent.has_value());
}

TEST(Progress, StartOfEncodeNegativesAndNotAvailable) {
    ProgressParser parser(10.0);
    auto u = parser.feed(
        "frame=0\nfps=N/A\nbitrate=N/A\ntotal_size=N/A\nout_time_us=-9223372036854775807\n"
        "out_time_ms=-9223372036854775807\nout_time=-577014:32:22.775808\nspeed=N/A\nprogress=continue\n");
    ASSERT_EQ(u.size(), 1u);
    EXPECT_EQ(u[0].out_time_seconds, 0.0);
    EXPECT_EQ(u[0].percent, 0.0);
    EXPECT_EQ(u[0].frame, 0);
    EXPECT_FALSE(u[0].fps.has_value());
    EXPECT_FALSE(u[0].speed.has_value());
    EXPECT_FALSE(u[0].bitrate_kbps.has_value());
    EXPECT_FALSE(u[0].total_size.has_value());
    EXPECT_FALSE(u[0].eta_seconds.has_value());
    EXPECT_FALSE(u[0].done);
}

TEST(Progress, FallsBackToOutTimeMsThenOutTime) {
    ProgressParser parser(100.0);
    // out_time_ms holds microseconds, like out_time_us (an ffmpeg naming quirk).
    auto a = parser.feed("out_time_ms=25000000\nspeed=2x\nprogress=continue\n");
    ASSERT_EQ(a.size(), 1u);
    EXPECT_DOUBLE_EQ(a[0].out_time_seconds, 25.0);
    EXPECT_DOUBLE_EQ(*a[0].eta_seconds, 37.5);
    auto b = parser.feed("out_time=00:01:00.500000\nprogress=continue\n");
    ASSERT_EQ(b.size(), 1u);
    EXPECT_DOUBLE_EQ(b[0].out_time_seconds, 60.5);
    EXPECT_DOUBLE_EQ(*b[0].percent, 60.5);
    EXPECT_FALSE(b[0].eta_seconds.has_value());  // speed is per block
}

TEST(Progress, OutTimeNeverGoesBackwardsAndPercentIsClamped) {
    ProgressParser parser(1.0);
    auto u = parser.feed(
        "out_time_us=3000000\nprogress=continue\nout_time_us=N/A\nprogress=continue\n"
        "out_time_us=500000\nprogress=continue\n");
    ASSERT_EQ(u.size(), 3u);
    EXPECT_EQ(u[0].percent, 100.0);  // past the expected duration: clamped
    EXPECT_EQ(u[0].out_time_seconds, 3.0);
    EXPECT_EQ(u[1].out_time_seconds, 3.0);
    EXPECT_EQ(u[2].out_time_seconds, 3.0);
}

TEST(Progress, CrlfEmptyLinesUnknownKeysAndJunk) {
    ProgressParser parser(8.0);
    auto u = parser.feed(
        "\r\n\nframe=12\r\nstream_0_0_q=28.0\r\nnot a key value line\r\n=\r\nweird_key=1\r\n"
        "out_time_us=2000000\r\nspeed= 1.0x \r\nfps=abc\r\nprogress=continue\r\n");
    ASSERT_EQ(u.size(), 1u);
    EXPECT_EQ(u[0].frame, 12);
    EXPECT_DOUBLE_EQ(u[0].out_time_seconds, 2.0);
    EXPECT_DOUBLE_EQ(*u[0].percent, 25.0);
    EXPECT_DOUBLE_EQ(*u[0].eta_seconds, 6.0);
    EXPECT_FALSE(u[0].fps.has_value());
}

TEST(Progress, PartialLinesWaitForTheirEnd) {
    ProgressParser parser(4.0);
    EXPECT_TRUE(parser.feed("out_time_us=10").empty());
    EXPECT_TRUE(parser.feed("00000\nprogr").empty());
    auto u = parser.feed("ess=end\n");
    ASSERT_EQ(u.size(), 1u);
    EXPECT_DOUBLE_EQ(u[0].out_time_seconds, 1.0);
    EXPECT_TRUE(u[0].done);
    EXPECT_EQ(u[0].percent, 100.0);
    // A block without its progress= line yet emits nothing.
    EXPECT_TRUE(parser.feed("frame=5\nout_time_us=2000000\n").empty());
}

TEST(Progress, OverlongLineIsDropped) {
    ProgressParser parser(4.0);
    EXPECT_TRUE(parser.feed(std::string(100000, 'x')).empty());
    auto u = parser.feed("\nout_time_us=1000000\nprogress=continue\n");
    ASSERT_EQ(u.size(), 1u);
    EXPECT_DOUBLE_EQ(u[0].out_time_seconds, 1.0);
}

TEST(Progress, OverlongLineIsDroppedWholeHoweverItIsChunked) {
    // The tail of an overlong line is not a line of its own, in one chunk or byte by byte.
    const std::string text = std::string(5000, 'x') + "out_time_us=3000000\nprogress=continue\n";
    ProgressParser whole(10.0);
    auto all = whole.feed(text);
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].out_time_seconds, 0.0);
    ProgressParser bytes(10.0);
    std::vector<ProgressUpdate> got;
    for (char c : text) {
        auto u = bytes.feed(std::string_view(&c, 1));
        got.insert(got.end(), u.begin(), u.end());
    }
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].out_time_seconds, 0.0);
}

TEST(Progress, ClockTimeParsing) {
    EXPECT_EQ(parse_clock_time("01:02:03.500000"), 3723.5);
    EXPECT_EQ(parse_clock_time("00:00:00.000000"), 0.0);
    EXPECT_FALSE(parse_clock_time("-00:00:00.040000").has_value());
    EXPECT_FALSE(parse_clock_time("N/A").has_value());
    EXPECT_FALSE(parse_clock_time("1:2").has_value());
    EXPECT_FALSE(parse_clock_time("1:2:3:4").has_value());
    EXPECT_FALSE(parse_clock_time("aa:bb:cc").has_value());
}

TEST(Progress, AbsurdNumbersAreDroppedNotOverflowed) {
    EXPECT_FALSE(parse_clock_time("1e306:00:00").has_value());
    ProgressParser parser(10.0);
    auto u =
        parser.feed("frame=1e30\ntotal_size=99999999999999999999\nout_time=1e306:00:00\nprogress=continue\n");
    ASSERT_EQ(u.size(), 1u);
    EXPECT_FALSE(u[0].frame.has_value());
    EXPECT_FALSE(u[0].total_size.has_value());
    EXPECT_EQ(u[0].out_time_seconds, 0.0);
    EXPECT_EQ(u[0].percent, 0.0);
}

TEST(Progress, ExpectedOutputDuration) {
    JobOptions none;
    EXPECT_EQ(expected_output_duration(60.0, none), 60.0);
    EXPECT_FALSE(expected_output_duration(std::nullopt, none).has_value());
    JobOptions trim;
    trim.trim.start = 10;
    EXPECT_EQ(expected_output_duration(60.0, trim), 50.0);
    trim.trim.duration = 5;
    EXPECT_EQ(expected_output_duration(60.0, trim), 5.0);
    EXPECT_EQ(expected_output_duration(12.0, trim), 2.0);
    EXPECT_EQ(expected_output_duration(std::nullopt, trim), 5.0);
    EXPECT_FALSE(expected_output_duration(8.0, trim).has_value());  // starts past the end
}

}  // namespace
}  // namespace distconv::media
