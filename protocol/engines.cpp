#include "protocol/engines.hpp"

#include "protocol/json_fields.hpp"

#include "common/media/ffmpeg_args.hpp"
#include "common/media/input_policy.hpp"

namespace distconv::protocol {
namespace {

using nlohmann::json;

Result<media::JobOptions> parse_options(const json& j, const std::string& prefix) {
    auto r = media::parse_job_options(j);
    if (!r.ok()) return with_field_prefix(std::move(r).error(), prefix);
    return r;
}

json memory_json(const std::optional<Memory>& m) {
    return m ? to_json(*m) : json(nullptr);
}

}  // namespace

Result<Capabilities> parse_capabilities(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    Capabilities out;
    r.required("ffmpeg_version", out.ffmpeg_version);
    r.required("encoders", out.encoders);
    r.required("decoders", out.decoders);
    r.required("hwaccels", out.hwaccels);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const Capabilities& v) {
    return json{{"ffmpeg_version", v.ffmpeg_version},
                {"encoders", v.encoders},
                {"decoders", v.decoders},
                {"hwaccels", v.hwaccels}};
}

Result<Memory> parse_memory(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    Memory out;
    r.required("total_bytes", out.total_bytes);
    r.check(out.total_bytes >= 0, "total_bytes", "must not be negative");
    r.required("available_bytes", out.available_bytes);
    r.check(out.available_bytes >= 0, "available_bytes", "must not be negative");
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const Memory& v) {
    return json{{"total_bytes", v.total_bytes}, {"available_bytes", v.available_bytes}};
}

Result<EngineRegistration> parse_engine_registration(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    EngineRegistration out;
    r.required("hostname", out.hostname);
    r.check(!out.hostname.empty() && out.hostname.size() <= 255, "hostname", "must be 1 to 255 characters");
    r.required("version", out.version);
    r.check(!out.version.empty() && out.version.size() <= 64, "version", "must be 1 to 64 characters");
    r.required("slots", out.slots);
    r.check(out.slots >= 1 && out.slots <= 256, "slots", "must be between 1 and 256");
    r.required_object("capabilities", out.capabilities, parse_capabilities);
    r.defaulted("tags", out.tags);
    r.optional("benchmark_score", out.benchmark_score);
    r.check(!out.benchmark_score || *out.benchmark_score >= 0, "benchmark_score", "must not be negative");
    r.required("free_disk_bytes", out.free_disk_bytes);
    r.check(out.free_disk_bytes >= 0, "free_disk_bytes", "must not be negative");
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const EngineRegistration& v) {
    return json{{"hostname", v.hostname},
                {"version", v.version},
                {"slots", v.slots},
                {"capabilities", to_json(v.capabilities)},
                {"tags", v.tags},
                {"benchmark_score", nullable(v.benchmark_score)},
                {"free_disk_bytes", v.free_disk_bytes}};
}

Result<EngineRegistrationReply> parse_engine_registration_reply(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    EngineRegistrationReply out;
    r.required("engine_id", out.engine_id);
    r.required("heartbeat_interval_seconds", out.heartbeat_interval_seconds);
    r.check(out.heartbeat_interval_seconds >= 1, "heartbeat_interval_seconds", "must be at least 1");
    r.required("lease_seconds", out.lease_seconds);
    r.check(out.lease_seconds >= 1, "lease_seconds", "must be at least 1");
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const EngineRegistrationReply& v) {
    return json{{"engine_id", v.engine_id},
                {"heartbeat_interval_seconds", v.heartbeat_interval_seconds},
                {"lease_seconds", v.lease_seconds}};
}

Result<Heartbeat> parse_heartbeat(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    Heartbeat out;
    r.required("state", out.state);
    r.check(out.state != EngineState::Offline, "state", "must be idle, busy or draining");
    r.optional("load_average", out.load_average);
    r.check(!out.load_average || *out.load_average >= 0, "load_average", "must not be negative");
    r.required("free_disk_bytes", out.free_disk_bytes);
    r.check(out.free_disk_bytes >= 0, "free_disk_bytes", "must not be negative");
    r.optional_object("memory", out.memory, parse_memory);
    r.optional("cpu_temperature_c", out.cpu_temperature_c);
    r.required("running_assignments", out.running_assignments);
    r.optional("benchmark_score", out.benchmark_score);
    r.check(!out.benchmark_score || *out.benchmark_score >= 0, "benchmark_score", "must not be negative");
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const Heartbeat& v) {
    json out{{"state", to_string(v.state)},
             {"free_disk_bytes", v.free_disk_bytes},
             {"cpu_temperature_c", nullable(v.cpu_temperature_c)},
             {"running_assignments", v.running_assignments}};
    if (v.load_average) out["load_average"] = *v.load_average;
    if (v.memory) out["memory"] = to_json(*v.memory);
    if (v.benchmark_score) out["benchmark_score"] = *v.benchmark_score;
    return out;
}

Result<HeartbeatReply> parse_heartbeat_reply(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    HeartbeatReply out;
    r.required("cancel", out.cancel);
    r.required("drain", out.drain);
    r.required("rerun_benchmark", out.rerun_benchmark);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const HeartbeatReply& v) {
    return json{{"cancel", v.cancel}, {"drain", v.drain}, {"rerun_benchmark", v.rerun_benchmark}};
}

Result<EngineInfo> parse_engine_info(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    EngineInfo out;
    r.required("engine_id", out.engine_id);
    r.required("hostname", out.hostname);
    r.required("version", out.version);
    r.required("state", out.state);
    r.required("drain_requested", out.drain_requested);
    r.required("slots", out.slots);
    r.required("running_assignments", out.running_assignments);
    r.required_object("capabilities", out.capabilities,
                      [](const json& v, const std::string& p) -> Result<Capabilities> {
                          // Lenient in answers: a newer server may add capability fields.
                          auto cr = open_object(v, p, false);
                          if (!cr.ok()) return std::move(cr).error();
                          Capabilities c;
                          cr->required("ffmpeg_version", c.ffmpeg_version);
                          cr->defaulted("encoders", c.encoders);
                          cr->defaulted("decoders", c.decoders);
                          cr->defaulted("hwaccels", c.hwaccels);
                          DISTCONV_TRY(cr->finish());
                          return c;
                      });
    r.defaulted("tags", out.tags);
    r.optional("benchmark_score", out.benchmark_score);
    r.required("free_disk_bytes", out.free_disk_bytes);
    r.optional("load_average", out.load_average);
    r.optional_object("memory", out.memory, parse_memory);
    r.optional("cpu_temperature_c", out.cpu_temperature_c);
    r.required("registered_at", out.registered_at);
    r.required("last_seen_at", out.last_seen_at);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const EngineInfo& v) {
    return json{{"engine_id", v.engine_id},
                {"hostname", v.hostname},
                {"version", v.version},
                {"state", to_string(v.state)},
                {"drain_requested", v.drain_requested},
                {"slots", v.slots},
                {"running_assignments", v.running_assignments},
                {"capabilities", to_json(v.capabilities)},
                {"tags", v.tags},
                {"benchmark_score", nullable(v.benchmark_score)},
                {"free_disk_bytes", v.free_disk_bytes},
                {"load_average", nullable(v.load_average)},
                {"memory", memory_json(v.memory)},
                {"cpu_temperature_c", nullable(v.cpu_temperature_c)},
                {"registered_at", timestamp_json(v.registered_at)},
                {"last_seen_at", timestamp_json(v.last_seen_at)}};
}

Result<ClaimRequest> parse_claim_request(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    ClaimRequest out;
    r.required("free_slots", out.free_slots);
    r.check(out.free_slots >= 1 && out.free_slots <= 256, "free_slots", "must be between 1 and 256");
    r.defaulted("wait_seconds", out.wait_seconds);
    r.check(out.wait_seconds >= 0 && out.wait_seconds <= k_max_claim_wait_seconds, "wait_seconds",
            "must be between 0 and 60");
    r.optional("free_disk_bytes", out.free_disk_bytes);
    r.check(!out.free_disk_bytes || *out.free_disk_bytes >= 0, "free_disk_bytes", "must not be negative");
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const ClaimRequest& v) {
    json out{{"free_slots", v.free_slots}, {"wait_seconds", v.wait_seconds}};
    if (v.free_disk_bytes) out["free_disk_bytes"] = *v.free_disk_bytes;
    return out;
}

Result<AssignmentTask> parse_assignment_task(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    AssignmentTask out;
    r.required("kind", out.kind);
    r.check(out.kind == k_task_video_segment || out.kind == k_task_audio, "kind",
            "must be video_segment or audio");
    r.required("index", out.index);
    r.check(out.index >= 0, "index", "must be at least 0");
    r.required("frames", out.frames);
    r.check(out.frames >= 0, "frames", "must be at least 0");
    DISTCONV_TRY(r.finish());
    return out;
}

Result<Assignment> parse_assignment(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    Assignment out;
    r.required("assignment_id", out.assignment_id);
    r.required("job_id", out.job_id);
    r.required("fencing_token", out.fencing_token);
    r.check(out.fencing_token >= 1, "fencing_token", "must be at least 1");
    r.required("lease_expires_at", out.lease_expires_at);
    r.required("lease_seconds", out.lease_seconds);
    r.required("ffmpeg_argv", out.ffmpeg_argv);
    r.required_object("options", out.options, parse_options);
    r.required("source_url", out.source_url);
    r.required("source_size", out.source_size);
    r.optional("source_sha256", out.source_sha256);
    r.check(!out.source_sha256 || is_sha256_hex(*out.source_sha256), "source_sha256",
            "must be 64 lowercase hex digits");
    r.required("transfer_mode", out.transfer_mode);
    r.required("output_container", out.output_container);
    r.required("output_filename", out.output_filename);
    r.optional("duration_seconds", out.duration_seconds);
    r.defaulted("source_format", out.source_format);
    if (const auto* probe = r.get("source_probe"); probe != nullptr && !probe->is_null()) {
        r.check(probe->is_object(), "source_probe", "must be an object or null");
        out.source_probe = *probe;
    }
    r.defaulted("credential", out.credential);
    r.optional("credential_expires_at", out.credential_expires_at);
    r.optional_object("task", out.task, parse_assignment_task);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const Assignment& v) {
    json task = nullptr;
    if (v.task) task = json{{"kind", v.task->kind}, {"index", v.task->index}, {"frames", v.task->frames}};
    return json{{"assignment_id", v.assignment_id},
                {"task", task},
                {"job_id", v.job_id},
                {"fencing_token", v.fencing_token},
                {"lease_expires_at", timestamp_json(v.lease_expires_at)},
                {"lease_seconds", v.lease_seconds},
                {"ffmpeg_argv", v.ffmpeg_argv},
                {"options", media::to_json(v.options)},
                {"source_url", v.source_url},
                {"source_size", v.source_size},
                {"source_sha256", nullable(v.source_sha256)},
                {"transfer_mode", to_string(v.transfer_mode)},
                {"output_container", v.output_container},
                {"output_filename", v.output_filename},
                {"duration_seconds", nullable(v.duration_seconds)},
                {"source_format", v.source_format},
                {"source_probe", v.source_probe.is_object() ? v.source_probe : json(nullptr)},
                {"credential", v.credential},
                {"credential_expires_at", timestamp_json(v.credential_expires_at)}};
}

Result<std::vector<std::string>> assignment_argv(const media::JobOptions& options, TransferMode mode,
                                                 const std::string& source_format,
                                                 const media::StreamPlan* plan, bool video_segment) {
    if (source_format.empty()) return Error::invalid("source_format", "the source's format is not known");
    media::ArgvSettings settings;
    settings.plan = plan;
    settings.video_segment = video_segment;
    settings.streamable = mode == TransferMode::Stream;
    settings.input_format = source_format;
    settings.input_protocols =
        std::string(mode == TransferMode::Stream ? media::k_relay_protocols : media::k_file_protocols);
    auto argv = media::build_ffmpeg_argv(options, std::string(k_input_placeholder),
                                         std::string(k_output_placeholder), settings);
    if (!argv) return argv.error();
    argv->erase(argv->begin());
    return argv;
}

std::string assignment_output_demuxer(const Assignment& a) {
    return a.video_segment() ? std::string(media::k_segment_muxer)
                             : media::output_demuxer(a.output_container);
}

Result<std::optional<media::StreamPlan>> assignment_plan(const Assignment& a) {
    if (!a.source_probe.is_object()) return std::optional<media::StreamPlan>();
    auto plan = media::plan_streams(a.options, media::probe_from_json(a.source_probe));
    if (!plan) return plan.error();
    return std::optional<media::StreamPlan>(*std::move(plan));
}

std::vector<std::string> substitute_placeholders(const std::vector<std::string>& argv,
                                                 const std::string& input, const std::string& output) {
    std::vector<std::string> out;
    out.reserve(argv.size());
    for (const auto& arg : argv) {
        if (arg == k_input_placeholder)
            out.push_back(input);
        else if (arg == k_output_placeholder)
            out.push_back(output);
        else
            out.push_back(arg);
    }
    return out;
}

Result<ProgressReport> parse_progress_report(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    ProgressReport out;
    r.required("fencing_token", out.fencing_token);
    r.check(out.fencing_token >= 1, "fencing_token", "must be at least 1");
    r.defaulted("phase", out.phase);
    r.required("percent", out.percent);
    r.check(out.percent >= 0 && out.percent <= 100, "percent", "must be between 0 and 100");
    r.optional("out_time_seconds", out.out_time_seconds);
    r.check(!out.out_time_seconds || *out.out_time_seconds >= 0, "out_time_seconds", "must not be negative");
    r.optional("fps", out.fps);
    r.check(!out.fps || *out.fps >= 0, "fps", "must not be negative");
    r.optional("speed", out.speed);
    r.check(!out.speed || *out.speed >= 0, "speed", "must not be negative");
    r.optional("eta_seconds", out.eta_seconds);
    r.check(!out.eta_seconds || *out.eta_seconds >= 0, "eta_seconds", "must not be negative");
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const ProgressReport& v) {
    return json{{"fencing_token", v.fencing_token},
                {"phase", to_string(v.phase)},
                {"percent", v.percent},
                {"out_time_seconds", nullable(v.out_time_seconds)},
                {"fps", nullable(v.fps)},
                {"speed", nullable(v.speed)},
                {"eta_seconds", nullable(v.eta_seconds)}};
}

Result<ProgressReply> parse_progress_reply(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    ProgressReply out;
    r.required("continue", out.continue_);
    r.required("lease_expires_at", out.lease_expires_at);
    r.optional("credential", out.credential);
    r.optional("credential_expires_at", out.credential_expires_at);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const ProgressReply& v) {
    json j{{"continue", v.continue_}, {"lease_expires_at", timestamp_json(v.lease_expires_at)}};
    if (v.credential) j["credential"] = *v.credential;
    if (v.credential_expires_at) j["credential_expires_at"] = timestamp_json(v.credential_expires_at);
    return j;
}

Result<OutputUploadStatus> parse_output_upload_status(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    OutputUploadStatus out;
    r.required("assignment_id", out.assignment_id);
    r.required("offset", out.offset);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const OutputUploadStatus& v) {
    return json{{"assignment_id", v.assignment_id}, {"offset", v.offset}};
}

Result<CompleteRequest> parse_complete_request(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    CompleteRequest out;
    r.required("fencing_token", out.fencing_token);
    r.check(out.fencing_token >= 1, "fencing_token", "must be at least 1");
    r.required("output_size", out.output_size);
    r.check(out.output_size >= 0, "output_size", "must not be negative");
    r.required("output_sha256", out.output_sha256);
    r.check(is_sha256_hex(out.output_sha256), "output_sha256", "must be 64 lowercase hex digits");
    r.optional("duration_seconds", out.duration_seconds);
    r.check(!out.duration_seconds || *out.duration_seconds >= 0, "duration_seconds", "must not be negative");
    r.optional("elapsed_seconds", out.elapsed_seconds);
    r.check(!out.elapsed_seconds || *out.elapsed_seconds >= 0, "elapsed_seconds", "must not be negative");
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const CompleteRequest& v) {
    return json{{"fencing_token", v.fencing_token},
                {"output_size", v.output_size},
                {"output_sha256", v.output_sha256},
                {"duration_seconds", nullable(v.duration_seconds)},
                {"elapsed_seconds", nullable(v.elapsed_seconds)}};
}

Result<FailRequest> parse_fail_request(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    FailRequest out;
    r.required("fencing_token", out.fencing_token);
    r.check(out.fencing_token >= 1, "fencing_token", "must be at least 1");
    r.optional("exit_code", out.exit_code);
    r.defaulted("stderr_tail", out.stderr_tail);
    r.check(out.stderr_tail.size() <= k_max_stderr_tail_bytes, "stderr_tail", "must be at most 65536 bytes");
    r.required("error_class", out.error_class);
    r.required("message", out.message);
    r.check(out.message.size() <= 4096, "message", "must be at most 4096 bytes");
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const FailRequest& v) {
    return json{{"fencing_token", v.fencing_token},
                {"exit_code", nullable(v.exit_code)},
                {"stderr_tail", v.stderr_tail},
                {"error_class", to_string(v.error_class)},
                {"message", v.message}};
}

Result<AssignmentAck> parse_assignment_ack(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    AssignmentAck out;
    r.required("job_id", out.job_id);
    r.required("state", out.state);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const AssignmentAck& v) {
    return json{{"job_id", v.job_id}, {"state", to_string(v.state)}};
}

}  // namespace distconv::protocol
