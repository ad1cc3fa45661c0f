#pragma once
// Wire types of the engine protocol: registration, heartbeats, claims, assignments, progress,
// output upload, complete and fail. Every call about an assignment carries its fencing token;
// a stale one is answered 409 LEASE_LOST (see docs/protocol.md).

#include "common/error.hpp"
#include "common/media/options.hpp"
#include "common/media/stream_plan.hpp"
#include "protocol/job_state.hpp"
#include "protocol/types.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace distconv::protocol {

struct Capabilities {
    std::string ffmpeg_version;
    std::vector<std::string> encoders;
    std::vector<std::string> decoders;
    std::vector<std::string> hwaccels;
    bool operator==(const Capabilities&) const = default;
};

struct Memory {
    std::int64_t total_bytes = 0;
    std::int64_t available_bytes = 0;
    bool operator==(const Memory&) const = default;
};

// POST /engines
struct EngineRegistration {
    std::string hostname;
    std::string version;
    int slots = 1;  // 1..256
    Capabilities capabilities;
    std::vector<std::string> tags;
    std::optional<double> benchmark_score;
    std::int64_t free_disk_bytes = 0;
    bool operator==(const EngineRegistration&) const = default;
};

struct EngineRegistrationReply {
    std::string engine_id;
    int heartbeat_interval_seconds = 5;
    int lease_seconds = 30;
    bool operator==(const EngineRegistrationReply&) const = default;
};

// POST /engines/{id}/heartbeat. `state` is idle, busy or draining (never offline).
struct Heartbeat {
    EngineState state = EngineState::Idle;
    std::optional<double> load_average;
    std::int64_t free_disk_bytes = 0;
    std::optional<Memory> memory;
    std::optional<double> cpu_temperature_c;  // absent sensor: null
    std::vector<std::string> running_assignments;
    std::optional<double> benchmark_score;  // after a re-run benchmark
    bool operator==(const Heartbeat&) const = default;
};

struct HeartbeatReply {
    std::vector<std::string> cancel;  // assignments to stop now
    bool drain = false;
    bool rerun_benchmark = false;
    bool operator==(const HeartbeatReply&) const = default;
};

// GET /engines rows; also the drain/undrain answer.
struct EngineInfo {
    std::string engine_id;
    std::string hostname;
    std::string version;
    EngineState state = EngineState::Idle;
    bool drain_requested = false;
    int slots = 1;
    std::vector<std::string> running_assignments;
    Capabilities capabilities;
    std::vector<std::string> tags;
    std::optional<double> benchmark_score;
    std::int64_t free_disk_bytes = 0;
    std::optional<double> load_average;
    std::optional<Memory> memory;
    std::optional<double> cpu_temperature_c;
    Timestamp registered_at{};
    Timestamp last_seen_at{};
    bool operator==(const EngineInfo&) const = default;
};

// POST /engines/{id}/claim
struct ClaimRequest {
    int free_slots = 1;     // 1..256
    int wait_seconds = 30;  // 0..k_max_claim_wait_seconds
    std::optional<std::int64_t> free_disk_bytes;
    bool operator==(const ClaimRequest&) const = default;
};

// A task of a split job (split mode): one video segment, or the audio (with the subtitles and
// chapters) of the whole source. The job's own assignments have none.
struct AssignmentTask {
    std::string kind;         // "video_segment" or "audio"
    int index = 0;            // the segment's number, from 0 (the audio task: 0)
    std::int64_t frames = 0;  // video frames the segment holds (the audio task: 0)
    bool operator==(const AssignmentTask&) const = default;
};
inline constexpr std::string_view k_task_video_segment = "video_segment";
inline constexpr std::string_view k_task_audio = "audio";

// The claim answer: one attempt at one job.
struct Assignment {
    std::string assignment_id;
    std::string job_id;
    std::int64_t fencing_token = 0;
    Timestamp lease_expires_at{};
    int lease_seconds = 30;
    std::vector<std::string> ffmpeg_argv;  // without "ffmpeg"; {input}/{output} placeholders
    media::JobOptions options;             // resolved
    std::string source_url;
    std::int64_t source_size = 0;
    std::optional<std::string> source_sha256;
    TransferMode transfer_mode = TransferMode::File;
    std::string output_container;
    std::string output_filename;
    std::optional<double> duration_seconds;
    // The demuxer the source was probed as at submit (media/input_policy.hpp): ffmpeg reads it with
    // -f and -format_whitelist, never by guessing from the bytes.
    std::string source_format{};
    // The source's ffprobe taken at submit (media::to_json(ProbeInfo)), or null for a job stored
    // before there was one. The engine plans the streams from it exactly as the dispatch did, checks
    // the argv against that plan and verifies its output against it.
    nlohmann::json source_probe{};
    // A short-lived credential for this one assignment (GET its source, HEAD/PUT its output, nothing
    // else), valid while the attempt holds its job and until credential_expires_at; progress replies
    // renew it. The engine uses it for the bytes, so no transfer needs the engine key.
    std::string credential{};
    std::optional<Timestamp> credential_expires_at{};
    std::optional<AssignmentTask> task{};
    bool operator==(const Assignment&) const = default;

    bool video_segment() const { return task && task->kind == k_task_video_segment; }
};

// The argv (without "ffmpeg"; {input}/{output} placeholders) that runs an assignment: what the
// dispatch server sends and what the engine checks it against, built by the same code on both sides.
// With a stream plan the argv maps exactly the planned streams; without one (no probe stored) it
// maps the first video and audio stream.
// A video segment's argv (video_segment) encodes its one video stream to NUT, joinable.
Result<std::vector<std::string>> assignment_argv(const media::JobOptions& options, TransferMode mode,
                                                 const std::string& source_format,
                                                 const media::StreamPlan* plan = nullptr,
                                                 bool video_segment = false);
// The demuxer that reads an assignment's output back ("nut" for a video segment).
std::string assignment_output_demuxer(const Assignment& a);

// The stream plan of an assignment, from its source probe (nullopt when it has none).
Result<std::optional<media::StreamPlan>> assignment_plan(const Assignment& a);

// Replaces whole arguments equal to {input} / {output}; a placeholder inside a longer argument is
// left alone on purpose (the server never builds such arguments, so one would be a bug or an attack).
std::vector<std::string> substitute_placeholders(const std::vector<std::string>& argv,
                                                 const std::string& input, const std::string& output);

// POST /assignments/{aid}/progress
struct ProgressReport {
    std::int64_t fencing_token = 0;
    ProgressPhase phase = ProgressPhase::Transcoding;
    double percent = 0;  // 0..100
    std::optional<double> out_time_seconds;
    std::optional<double> fps;
    std::optional<double> speed;
    std::optional<double> eta_seconds;
    bool operator==(const ProgressReport&) const = default;
};

struct ProgressReply {
    bool continue_ = true;  // "continue" on the wire; false: the job was canceled, stop now
    Timestamp lease_expires_at{};
    // The assignment's credential renewed to the new lease (absent when the job stops).
    std::optional<std::string> credential{};
    std::optional<Timestamp> credential_expires_at{};
    bool operator==(const ProgressReply&) const = default;
};

// PUT /assignments/{aid}/output answer.
struct OutputUploadStatus {
    std::string assignment_id;
    std::int64_t offset = 0;
    bool operator==(const OutputUploadStatus&) const = default;
};

// POST /assignments/{aid}/complete
struct CompleteRequest {
    std::int64_t fencing_token = 0;
    std::int64_t output_size = 0;
    std::string output_sha256;
    std::optional<double> duration_seconds;
    std::optional<double> elapsed_seconds;
    bool operator==(const CompleteRequest&) const = default;
};

// POST /assignments/{aid}/fail
struct FailRequest {
    std::int64_t fencing_token = 0;
    std::optional<int> exit_code;  // null: ffmpeg never ran or died by a signal
    std::string stderr_tail;
    ErrorClass error_class = ErrorClass::Transient;
    std::string message;
    bool operator==(const FailRequest&) const = default;
};

inline constexpr std::size_t k_max_stderr_tail_bytes = 65536;

// complete/fail answer: the job's state afterwards.
struct AssignmentAck {
    std::string job_id;
    JobState state = JobState::Completed;
    bool operator==(const AssignmentAck&) const = default;
};

Result<Capabilities> parse_capabilities(const nlohmann::json& j, const std::string& prefix = "");
Result<Memory> parse_memory(const nlohmann::json& j, const std::string& prefix = "");
Result<EngineRegistration> parse_engine_registration(const nlohmann::json& j, const std::string& prefix = "");
Result<EngineRegistrationReply> parse_engine_registration_reply(const nlohmann::json& j,
                                                                const std::string& prefix = "");
Result<Heartbeat> parse_heartbeat(const nlohmann::json& j, const std::string& prefix = "");
Result<HeartbeatReply> parse_heartbeat_reply(const nlohmann::json& j, const std::string& prefix = "");
Result<EngineInfo> parse_engine_info(const nlohmann::json& j, const std::string& prefix = "");
Result<ClaimRequest> parse_claim_request(const nlohmann::json& j, const std::string& prefix = "");
Result<AssignmentTask> parse_assignment_task(const nlohmann::json& j, const std::string& prefix = "");
Result<Assignment> parse_assignment(const nlohmann::json& j, const std::string& prefix = "");
Result<ProgressReport> parse_progress_report(const nlohmann::json& j, const std::string& prefix = "");
Result<ProgressReply> parse_progress_reply(const nlohmann::json& j, const std::string& prefix = "");
Result<OutputUploadStatus> parse_output_upload_status(const nlohmann::json& j,
                                                      const std::string& prefix = "");
Result<CompleteRequest> parse_complete_request(const nlohmann::json& j, const std::string& prefix = "");
Result<FailRequest> parse_fail_request(const nlohmann::json& j, const std::string& prefix = "");
Result<AssignmentAck> parse_assignment_ack(const nlohmann::json& j, const std::string& prefix = "");

nlohmann::json to_json(const Capabilities& v);
nlohmann::json to_json(const Memory& v);
nlohmann::json to_json(const EngineRegistration& v);
nlohmann::json to_json(const EngineRegistrationReply& v);
nlohmann::json to_json(const Heartbeat& v);
nlohmann::json to_json(const HeartbeatReply& v);
nlohmann::json to_json(const EngineInfo& v);
nlohmann::json to_json(const ClaimRequest& v);
nlohmann::json to_json(const Assignment& v);
nlohmann::json to_json(const ProgressReport& v);
nlohmann::json to_json(const ProgressReply& v);
nlohmann::json to_json(const OutputUploadStatus& v);
nlohmann::json to_json(const CompleteRequest& v);
nlohmann::json to_json(const FailRequest& v);
nlohmann::json to_json(const AssignmentAck& v);

}  // namespace distconv::protocol
