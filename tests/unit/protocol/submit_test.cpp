// Parsing the submitted `job` object: job-level fields are validated here, the rest goes to
// media::parse_job_options; every error is INVALID_ARGUMENT naming the field.
#include "protocol/engines.hpp"
#include "protocol/jobs.hpp"

#include <gtest/gtest.h>

namespace distconv::protocol {
namespace {

using nlohmann::json;

const std::string k_sha(64, 'a');

TEST(SubmitJob, FfmpegRemoteExampleParses) {
    const json j = json::parse(R"({
        "output_filename": "outfile.mp4",
        "video": {"codec": "libx264", "crf": 23, "bitrate": "3M", "fps": 30, "scale": "1280:720"},
        "audio": {"codec": "aac", "bitrate": "192k"},
        "container": "mp4",
        "extra_args": ["-movflags", "+faststart"]
    })");
    auto r = parse_submit_job_request(j, SubmitKind::Multipart);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->options.output_filename, "outfile.mp4");
    EXPECT_EQ(r->options.video.crf, 23);
    EXPECT_EQ(r->options.audio.bitrate, "192k");
    EXPECT_EQ(r->priority, 0);
    EXPECT_EQ(r->max_attempts, 3);
    EXPECT_FALSE(r->ttl_seconds.has_value());
    EXPECT_FALSE(r->source.has_value());
    EXPECT_FALSE(r->source_url.has_value());
}

TEST(SubmitJob, JobLevelFieldsAreTakenOutBeforeTheOptions) {
    const json j = json::parse(R"({
        "preset": "h264-web", "priority": 100, "ttl_seconds": 60, "max_attempts": 20,
        "requirements": {"encoders": ["libx265"], "hwaccel": "vaapi", "tags": ["gpu"]},
        "source": {"size": 10, "sha256": ")" +
                               k_sha + R"(", "filename": "in.mkv"}
    })");
    auto r = parse_submit_job_request(j, SubmitKind::JsonOnly);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->options.preset, "h264-web");
    EXPECT_EQ(r->priority, 100);
    EXPECT_EQ(r->ttl_seconds, 60);
    EXPECT_EQ(r->max_attempts, 20);
    EXPECT_EQ(r->requirements.encoders, std::vector<std::string>{"libx265"});
    EXPECT_EQ(r->requirements.hwaccel, "vaapi");
    ASSERT_TRUE(r->source.has_value());
    EXPECT_EQ(r->source->size, 10);
    EXPECT_EQ(r->source->filename, "in.mkv");
}

TEST(SubmitJob, MultipartMayDeclareTheSourceForAChecksum) {
    auto r = parse_submit_job_request(json::parse(R"({"source": {"size": 5, "sha256": ")" + k_sha + R"("}})"),
                                      SubmitKind::Multipart);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->source->sha256, k_sha);
}

TEST(SubmitJob, NullMeansNotGiven) {
    auto r = parse_submit_job_request(
        json::parse(R"({"priority": null, "ttl_seconds": null, "source_url": null})"), SubmitKind::Multipart);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->priority, 0);
}

struct BadCase {
    const char* name;
    const char* body;
    SubmitKind kind;
    const char* field;
};

class SubmitJobErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(SubmitJobErrors, NameTheField) {
    const auto& c = GetParam();
    auto r = parse_submit_job_request(json::parse(c.body), c.kind);
    ASSERT_FALSE(r.ok()) << c.name << " was accepted";
    EXPECT_EQ(r.error().code, ErrorCode::InvalidArgument);
    ASSERT_TRUE(r.error().details.contains("field")) << r.error().to_string();
    EXPECT_EQ(r.error().details["field"], c.field) << r.error().to_string();
    EXPECT_FALSE(r.error().message.empty());
    // The envelope is the one error shape.
    const json env = r.error().to_json();
    EXPECT_EQ(env["error"]["code"], "INVALID_ARGUMENT");
    EXPECT_EQ(env["error"]["details"]["field"], c.field);
}

constexpr auto M = SubmitKind::Multipart;
constexpr auto J = SubmitKind::JsonOnly;

INSTANTIATE_TEST_SUITE_P(
    Cases, SubmitJobErrors,
    ::testing::Values(
        BadCase{"not_object", R"([1,2])", M, "body"}, BadCase{"string_body", R"("job")", M, "body"},
        BadCase{"priority_string", R"({"priority": "high"})", M, "priority"},
        BadCase{"priority_float", R"({"priority": 1.5})", M, "priority"},
        BadCase{"priority_too_high", R"({"priority": 101})", M, "priority"},
        BadCase{"priority_too_low", R"({"priority": -101})", M, "priority"},
        BadCase{"priority_huge", R"({"priority": 99999999999999})", M, "priority"},
        BadCase{"ttl_zero", R"({"ttl_seconds": 0})", M, "ttl_seconds"},
        BadCase{"ttl_negative", R"({"ttl_seconds": -5})", M, "ttl_seconds"},
        BadCase{"ttl_bool", R"({"ttl_seconds": true})", M, "ttl_seconds"},
        BadCase{"max_attempts_zero", R"({"max_attempts": 0})", M, "max_attempts"},
        BadCase{"max_attempts_21", R"({"max_attempts": 21})", M, "max_attempts"},
        BadCase{"requirements_array", R"({"requirements": []})", M, "requirements"},
        BadCase{"requirements_unknown", R"({"requirements": {"gpu": true}})", M, "requirements.gpu"},
        BadCase{"requirements_encoders_type", R"({"requirements": {"encoders": "libx265"}})", M,
                "requirements.encoders"},
        BadCase{"requirements_encoder_item", R"({"requirements": {"encoders": ["libx265", 5]}})", M,
                "requirements.encoders[1]"},
        BadCase{"requirements_hwaccel_type", R"({"requirements": {"hwaccel": ["vaapi"]}})", M,
                "requirements.hwaccel"},
        BadCase{"source_missing_size", R"({"source": {"filename": "a.mkv"}})", J, "source.size"},
        BadCase{"source_size_zero", R"({"source": {"size": 0}})", J, "source.size"},
        BadCase{"source_size_string", R"({"source": {"size": "10"}})", J, "source.size"},
        BadCase{"source_sha_short", R"({"source": {"size": 1, "sha256": "abc"}})", J, "source.sha256"},
        BadCase{
            "source_sha_upper",
            R"({"source": {"size": 1, "sha256": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}})",
            J, "source.sha256"},
        BadCase{"source_unknown_key", R"({"source": {"size": 1, "md5": "x"}})", J, "source.md5"},
        BadCase{"source_filename_nul", "{\"source\": {\"size\": 1, \"filename\": \"a\\u0000b\"}}", J,
                "source.filename"},
        BadCase{"source_filename_empty", R"({"source": {"size": 1, "filename": ""}})", J, "source.filename"},
        BadCase{"json_without_source", R"({"output_filename": "o.mp4"})", J, "source"},
        BadCase{"json_with_both", R"({"source": {"size": 1}, "source_url": "https://h/x.mp4"})", J,
                "source_url"},
        BadCase{"multipart_with_url", R"({"source_url": "https://h/x.mp4"})", M, "source_url"},
        BadCase{"url_file_scheme", R"({"source_url": "file:///etc/passwd"})", J, "source_url"},
        BadCase{"url_ftp", R"({"source_url": "ftp://h/x.mp4"})", J, "source_url"},
        BadCase{"url_space", R"({"source_url": "https://h/x y.mp4"})", J, "source_url"},
        BadCase{"url_not_string", R"({"source_url": 5})", J, "source_url"},
        BadCase{"option_unknown_top", R"({"crf": 23})", M, "crf"},
        BadCase{"option_unknown_video", R"({"video": {"crff": 23}})", M, "video.crff"},
        BadCase{"option_crf_type", R"({"video": {"crf": "23"}})", M, "video.crf"},
        BadCase{"option_channels_type", R"({"audio": {"channels": "two"}})", M, "audio.channels"},
        BadCase{"option_extra_args_type", R"({"extra_args": "-i x"})", M, "extra_args"}));

TEST(EngineRequests, StrictAboutUnknownFieldsAndRanges) {
    struct Case {
        json body;
        const char* field;
    };
    const json caps = json::parse(R"({"ffmpeg_version":"5.1","encoders":[],"decoders":[],"hwaccels":[]})");
    const std::vector<Case> registration{
        {json{{"hostname", "h"},
              {"version", "1"},
              {"slots", 0},
              {"capabilities", caps},
              {"free_disk_bytes", 1}},
         "slots"},
        {json{{"hostname", ""},
              {"version", "1"},
              {"slots", 1},
              {"capabilities", caps},
              {"free_disk_bytes", 1}},
         "hostname"},
        {json{{"hostname", "h"}, {"version", "1"}, {"slots", 1}, {"free_disk_bytes", 1}}, "capabilities"},
        {json{{"hostname", "h"},
              {"version", "1"},
              {"slots", 1},
              {"capabilities", caps},
              {"free_disk_bytes", 1},
              {"gpus", 2}},
         "gpus"},
    };
    for (const auto& c : registration) {
        auto r = parse_engine_registration(c.body);
        ASSERT_FALSE(r.ok()) << c.body.dump();
        EXPECT_EQ(r.error().details["field"], c.field) << r.error().to_string();
    }
    json bad_caps = caps;
    bad_caps["encoders"] = "libx264";
    auto r = parse_engine_registration(json{{"hostname", "h"},
                                            {"version", "1"},
                                            {"slots", 1},
                                            {"capabilities", bad_caps},
                                            {"free_disk_bytes", 1}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().details["field"], "capabilities.encoders");

    auto hb =
        parse_heartbeat(json::parse(R"({"state":"offline","free_disk_bytes":1,"running_assignments":[]})"));
    ASSERT_FALSE(hb.ok());
    EXPECT_EQ(hb.error().details["field"], "state");
    hb = parse_heartbeat(json::parse(
        R"({"state":"idle","free_disk_bytes":1,"running_assignments":[],"memory":{"total_bytes":1,"available_bytes":1,"free":2}})"));
    ASSERT_FALSE(hb.ok());
    EXPECT_EQ(hb.error().details["field"], "memory.free");

    auto claim = parse_claim_request(json::parse(R"({"free_slots":1,"wait_seconds":61})"));
    ASSERT_FALSE(claim.ok());
    EXPECT_EQ(claim.error().details["field"], "wait_seconds");
    claim = parse_claim_request(json::parse(R"({"wait_seconds":5})"));
    ASSERT_FALSE(claim.ok());
    EXPECT_EQ(claim.error().details["field"], "free_slots");

    auto progress = parse_progress_report(json::parse(R"({"fencing_token":1,"percent":101})"));
    ASSERT_FALSE(progress.ok());
    EXPECT_EQ(progress.error().details["field"], "percent");
    progress = parse_progress_report(json::parse(R"({"percent":5})"));
    ASSERT_FALSE(progress.ok());
    EXPECT_EQ(progress.error().details["field"], "fencing_token");
    progress = parse_progress_report(json::parse(R"({"fencing_token":1,"percent":5,"phase":"muxing"})"));
    ASSERT_FALSE(progress.ok());
    EXPECT_EQ(progress.error().details["field"], "phase");

    auto complete =
        parse_complete_request(json::parse(R"({"fencing_token":1,"output_size":5,"output_sha256":"x"})"));
    ASSERT_FALSE(complete.ok());
    EXPECT_EQ(complete.error().details["field"], "output_sha256");

    auto fail = parse_fail_request(json::parse(R"({"fencing_token":1,"error_class":"fatal","message":"m"})"));
    ASSERT_FALSE(fail.ok());
    EXPECT_EQ(fail.error().details["field"], "error_class");
    fail = parse_fail_request(json{{"fencing_token", 1},
                                   {"error_class", "permanent"},
                                   {"message", "m"},
                                   {"stderr_tail", std::string(70000, 'x')}});
    ASSERT_FALSE(fail.ok());
    EXPECT_EQ(fail.error().details["field"], "stderr_tail");
}

}  // namespace
}  // namespace distconv::protocol
