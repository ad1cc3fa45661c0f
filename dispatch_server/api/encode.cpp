#include "dispatch_server/api/encode.hpp"

#include "common/media/options.hpp"
#include "common/media/stream_plan.hpp"

namespace distconv::dispatch {

protocol::Timestamp to_timestamp(int64_t unix_ms) {
    return protocol::Timestamp(std::chrono::seconds(unix_ms / 1000));
}

namespace {

std::optional<protocol::Timestamp> opt_ts(const std::optional<int64_t>& ms) {
    // A zero time means "cleared" (a retried job has no finish time any more).
    if (!ms || *ms <= 0) return std::nullopt;
    return to_timestamp(*ms);
}

media::JobOptions options_of(const nlohmann::json& j) {
    auto parsed = media::parse_job_options(j.is_object() ? j : nlohmann::json::object());
    return parsed ? *parsed : media::JobOptions{};
}

std::optional<double> progress_field(const JobRecord& job, const char* key) {
    if (job.progress.is_object() && job.progress.contains(key) && job.progress[key].is_number())
        return job.progress[key].get<double>();
    return std::nullopt;
}

std::optional<std::string> non_empty(const std::string& s) {
    return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

int percent_of(const JobRecord& job) {
    if (job.state == JobState::Completed) return 100;
    double p = job.progress_percent;
    if (p < 0) p = 0;
    if (p > 100) p = 100;
    return static_cast<int>(p);
}

protocol::Attempt to_attempt(const AttemptRecord& a) {
    protocol::Attempt out;
    out.attempt = a.attempt_no;
    out.assignment_id = a.id;
    out.engine_id = a.engine_id;
    out.fencing_token = a.fencing_token;
    out.transfer_mode = a.transfer_mode;
    out.started_at = to_timestamp(a.started_at);
    out.finished_at = opt_ts(a.finished_at);
    out.exit_code = a.exit_code;
    if (a.error_class) out.error_class = protocol::parse_error_class(*a.error_class);
    out.message = non_empty(a.message);
    return out;
}

// A split job's details with its tasks (docs/protocol.md "Split mode"); null for other jobs.
nlohmann::json split_json(const JobRecord& job, const std::vector<TaskAttempts>& tasks) {
    if (!job.split.is_object()) return nullptr;
    nlohmann::json split = job.split;
    nlohmann::json segments = nlohmann::json::array();
    for (const auto& [t, attempts] : tasks) {
        nlohmann::json s = t.task.is_object() ? t.task : nlohmann::json::object();
        s["task_id"] = t.id;
        s["state"] = to_string(t.state);
        s["progress_percent"] = t.state == JobState::Completed ? 100.0 : t.progress_percent;
        if (!t.failure_reason.empty()) s["failure_reason"] = t.failure_reason;
        s["engine_id"] = attempts.empty() ? nlohmann::json() : nlohmann::json(attempts.back().engine_id);
        s["attempts"] = nlohmann::json::array();
        for (const auto& a : attempts) s["attempts"].push_back(protocol::to_json(to_attempt(a)));
        segments.push_back(std::move(s));
    }
    split["segments"] = std::move(segments);
    return split;
}

}  // namespace

protocol::JobResource to_resource(const JobRecord& job, const std::string& owner_name,
                                  std::optional<int64_t> queue_position,
                                  const std::vector<AttemptRecord>& attempts,
                                  const std::vector<TaskAttempts>& tasks) {
    protocol::JobResource r;
    r.job_id = job.id;
    r.state = job.state;
    r.progress_percent = percent_of(job);
    r.owner = owner_name;
    r.options = options_of(job.options);
    r.resolved_options = options_of(job.resolved);
    r.ffmpeg_command = non_empty(job.ffmpeg_command);
    r.priority = job.priority;
    r.max_attempts = job.max_attempts;
    if (job.ttl_ms) r.ttl_seconds = *job.ttl_ms / 1000;
    if (job.requirements.is_object()) {
        auto req = protocol::parse_requirements(job.requirements);
        if (req) r.requirements = *req;
    }
    for (const auto& a : attempts) r.attempts.push_back(to_attempt(a));
    r.split = split_json(job, tasks);
    r.source.filename = non_empty(job.source_filename);
    if (job.source_size) r.source.size = static_cast<int64_t>(*job.source_size);
    r.source.sha256 = job.source_sha256;
    r.source.probe = job.source_probe;
    // The plan is a pure function of the stored probe and options: the one the argv was built from.
    if (job.source_probe.is_object())
        if (auto options = media::parse_job_options(job.resolved))
            if (auto plan = media::plan_streams(*options, media::probe_from_json(job.source_probe))) {
                auto j = media::to_json(*plan);
                r.streams = std::move(j["streams"]);
                j.erase("streams");
                r.output_plan = std::move(j);
            }
    r.output.filename = job.output_filename;
    if (job.output_size) r.output.size = static_cast<int64_t>(*job.output_size);
    r.output.sha256 = job.output_sha256;
    r.output.expires_at = opt_ts(job.output_expires_at);
    if (job.state == JobState::AwaitingUpload && !job.source_url)
        r.upload_url = std::string(protocol::k_api_prefix) + "/jobs/" + job.id + "/source";
    if (queue_position) r.queue_position = static_cast<int>(*queue_position);
    r.message = non_empty(job.message);
    r.failure_code = non_empty(job.failure_code);
    r.failure_reason = non_empty(job.failure_reason);
    r.fps = progress_field(job, "fps");
    r.speed = progress_field(job, "speed");
    r.eta_seconds = progress_field(job, "eta_seconds");
    r.created_at = to_timestamp(job.created_at);
    r.queued_at = opt_ts(job.queued_at);
    r.started_at = opt_ts(job.started_at);
    r.finished_at = opt_ts(job.finished_at);
    r.updated_at = to_timestamp(job.updated_at);
    return r;
}

protocol::JobStatus to_status(const JobRecord& job, std::optional<int64_t> queue_position) {
    protocol::JobStatus s;
    s.job_id = job.id;
    s.state = job.state;
    s.progress_percent = percent_of(job);
    if (queue_position) s.queue_position = static_cast<int>(*queue_position);
    s.message = non_empty(job.failure_reason.empty() ? job.message : job.failure_reason);
    s.created_at = to_timestamp(job.created_at);
    s.started_at = opt_ts(job.started_at);
    s.finished_at = opt_ts(job.finished_at);
    s.fps = progress_field(job, "fps");
    s.speed = progress_field(job, "speed");
    s.eta_seconds = progress_field(job, "eta_seconds");
    return s;
}

protocol::JobSummary to_summary(const JobRecord& job, const std::string& owner_name,
                                std::optional<int64_t> queue_position) {
    protocol::JobSummary s;
    s.job_id = job.id;
    s.state = job.state;
    s.progress_percent = percent_of(job);
    if (queue_position) s.queue_position = static_cast<int>(*queue_position);
    s.message = non_empty(job.failure_reason.empty() ? job.message : job.failure_reason);
    s.owner = owner_name;
    s.output_filename = job.output_filename;
    s.priority = job.priority;
    s.created_at = to_timestamp(job.created_at);
    s.started_at = opt_ts(job.started_at);
    s.finished_at = opt_ts(job.finished_at);
    return s;
}

std::string to_sse(const JobEvent& event, const JobRecord& job) {
    nlohmann::json data;
    std::string type = event.type == "progress" ? std::string(protocol::k_progress_event)
                                                : std::string(protocol::k_state_event);
    if (type == protocol::k_progress_event) {
        protocol::ProgressEvent p;
        p.job_id = job.id;
        const auto& d = event.data;
        auto num = [&](const char* k) -> std::optional<double> {
            if (d.is_object() && d.contains(k) && d[k].is_number()) return d[k].get<double>();
            return std::nullopt;
        };
        p.progress_percent = static_cast<int>(num("percent").value_or(0));
        p.out_time_seconds = num("out_time_seconds");
        p.fps = num("fps");
        p.speed = num("speed");
        p.eta_seconds = num("eta_seconds");
        data = protocol::to_json(p);
    } else {
        protocol::StateEvent s;
        s.job_id = job.id;
        s.state = event.to_state;
        s.progress_percent =
            event.to_state == JobState::Completed ? 100 : static_cast<int>(job.progress_percent);
        s.message = non_empty(event.message);
        s.at = to_timestamp(event.at);
        data = protocol::to_json(s);
    }
    return "id: " + std::to_string(event.id) + "\nevent: " + type + "\ndata: " + data.dump() + "\n\n";
}

std::string job_etag(const JobRecord& job) {
    return "\"" + job.id + "-" + std::to_string(job.version) + "\"";
}

}  // namespace distconv::dispatch
