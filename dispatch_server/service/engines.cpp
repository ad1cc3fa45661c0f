#include "dispatch_server/service/engines.hpp"

#include "common/fs.hpp"
#include "common/hash.hpp"
#include "common/media/ffmpeg_args.hpp"
#include "common/media/input_policy.hpp"
#include "common/media/options.hpp"
#include "common/media/probe_file.hpp"
#include "common/media/progress.hpp"
#include "common/media/stream_plan.hpp"
#include "common/process.hpp"
#include "dispatch_server/scheduler/scheduler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

namespace distconv::dispatch {

namespace stdfs = std::filesystem;

namespace {

double random01() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

protocol::Timestamp ts(int64_t ms) {
    return protocol::Timestamp(std::chrono::seconds(ms / 1000));
}

bool is_mp4_family(const std::string& container) {
    return container == "mp4" || container == "mov" || container == "m4a";
}

// The demuxer recorded at submit; jobs probed before it was recorded have only format_name. Empty
// when neither names an allowed demuxer (the claim then fails instead of letting ffmpeg guess).
std::string source_demuxer(const nlohmann::json& probe) {
    std::string name;
    if (probe.is_object()) {
        if (auto d = probe.find("demuxer"); d != probe.end() && d->is_string())
            name = d->get<std::string>();
        else if (auto f = probe.find("format_name"); f != probe.end() && f->is_string())
            name = media::demuxer_of(f->get<std::string>());
    }
    return media::demuxer_allowed(name) ? name : std::string();
}

}  // namespace

EngineService::EngineService(Store& store, StoragePools& pools, const DispatchConfig& config,
                             const Clock& clock, ChangeNotifier& notifier, Metrics* metrics,
                             const AssignmentCredentials* credentials)
    : m_store(store),
      m_pools(pools),
      m_config(config),
      m_clock(clock),
      m_notifier(notifier),
      m_metrics(metrics),
      m_credentials(credentials) {}

std::optional<std::pair<std::string, int64_t>> EngineService::credential_for(const AttemptRecord& a,
                                                                             int64_t lease_expires_ms) const {
    if (!m_credentials) return std::nullopt;
    // Past the lease by a margin: a transfer that started under the credential may need to resume
    // (the HTTP client retries with the headers it started with) after a cut near the lease's end.
    // Renewed by every progress answer; useless anyway once the attempt no longer holds the job.
    constexpr int64_t k_credential_grace_ms = 15 * 60 * 1000;
    CredentialClaims c{a.id, a.fencing_token, lease_expires_ms + k_credential_grace_ms};
    return std::make_pair(m_credentials->issue(c), c.expires_at_ms);
}

Result<EngineRecord> EngineService::owned_engine(const Principal& who, const std::string& engine_id) {
    auto e = m_store.get_engine(engine_id);
    if (!e && e.error().code != ErrorCode::NotFound) return e.error();  // the database, not the engine
    if (!e || (!who.is_admin() && e->key_id != who.key_id))
        return Error(ErrorCode::NotFound, "no engine with id '" + engine_id + "'; register again",
                     {{"engine_id", engine_id}});
    return *e;
}

Result<AttemptRecord> EngineService::owned_attempt(const Principal& who, const std::string& assignment_id) {
    if (who.scoped() && who.assignment_scope != assignment_id)
        return Error(ErrorCode::Forbidden, "this credential is for another assignment");
    auto a = m_store.get_attempt(assignment_id);
    if (!a) return a.error();
    if (who.scoped()) {
        // A credential lives as long as its attempt holds the job with the token it names.
        if (a->state != AttemptState::Active || a->fencing_token != who.scope_fencing_token)
            return Error(ErrorCode::LeaseLost, "assignment " + assignment_id + " no longer holds its job");
        return *a;
    }
    auto e = m_store.get_engine(a->engine_id);
    if (!e && e.error().code != ErrorCode::NotFound) return e.error();
    if (!e || (!who.is_admin() && e->key_id != who.key_id))
        return Error(ErrorCode::NotFound, "no assignment with id '" + assignment_id + "'");
    return *a;
}

Result<protocol::EngineRegistrationReply> EngineService::register_engine(
    const Principal& who, const protocol::EngineRegistration& r) {
    EngineRecord e;
    e.key_id = who.key_id;
    e.hostname = r.hostname;
    e.version = r.version;
    e.slots = r.slots;
    e.state = EngineState::Idle;
    e.capabilities = protocol::to_json(r.capabilities);
    e.tags = r.tags;
    e.benchmark_score = r.benchmark_score;
    e.free_disk_bytes = r.free_disk_bytes;
    auto inserted = m_store.insert_engine(e);
    if (!inserted) return inserted.error();
    spdlog::info("engine {} registered: host {}, {} slot(s), score {}", inserted->id, r.hostname, r.slots,
                 r.benchmark_score ? std::to_string(*r.benchmark_score) : "none");
    protocol::EngineRegistrationReply reply;
    reply.engine_id = inserted->id;
    reply.heartbeat_interval_seconds =
        static_cast<int>(std::max<int64_t>(1, m_config.heartbeat_interval_ms / 1000));
    reply.lease_seconds = static_cast<int>(std::max<int64_t>(1, m_config.lease_ms / 1000));
    return reply;
}

Result<protocol::HeartbeatReply> EngineService::heartbeat(const Principal& who, const std::string& engine_id,
                                                          const protocol::Heartbeat& hb) {
    int64_t now = m_clock.now_ms();
    EngineHeartbeat update;
    update.engine_id = engine_id;
    update.state = hb.state;
    update.load_average = hb.load_average;
    update.free_disk_bytes = hb.free_disk_bytes;
    update.memory = hb.memory ? protocol::to_json(*hb.memory) : nlohmann::json();
    update.cpu_temperature_c = hb.cpu_temperature_c;
    update.benchmark_score = hb.benchmark_score;
    update.seen_at = now;
    auto seen = m_store.record_heartbeat(update, who.is_admin() ? std::nullopt : std::optional(who.key_id));
    if (!seen) {
        if (seen.error().code != ErrorCode::NotFound) return seen.error();
        return Error(ErrorCode::NotFound, "no engine with id '" + engine_id + "'; register again",
                     {{"engine_id", engine_id}});
    }
    protocol::HeartbeatReply reply;
    reply.rerun_benchmark = seen->rerun_benchmark;  // asked once; this answer carries it
    reply.drain = seen->drain;
    for (const auto& aid : hb.running_assignments) {
        auto a = m_store.get_attempt(aid);
        // A database that cannot answer must not stop running work: the engine retries the heartbeat.
        if (!a && a.error().code != ErrorCode::NotFound) return a.error();
        if (!a || a->engine_id != engine_id || a->state != AttemptState::Active) {
            reply.cancel.push_back(aid);  // unknown here, lost, or finished: the engine must stop it
            continue;
        }
        auto job = m_store.get_job(a->job_id);
        if (!job && job.error().code != ErrorCode::JobNotFound) return job.error();
        if (job && job->state == JobState::Canceling) {
            reply.cancel.push_back(aid);
            (void)end_unfinished(*a, AttemptState::Canceled, false, "canceled by the user", "", std::nullopt,
                                 "");
            continue;
        }
        (void)m_store.extend_lease(aid, a->fencing_token, now + m_config.lease_ms);
    }
    return reply;
}

Result<std::optional<protocol::Assignment>> EngineService::claim(const Principal& who,
                                                                 const std::string& engine_id,
                                                                 const protocol::ClaimRequest& request,
                                                                 const std::string& base_url,
                                                                 const std::function<bool()>& caller_gone) {
    using Out = std::optional<protocol::Assignment>;
    auto engine = owned_engine(who, engine_id);
    if (!engine) return engine.error();
    auto deadline =
        std::chrono::steady_clock::now() +
        std::chrono::seconds(std::clamp(request.wait_seconds, 0, protocol::k_max_claim_wait_seconds));
    {
        // Seen now: written once per claim, not on every wake of its long-poll, and only these fields
        // (a drain set meanwhile must not be written back as it was read).
        std::optional<int64_t> free_disk;
        if (request.free_disk_bytes) free_disk = static_cast<int64_t>(*request.free_disk_bytes);
        if (auto st = m_store.engine_seen(engine_id, m_clock.now_ms(), free_disk); !st) return st.error();
    }
    // The store is read again when work may have appeared (the work generation moved) and at least
    // once a second (a drain, a retry's backoff ending); the wakes in between only look at the caller.
    std::optional<uint64_t> looked_at;
    auto looked_when = std::chrono::steady_clock::now();
    while (true) {
        uint64_t generation = m_notifier.work_generation();
        if (caller_gone && caller_gone()) {
            spdlog::info("engine {} closed its claim's connection: no job taken", engine_id);
            return Out{};
        }
        if (looked_at && *looked_at == generation && !m_notifier.closed() &&
            std::chrono::steady_clock::now() - looked_when < std::chrono::seconds(1)) {
            auto now = std::chrono::steady_clock::now();
            if (now >= deadline) return Out{};
            m_notifier.wait_for_work(
                generation, std::min(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now),
                                     std::chrono::milliseconds(250)));
            continue;
        }
        looked_at = generation;
        looked_when = std::chrono::steady_clock::now();
        auto e = m_store.get_engine(engine_id);  // read again: a drain may come while the claim waits
        if (!e) return e.error();
        if (e->drain || m_notifier.closed()) return Out{};
        auto active = m_store.active_attempts(engine_id);
        if (!active) return active.error();
        int free_slots = std::min(request.free_slots, e->slots - static_cast<int>(active->size()));
        if (free_slots <= 0) return Out{};

        // Most wakes find the queue empty: only a claimable job is worth the other engines' scores
        // and a write transaction.
        Result<std::optional<std::pair<JobRecord, AttemptRecord>>> claimed =
            std::optional<std::pair<JobRecord, AttemptRecord>>{};
        std::unique_lock claim_lock(m_claim_mutex);
        auto claimable = m_store.any_claimable_job();
        if (!claimable) return claimable.error();
        if (*claimable) {
            auto scores = m_store.online_benchmark_scores();
            if (!scores) return scores.error();
            EngineProfile profile = profile_of(*e, *scores, m_config.transfer_reserve_bytes);
            claimed = m_store.claim_job(
                engine_id, m_config.lease_ms,
                [&](const std::vector<ClaimCandidate>& c) { return choose_job(c, profile); });
        }
        claim_lock.unlock();
        if (!claimed) return claimed.error();
        if (*claimed) {
            const auto& [job, attempt] = **claimed;
            changed_for_watchers();  // a hand-out gives the other engines nothing to claim
            if (m_metrics)
                m_metrics->job_assigned(
                    static_cast<double>(attempt.started_at - job.queued_at.value_or(attempt.started_at)) /
                    1000.0);
            auto options = media::parse_job_options(job.resolved);
            if (!options) return options.error();
            const TransferMode mode = attempt.transfer_mode;
            const std::string source_format = source_demuxer(job.source_probe);
            protocol::Assignment a;
            a.options = *options;
            a.source_probe = job.source_probe.is_object() ? job.source_probe : nlohmann::json();
            if (job.task.is_object()) {
                // A task of a split job (service/split.hpp).
                protocol::AssignmentTask t;
                t.kind = job.task.value("kind", "") == "audio" ? std::string(protocol::k_task_audio)
                                                               : std::string(protocol::k_task_video_segment);
                t.index = job.task.value("index", 0);
                t.frames = job.task.value("frames", int64_t{0});
                a.task = t;
            }
            // The streams it maps, planned from the probe exactly as the engine will plan them.
            auto plan = protocol::assignment_plan(a);
            auto argv =
                plan ? protocol::assignment_argv(*options, mode, source_format,
                                                 plan->has_value() ? &**plan : nullptr, a.video_segment())
                     : Result<std::vector<std::string>>(plan.error());
            if (!argv) {
                // No engine could run it (a source probed without a readable format): the job fails
                // with the reason instead of coming back after every lease.
                (void)end_unfinished(attempt, AttemptState::Failed, true,
                                     "the job cannot be run: " + argv.error().message, "", std::nullopt,
                                     "permanent");
                changed();
                continue;
            }
            a.assignment_id = attempt.id;
            a.job_id = job.id;
            a.fencing_token = attempt.fencing_token;
            a.lease_seconds = static_cast<int>(std::max<int64_t>(1, m_config.lease_ms / 1000));
            a.lease_expires_at = ts(attempt.lease_expires_at.value_or(0));
            a.ffmpeg_argv = std::move(*argv);
            a.source_format = source_format;
            if (auto c = credential_for(attempt, attempt.lease_expires_at.value_or(0))) {
                a.credential = c->first;
                a.credential_expires_at = ts(c->second);
            }
            a.source_url =
                base_url + std::string(protocol::k_api_prefix) + "/assignments/" + attempt.id + "/source";
            a.source_size = static_cast<int64_t>(job.source_size.value_or(job.source_received));
            a.source_sha256 = job.source_sha256;
            a.transfer_mode = mode;
            a.output_container = options->container.value_or("mp4");
            a.output_filename = job.output_filename;
            a.duration_seconds = job.duration_seconds;
            spdlog::info("job {} assigned to engine {} (assignment {}, token {}, {} mode)", job.id, engine_id,
                         attempt.id, attempt.fencing_token, to_string(attempt.transfer_mode));
            return Out{a};
        }
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return Out{};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        // Wake when work may have appeared (a job queued; a backoff ending is caught by the 1 s cap).
        // A caller that can go away is checked four times a second.
        m_notifier.wait_for_work(generation,
                                 std::min(left, std::chrono::milliseconds(caller_gone ? 250 : 1000)));
    }
}

Status EngineService::hand_back(const std::string& assignment_id, int64_t fencing_token) {
    auto a = m_store.get_attempt(assignment_id);
    if (!a) return a.error();
    if (a->state != AttemptState::Active || a->fencing_token != fencing_token) return {};
    auto job = m_store.get_job(a->job_id);
    if (!job) return job.error();
    AttemptEnd end;
    end.attempt_state = AttemptState::Undelivered;
    end.message = "the claim's answer did not reach the engine";
    end.job_changes.progress = nlohmann::json();
    if (job->state == JobState::Canceling) {
        end.job_to = JobState::Canceled;
        end.job_changes.finished_at = m_clock.now_ms();
        end.job_changes.failure_code = "canceled";
        end.job_changes.message = "canceled";
        end.event_message = "canceled before an engine started it";
    } else {
        end.job_to = JobState::Queued;
        end.job_changes.attempt_count = std::max(0, job->attempt_count - 1);
        end.job_changes.not_before = std::optional<int64_t>{};
        end.job_changes.progress_percent = 0.0;
        end.job_changes.message = "queued";
        end.event_message = "back in the queue: engine " + a->engine_id + " was gone before it got the job";
    }
    auto r = m_store.end_attempt(a->id, a->fencing_token, end);
    if (!r) {
        if (r.error().code == ErrorCode::LeaseLost) return {};
        return r.error();
    }
    spdlog::info("job {} handed back from engine {} (assignment {}): the claim's answer was not delivered",
                 a->job_id, a->engine_id, a->id);
    changed();
    return {};
}

Result<protocol::ProgressReply> EngineService::progress(const Principal& who,
                                                        const std::string& assignment_id,
                                                        const protocol::ProgressReport& report) {
    auto a = owned_attempt(who, assignment_id);
    if (!a) return a.error();
    auto job = m_store.get_job(a->job_id);
    if (!job) return job.error();
    protocol::ProgressReply reply;
    if (job->state == JobState::Canceling) {
        auto ended =
            end_unfinished(*a, AttemptState::Canceled, false, "canceled by the user", "", std::nullopt, "");
        if (!ended) return ended.error();
        reply.continue_ = false;
        reply.lease_expires_at = ts(m_clock.now_ms());
        return reply;
    }
    int64_t now = m_clock.now_ms();
    auto extended = m_store.extend_lease(assignment_id, report.fencing_token, now + m_config.lease_ms);
    if (!extended) return extended.error();
    reply.lease_expires_at = ts(*extended->lease_expires_at);
    if (auto c = credential_for(*extended, *extended->lease_expires_at)) {
        reply.credential = c->first;
        reply.credential_expires_at = ts(c->second);
    }

    JobUpdate u;
    double percent = std::clamp(report.percent, 0.0, 100.0);
    u.progress_percent = percent;
    nlohmann::json p = nlohmann::json::object();
    p["phase"] = std::string(protocol::to_string(report.phase));
    if (report.fps) p["fps"] = *report.fps;
    if (report.speed) p["speed"] = *report.speed;
    if (report.eta_seconds) p["eta_seconds"] = *report.eta_seconds;
    if (report.out_time_seconds) p["out_time_seconds"] = *report.out_time_seconds;
    u.progress = p;
    u.message = std::string(protocol::to_string(report.phase));
    if (job->state == JobState::Assigned) {
        auto moved =
            m_store.transition(job->id, {JobState::Assigned}, JobState::Running, u, "transcoding started");
        if (!moved) return moved.error();
    } else {
        // One progress event per whole percent keeps the event log small.
        std::optional<nlohmann::json> event;
        if (static_cast<int>(percent) != static_cast<int>(job->progress_percent)) {
            nlohmann::json ev = p;
            ev["percent"] = percent;
            event = ev;
        }
        auto updated = m_store.update_job(job->id, u, event);
        if (!updated) return updated.error();
    }
    changed_for_watchers();
    return reply;
}

Result<AssignmentFile> EngineService::source(const Principal& who, const std::string& assignment_id,
                                             std::optional<int64_t> fencing_token) {
    auto a = owned_attempt(who, assignment_id);
    if (!a) return a.error();
    if (a->state != AttemptState::Active || (fencing_token && *fencing_token != a->fencing_token))
        return Error(ErrorCode::LeaseLost, "assignment " + assignment_id + " no longer holds its job");
    auto job = m_store.get_job(a->job_id);
    if (!job) return job.error();
    auto path = m_pools.resolve(job->source_pool, job->source_path);
    std::error_code ec;
    if (path.empty() || job->source_deleted || !stdfs::is_regular_file(path, ec))
        return Error(ErrorCode::ResultGone, "the job's source is no longer stored");
    AssignmentFile f;
    f.path = path;
    f.size = stdfs::file_size(path, ec);
    f.sha256 = job->source_sha256.value_or("");
    return f;
}

std::string EngineService::output_relpath(const AttemptRecord& a) const {
    // One file per attempt: a late engine's bytes can never mix with the current attempt's.
    return "jobs/" + a.job_id + "/output.t" + std::to_string(a.fencing_token);
}

Result<uint64_t> EngineService::output_offset(const Principal& who, const std::string& assignment_id,
                                              int64_t fencing_token) {
    auto a = owned_attempt(who, assignment_id);
    if (!a) return a.error();
    if (a->state != AttemptState::Active || a->fencing_token != fencing_token)
        return Error(ErrorCode::LeaseLost, "assignment " + assignment_id + " no longer holds its job");
    auto job = m_store.get_job(a->job_id);
    if (!job) return job.error();
    if (job->output_pool.empty()) return uint64_t{0};
    auto part = m_pools.resolve(job->output_pool, StoragePools::part_of(output_relpath(*a)));
    std::error_code ec;
    auto size = stdfs::file_size(part, ec);
    return ec ? uint64_t{0} : static_cast<uint64_t>(size);
}

Result<OutputUploadPlan> EngineService::begin_output_upload(const Principal& who,
                                                            const std::string& assignment_id,
                                                            int64_t fencing_token, uint64_t start) {
    auto stored = output_offset(who, assignment_id, fencing_token);
    if (!stored) return stored.error();
    if (start != *stored)
        return Error(
            ErrorCode::Conflict,
            "the output must continue at byte " + std::to_string(*stored) + ", not " + std::to_string(start),
            {{"offset", *stored}});
    auto a = m_store.get_attempt(assignment_id);
    if (!a) return a.error();
    auto job = m_store.get_job(a->job_id);
    if (!job) return job.error();
    if (job->output_pool.empty()) {
        // Reserve an estimate (the source's size) before the first byte; complete() fixes it to the real
        // size.
        uint64_t estimate = std::max<uint64_t>(job->source_size.value_or(job->source_received), 1 << 20);
        auto pool = m_store.reserve_space(job->id, FileKind::Output, estimate, m_pools.candidates());
        if (!pool) return pool.error();
    }
    job = m_store.get_job(a->job_id);
    if (!job) return job.error();
    OutputUploadPlan plan;
    plan.part_path = m_pools.resolve(job->output_pool, StoragePools::part_of(output_relpath(*a)));
    plan.offset = start;
    plan.limit = m_config.max_upload_bytes;
    return plan;
}

std::optional<std::string> EngineService::verify_stored_output(const JobRecord& job,
                                                               const stdfs::path& file) {
    auto options = media::parse_job_options(job.resolved);
    if (!options) return std::nullopt;
    auto plan = media::plan_streams(*options, media::probe_from_json(job.source_probe));
    if (!plan) return std::nullopt;
    auto out = media::probe_media_file(m_config.ffprobe, file);
    if (!out) return "the output does not open: " + out.error().message;
    auto ok =
        media::verify_output(*plan, media::expected_output_duration(job.duration_seconds, *options), *out);
    if (!ok) return ok.error().message;
    return std::nullopt;
}

Result<protocol::AssignmentAck> EngineService::complete(const Principal& who,
                                                        const std::string& assignment_id,
                                                        const protocol::CompleteRequest& request) {
    auto a = owned_attempt(who, assignment_id);
    if (!a) return a.error();
    auto job = m_store.get_job(a->job_id);
    if (!job) return job.error();
    // A repeated complete for the same token answers the same.
    if (a->state == AttemptState::Completed && a->fencing_token == request.fencing_token &&
        job->state == JobState::Completed)
        return protocol::AssignmentAck{job->id, job->state};
    if (a->state != AttemptState::Active || a->fencing_token != request.fencing_token)
        return Error(ErrorCode::LeaseLost, "assignment " + assignment_id + " no longer holds its job");
    if (job->state == JobState::Canceling) {
        auto ended =
            end_unfinished(*a, AttemptState::Canceled, false, "canceled by the user", "", std::nullopt, "");
        if (!ended) return ended.error();
        return protocol::AssignmentAck{ended->id, ended->state};
    }
    if (job->output_pool.empty())
        return Error::invalid("output_size", "no output was uploaded for this assignment");
    auto part = m_pools.resolve(job->output_pool, StoragePools::part_of(output_relpath(*a)));
    std::error_code ec;
    uint64_t size = stdfs::file_size(part, ec);
    if (ec || size != static_cast<uint64_t>(request.output_size))
        return Error::invalid("output_size", "the server holds " + std::to_string(ec ? 0 : size) +
                                                 " bytes of output, not " +
                                                 std::to_string(request.output_size) + "; upload the rest");
    auto sha = sha256_file(part);
    if (!sha) return sha.error();
    if (*sha != request.output_sha256) {
        stdfs::remove(part, ec);
        return Error::invalid("output_sha256",
                              "the stored output's SHA-256 is " + *sha + "; upload it again from 0");
    }
    // The engine verified the output against its plan (file mode); what the server can check cheaply
    // it checks again: the length ffmpeg reached against the source's, less the trims.
    if (auto options = media::parse_job_options(job->resolved)) {
        if (auto diff = media::duration_difference(
                media::expected_output_duration(job->duration_seconds, *options), request.duration_seconds);
            diff && request.duration_seconds) {
            stdfs::remove(part, ec);
            const std::string reason = "the output does not match its plan: " + *diff;
            auto ended = end_unfinished(
                *a, AttemptState::Failed, true, reason, "", 0,
                std::string(protocol::to_string(protocol::ErrorClass::OutputMismatch)), "OUTPUT_MISMATCH");
            if (!ended) return ended.error();
            return Error(ErrorCode::OutputMismatch, reason, {{"failure_code", "OUTPUT_MISMATCH"}});
        }
    }
    std::string final_rel = StoragePools::job_file(job->id, FileKind::Output);
    auto final_path = m_pools.resolve(job->output_pool, final_rel);
    std::string container = job->resolved.is_object() ? job->resolved.value("container", "mp4") : "mp4";
    // A video segment of a split job is NUT whatever the container; the join counts its frames.
    const bool segment = job->task.is_object() && job->task.value("kind", "") == "video";
    if (a->transfer_mode == TransferMode::Stream && is_mp4_family(container) && !segment) {
        // The engine streamed fragmented MP4; the user asked for a plain MP4: remux with the index up front.
        auto tmp = final_path.string() + ".faststart";
        // The streamed output is the engine's bytes: read as the fragmented MP4 it must be and nothing else.
        auto run = process::run({m_config.ffmpeg,
                                 "-nostdin",
                                 "-hide_banner",
                                 "-loglevel",
                                 "error",
                                 "-y",
                                 "-protocol_whitelist",
                                 std::string(media::k_file_protocols),
                                 "-format_whitelist",
                                 "mov",
                                 "-f",
                                 "mov",
                                 "-i",
                                 part.string(),
                                 "-map",
                                 "0",
                                 "-c",
                                 "copy",
                                 "-movflags",
                                 "+faststart",
                                 "-f",
                                 media::container_muxer(container),
                                 tmp},
                                {std::chrono::minutes(30), 1 << 20});
        if (!run || run->exit_code != 0) {
            stdfs::remove(tmp, ec);
            return Error(ErrorCode::Internal,
                         "finishing the streamed MP4 failed: " +
                             (run ? process::tail_lines(run->err, 3) : run.error().message));
        }
        stdfs::remove(part, ec);
        if (auto st = fs::durable_rename(tmp, final_path); !st) return st.error();
        auto new_sha = sha256_file(final_path);
        if (!new_sha) return new_sha.error();
        sha = new_sha;
        size = stdfs::file_size(final_path, ec);
    } else {
        if (auto st = fs::fsync_path(part); !st) return st.error();
        if (auto st = fs::durable_rename(part, final_path); !st) return st.error();
    }
    // A streamed output was never whole on the engine, so the engine could not probe it: the server
    // does, against the job's stream plan, before it counts.
    if (a->transfer_mode == TransferMode::Stream && job->source_probe.is_object() && !segment) {
        if (auto mismatch = verify_stored_output(*job, final_path)) {
            stdfs::remove(final_path, ec);
            auto ended = end_unfinished(
                *a, AttemptState::Failed, true, *mismatch, "", 0,
                std::string(protocol::to_string(protocol::ErrorClass::OutputMismatch)), "OUTPUT_MISMATCH");
            if (!ended) return ended.error();
            return Error(ErrorCode::OutputMismatch, *mismatch, {{"failure_code", "OUTPUT_MISMATCH"}});
        }
    }
    int64_t now = m_clock.now_ms();
    AttemptEnd end;
    end.attempt_state = AttemptState::Completed;
    end.exit_code = 0;
    end.message = "completed";
    end.job_to = JobState::Completed;
    end.job_changes.output_path = final_rel;
    end.job_changes.output_size = size;
    end.job_changes.output_sha256 = *sha;
    end.job_changes.output_expires_at = now + m_config.output_retention_ms;
    end.job_changes.progress_percent = 100.0;
    end.job_changes.finished_at = now;
    end.job_changes.message = "completed";
    end.event_message = "completed by engine " + a->engine_id;
    auto done = m_store.end_attempt(assignment_id, request.fencing_token, end);
    if (!done) {
        stdfs::remove(final_path, ec);
        return done.error();
    }
    // Keep the reservation equal to what is stored.
    std::vector<PoolCandidate> same;
    for (auto c : m_pools.candidates())
        if (c.name == job->output_pool) {
            c.disk_free_bytes = UINT64_MAX;
            c.cap_bytes.reset();
            same.push_back(c);
        }
    (void)m_store.reserve_space(job->id, FileKind::Output, size, same);
    // A split job's tasks are not jobs to the metrics: the job counts once, when it is joined.
    if (m_metrics && !job->parent_id)
        m_metrics->job_completed(static_cast<double>(now - a->started_at) / 1000.0);
    spdlog::info("job {} completed by engine {} ({} bytes)", job->id, a->engine_id, size);
    changed_for_watchers();
    return protocol::AssignmentAck{done->id, done->state};
}

Result<JobRecord> EngineService::end_unfinished(const AttemptRecord& a, AttemptState attempt_state,
                                                bool permanent, const std::string& reason,
                                                const std::string& stderr_tail, std::optional<int> exit_code,
                                                const std::string& error_class,
                                                const std::string& failure_code) {
    auto job = m_store.get_job(a.job_id);
    if (!job) return job.error();
    int64_t now = m_clock.now_ms();
    AttemptEnd end;
    end.attempt_state = attempt_state;
    end.exit_code = exit_code;
    if (!error_class.empty()) end.error_class = error_class;
    end.message = reason;
    end.job_changes.progress = nlohmann::json();
    if (job->state == JobState::Canceling) {
        end.attempt_state = AttemptState::Canceled;
        end.job_to = JobState::Canceled;
        end.job_changes.finished_at = now;
        end.job_changes.failure_code = "canceled";
        end.job_changes.message = "canceled";
        end.event_message = "canceled; the engine stopped";
    } else if (permanent || job->attempt_count >= job->max_attempts) {
        end.job_to = JobState::Failed;
        end.job_changes.finished_at = now;
        end.job_changes.failure_code = permanent ? failure_code : "attempts_exhausted";
        std::string why =
            permanent ? reason
                      : "gave up after " + std::to_string(job->attempt_count) + " attempt(s): " + reason;
        std::string tail = process::tail_lines(stderr_tail, 12);
        end.job_changes.failure_reason = tail.empty() ? why : why + "\n" + tail;
        end.job_changes.message = "failed";
        end.event_message = why;
    } else {
        int64_t delay = retry_backoff_ms(job->attempt_count, m_config.retry_backoff_ms,
                                         m_config.retry_backoff_max_ms, random01());
        end.job_to = JobState::Queued;
        end.job_changes.not_before = std::optional<int64_t>(now + delay);
        end.job_changes.queued_at = now;
        end.job_changes.progress_percent = 0.0;
        end.job_changes.message = "retrying in " + std::to_string(delay / 1000) + " s after: " + reason;
        end.event_message = "requeued after: " + reason;
    }
    auto r = m_store.end_attempt(a.id, a.fencing_token, end);
    if (r) {
        spdlog::info("job {} attempt {} on engine {} ended ({}): {} -> {}", a.job_id, a.attempt_no,
                     a.engine_id, to_string(attempt_state), reason, to_string(r->state));
        std::error_code ec;
        if (!job->output_pool.empty())
            stdfs::remove(m_pools.resolve(job->output_pool, StoragePools::part_of(output_relpath(a))), ec);
        if (m_metrics && r->state == JobState::Queued) m_metrics->job_requeued();
        changed();
    }
    return r;
}

Result<std::string> EngineService::check_stored_source(const std::string& job_id) {
    auto job = m_store.get_job(job_id);
    if (!job) return job.error();
    auto path = m_pools.resolve(job->source_pool, job->source_path);
    if (!job->source_sha256) return std::string();  // nothing to compare against: treated as in transit
    auto sha = sha256_file(path);
    if (!sha) return "the stored source cannot be read: " + sha.error().message;
    if (*sha != *job->source_sha256)
        return "the stored source no longer matches the SHA-256 taken when it was uploaded (" +
               *job->source_sha256 + ", now " + *sha +
               "): it was corrupted on the server's disk; upload it again";
    return std::string();
}

Result<protocol::AssignmentAck> EngineService::fail(const Principal& who, const std::string& assignment_id,
                                                    const protocol::FailRequest& request) {
    auto a = owned_attempt(who, assignment_id);
    if (!a) return a.error();
    if (a->state != AttemptState::Active || a->fencing_token != request.fencing_token)
        return Error(ErrorCode::LeaseLost, "assignment " + assignment_id + " no longer holds its job");
    // An output that does not match its plan would come out the same from every engine: permanent.
    bool permanent = request.error_class == protocol::ErrorClass::Permanent ||
                     request.error_class == protocol::ErrorClass::OutputMismatch;
    std::string reason = request.message.empty() ? "the engine reported a failure" : request.message;
    if (request.exit_code) reason += " (exit code " + std::to_string(*request.exit_code) + ")";
    std::string failure_code =
        request.error_class == protocol::ErrorClass::OutputMismatch ? "OUTPUT_MISMATCH" : "TRANSCODE_FAILED";
    if (request.error_class == protocol::ErrorClass::SourceCorrupt) {
        // The engine's copy does not match the upload's SHA-256. Ours decides: if it changed on disk the
        // job can never succeed from it; if it is intact the bytes broke on the way, and a retry helps.
        auto verdict = check_stored_source(a->job_id);
        if (!verdict) return verdict.error();
        permanent = !verdict->empty();
        failure_code = "SOURCE_CORRUPT";
        reason = permanent ? *verdict : reason + " (the stored source is intact: retrying)";
    }
    auto r =
        end_unfinished(*a, AttemptState::Failed, permanent, reason, request.stderr_tail, request.exit_code,
                       std::string(protocol::to_string(request.error_class)), failure_code);
    if (!r) return r.error();
    return protocol::AssignmentAck{r->id, r->state};
}

Result<protocol::EngineInfo> EngineService::to_info(const EngineRecord& e) {
    auto active = m_store.active_attempts(e.id);
    if (!active) return active.error();
    protocol::EngineInfo info;
    info.engine_id = e.id;
    info.hostname = e.hostname;
    info.version = e.version;
    info.state = e.state;
    info.drain_requested = e.drain;
    info.slots = e.slots;
    for (const auto& a : *active) info.running_assignments.push_back(a.id);
    if (auto caps = protocol::parse_capabilities(e.capabilities)) info.capabilities = *caps;
    info.tags = e.tags;
    info.benchmark_score = e.benchmark_score;
    info.free_disk_bytes = e.free_disk_bytes;
    info.load_average = e.load_average;
    if (e.memory.is_object())
        if (auto m = protocol::parse_memory(e.memory)) info.memory = *m;
    info.cpu_temperature_c = e.cpu_temperature_c;
    info.registered_at = ts(e.registered_at);
    info.last_seen_at = ts(e.last_seen_at);
    return info;
}

Result<std::vector<protocol::EngineInfo>> EngineService::list_engines() {
    auto engines = m_store.list_engines();
    if (!engines) return engines.error();
    std::vector<protocol::EngineInfo> out;
    for (const auto& e : *engines) {
        auto info = to_info(e);
        if (!info) return info.error();
        out.push_back(*std::move(info));
    }
    return out;
}

Result<protocol::EngineInfo> EngineService::set_drain(const std::string& engine_id, bool drain) {
    if (auto st = m_store.set_engine_flags(engine_id, drain, false); !st) return st.error();
    changed();
    auto e = m_store.get_engine(engine_id);
    if (!e) return e.error();
    return to_info(*e);
}

int EngineService::explain_unplaceable_jobs() {
    static const std::string k_prefix = "waiting: no online engine";
    std::vector<EngineProfile> profiles;
    auto all = m_store.list_engines();
    if (!all) return 0;  // nothing is explained on a failed read (the next pass tries again)
    std::vector<EngineRecord> online;
    for (const auto& e : *all)
        if (e.state != EngineState::Offline) online.push_back(e);
    for (const auto& e : online) profiles.push_back(profile_of(e, online, m_config.transfer_reserve_bytes));
    JobQuery q;
    q.state = JobState::Queued;
    q.limit = 500;
    int unplaceable = 0;
    auto queued = m_store.list_jobs(q);
    if (!queued) return 0;
    for (const auto& job : queued->items) {
        bool placeable = std::any_of(profiles.begin(), profiles.end(),
                                     [&](const EngineProfile& p) { return meets_requirements(job, p); });
        std::string message;
        if (!placeable) {
            ++unplaceable;
            message = online.empty()
                          ? k_prefix + " is registered yet"
                          : k_prefix + " has what this job needs (" + describe_requirements(job) + ")";
        } else if (job.message.rfind(k_prefix, 0) == 0) {
            message = "queued";
        }
        if (!message.empty() && message != job.message) {
            JobUpdate u;
            u.message = message;
            (void)m_store.update_job(job.id, u);
        }
    }
    return unplaceable;
}

Result<protocol::EngineInfo> EngineService::request_benchmark(const std::string& engine_id) {
    if (auto st = m_store.set_engine_flags(engine_id, std::nullopt, true); !st) return st.error();
    auto e = m_store.get_engine(engine_id);
    if (!e) return e.error();
    return to_info(*e);
}

EngineService::RescueReport EngineService::rescue() {
    RescueReport report;
    int64_t now = m_clock.now_ms();
    // A failed listing ends nothing: an attempt is only given up on what the database says.
    auto expired = m_store.expired_attempts(now);
    if (!expired) spdlog::warn("rescue: {}", expired.error().message);
    for (const auto& a : expired.value_or(std::vector<AttemptRecord>{})) {
        if (end_unfinished(a, AttemptState::Lost, false,
                           "the lease expired (no progress or heartbeat from the engine)", "", std::nullopt,
                           "transient"))
            ++report.leases_expired;
    }
    auto engines = m_store.list_engines();
    if (!engines) spdlog::warn("rescue: {}", engines.error().message);
    for (auto e : engines.value_or(std::vector<EngineRecord>{})) {
        if (e.state == EngineState::Offline || now - e.last_seen_at <= m_config.engine_offline_ms) continue;
        e.state = EngineState::Offline;
        (void)m_store.update_engine(e);
        ++report.engines_offline;
        spdlog::warn("engine {} ({}) is offline: no heartbeat for {} s", e.id, e.hostname,
                     (now - e.last_seen_at) / 1000);
        auto active = m_store.active_attempts(e.id);
        if (!active) spdlog::warn("rescue: {}", active.error().message);
        for (const auto& a : active.value_or(std::vector<AttemptRecord>{}))
            (void)end_unfinished(a, AttemptState::Lost, false, "engine " + e.hostname + " went offline", "",
                                 std::nullopt, "transient");
    }
    report.jobs_unplaceable = explain_unplaceable_jobs();
    if (m_metrics) {
        m_metrics->lease_expired(report.leases_expired);
        m_metrics->engine_went_offline(report.engines_offline);
    }
    if (report.leases_expired || report.engines_offline) changed();
    return report;
}

}  // namespace distconv::dispatch
