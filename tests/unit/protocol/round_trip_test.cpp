// Every wire type survives to_json -> parse unchanged, both fully populated and with every optional
// field empty; and the JSON uses the contract's field names.
#include "protocol/protocol.hpp"

#include <gtest/gtest.h>

namespace distconv::protocol {
namespace {

using namespace std::chrono;
using nlohmann::json;

Timestamp at(int h, int m = 0, int s = 0) {
    return sys_days{year{2026} / February / 20} + hours{h} + minutes{m} + seconds{s};
}

media::JobOptions sample_options() {
    media::JobOptions o;
    o.output_filename = "out.mp4";
    o.container = "mp4";
    o.video.codec = "libx264";
    o.video.crf = 23;
    o.video.scale = "1280:720";
    o.audio.codec = "aac";
    o.audio.bitrate = "128k";
    o.extra_args = std::vector<std::string>{"-movflags", "+faststart"};
    return o;
}

template <typename T, typename Parse>
void expect_round_trip(const T& value, Parse parse) {
    const json j = to_json(value);
    auto parsed = parse(j, "");
    ASSERT_TRUE(parsed.ok()) << parsed.error().to_string() << "\n" << j.dump(2);
    EXPECT_EQ(parsed.value(), value) << j.dump(2);
    // Through text too, as it travels.
    auto reparsed = parse(json::parse(j.dump()), "");
    ASSERT_TRUE(reparsed.ok());
    EXPECT_EQ(reparsed.value(), value);
}

Attempt full_attempt() {
    return Attempt{2,
                   "a2",
                   "e1",
                   7,
                   TransferMode::Stream,
                   at(12, 1),
                   at(12, 2),
                   1,
                   ErrorClass::Transient,
                   "engine lost"};
}

JobResource full_job() {
    JobResource j;
    j.job_id = "01HQ3K6Z8X5Y2C9V7B4N1M0P8R";
    j.state = JobState::Running;
    j.progress_percent = 47;
    j.owner = "alice";
    j.options = sample_options();
    j.resolved_options = sample_options();
    j.resolved_options.preset = "h264-web";
    j.ffmpeg_command = "ffmpeg -i {input} {output}";
    j.priority = -5;
    j.max_attempts = 4;
    j.ttl_seconds = 3600;
    j.requirements = Requirements{{"libx265"}, "vaapi", {"gpu"}};
    j.attempts = {Attempt{1, "a1", "e1", 6, TransferMode::File, at(12, 0, 30), std::nullopt, std::nullopt,
                          std::nullopt, std::nullopt},
                  full_attempt()};
    j.source = SourceInfo{"in.mkv", 1234, std::string(64, 'a'), json{{"duration_seconds", 20.0}}};
    j.output = OutputInfo{"out.mp4", 999, std::string(64, 'b'), at(23)};
    j.upload_url = "/api/v1/jobs/x/source";
    j.queue_position = 3;
    j.message = "Transcoding";
    j.failure_reason = "expired";
    j.fps = 58.5;
    j.speed = 1.5;
    j.eta_seconds = 21;
    j.created_at = at(12);
    j.queued_at = at(12, 0, 1);
    j.started_at = at(12, 0, 5);
    j.finished_at = at(12, 5);
    j.updated_at = at(12, 5);
    return j;
}

TEST(RoundTrip, JobResourceFullAndMinimal) {
    expect_round_trip(full_job(), parse_job_resource);
    JobResource minimal;
    minimal.job_id = "j";
    minimal.owner = "bob";
    minimal.output.filename = "o.mkv";
    minimal.created_at = at(1);
    minimal.updated_at = at(1);
    expect_round_trip(minimal, parse_job_resource);
    const json j = to_json(minimal);
    // Nullable fields are present as null, as the spec's `required` lists say.
    for (const char* key : {"queue_position", "message", "started_at", "finished_at", "ffmpeg_command",
                            "upload_url", "failure_reason", "ttl_seconds", "queued_at"}) {
        ASSERT_TRUE(j.contains(key)) << key;
        EXPECT_TRUE(j[key].is_null()) << key;
    }
    EXPECT_EQ(j["state"], "queued");
    EXPECT_EQ(j["created_at"], "2026-02-20T01:00:00Z");
}

TEST(RoundTrip, JobStatusKeepsTheFfmpegRemoteShape) {
    JobStatus s{"6f2f",       JobState::Running, 47,           std::nullopt, "Transcoding", at(12),
                at(12, 0, 5), std::nullopt,      std::nullopt, std::nullopt, std::nullopt};
    expect_round_trip(s, parse_job_status);
    const json j = to_json(s);
    EXPECT_EQ(j,
              json::parse(R"({"job_id":"6f2f","state":"running","progress_percent":47,"queue_position":null,
        "message":"Transcoding","created_at":"2026-02-20T12:00:00Z","started_at":"2026-02-20T12:00:05Z",
        "finished_at":null})"));
    s.fps = 30;
    s.speed = 1.25;
    s.eta_seconds = 12;
    expect_round_trip(s, parse_job_status);
    EXPECT_EQ(status_of(full_job()).progress_percent, 47);
    EXPECT_EQ(status_of(full_job()).eta_seconds, 21);
}

TEST(RoundTrip, JobListAndSummary) {
    JobList list;
    list.items.push_back(summary_of(full_job()));
    JobSummary second;
    second.job_id = "k";
    second.created_at = at(2);
    list.items.push_back(second);
    list.total = 42;
    list.next_cursor = "c2";
    expect_round_trip(list, parse_job_list);
    list.next_cursor.reset();
    expect_round_trip(list, parse_job_list);
    EXPECT_EQ(list.items[0].output_filename, "out.mp4");
    // The ffmpeg-remote example list item (four fields) parses.
    auto r = parse_job_list(json::parse(R"({"items":[{"job_id":"6f2f","state":"running","progress_percent":47,
        "created_at":"2026-02-20T12:00:00Z"}],"total":1})"));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->items.at(0).state, JobState::Running);
    EXPECT_FALSE(r->next_cursor.has_value());
}

TEST(RoundTrip, SmallJobAnswers) {
    expect_round_trip(CancelReply{"j", JobState::Canceling}, parse_cancel_reply);
    expect_round_trip(UploadStatus{"j", 100, 200, false, JobState::AwaitingUpload}, parse_upload_status);
    expect_round_trip(UploadStatus{"j", 100, std::nullopt, true, JobState::Queued}, parse_upload_status);
    expect_round_trip(StateEvent{"j", JobState::Completed, 100, "done", at(3)}, parse_state_event);
    expect_round_trip(StateEvent{"j", JobState::Queued, 0, std::nullopt, at(3)}, parse_state_event);
    expect_round_trip(ProgressEvent{"j", 50, 10.5, 30, 1.2, 9}, parse_progress_event);
    expect_round_trip(ProgressEvent{"j", 0, std::nullopt, std::nullopt, std::nullopt, std::nullopt},
                      parse_progress_event);
    expect_round_trip(full_attempt(), parse_attempt);
    expect_round_trip(Requirements{}, parse_requirements);
    expect_round_trip(SourceInfo{}, parse_source_info);
    expect_round_trip(SourceDeclaration{5, std::nullopt, std::nullopt}, parse_source_declaration);
    expect_round_trip(SourceDeclaration{5, std::string(64, 'c'), "a b.mkv"}, parse_source_declaration);
}

TEST(RoundTrip, SubmitJobRequest) {
    SubmitJobRequest req;
    req.options = sample_options();
    req.priority = 10;
    req.ttl_seconds = 600;
    req.max_attempts = 5;
    req.requirements = Requirements{{"libx265"}, std::nullopt, {"gpu", "fast"}};
    req.source = SourceDeclaration{1024, std::string(64, 'd'), "in.mov"};
    const json j = to_json(req);
    EXPECT_EQ(j["output_filename"], "out.mp4");  // options sit beside the job-level fields
    EXPECT_EQ(j["video"]["crf"], 23);
    auto parsed = parse_submit_job_request(j, SubmitKind::JsonOnly);
    ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
    EXPECT_EQ(parsed.value(), req);

    SubmitJobRequest by_url;
    by_url.options.preset = "vp9-web";
    by_url.source_url = "https://media.example.org/talk.mp4";
    auto parsed_url = parse_submit_job_request(to_json(by_url), SubmitKind::JsonOnly);
    ASSERT_TRUE(parsed_url.ok()) << parsed_url.error().to_string();
    EXPECT_EQ(parsed_url.value(), by_url);
}

TEST(RoundTrip, EngineTypes) {
    const Capabilities caps{"5.1.6", {"libx264", "aac"}, {"h264"}, {"vaapi"}};
    expect_round_trip(caps, parse_capabilities);
    expect_round_trip(EngineRegistration{"enc-01", "0.1.0", 4, caps, {"gpu"}, 41.5, 1 << 30},
                      parse_engine_registration);
    expect_round_trip(EngineRegistration{"enc-01", "0.1.0", 1, caps, {}, std::nullopt, 0},
                      parse_engine_registration);
    expect_round_trip(EngineRegistrationReply{"e1", 5, 30}, parse_engine_registration_reply);
    expect_round_trip(Heartbeat{EngineState::Busy, 1.5, 1000, Memory{8000, 4000}, 61.5, {"a1", "a2"}, 40.0},
                      parse_heartbeat);
    expect_round_trip(
        Heartbeat{EngineState::Idle, std::nullopt, 0, std::nullopt, std::nullopt, {}, std::nullopt},
        parse_heartbeat);
    expect_round_trip(HeartbeatReply{{"a1"}, true, true}, parse_heartbeat_reply);
    expect_round_trip(HeartbeatReply{}, parse_heartbeat_reply);
    EngineInfo info{"e1", "enc-01", "0.1.0", EngineState::Offline, true, 2,     {"a1"}, caps, {"gpu"},
                    41.5, 5000,     0.5,     Memory{1, 1},         55.0, at(1), at(2)};
    expect_round_trip(info, parse_engine_info);
    info.benchmark_score.reset();
    info.load_average.reset();
    info.memory.reset();
    info.cpu_temperature_c.reset();
    expect_round_trip(info, parse_engine_info);
    expect_round_trip(ClaimRequest{2, 0, 123}, parse_claim_request);
    expect_round_trip(ClaimRequest{1, 60, std::nullopt}, parse_claim_request);
}

TEST(RoundTrip, AssignmentTypes) {
    Assignment a{"a1",
                 "j1",
                 3,
                 at(12, 0, 35),
                 30,
                 {"-i", "{input}", "{output}"},
                 sample_options(),
                 "/api/v1/assignments/a1/source",
                 1 << 20,
                 std::string(64, 'e'),
                 TransferMode::Stream,
                 "mkv",
                 "out.mkv",
                 20.0};
    expect_round_trip(a, parse_assignment);
    a.source_sha256.reset();
    a.duration_seconds.reset();
    expect_round_trip(a, parse_assignment);
    a.source_format = "matroska";
    a.credential = "dca1.a1.3.1771589735000.00ff";
    a.credential_expires_at = at(12, 15, 35);
    expect_round_trip(a, parse_assignment);
    expect_round_trip(ProgressReport{3, ProgressPhase::Uploading, 99.5, 19.9, 60, 2, 0.5},
                      parse_progress_report);
    expect_round_trip(ProgressReport{3, ProgressPhase::Transcoding, 0, std::nullopt, std::nullopt,
                                     std::nullopt, std::nullopt},
                      parse_progress_report);
    expect_round_trip(ProgressReply{false, at(12, 1)}, parse_progress_reply);
    expect_round_trip(ProgressReply{true, at(12, 1), std::string("dca1.a1.3.1.ab"), at(12, 16)},
                      parse_progress_reply);
    EXPECT_EQ(to_json(ProgressReply{false, at(12, 1)})["continue"], false);  // the wire name, not continue_
    expect_round_trip(OutputUploadStatus{"a1", 4096}, parse_output_upload_status);
    expect_round_trip(CompleteRequest{3, 4096, std::string(64, 'f'), 20.0, 11.8}, parse_complete_request);
    expect_round_trip(CompleteRequest{3, 0, std::string(64, 'f'), std::nullopt, std::nullopt},
                      parse_complete_request);
    expect_round_trip(FailRequest{3, 1, "Invalid data", ErrorClass::Permanent, "ffmpeg exited 1"},
                      parse_fail_request);
    expect_round_trip(FailRequest{3, std::nullopt, "", ErrorClass::Transient, "engine shutting down"},
                      parse_fail_request);
    expect_round_trip(AssignmentAck{"j1", JobState::Queued}, parse_assignment_ack);
}

TEST(RoundTrip, AdminTypes) {
    expect_round_trip(Preset{"h264-web", "H.264 for browsers", sample_options()}, parse_preset);
    expect_round_trip(Pool{"fast", "/srv/fast", 1000, 10, 5, 985, true}, parse_pool);
    const Pool user_view{"fast", std::nullopt, std::nullopt, 10, 5, 985, false};
    expect_round_trip(user_view, parse_pool);
    EXPECT_FALSE(to_json(user_view).contains("path"));
    expect_round_trip(CreateKeyRequest{"alice@example", Role::Admin}, parse_create_key_request);
    const ApiKeyInfo info{"k1", "alice", Role::Engine, "dck_7Gm2", at(1), at(2), true};
    expect_round_trip(info, parse_api_key_info);
    expect_round_trip(ApiKeyInfo{"k1", "alice", Role::User, "", at(1), std::nullopt, false},
                      parse_api_key_info);
    expect_round_trip(CreatedKey{info, "dck_secret"}, parse_created_key);
    EXPECT_EQ(to_json(CreatedKey{info, "dck_secret"})["key"], "dck_secret");
    expect_round_trip(Readiness{false, {{"database", true, ""}, {"pool:fast", false, "read-only"}}},
                      parse_readiness);
}

TEST(RoundTrip, ItemLists) {
    const std::vector<Pool> pools{{"a", std::nullopt, std::nullopt, 1, 2, 3, true},
                                  {"b", "/b", 9, 0, 0, 9, true}};
    const json j = items_to_json(pools);
    ASSERT_TRUE(j.contains("items"));
    auto parsed = parse_items<Pool>(j, parse_pool);
    ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
    EXPECT_EQ(parsed.value(), pools);
    auto bad = parse_items<Pool>(json::parse(R"({"items":[{"name":"a"}]})"), parse_pool);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().details["field"], "items[0].used_bytes");
}

TEST(RoundTrip, PresetsFromMediaConvert) {
    ASSERT_FALSE(media::builtin_presets().empty());
    for (const auto& p : media::builtin_presets()) {
        const Preset wire = preset_from(p);
        EXPECT_EQ(wire.name, p.name);
        expect_round_trip(wire, parse_preset);
    }
}

TEST(RoundTrip, AnswersIgnoreUnknownFields) {
    // A newer server may add fields; clients keep working.
    json j = to_json(full_job());
    j["some_future_field"] = {{"x", 1}};
    auto parsed = parse_job_resource(j);
    ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
    EXPECT_EQ(parsed.value(), full_job());
}

TEST(RoundTrip, AnswerErrorsNameNestedFields) {
    json j = to_json(full_job());
    j["attempts"][1]["fencing_token"] = "seven";
    auto r = parse_job_resource(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::InvalidArgument);
    EXPECT_EQ(r.error().details["field"], "attempts[1].fencing_token");

    j = to_json(full_job());
    j["options"]["video"]["crf"] = "high";
    r = parse_job_resource(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().details["field"], "options.video.crf");

    j = to_json(full_job());
    j["output"]["expires_at"] = "tomorrow";
    r = parse_job_resource(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().details["field"], "output.expires_at");

    j = to_json(full_job());
    j["state"] = "paused";
    r = parse_job_resource(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().details["field"], "state");
}

}  // namespace
}  // namespace distconv::protocol
