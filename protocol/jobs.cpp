#include "protocol/jobs.hpp"

#include "protocol/json_fields.hpp"

#include <algorithm>
#include <array>

namespace distconv::protocol {
namespace {

using nlohmann::json;

constexpr std::size_t k_max_url_length = 2048;
constexpr std::size_t k_max_filename_bytes = 255;

bool has_control_chars(std::string_view s) {
    return std::any_of(s.begin(), s.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// media::parse_job_options names fields from the options object; nested, they get the outer path.
Result<media::JobOptions> parse_options(const json& j, const std::string& prefix) {
    auto r = media::parse_job_options(j);
    if (!r.ok()) return with_field_prefix(std::move(r).error(), prefix);
    return r;
}

void read_options(FieldReader& r, std::string_view key, media::JobOptions& out) {
    r.required_object(key, out, parse_options);
}

// The job-level keys that sit beside the options in a submitted `job` object.
constexpr std::array<std::string_view, 6> k_job_level_keys{"priority",     "ttl_seconds", "max_attempts",
                                                           "requirements", "source",      "source_url"};

}  // namespace

Result<Requirements> parse_requirements(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    Requirements out;
    r.defaulted("encoders", out.encoders);
    r.optional("hwaccel", out.hwaccel);
    r.defaulted("tags", out.tags);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const Requirements& v) {
    return json{{"encoders", v.encoders}, {"hwaccel", nullable(v.hwaccel)}, {"tags", v.tags}};
}

Result<SourceDeclaration> parse_source_declaration(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    SourceDeclaration out;
    r.required("size", out.size);
    r.check(out.size >= 1, "size", "must be at least 1 byte");
    r.optional("sha256", out.sha256);
    r.check(!out.sha256 || is_sha256_hex(*out.sha256), "sha256", "must be 64 lowercase hex digits");
    r.optional("filename", out.filename);
    r.check(!out.filename || (!out.filename->empty() && out.filename->size() <= k_max_filename_bytes &&
                              !has_control_chars(*out.filename)),
            "filename", "must be 1 to 255 bytes without control characters");
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const SourceDeclaration& v) {
    json out{{"size", v.size}};
    if (v.sha256) out["sha256"] = *v.sha256;
    if (v.filename) out["filename"] = *v.filename;
    return out;
}

Result<SubmitJobRequest> parse_submit_job_request(const json& j, SubmitKind kind) {
    auto opened = open_object(j, "", false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    SubmitJobRequest out;
    r.defaulted("priority", out.priority);
    r.check(out.priority >= -100 && out.priority <= 100, "priority", "must be between -100 and 100");
    r.optional("ttl_seconds", out.ttl_seconds);
    r.check(!out.ttl_seconds || (*out.ttl_seconds > 0 && *out.ttl_seconds <= k_max_ttl_seconds),
            "ttl_seconds", "must be between 1 and " + std::to_string(k_max_ttl_seconds) + " (10 years)");
    r.defaulted("max_attempts", out.max_attempts);
    r.check(out.max_attempts >= 1 && out.max_attempts <= 20, "max_attempts", "must be between 1 and 20");
    std::optional<Requirements> requirements;
    r.optional_object("requirements", requirements, parse_requirements);
    if (requirements) out.requirements = std::move(*requirements);
    r.optional_object("source", out.source, parse_source_declaration);
    r.optional("source_url", out.source_url);
    if (out.source_url) {
        const auto& url = *out.source_url;
        r.check(url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0, "source_url",
                "must be an http:// or https:// URL");
        r.check(url.size() <= k_max_url_length, "source_url", "must be at most 2048 characters");
        r.check(url.find(' ') == std::string::npos && !has_control_chars(url), "source_url",
                "must not contain spaces or control characters");
    }
    if (kind == SubmitKind::Multipart) {
        r.check(!out.source_url, "source_url", "cannot be combined with an uploaded file");
    } else {
        r.check(out.source || out.source_url, "source",
                "is required: a JSON submit needs `source` (then PUT the bytes) or `source_url`");
        r.check(!(out.source && out.source_url), "source_url", "cannot be combined with `source`");
    }
    DISTCONV_TRY(r.finish());

    json options = j;
    for (auto key : k_job_level_keys) options.erase(std::string(key));
    auto parsed = media::parse_job_options(options);
    if (!parsed.ok()) return std::move(parsed).error();
    out.options = std::move(parsed).value();
    return out;
}

json to_json(const SubmitJobRequest& v) {
    json out = media::to_json(v.options);
    out["priority"] = v.priority;
    if (v.ttl_seconds) out["ttl_seconds"] = *v.ttl_seconds;
    out["max_attempts"] = v.max_attempts;
    out["requirements"] = to_json(v.requirements);
    if (v.source) out["source"] = to_json(*v.source);
    if (v.source_url) out["source_url"] = *v.source_url;
    return out;
}

Result<SourceInfo> parse_source_info(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    SourceInfo out;
    r.optional("filename", out.filename);
    r.optional("size", out.size);
    r.optional("sha256", out.sha256);
    const auto* probe = r.get("probe");
    if (probe != nullptr && !probe->is_null()) {
        r.check(probe->is_object(), "probe", "must be an object or null");
        out.probe = *probe;
    }
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const SourceInfo& v) {
    return json{{"filename", nullable(v.filename)},
                {"size", nullable(v.size)},
                {"sha256", nullable(v.sha256)},
                {"probe", v.probe.is_object() ? v.probe : json(nullptr)}};
}

Result<OutputInfo> parse_output_info(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    OutputInfo out;
    r.required("filename", out.filename);
    r.optional("size", out.size);
    r.optional("sha256", out.sha256);
    r.optional("expires_at", out.expires_at);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const OutputInfo& v) {
    return json{{"filename", v.filename},
                {"size", nullable(v.size)},
                {"sha256", nullable(v.sha256)},
                {"expires_at", timestamp_json(v.expires_at)}};
}

Result<Attempt> parse_attempt(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    Attempt out;
    r.required("attempt", out.attempt);
    r.required("assignment_id", out.assignment_id);
    r.required("engine_id", out.engine_id);
    r.required("fencing_token", out.fencing_token);
    r.required("transfer_mode", out.transfer_mode);
    r.required("started_at", out.started_at);
    r.optional("finished_at", out.finished_at);
    r.optional("exit_code", out.exit_code);
    r.optional("error_class", out.error_class);
    r.optional("message", out.message);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const Attempt& v) {
    return json{{"attempt", v.attempt},
                {"assignment_id", v.assignment_id},
                {"engine_id", v.engine_id},
                {"fencing_token", v.fencing_token},
                {"transfer_mode", to_string(v.transfer_mode)},
                {"started_at", timestamp_json(v.started_at)},
                {"finished_at", timestamp_json(v.finished_at)},
                {"exit_code", nullable(v.exit_code)},
                {"error_class", nullable(v.error_class)},
                {"message", nullable(v.message)}};
}

Result<JobResource> parse_job_resource(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    JobResource out;
    r.required("job_id", out.job_id);
    r.required("state", out.state);
    r.required("progress_percent", out.progress_percent);
    r.check(out.progress_percent >= 0 && out.progress_percent <= 100, "progress_percent", "must be 0..100");
    r.required("owner", out.owner);
    read_options(r, "options", out.options);
    read_options(r, "resolved_options", out.resolved_options);
    r.optional("ffmpeg_command", out.ffmpeg_command);
    if (const auto* streams = r.get("streams"); streams != nullptr && !streams->is_null()) {
        r.check(streams->is_array(), "streams", "must be an array or null");
        out.streams = *streams;
    }
    if (const auto* split = r.get("split"); split != nullptr && !split->is_null()) {
        r.check(split->is_object(), "split", "must be an object or null");
        out.split = *split;
    }
    if (const auto* plan = r.get("output_plan"); plan != nullptr && !plan->is_null()) {
        r.check(plan->is_object(), "output_plan", "must be an object or null");
        out.output_plan = *plan;
    }
    r.required("priority", out.priority);
    r.required("max_attempts", out.max_attempts);
    r.optional("ttl_seconds", out.ttl_seconds);
    r.required_object("requirements", out.requirements, parse_requirements);
    r.object_array("attempts", out.attempts, parse_attempt);
    r.required_object("source", out.source, parse_source_info);
    r.required_object("output", out.output, parse_output_info);
    r.optional("upload_url", out.upload_url);
    r.optional("queue_position", out.queue_position);
    r.optional("message", out.message);
    r.optional("failure_code", out.failure_code);
    r.optional("failure_reason", out.failure_reason);
    r.optional("fps", out.fps);
    r.optional("speed", out.speed);
    r.optional("eta_seconds", out.eta_seconds);
    r.required("created_at", out.created_at);
    r.optional("queued_at", out.queued_at);
    r.optional("started_at", out.started_at);
    r.optional("finished_at", out.finished_at);
    r.required("updated_at", out.updated_at);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const JobResource& v) {
    auto attempts = json::array();
    for (const auto& a : v.attempts) attempts.push_back(to_json(a));
    return json{{"job_id", v.job_id},
                {"state", to_string(v.state)},
                {"progress_percent", v.progress_percent},
                {"owner", v.owner},
                {"options", media::to_json(v.options)},
                {"resolved_options", media::to_json(v.resolved_options)},
                {"ffmpeg_command", nullable(v.ffmpeg_command)},
                {"streams", v.streams.is_array() ? v.streams : json(nullptr)},
                {"output_plan", v.output_plan.is_object() ? v.output_plan : json(nullptr)},
                {"split", v.split.is_object() ? v.split : json(nullptr)},
                {"priority", v.priority},
                {"max_attempts", v.max_attempts},
                {"ttl_seconds", nullable(v.ttl_seconds)},
                {"requirements", to_json(v.requirements)},
                {"attempts", std::move(attempts)},
                {"source", to_json(v.source)},
                {"output", to_json(v.output)},
                {"upload_url", nullable(v.upload_url)},
                {"queue_position", nullable(v.queue_position)},
                {"message", nullable(v.message)},
                {"failure_code", nullable(v.failure_code)},
                {"failure_reason", nullable(v.failure_reason)},
                {"fps", nullable(v.fps)},
                {"speed", nullable(v.speed)},
                {"eta_seconds", nullable(v.eta_seconds)},
                {"created_at", timestamp_json(v.created_at)},
                {"queued_at", timestamp_json(v.queued_at)},
                {"started_at", timestamp_json(v.started_at)},
                {"finished_at", timestamp_json(v.finished_at)},
                {"updated_at", timestamp_json(v.updated_at)}};
}

Result<JobStatus> parse_job_status(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    JobStatus out;
    r.required("job_id", out.job_id);
    r.required("state", out.state);
    r.required("progress_percent", out.progress_percent);
    r.check(out.progress_percent >= 0 && out.progress_percent <= 100, "progress_percent", "must be 0..100");
    r.optional("queue_position", out.queue_position);
    r.optional("message", out.message);
    r.required("created_at", out.created_at);
    r.optional("started_at", out.started_at);
    r.optional("finished_at", out.finished_at);
    r.optional("fps", out.fps);
    r.optional("speed", out.speed);
    r.optional("eta_seconds", out.eta_seconds);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const JobStatus& v) {
    json out{{"job_id", v.job_id},
             {"state", to_string(v.state)},
             {"progress_percent", v.progress_percent},
             {"queue_position", nullable(v.queue_position)},
             {"message", nullable(v.message)},
             {"created_at", timestamp_json(v.created_at)},
             {"started_at", timestamp_json(v.started_at)},
             {"finished_at", timestamp_json(v.finished_at)}};
    // Live numbers only while they mean something, so the ffmpeg-remote shape stays as it was.
    if (v.fps) out["fps"] = *v.fps;
    if (v.speed) out["speed"] = *v.speed;
    if (v.eta_seconds) out["eta_seconds"] = *v.eta_seconds;
    return out;
}

Result<JobSummary> parse_job_summary(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    JobSummary out;
    r.required("job_id", out.job_id);
    r.required("state", out.state);
    r.required("progress_percent", out.progress_percent);
    r.check(out.progress_percent >= 0 && out.progress_percent <= 100, "progress_percent", "must be 0..100");
    r.optional("queue_position", out.queue_position);
    r.optional("message", out.message);
    r.defaulted("owner", out.owner);
    r.defaulted("output_filename", out.output_filename);
    r.defaulted("priority", out.priority);
    r.required("created_at", out.created_at);
    r.optional("started_at", out.started_at);
    r.optional("finished_at", out.finished_at);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const JobSummary& v) {
    return json{{"job_id", v.job_id},
                {"state", to_string(v.state)},
                {"progress_percent", v.progress_percent},
                {"queue_position", nullable(v.queue_position)},
                {"message", nullable(v.message)},
                {"owner", v.owner},
                {"output_filename", v.output_filename},
                {"priority", v.priority},
                {"created_at", timestamp_json(v.created_at)},
                {"started_at", timestamp_json(v.started_at)},
                {"finished_at", timestamp_json(v.finished_at)}};
}

Result<JobList> parse_job_list(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    JobList out;
    r.object_array("items", out.items, parse_job_summary, true);
    r.required("total", out.total);
    r.optional("next_cursor", out.next_cursor);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const JobList& v) {
    auto items = json::array();
    for (const auto& item : v.items) items.push_back(to_json(item));
    return json{{"items", std::move(items)}, {"total", v.total}, {"next_cursor", nullable(v.next_cursor)}};
}

Result<CancelReply> parse_cancel_reply(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    CancelReply out;
    r.required("job_id", out.job_id);
    r.required("state", out.state);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const CancelReply& v) {
    return json{{"job_id", v.job_id}, {"state", to_string(v.state)}};
}

Result<UploadStatus> parse_upload_status(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    UploadStatus out;
    r.required("job_id", out.job_id);
    r.required("offset", out.offset);
    r.optional("size", out.size);
    r.required("complete", out.complete);
    r.required("state", out.state);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const UploadStatus& v) {
    return json{{"job_id", v.job_id},
                {"offset", v.offset},
                {"size", nullable(v.size)},
                {"complete", v.complete},
                {"state", to_string(v.state)}};
}

Result<StateEvent> parse_state_event(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    StateEvent out;
    r.required("job_id", out.job_id);
    r.required("state", out.state);
    r.required("progress_percent", out.progress_percent);
    r.optional("message", out.message);
    r.required("at", out.at);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const StateEvent& v) {
    return json{{"job_id", v.job_id},
                {"state", to_string(v.state)},
                {"progress_percent", v.progress_percent},
                {"message", nullable(v.message)},
                {"at", timestamp_json(v.at)}};
}

Result<ProgressEvent> parse_progress_event(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    ProgressEvent out;
    r.required("job_id", out.job_id);
    r.required("progress_percent", out.progress_percent);
    r.optional("out_time_seconds", out.out_time_seconds);
    r.optional("fps", out.fps);
    r.optional("speed", out.speed);
    r.optional("eta_seconds", out.eta_seconds);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const ProgressEvent& v) {
    return json{{"job_id", v.job_id},
                {"progress_percent", v.progress_percent},
                {"out_time_seconds", nullable(v.out_time_seconds)},
                {"fps", nullable(v.fps)},
                {"speed", nullable(v.speed)},
                {"eta_seconds", nullable(v.eta_seconds)}};
}

JobStatus status_of(const JobResource& job) {
    return JobStatus{job.job_id,  job.state,      job.progress_percent, job.queue_position,
                     job.message, job.created_at, job.started_at,       job.finished_at,
                     job.fps,     job.speed,      job.eta_seconds};
}

JobSummary summary_of(const JobResource& job) {
    return JobSummary{job.job_id,     job.state,      job.progress_percent, job.queue_position,
                      job.message,    job.owner,      job.output.filename,  job.priority,
                      job.created_at, job.started_at, job.finished_at};
}

}  // namespace distconv::protocol
