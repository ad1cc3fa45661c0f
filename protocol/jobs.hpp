#pragma once
// Wire types of the user-facing job endpoints (POST/GET /jobs, status, events, uploads).
// Requests parse strictly (unknown keys are errors); answers parse leniently so an older client
// keeps working when the server adds fields.

#include "common/error.hpp"
#include "common/media/options.hpp"
#include "protocol/job_state.hpp"
#include "protocol/types.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace distconv::protocol {

// What an engine must offer to claim a job.
struct Requirements {
    std::vector<std::string> encoders;
    std::optional<std::string> hwaccel;
    std::vector<std::string> tags;
    bool operator==(const Requirements&) const = default;
};

// The source a JSON submit promises to upload (or a check of a multipart `file` part).
struct SourceDeclaration {
    std::int64_t size = 0;
    std::optional<std::string> sha256;  // lowercase hex
    std::optional<std::string> filename;
    bool operator==(const SourceDeclaration&) const = default;
};

inline constexpr int k_default_priority = 0;
inline constexpr int k_default_max_attempts = 3;
// The longest ttl_seconds a job may ask for (10 years): kept in milliseconds, it must not overflow.
inline constexpr std::int64_t k_max_ttl_seconds = 315'360'000;

// Multipart: the source is the `file` part (source_url not allowed). JsonOnly: exactly one of
// `source` and `source_url` is required.
enum class SubmitKind { Multipart, JsonOnly };

// The submitted `job` object: job options plus job-level fields beside them.
struct SubmitJobRequest {
    media::JobOptions options;
    int priority = k_default_priority;          // -100..100, higher first
    std::optional<std::int64_t> ttl_seconds;    // 1..k_max_ttl_seconds
    int max_attempts = k_default_max_attempts;  // 1..20
    Requirements requirements;
    std::optional<SourceDeclaration> source;
    std::optional<std::string> source_url;  // http:// or https:// only
    bool operator==(const SubmitJobRequest&) const = default;
};

// Shape and job-level values are checked here; option values (allow-lists, ranges) are checked by
// media::resolve_options on the server.
Result<SubmitJobRequest> parse_submit_job_request(const nlohmann::json& j, SubmitKind kind);
nlohmann::json to_json(const SubmitJobRequest& request);

struct SourceInfo {
    std::optional<std::string> filename;
    std::optional<std::int64_t> size;
    std::optional<std::string> sha256;
    nlohmann::json probe;  // the ffprobe summary object, or null
    bool operator==(const SourceInfo&) const = default;
};

struct OutputInfo {
    std::string filename;
    std::optional<std::int64_t> size;
    std::optional<std::string> sha256;
    std::optional<Timestamp> expires_at;
    bool operator==(const OutputInfo&) const = default;
};

// One attempt at running a job: one assignment to one engine.
struct Attempt {
    int attempt = 1;
    std::string assignment_id;
    std::string engine_id;
    std::int64_t fencing_token = 0;
    TransferMode transfer_mode = TransferMode::File;
    Timestamp started_at{};
    std::optional<Timestamp> finished_at;
    std::optional<int> exit_code;
    std::optional<ErrorClass> error_class;
    std::optional<std::string> message;
    bool operator==(const Attempt&) const = default;
};

// GET /jobs/{id}: the whole job.
struct JobResource {
    std::string job_id;
    JobState state = JobState::Queued;
    int progress_percent = 0;
    std::string owner;
    media::JobOptions options;           // as submitted (without the job-level fields)
    media::JobOptions resolved_options;  // preset applied, every setting filled in
    std::optional<std::string> ffmpeg_command;
    // The stream plan (media/stream_plan.hpp), once the source is probed: `streams` is what the
    // output gets of each source stream and why; `output_plan` the rest (chapters, picture).
    nlohmann::json streams;      // array, or null
    nlohmann::json output_plan;  // {chapters, chapters_reason, picture}, or null
    // Split mode (docs/protocol.md): {mode, segment_seconds, state, reason, frames, frame_rate,
    // split_seconds, join_seconds, segments: [...]}, or null for a job that is not split.
    nlohmann::json split;
    int priority = k_default_priority;
    int max_attempts = k_default_max_attempts;
    std::optional<std::int64_t> ttl_seconds;
    Requirements requirements;
    std::vector<Attempt> attempts;
    SourceInfo source;
    OutputInfo output;
    std::optional<std::string> upload_url;
    std::optional<int> queue_position;
    std::optional<std::string> message;
    std::optional<std::string> failure_code;  // machine-readable: e.g. SOURCE_CORRUPT, UPLOAD_ABANDONED
    std::optional<std::string> failure_reason;
    std::optional<double> fps;
    std::optional<double> speed;
    std::optional<double> eta_seconds;
    Timestamp created_at{};
    std::optional<Timestamp> queued_at;
    std::optional<Timestamp> started_at;
    std::optional<Timestamp> finished_at;
    Timestamp updated_at{};
    bool operator==(const JobResource&) const = default;
};

// GET /jobs/{id}/status: the ffmpeg-remote status object plus live fps/speed/ETA.
struct JobStatus {
    std::string job_id;
    JobState state = JobState::Queued;
    int progress_percent = 0;
    std::optional<int> queue_position;
    std::optional<std::string> message;
    Timestamp created_at{};
    std::optional<Timestamp> started_at;
    std::optional<Timestamp> finished_at;
    std::optional<double> fps;
    std::optional<double> speed;
    std::optional<double> eta_seconds;
    bool operator==(const JobStatus&) const = default;
};

// One row of GET /jobs.
struct JobSummary {
    std::string job_id;
    JobState state = JobState::Queued;
    int progress_percent = 0;
    std::optional<int> queue_position;
    std::optional<std::string> message;
    std::string owner;
    std::string output_filename;
    int priority = k_default_priority;
    Timestamp created_at{};
    std::optional<Timestamp> started_at;
    std::optional<Timestamp> finished_at;
    bool operator==(const JobSummary&) const = default;
};

struct JobList {
    std::vector<JobSummary> items;
    std::int64_t total = 0;
    std::optional<std::string> next_cursor;
    bool operator==(const JobList&) const = default;
};

// DELETE /jobs/{id} answer.
struct CancelReply {
    std::string job_id;
    JobState state = JobState::Canceled;
    bool operator==(const CancelReply&) const = default;
};

// PUT /jobs/{id}/source answer.
struct UploadStatus {
    std::string job_id;
    std::int64_t offset = 0;
    std::optional<std::int64_t> size;
    bool complete = false;
    JobState state = JobState::AwaitingUpload;
    bool operator==(const UploadStatus&) const = default;
};

// Server-Sent Events on GET /jobs/{id}/events: `event: state` and `event: progress` data.
struct StateEvent {
    std::string job_id;
    JobState state = JobState::Queued;
    int progress_percent = 0;
    std::optional<std::string> message;
    Timestamp at{};
    bool operator==(const StateEvent&) const = default;
};

struct ProgressEvent {
    std::string job_id;
    int progress_percent = 0;
    std::optional<double> out_time_seconds;
    std::optional<double> fps;
    std::optional<double> speed;
    std::optional<double> eta_seconds;
    bool operator==(const ProgressEvent&) const = default;
};

inline constexpr std::string_view k_state_event = "state";
inline constexpr std::string_view k_progress_event = "progress";

// The views of a job resource that other answers carry.
JobStatus status_of(const JobResource& job);
JobSummary summary_of(const JobResource& job);

// `prefix` names where the object sits in a larger body ("items[0]."); errors carry the full path.
Result<Requirements> parse_requirements(const nlohmann::json& j, const std::string& prefix = "");
Result<SourceDeclaration> parse_source_declaration(const nlohmann::json& j, const std::string& prefix = "");
Result<SourceInfo> parse_source_info(const nlohmann::json& j, const std::string& prefix = "");
Result<OutputInfo> parse_output_info(const nlohmann::json& j, const std::string& prefix = "");
Result<Attempt> parse_attempt(const nlohmann::json& j, const std::string& prefix = "");
Result<JobResource> parse_job_resource(const nlohmann::json& j, const std::string& prefix = "");
Result<JobStatus> parse_job_status(const nlohmann::json& j, const std::string& prefix = "");
Result<JobSummary> parse_job_summary(const nlohmann::json& j, const std::string& prefix = "");
Result<JobList> parse_job_list(const nlohmann::json& j, const std::string& prefix = "");
Result<CancelReply> parse_cancel_reply(const nlohmann::json& j, const std::string& prefix = "");
Result<UploadStatus> parse_upload_status(const nlohmann::json& j, const std::string& prefix = "");
Result<StateEvent> parse_state_event(const nlohmann::json& j, const std::string& prefix = "");
Result<ProgressEvent> parse_progress_event(const nlohmann::json& j, const std::string& prefix = "");

nlohmann::json to_json(const Requirements& v);
nlohmann::json to_json(const SourceDeclaration& v);
nlohmann::json to_json(const SourceInfo& v);
nlohmann::json to_json(const OutputInfo& v);
nlohmann::json to_json(const Attempt& v);
nlohmann::json to_json(const JobResource& v);
nlohmann::json to_json(const JobStatus& v);
nlohmann::json to_json(const JobSummary& v);
nlohmann::json to_json(const JobList& v);
nlohmann::json to_json(const CancelReply& v);
nlohmann::json to_json(const UploadStatus& v);
nlohmann::json to_json(const StateEvent& v);
nlohmann::json to_json(const ProgressEvent& v);

}  // namespace distconv::protocol
