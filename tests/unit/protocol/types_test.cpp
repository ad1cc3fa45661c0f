#include "protocol/types.hpp"
#include "protocol/engines.hpp"

#include <gtest/gtest.h>

namespace distconv::protocol {
namespace {

using namespace std::chrono;

TEST(Timestamp, FormatsUtcWholeSeconds) {
    const Timestamp t = sys_days{year{2026} / February / 20} + hours{12} + minutes{0} + seconds{5};
    EXPECT_EQ(format_timestamp(t), "2026-02-20T12:00:05Z");
    EXPECT_EQ(format_timestamp(Timestamp{}), "1970-01-01T00:00:00Z");
}

TEST(Timestamp, ParsesRfc3339) {
    const Timestamp t = sys_days{year{2026} / February / 20} + hours{12};
    EXPECT_EQ(parse_timestamp("2026-02-20T12:00:00Z"), t);
    EXPECT_EQ(parse_timestamp("2026-02-20t12:00:00z"), t);
    EXPECT_EQ(parse_timestamp("2026-02-20T12:00:00.987Z"), t);  // truncated
    EXPECT_EQ(parse_timestamp("2026-02-20T13:30:00+01:30"), t);
    EXPECT_EQ(parse_timestamp("2026-02-20T10:00:00-02:00"), t);
    EXPECT_EQ(parse_timestamp("2024-02-29T00:00:00Z"), Timestamp{sys_days{year{2024} / February / 29}});
}

TEST(Timestamp, RejectsMalformed) {
    for (const char* bad :
         {"", "2026-02-20", "2026-02-20 12:00:00Z", "2026-02-20T12:00:00", "2026-02-30T12:00:00Z",
          "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-02-20T24:00:00Z", "2026-02-20T12:60:00Z",
          "2026-02-20T12:00:00.Z", "2026-02-20T12:00:00Zjunk", "2026-02-20T12:00:00+0100", "20260220T120000Z",
          "2026-02-20T12:00:00+25:00"}) {
        EXPECT_FALSE(parse_timestamp(bad).has_value()) << bad;
    }
}

TEST(Timestamp, RoundTrips) {
    const Timestamp t = sys_days{year{2031} / December / 31} + hours{23} + minutes{59} + seconds{59};
    EXPECT_EQ(parse_timestamp(format_timestamp(t)), t);
}

TEST(Enums, NamesRoundTrip) {
    for (auto c : {ErrorClass::Permanent, ErrorClass::Transient})
        EXPECT_EQ(parse_error_class(to_string(c)), c);
    for (auto m : {TransferMode::File, TransferMode::Stream}) EXPECT_EQ(parse_transfer_mode(to_string(m)), m);
    for (auto s : {EngineState::Idle, EngineState::Busy, EngineState::Draining, EngineState::Offline})
        EXPECT_EQ(parse_engine_state(to_string(s)), s);
    for (auto s : {AttemptState::Active, AttemptState::Completed, AttemptState::Failed,
                   AttemptState::Canceled, AttemptState::Lost, AttemptState::Undelivered})
        EXPECT_EQ(parse_attempt_state(to_string(s)), s);
    for (auto p : {ProgressPhase::Downloading, ProgressPhase::Transcoding, ProgressPhase::Uploading})
        EXPECT_EQ(parse_progress_phase(to_string(p)), p);
    for (auto r : {Role::Admin, Role::User, Role::Engine}) EXPECT_EQ(parse_role(to_string(r)), r);
    EXPECT_EQ(to_string(TransferMode::Stream), "stream");
    EXPECT_EQ(to_string(Role::Engine), "engine");
    // The names the dispatch store has always written to attempts.state.
    EXPECT_EQ(to_string(AttemptState::Undelivered), "undelivered");
    EXPECT_EQ(to_string(AttemptState::Canceled), "canceled");
    EXPECT_FALSE(parse_attempt_state("cancelled").has_value());
    EXPECT_FALSE(parse_role("root").has_value());
    EXPECT_FALSE(parse_error_class("Permanent").has_value());
}

TEST(Sha256Hex, AcceptsOnlyLowercase64Hex) {
    const std::string good(64, 'a');
    EXPECT_TRUE(is_sha256_hex(good));
    EXPECT_TRUE(is_sha256_hex("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"));
    EXPECT_FALSE(is_sha256_hex(std::string(63, 'a')));
    EXPECT_FALSE(is_sha256_hex(std::string(65, 'a')));
    EXPECT_FALSE(is_sha256_hex(std::string(64, 'A')));
    EXPECT_FALSE(is_sha256_hex(std::string(64, 'g')));
}

TEST(Placeholders, ReplaceWholeArgumentsOnly) {
    const std::vector<std::string> argv{"-nostdin", "-i",       "{input}", "-c:v",
                                        "libx264",  "{output}", "x{input}"};
    const auto out = substitute_placeholders(argv, "/work/a/in.mkv", "/work/a/out.mp4");
    EXPECT_EQ(out, (std::vector<std::string>{"-nostdin", "-i", "/work/a/in.mkv", "-c:v", "libx264",
                                             "/work/a/out.mp4", "x{input}"}));
}

}  // namespace
}  // namespace distconv::protocol
