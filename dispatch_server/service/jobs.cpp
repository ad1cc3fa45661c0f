#include "dispatch_server/service/jobs.hpp"

#include "dispatch_server/service/split.hpp"

#include "common/fs.hpp"
#include "common/hash.hpp"
#include "common/http/client.hpp"
#include "common/media/ffmpeg_args.hpp"
#include "common/media/input_policy.hpp"
#include "common/media/probe_file.hpp"
#include "common/process.hpp"
#include "common/ulid.hpp"
#include "protocol/engines.hpp"
#include "protocol/jobs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace distconv::dispatch {

namespace stdfs = std::filesystem;

// --- FfprobeProber --------------------------------------------------------------------------------

Result<media::ProbeInfo> FfprobeProber::probe(const stdfs::path& file) {
    return media::probe_media_file(m_ffprobe, file);
}

// --- JobService -----------------------------------------------------------------------------------

struct JobService::ParsedJob {
    protocol::SubmitJobRequest request;
    media::JobOptions resolved;
    std::string ffmpeg_command;
};

JobService::JobService(Store& store, StoragePools& pools, const DispatchConfig& config, Prober& prober,
                       const Clock& clock, ChangeNotifier& notifier)
    : m_store(store),
      m_pools(pools),
      m_config(config),
      m_prober(prober),
      m_clock(clock),
      m_notifier(notifier) {}

JobService::~JobService() {
    std::unique_lock lock(m_fetch_mutex);
    m_stopping = true;  // each fetch's progress callback sees it and aborts its transfer
    m_fetch_cv.wait(lock, [&] { return m_fetches == 0; });
}

std::shared_ptr<void> JobService::try_fetch_slot() {
    std::lock_guard lock(m_fetch_mutex);
    if (m_stopping || m_fetches >= m_config.source_url_fetches) return nullptr;
    ++m_fetches;
    return std::shared_ptr<void>(static_cast<void*>(this), [this](void*) {
        std::lock_guard release(m_fetch_mutex);
        --m_fetches;
        m_fetch_cv.notify_all();
    });
}

Result<JobService::ParsedJob> JobService::parse_job(const nlohmann::json& job,
                                                    protocol::SubmitKind kind) const {
    if (!job.is_object()) return Error::invalid("job", "the job must be a JSON object");
    auto request = protocol::parse_submit_job_request(job, kind);
    if (!request) return request.error();
    auto resolved = media::resolve_options(request->options);
    if (!resolved) return resolved.error();
    ParsedJob parsed{*request, *resolved, {}};
    if (request->source && request->source->size > 0 &&
        static_cast<uint64_t>(request->source->size) > m_config.max_upload_bytes)
        return Error(ErrorCode::FileTooLarge,
                     "the source is larger than this server accepts (" +
                         std::to_string(m_config.max_upload_bytes) + " bytes)",
                     {{"field", "source.size"}, {"max_bytes", m_config.max_upload_bytes}});
    if (request->source_url) {
        auto st = check_source_url(*request->source_url);
        if (!st) return st.error();
    }
    auto argv = media::build_ffmpeg_argv(*resolved, std::string(protocol::k_input_placeholder),
                                         std::string(protocol::k_output_placeholder));
    if (!argv) return argv.error();
    parsed.ffmpeg_command = media::quote_command(*argv);
    return parsed;
}

Status JobService::check_source_url(const std::string& url) const {
    std::string lower = url;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string rest;
    if (lower.rfind("http://", 0) == 0)
        rest = url.substr(7);
    else if (lower.rfind("https://", 0) == 0)
        rest = url.substr(8);
    else
        return Error::invalid("source_url", "source_url must be an http:// or https:// URL");
    std::string authority = rest.substr(0, rest.find_first_of("/?#"));
    if (authority.find('@') != std::string::npos)
        return Error::invalid("source_url", "source_url must not carry credentials");
    std::string host = authority, port;
    if (!host.empty() && host.front() == '[') {
        auto close = host.find(']');
        if (close == std::string::npos)
            return Error::invalid("source_url", "source_url has a malformed host");
        if (close + 1 < host.size() && host[close + 1] == ':') port = host.substr(close + 2);
        host = host.substr(1, close - 1);
    } else if (auto colon = host.find(':'); colon != std::string::npos) {
        port = host.substr(colon + 1);
        host = host.substr(0, colon);
    }
    for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (port.empty()) port = lower.rfind("https://", 0) == 0 ? "443" : "80";
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
        return Error::invalid("source_url", "source_url has a malformed port");
    // HOST allows the web's ports (80, 443); HOST:PORT allows that port only.
    for (const auto& allowed : m_config.source_url_hosts) {
        auto colon = allowed.rfind(':');
        bool with_port = colon != std::string::npos && allowed.find(']') == std::string::npos
                             ? allowed.find(':') == colon
                             : colon != std::string::npos && colon > allowed.find(']');
        std::string allowed_host = with_port ? allowed.substr(0, colon) : allowed;
        if (!allowed_host.empty() && allowed_host.front() == '[')
            allowed_host = allowed_host.substr(1, allowed_host.size() - 2);
        bool port_ok = with_port ? allowed.substr(colon + 1) == port : (port == "80" || port == "443");
        if (!host.empty() && host == allowed_host && port_ok) return {};
    }
    return Error(ErrorCode::Forbidden,
                 "this server does not fetch from '" + host + ":" + port +
                     "' (an admin allows hosts with --source-url-host HOST or HOST:PORT)",
                 {{"field", "source_url"}});
}

Status JobService::validate_job_json(const nlohmann::json& job) const {
    auto parsed = parse_job(job, protocol::SubmitKind::Multipart);
    if (!parsed) return parsed.error();
    return {};
}

JobRecord JobService::new_record(const Principal& who, const ParsedJob& parsed,
                                 const std::optional<std::string>& idempotency_key) const {
    const auto& req = parsed.request;
    JobRecord r;
    r.id = new_ulid();
    r.owner_key_id = who.key_id;
    r.state = JobState::AwaitingUpload;
    r.priority = req.priority;
    r.options = media::to_json(req.options);
    r.resolved = media::to_json(parsed.resolved);
    r.ffmpeg_command = parsed.ffmpeg_command;
    r.max_attempts = req.max_attempts;
    if (req.ttl_seconds) r.ttl_ms = *req.ttl_seconds * 1000;
    r.requirements = nlohmann::json{{"encoders", req.requirements.encoders}, {"tags", req.requirements.tags}};
    if (req.requirements.hwaccel) r.requirements["hwaccel"] = *req.requirements.hwaccel;
    r.idempotency_key = idempotency_key;
    if (req.source) {
        r.source_size = static_cast<uint64_t>(req.source->size);
        r.source_sha256 = req.source->sha256;
        if (req.source->filename) r.source_filename = *req.source->filename;
    }
    r.source_url = req.source_url;
    if (r.source_filename.empty() && req.source_url) {
        std::string path = req.source_url->substr(0, req.source_url->find_first_of("?#"));
        r.source_filename = path.substr(path.rfind('/') + 1);
    }
    r.output_filename = parsed.resolved.output_filename
                            ? *parsed.resolved.output_filename
                            : media::default_output_filename(r.source_filename, parsed.resolved);
    r.message = req.source_url ? "fetching the source" : "waiting for the source upload";
    return r;
}

namespace {

// An Idempotency-Key names one request: the same key with different contents is a client bug, not a
// retry (409 CONFLICT, as the spec says), rather than silently answering the first job.
Result<JobRecord> replay_or_conflict(const JobRecord& existing, const JobRecord& wanted) {
    bool same = existing.options == wanted.options && existing.priority == wanted.priority &&
                existing.max_attempts == wanted.max_attempts && existing.ttl_ms == wanted.ttl_ms &&
                existing.requirements == wanted.requirements && existing.source_size == wanted.source_size &&
                existing.source_sha256 == wanted.source_sha256 && existing.source_url == wanted.source_url;
    if (!same)
        return Error(ErrorCode::Conflict,
                     "this Idempotency-Key was used for a different request (job " + existing.id + ")",
                     {{"field", "Idempotency-Key"}, {"job_id", existing.id}});
    return existing;
}

}  // namespace

Result<JobRecord> JobService::submit_json(const Principal& who, const nlohmann::json& job,
                                          const std::optional<std::string>& idempotency_key) {
    auto parsed = parse_job(job, protocol::SubmitKind::JsonOnly);
    if (!parsed) return parsed.error();
    JobRecord record = new_record(who, *parsed, idempotency_key);
    std::shared_ptr<void> fetch_slot;
    if (record.source_url) {
        fetch_slot = try_fetch_slot();
        if (!fetch_slot)
            return Error(ErrorCode::TooManyRequests,
                         "this server is fetching " + std::to_string(m_config.source_url_fetches) +
                             " source_url sources already; retry shortly",
                         {{"field", "source_url"}, {"max_fetches", m_config.source_url_fetches}});
    }
    // Fail before storing anything when no pool could take the declared source.
    if (record.source_size) {
        if (auto quota = check_quota(who, *record.source_size); !quota) return quota.error();
        auto usage = m_pools.usage(m_store);
        if (!usage) return usage.error();
        bool fits = false;
        for (const auto& u : *usage) fits = fits || u.free_bytes >= *record.source_size;
        if (!fits)
            return Error(ErrorCode::InsufficientStorage, "no storage pool has room for the source",
                         {{"needed_bytes", *record.source_size}});
    }
    auto inserted = m_store.insert_job(record);
    if (!inserted) return inserted.error();
    if (inserted->id != record.id) return replay_or_conflict(*inserted, record);  // idempotent replay
    if (record.source_size) {
        auto pool =
            m_store.reserve_space(record.id, FileKind::Source, *record.source_size, m_pools.candidates());
        if (!pool) {
            JobUpdate u;
            u.failure_code = "INSUFFICIENT_STORAGE";
            u.failure_reason = pool.error().message;
            u.finished_at = m_clock.now_ms();
            (void)m_store.transition(record.id, {JobState::AwaitingUpload}, JobState::Failed, u,
                                     pool.error().message);
            changed();
            return pool.error();
        }
        JobUpdate u;
        u.source_path = StoragePools::job_file(record.id, FileKind::Source);
        auto updated = m_store.update_job(record.id, u);
        if (!updated) return updated.error();
        *inserted = *updated;
    }
    changed();
    if (record.source_url) {
        std::thread(&JobService::fetch_source_url, this, record.id, *record.source_url, std::move(fetch_slot))
            .detach();
    }
    return inserted;
}

Result<JobService::MultipartTarget> JobService::reserve_multipart(const Principal& who, uint64_t length) {
    if (auto quota = check_quota(who, length); !quota) return quota.error();
    auto incoming = m_pools.reserve_incoming(m_store, length);
    if (!incoming) return incoming.error();
    return MultipartTarget{*incoming, m_pools.resolve(incoming->pool, incoming->relative)};
}

void JobService::discard_multipart(const MultipartTarget& target) {
    std::error_code ec;
    stdfs::remove(target.path, ec);
    m_pools.release_incoming(target.incoming);
}

Result<JobRecord> JobService::submit_multipart(const Principal& who, const nlohmann::json& job,
                                               const StoragePools::Incoming& incoming, uint64_t size,
                                               const std::string& filename,
                                               const std::optional<std::string>& idempotency_key,
                                               const std::optional<std::string>& file_sha256) {
    auto incoming_path = m_pools.resolve(incoming.pool, incoming.relative);
    auto discard = [&] {
        std::error_code ec;
        stdfs::remove(incoming_path, ec);
        m_pools.release_incoming(incoming);
    };
    auto parsed = parse_job(job, protocol::SubmitKind::Multipart);
    if (!parsed) {
        discard();
        return parsed.error();
    }
    if (size == 0) {
        discard();
        return Error(ErrorCode::UnsupportedMediaType, "the uploaded file is empty", {{"field", "file"}});
    }
    if (parsed->request.source && parsed->request.source->sha256) {
        auto sha = file_sha256 ? Result<std::string>(*file_sha256) : sha256_file(incoming_path);
        if (!sha || *sha != *parsed->request.source->sha256) {
            discard();
            return Error(ErrorCode::InvalidArgument, "the uploaded file does not match source.sha256",
                         {{"field", "source.sha256"}});
        }
    }
    auto probe = m_prober.probe(incoming_path);
    if (!probe) {
        discard();
        return probe.error();
    }
    // What the output would get from this source: a selection that matches nothing, or a source
    // these options cannot carry (HDR to 8 bits), is refused before anything is stored.
    if (auto plan = media::plan_streams(parsed->resolved, *probe); !plan) {
        discard();
        return plan.error();
    }
    JobRecord record = new_record(who, *parsed, idempotency_key);
    record.source_filename = filename;
    if (!parsed->resolved.output_filename)
        record.output_filename = media::default_output_filename(filename, parsed->resolved);
    record.source_size = size;
    // The SHA-256 taken while the bytes were written is the source's from now on: engines check
    // what they receive against it.
    if (!record.source_sha256) {
        auto sha = file_sha256 ? Result<std::string>(*file_sha256) : sha256_file(incoming_path);
        if (!sha) {
            discard();
            return sha.error();
        }
        record.source_sha256 = *sha;
    }
    auto inserted = m_store.insert_job(record);
    if (!inserted) {
        discard();
        return inserted.error();
    }
    bool adopting = false;
    if (inserted->id != record.id) {  // idempotent replay
        auto replay = replay_or_conflict(*inserted, record);
        // The first try was acknowledged by nobody if its job still waits for these bytes (the
        // dispatch died, or the database failed, between storing the job and queueing it): this
        // retry finishes it with its own, identical bytes. Otherwise keep the first job, drop these.
        if (!replay || replay->state != JobState::AwaitingUpload || replay->source_url) {
            discard();
            return replay;
        }
        record = *replay;
        adopting = true;
    }
    // The bytes are on disk already: move the in-memory reservation into the store, then the file.
    m_pools.release_incoming(incoming);
    std::vector<PoolCandidate> same_pool;
    for (auto c : m_pools.candidates())
        if (c.name == incoming.pool) {
            c.disk_free_bytes = UINT64_MAX;  // already written: only the cap matters
            same_pool.push_back(c);
        }
    auto reserved = m_store.reserve_space(record.id, FileKind::Source, size, same_pool);
    auto rel = StoragePools::job_file(record.id, FileKind::Source);
    auto dest = m_pools.resolve(incoming.pool, rel);
    std::error_code ec;
    stdfs::create_directories(dest.parent_path(), ec);
    Status moved = reserved ? fs::durable_rename(incoming_path, dest) : Status(reserved.error());
    JobUpdate u;
    if (!moved) {
        std::error_code rec;
        stdfs::remove(incoming_path, rec);
        // A passing fault (the database busy) leaves the job waiting: the client's retry with the
        // same Idempotency-Key finishes it. Only a lasting one fails it.
        if (moved.error().retryable) return moved.error();
        u.failure_code = "INTERNAL_ERROR";
        u.failure_reason = "could not store the source: " + moved.error().message;
        u.finished_at = m_clock.now_ms();
        (void)m_store.transition(record.id, {JobState::AwaitingUpload}, JobState::Failed, u,
                                 *u.failure_reason);
        changed();
        return moved.error();
    }
    u.source_pool = incoming.pool;
    u.source_path = rel;
    u.source_received = size;
    auto queued = queue_probed(record, *probe, u);
    if (!queued && adopting && queued.error().code == ErrorCode::Conflict) {
        // A concurrent retry of the same request queued it first (or it was canceled meanwhile):
        // answer the job as it is now.
        auto now = m_store.get_job(record.id);
        if (now && now->state != JobState::AwaitingUpload) return *now;
    }
    return queued;
}

Result<JobRecord> JobService::queue_probed(const JobRecord& job, const media::ProbeInfo& probe, JobUpdate u) {
    const std::string& id = job.id;
    u.source_probe = media::to_json(probe);
    // The command as it will run, now that the input's format is known.
    if (auto options = media::parse_job_options(job.resolved)) {
        auto plan = media::plan_streams(*options, probe);
        if (plan)
            if (auto argv = protocol::assignment_argv(*options, protocol::TransferMode::File, probe.demuxer,
                                                      &*plan)) {
                argv->insert(argv->begin(), "ffmpeg");
                u.ffmpeg_command = media::quote_command(*argv);
            }
    }
    if (probe.duration_seconds) u.duration_seconds = *probe.duration_seconds;
    if (auto options = media::parse_job_options(job.resolved)) {
        auto split = initial_split(*options, probe.duration_seconds,
                                   static_cast<double>(m_config.split_auto_after_ms) / 1000.0);
        if (split.is_object()) {
            u.split_state = split.value("state", "");
            u.split = std::move(split);
        }
    }
    u.queued_at = m_clock.now_ms();
    u.message = "queued";
    auto queued = m_store.transition(id, {JobState::AwaitingUpload}, JobState::Queued, u, "source received");
    changed();
    return queued;
}

Result<JobRecord> JobService::owned(const Principal& who, const std::string& id) {
    auto job = m_store.get_job(id);
    if (!job && job.error().code != ErrorCode::JobNotFound) return job.error();  // the database, not the job
    // Another user's job is reported as missing: its existence is not theirs to know.
    if (!job || (!who.is_admin() && job->owner_key_id != who.key_id))
        return Error(ErrorCode::JobNotFound, "no job with id '" + id + "'", {{"job_id", id}});
    return *job;
}

Result<JobRecord> JobService::get(const Principal& who, const std::string& id) {
    return owned(who, id);
}

Result<JobService::JobView> JobService::view(const JobRecord& job, bool with_attempts) {
    JobView v;
    auto owner = m_store.get_api_key(job.owner_key_id);
    if (!owner && owner.error().code != ErrorCode::NotFound) return owner.error();
    v.owner_name = owner ? owner->name : job.owner_key_id;
    auto position = m_store.queue_position(job.id);
    if (!position) return position.error();
    v.queue_position = *position;
    if (with_attempts) {
        auto attempts = m_store.attempts_for_job(job.id);
        if (!attempts) return attempts.error();
        v.attempts = *std::move(attempts);
    }
    if (with_attempts && job.split.is_object()) {
        auto tasks = m_store.tasks_of(job.id);
        if (!tasks) return tasks.error();
        for (auto& t : *tasks) {
            auto attempts = m_store.attempts_for_job(t.id);
            if (!attempts) return attempts.error();
            v.tasks.push_back({std::move(t), *std::move(attempts)});
        }
    }
    return v;
}

Result<std::vector<JobService::JobView>> JobService::views(const std::vector<JobRecord>& jobs) {
    std::vector<std::string> queued;
    for (const auto& j : jobs)
        if (j.state == JobState::Queued) queued.push_back(j.id);
    auto positions = m_store.queue_positions(queued);
    if (!positions) return positions.error();
    std::map<std::string, std::string> owners;  // key id -> name, read once per owner
    std::vector<JobView> out;
    for (const auto& j : jobs) {
        JobView v;
        auto known = owners.find(j.owner_key_id);
        if (known == owners.end()) {
            auto owner = m_store.get_api_key(j.owner_key_id);
            if (!owner && owner.error().code != ErrorCode::NotFound) return owner.error();
            known = owners.emplace(j.owner_key_id, owner ? owner->name : j.owner_key_id).first;
        }
        v.owner_name = known->second;
        if (auto p = positions->find(j.id); p != positions->end()) v.queue_position = p->second;
        out.push_back(std::move(v));
    }
    return out;
}

Result<JobService::Overview> JobService::overview(const Principal& who) {
    constexpr int k_buckets = 12;
    constexpr int64_t k_bucket_ms = 5 * 60 * 1000;
    std::optional<std::string> owner;
    if (!who.is_admin()) owner = who.key_id;
    Overview o;
    auto counts = m_store.count_by_state(owner);
    if (!counts) return counts.error();
    o.counts = *counts;
    o.bucket_ms = k_bucket_ms;
    // Buckets end at the next 5-minute boundary, so they stay put from one refresh to the next.
    const int64_t end = (m_clock.now_ms() / k_bucket_ms + 1) * k_bucket_ms;
    o.since_ms = end - k_buckets * k_bucket_ms;
    auto throughput = m_store.finished_since(o.since_ms, k_bucket_ms, k_buckets, owner);
    if (!throughput) return throughput.error();
    o.throughput = *throughput;
    auto failed = m_store.failed_since(m_clock.now_ms() - 3600 * 1000, owner, 20);
    if (!failed) return failed.error();
    o.failed = *failed;
    return o;
}

Result<std::vector<Store::FeedEvent>> JobService::feed(const Principal& who, bool all, int64_t after_id) {
    std::optional<std::string> owner;
    if (!(all && who.is_admin())) owner = who.key_id;
    return m_store.event_feed(after_id, owner);
}

Result<JobRecord> JobService::current(const std::string& id) {
    return m_store.get_job(id);
}

Result<MetricGauges> JobService::gauges() {
    MetricGauges g;
    auto by_state = m_store.count_by_state();
    if (!by_state) return by_state.error();
    for (auto state : protocol::k_all_job_states) {
        auto it = by_state->find(state);
        g.jobs_by_state.emplace_back(std::string(protocol::to_string(state)),
                                     it == by_state->end() ? 0 : it->second);
    }
    auto queued = by_state->find(JobState::Queued);
    g.queue_depth = queued == by_state->end() ? 0 : queued->second;
    auto engines = m_store.list_engines();
    if (!engines) return engines.error();
    // Keyed by the metric's label, so the samples keep their (alphabetical) order.
    std::map<std::string, int64_t> counts;
    for (auto state : {EngineState::Idle, EngineState::Busy, EngineState::Draining, EngineState::Offline})
        counts[std::string(protocol::to_string(state))] = 0;
    for (const auto& e : *engines) ++counts[std::string(protocol::to_string(e.state))];
    g.engines_by_state.assign(counts.begin(), counts.end());
    auto active = m_store.active_attempts();
    if (!active) return active.error();
    g.assignments_active = static_cast<int64_t>(active->size());
    return g;
}

std::vector<JobService::ReadinessCheck> JobService::readiness() {
    std::vector<ReadinessCheck> out;
    auto pools = m_pools.check_writable();
    out.push_back({"pools", pools.ok(), pools.ok() ? "writable" : pools.error().message});
    auto write = m_store.check_writable();
    out.push_back({"database", write.ok(), write.ok() ? "writable" : write.error().message});
    auto read = m_store.check_readable();
    out.push_back({"database_read", read.ok(), read.ok() ? "readable" : read.error().message});
    return out;
}

Result<std::vector<StoragePools::Usage>> JobService::pool_usage() {
    return m_pools.usage(m_store);
}

Status JobService::check_quota(const Principal& who, uint64_t bytes) {
    if (who.is_admin()) return {};
    return check_owner_quota(who.key_id, bytes);
}

Status JobService::check_owner_quota(const std::string& owner_key_id, uint64_t bytes) {
    if (m_config.user_quota_bytes == 0) return {};
    auto used = m_store.owner_reserved_bytes(owner_key_id);
    if (!used) return used.error();
    if (*used <= m_config.user_quota_bytes && m_config.user_quota_bytes - *used >= bytes) return {};
    return Error(
        ErrorCode::InsufficientStorage,
        "this would take your jobs past your storage quota (" + std::to_string(m_config.user_quota_bytes) +
            " bytes, " + std::to_string(*used) + " in use); delete or download finished jobs first",
        {{"quota_bytes", m_config.user_quota_bytes}, {"used_bytes", *used}, {"needed_bytes", bytes}});
}

Result<JobPage> JobService::list(const Principal& who, const JobQuery& query, bool all) {
    JobQuery q = query;
    if (!(all && who.is_admin())) q.owner_key_id = who.key_id;
    return m_store.list_jobs(q);
}

Result<uint64_t> JobService::source_offset(const Principal& who, const std::string& id) {
    auto job = owned(who, id);
    if (!job) return job.error();
    if (job->state != JobState::AwaitingUpload) return job->source_received;
    auto part = m_pools.resolve(job->source_pool, StoragePools::part_of(job->source_path));
    std::error_code ec;
    auto size = part.empty() ? 0 : stdfs::file_size(part, ec);
    return ec ? uint64_t{0} : static_cast<uint64_t>(size);
}

Result<SourceUploadPlan> JobService::begin_source_upload(const Principal& who, const std::string& id,
                                                         uint64_t start,
                                                         std::optional<uint64_t> content_length,
                                                         std::optional<uint64_t> total_from_range) {
    auto job = owned(who, id);
    if (!job) return job.error();
    {
        std::lock_guard lock(m_uploads_mutex);
        if (!m_uploads.insert(id).second)
            return Error(ErrorCode::Conflict,
                         "another upload to this job is still in progress; retry shortly",
                         {{"state", to_string(job->state)}});
    }
    // From here on every error path must drop the marker again.
    auto release = [&](Error e) -> Result<SourceUploadPlan> {
        abandon_source_upload(id);
        return e;
    };
    job = owned(who, id);  // read again: an upload that just ended may have queued it
    if (!job) return release(job.error());
    if (job->state != JobState::AwaitingUpload)
        return release(Error(ErrorCode::Conflict,
                             "the job is " + std::string(to_string(job->state)) + ", not awaiting an upload",
                             {{"state", to_string(job->state)}}));
    if (job->source_url)
        return release(Error(ErrorCode::Conflict, "this job's source is fetched from its source_url"));
    auto stored = source_offset(who, id);
    if (!stored) return release(stored.error());
    // Byte 0 always starts over (the spec: a PUT without Content-Range drops an earlier partial upload).
    if (start != 0 && start != *stored)
        return release(Error(
            ErrorCode::Conflict,
            "the upload must continue at byte " + std::to_string(*stored) + ", not " + std::to_string(start),
            {{"offset", *stored}}));
    uint64_t declared = job->source_size.value_or(0);
    if (total_from_range && job->source_size && *total_from_range != declared)
        return release(Error::invalid(
            "Content-Range", "the total in Content-Range (" + std::to_string(*total_from_range) +
                                 ") is not the declared source.size (" + std::to_string(declared) + ")"));
    uint64_t limit = job->source_size ? declared : m_config.max_upload_bytes;
    if (content_length && start + *content_length > limit)
        return release(Error(job->source_size ? ErrorCode::InvalidArgument : ErrorCode::FileTooLarge,
                             "the upload would be larger than " + std::to_string(limit) + " bytes",
                             {{"field", "Content-Length"}, {"max_bytes", limit}}));
    if (job->source_pool.empty()) {
        if (auto quota = check_quota(who, limit); !quota) return release(quota.error());
        auto pool = m_store.reserve_space(id, FileKind::Source, limit, m_pools.candidates());
        if (!pool) return release(pool.error());
        JobUpdate u;
        u.source_path = StoragePools::job_file(id, FileKind::Source);
        auto updated = m_store.update_job(id, u);
        if (!updated) return release(updated.error());
        *job = *updated;
    }
    SourceUploadPlan plan;
    plan.job = *job;
    plan.part_path = m_pools.resolve(job->source_pool, StoragePools::part_of(job->source_path));
    plan.offset = start;
    plan.limit = limit;
    return plan;
}

void JobService::abandon_source_upload(const std::string& id) {
    std::lock_guard lock(m_uploads_mutex);
    m_uploads.erase(id);
}

Result<JobRecord> JobService::end_source_upload(const std::string& id, uint64_t end_position,
                                                bool request_complete,
                                                const std::optional<std::string>& part_sha256) {
    // The bytes are on disk (or not): a next PUT may start once this one has recorded its offset.
    struct Done {
        JobService& s;
        const std::string& id;
        ~Done() { s.abandon_source_upload(id); }
    } done{*this, id};
    auto job = m_store.get_job(id);
    if (!job) return job.error();
    JobUpdate u;
    u.source_received = end_position;
    auto updated = m_store.update_job(id, u);
    if (!updated) return updated.error();
    bool complete = job->source_size ? end_position == *job->source_size : request_complete;
    if (!complete) {
        changed();
        return updated;
    }
    auto part = m_pools.resolve(job->source_pool, StoragePools::part_of(job->source_path));
    auto dest = m_pools.resolve(job->source_pool, job->source_path);
    if (job->source_sha256) {
        // Hashed while it was written when this request carried the file from byte 0; else read it.
        auto sha = part_sha256 ? Result<std::string>(*part_sha256) : sha256_file(part);
        if (!sha) return sha.error();
        if (*sha != *job->source_sha256) {
            // Start over: the bytes are not what was declared.
            std::error_code ec;
            stdfs::remove(part, ec);
            JobUpdate reset;
            reset.source_received = 0;
            (void)m_store.update_job(id, reset);
            return Error(
                ErrorCode::InvalidArgument,
                "the uploaded bytes do not match source.sha256 (got " + *sha + "); upload again from 0",
                {{"field", "source.sha256"}, {"offset", 0}});
        }
    }
    auto moved = fs::durable_rename(part, dest);
    if (!moved) return moved.error();
    return finish_source(*updated, dest, part_sha256);
}

Result<JobRecord> JobService::finish_source(const JobRecord& job, const stdfs::path& file,
                                            const std::optional<std::string>& known_sha256) {
    std::error_code ec;
    uint64_t size = stdfs::file_size(file, ec);
    auto probe = m_prober.probe(file);
    JobUpdate u;
    u.source_received = size;
    if (!job.source_sha256) {
        // Every stored source has a SHA-256 (the engines verify against it): the one taken while it was
        // written when a single request carried it all, else read now.
        auto sha = known_sha256 ? Result<std::string>(*known_sha256) : sha256_file(file);
        if (!sha) return sha.error();
        u.source_sha256 = *sha;
    }
    if (!probe) {
        u.failure_code = "UNSUPPORTED_MEDIA_TYPE";
        u.failure_reason = probe.error().message;
        u.message = "the source is not decodable";
        u.finished_at = m_clock.now_ms();
        (void)m_store.transition(job.id, {JobState::AwaitingUpload}, JobState::Failed, u,
                                 probe.error().message);
        changed();
        return probe.error();
    }
    u.source_size = size;
    if (auto options = media::parse_job_options(job.resolved); options) {
        if (auto plan = media::plan_streams(*options, *probe); !plan) {
            u.failure_code = std::string(error_code_name(plan.error().code));
            u.failure_reason = plan.error().message;
            u.message = "the source cannot be transcoded with these options";
            u.finished_at = m_clock.now_ms();
            (void)m_store.transition(job.id, {JobState::AwaitingUpload}, JobState::Failed, u,
                                     plan.error().message);
            changed();
            return plan.error();
        }
    }
    return queue_probed(job, *probe, u);
}

void JobService::fetch_source_url(std::string job_id, std::string url, std::shared_ptr<void> slot) {
    (void)slot;  // held until this fetch ends
    auto job = m_store.get_job(job_id);
    if (!job) return;
    auto fail = [&](const Error& e) {
        JobUpdate u;
        u.failure_code = std::string(error_code_name(e.code));
        u.failure_reason = "fetching source_url failed: " + e.message;
        u.finished_at = m_clock.now_ms();
        u.source_reserved = 0;  // nothing stored: the space is free for others now
        (void)m_store.transition(job_id, {JobState::AwaitingUpload}, JobState::Failed, u, *u.failure_reason);
        changed();
    };
    http::ClientOptions opts;
    opts.connect_timeout = std::chrono::seconds(10);
    opts.request_timeout = std::chrono::milliseconds(m_config.source_url_timeout_ms);  // the whole transfer
    opts.low_speed_time = std::chrono::seconds(60);
    opts.retry.max_attempts = 1;
    http::Client client(opts);
    // Learn the size first, so space is reserved before bytes arrive and the size limit holds.
    http::Request head;
    head.method = "HEAD";
    head.path_or_url = url;
    auto headed = client.request(head);
    if (!headed) return fail(headed.error());
    if (headed->status / 100 != 2)
        return fail(http::error_from_status(headed->status, http::redact_url(url)));
    uint64_t size = m_config.max_upload_bytes;
    if (auto cl = headed->headers.get("Content-Length")) {
        try {
            size = std::stoull(*cl);
        } catch (...) {
        }
    }
    if (size > m_config.max_upload_bytes)
        return fail(
            Error(ErrorCode::FileTooLarge, "the source at source_url is larger than this server accepts"));
    // The owner's quota holds for fetched sources too (the size is known only now).
    if (auto owner = m_store.get_api_key(job->owner_key_id); !owner) {
        return fail(owner.error());
    } else if (owner->role != Role::Admin) {
        if (auto quota = check_owner_quota(job->owner_key_id, size); !quota) return fail(quota.error());
    }
    auto pool = m_store.reserve_space(job_id, FileKind::Source, size, m_pools.candidates());
    if (!pool) return fail(pool.error());
    auto rel = StoragePools::job_file(job_id, FileKind::Source);
    JobUpdate u;
    u.source_path = rel;
    (void)m_store.update_job(job_id, u);
    // The client writes <dest>.part and renames it to dest once complete (the janitor keeps both).
    auto dest = m_pools.resolve(*pool, rel);
    std::error_code ec;
    stdfs::create_directories(dest.parent_path(), ec);
    http::DownloadOptions dl;
    dl.resume = false;
    // Bounded while it runs: never more bytes than reserved (the declared Content-Length, or
    // --max-upload when the server did not say), and stopped when this server stops.
    bool too_large = false;
    dl.progress = [&](uint64_t done, uint64_t) {
        if (done > size) too_large = true;
        std::lock_guard lock(m_fetch_mutex);
        return !too_large && !m_stopping;
    };
    auto got = client.download_to_file(url, dest, dl);
    if (too_large) {
        stdfs::remove(dest, ec);
        stdfs::remove(dest.string() + ".part", ec);
        return fail(Error(ErrorCode::FileTooLarge, "the source at source_url sent more than " +
                                                       std::to_string(size) +
                                                       " bytes (its declared size, or this server's limit)"));
    }
    if (!got) {
        stdfs::remove(dest.string() + ".part", ec);
        return fail(got.error());
    }
    if (got->size > m_config.max_upload_bytes) {
        stdfs::remove(dest, ec);
        return fail(
            Error(ErrorCode::FileTooLarge, "the source at source_url is larger than this server accepts"));
    }
    auto updated = m_store.get_job(job_id);
    if (!updated) {
        spdlog::warn("source_url fetch of job {}: {}", job_id, updated.error().message);
        return;  // the fetched file stays as <pool>/<job>; a retry or the orphan sweep decides
    }
    // The client hashed the bytes while writing them: no second read of the whole file.
    if (updated->source_sha256 && got->sha256 != *updated->source_sha256) {
        stdfs::remove(dest, ec);
        return fail(Error(ErrorCode::InvalidArgument, "the fetched source does not match source.sha256"));
    }
    (void)finish_source(*updated, dest, got->sha256);
}

Result<JobRecord> JobService::cancel(const Principal& who, const std::string& id) {
    auto job = owned(who, id);
    if (!job) return job.error();
    if (job->parent_id)
        return Error(ErrorCode::Conflict,
                     "this is a task of split job " + *job->parent_id + "; cancel that job",
                     {{"state", to_string(job->state)}, {"job_id", *job->parent_id}});
    JobUpdate u;
    u.finished_at = m_clock.now_ms();
    u.failure_code = "canceled";
    u.message = "canceled by " + who.name;
    switch (job->state) {
        case JobState::AwaitingUpload:
        case JobState::Queued: {
            auto r = m_store.transition(id, {JobState::AwaitingUpload, JobState::Queued}, JobState::Canceled,
                                        u, *u.message);
            if (!r && r.error().code == ErrorCode::Conflict) return cancel(who, id);  // it moved on meanwhile
            changed();
            return r;
        }
        case JobState::Assigned:
        case JobState::Running: {
            JobUpdate c;
            c.message = "canceling: waiting for the engine to stop";
            auto r = m_store.transition(id, {JobState::Assigned, JobState::Running}, JobState::Canceling, c,
                                        "cancel requested by " + who.name);
            if (!r && r.error().code == ErrorCode::Conflict) return cancel(who, id);
            changed();
            return r;
        }
        default:
            return *job;  // canceling or terminal: nothing more to do (cancel is idempotent)
    }
}

Result<JobRecord> JobService::retry(const Principal& who, const std::string& id) {
    auto job = owned(who, id);
    if (!job) return job.error();
    if (job->parent_id)
        return Error(ErrorCode::Conflict,
                     "this is a task of split job " + *job->parent_id + "; retry that job",
                     {{"state", to_string(job->state)}, {"job_id", *job->parent_id}});
    if (job->state != JobState::Failed && job->state != JobState::Canceled)
        return Error(
            ErrorCode::Conflict,
            "only failed or canceled jobs can be retried; this one is " + std::string(to_string(job->state)),
            {{"state", to_string(job->state)}});
    bool have_source = !job->source_deleted && !job->source_path.empty() &&
                       stdfs::exists(m_pools.resolve(job->source_pool, job->source_path));
    if (!have_source)
        return Error(ErrorCode::Conflict, "the job's source is no longer stored; submit it again",
                     {{"state", to_string(job->state)}});
    // Only a source ffprobe accepted may be queued (awaiting_upload -> queued needs it): a job that
    // failed because its upload was not media stays failed.
    if (!job->source_probe.is_object())
        return Error(ErrorCode::Conflict,
                     "the job's source was never accepted (not a readable media file); submit it again",
                     {{"state", to_string(job->state)}});
    JobUpdate u;
    u.attempt_count = 0;
    u.queued_at = m_clock.now_ms();
    u.not_before = std::optional<int64_t>{};
    u.failure_code = "";
    u.failure_reason = "";
    u.message = "queued again by " + who.name;
    u.progress_percent = 0;
    u.progress = nlohmann::json();
    u.finished_at = 0;
    if (!job->split_state.empty()) {
        // A split job is cut again: its old tasks go, attempts and all, and split mode decides anew.
        if (auto st = m_store.delete_tasks(id); !st)
            return Error(ErrorCode::Conflict, "the job's tasks are still stopping; retry in a moment",
                         {{"state", to_string(job->state)}});
        if (auto options = media::parse_job_options(job->resolved)) {
            auto split = initial_split(*options, job->duration_seconds,
                                       static_cast<double>(m_config.split_auto_after_ms) / 1000.0);
            u.split_state = split.is_object() ? split.value("state", "") : "";
            u.split = split;
        }
    }
    auto r = m_store.transition(id, {JobState::Failed, JobState::Canceled}, JobState::Queued, u, *u.message);
    changed();
    return r;
}

Result<ResultFile> JobService::result(const Principal& who, const std::string& id) {
    auto job = owned(who, id);
    if (!job) return job.error();
    // A failed job will never have a result: say why instead of "not ready" (the spec's 422).
    if (job->state == JobState::Failed)
        return Error(
            ErrorCode::TranscodeFailed,
            "the job failed" + (job->failure_reason.empty() ? std::string() : ": " + job->failure_reason),
            {{"state", to_string(job->state)},
             {"failure_code", job->failure_code},
             {"failure_reason", job->failure_reason}});
    if (job->state != JobState::Completed)
        return Error(ErrorCode::JobNotReady,
                     "the job is " + std::string(to_string(job->state)) + "; the result is not ready",
                     {{"state", to_string(job->state)}});
    auto path = m_pools.resolve(job->output_pool, job->output_path);
    std::error_code ec;
    if (job->output_deleted || path.empty() || !stdfs::is_regular_file(path, ec))
        return Error(ErrorCode::ResultGone, "the result was deleted after its retention time",
                     {{"job_id", id}});
    ResultFile f;
    f.path = path;
    f.size = job->output_size.value_or(stdfs::file_size(path, ec));
    f.sha256 = job->output_sha256.value_or("");
    f.filename = job->output_filename;
    return f;
}

void JobService::delete_file(const std::string& pool, const std::string& relative) {
    auto path = m_pools.resolve(pool, relative);
    if (path.empty()) return;
    std::error_code ec;
    stdfs::remove(path, ec);
    stdfs::remove(path.string() + ".part", ec);
}

JobService::MaintenanceReport JobService::run_maintenance(std::chrono::seconds orphan_min_age) {
    MaintenanceReport report;
    int64_t now = m_clock.now_ms();
    // Each step runs only on a complete listing; a step whose listing failed is skipped and reported.
    auto listed = [&](auto result, const char* step) {
        using List = std::decay_t<decltype(*result)>;
        if (result) return *std::move(result);
        report.errors.push_back(std::string(step) + ": " + result.error().message);
        return List{};
    };
    for (const auto& job : listed(m_store.jobs_past_ttl(now, m_config.job_ttl_ms), "expire jobs")) {
        JobUpdate u;
        u.failure_code = "expired";
        u.failure_reason = "the job waited longer than its time to live";
        u.message = "expired";
        u.finished_at = now;
        if (m_store.transition(job.id, {JobState::AwaitingUpload, JobState::Queued}, JobState::Failed, u,
                               "expired"))
            ++report.expired_jobs;
    }
    // A reservation nobody uses does not block others: an upload idle past --upload-idle-timeout ends.
    for (const auto& job :
         listed(m_store.idle_uploads(now - m_config.upload_idle_timeout_ms), "end idle uploads")) {
        // Under the uploads lock: a PUT either started before (and is skipped here) or finds the job failed.
        std::lock_guard lock(m_uploads_mutex);
        if (m_uploads.count(job.id)) continue;  // a PUT is writing to it right now
        JobUpdate u;
        u.failure_code = "UPLOAD_ABANDONED";
        u.failure_reason = "no source bytes arrived for " +
                           std::to_string(m_config.upload_idle_timeout_ms / 1000) +
                           " s; the reserved space was released (submit again to retry)";
        u.message = "upload abandoned";
        u.finished_at = now;
        u.source_reserved = 0;
        auto ended =
            m_store.transition(job.id, {JobState::AwaitingUpload}, JobState::Failed, u, *u.failure_reason);
        if (!ended) continue;  // it moved on meanwhile (bytes arrived, canceled)
        if (!job.source_pool.empty()) delete_file(job.source_pool, job.source_path);
        ++report.uploads_abandoned;
    }
    for (const auto& job : listed(m_store.jobs_with_expired_outputs(now), "delete expired outputs")) {
        // Recorded first, deleted second: a failed write leaves the file (the job still names it),
        // never a job naming a file that is gone.
        JobUpdate u;
        u.output_deleted = true;
        if (auto marked = m_store.update_job(job.id, u); !marked) {
            report.errors.push_back("output of job " + job.id + " kept: " + marked.error().message);
            continue;
        }
        delete_file(job.output_pool, job.output_path);
        (void)m_store.release_space(job.id, FileKind::Output);
        ++report.outputs_deleted;
    }
    for (const auto& job : listed(m_store.terminal_jobs_with_sources(), "delete finished sources")) {
        if (job.finished_at && *job.finished_at + m_config.source_retention_ms > now) continue;
        JobUpdate u;
        u.source_deleted = true;
        if (auto marked = m_store.update_job(job.id, u); !marked) {
            report.errors.push_back("source of job " + job.id + " kept: " + marked.error().message);
            continue;
        }
        delete_file(job.source_pool, job.source_path);
        (void)m_store.release_space(job.id, FileKind::Source);
        ++report.sources_deleted;
    }
    // The orphan sweep deletes every pool file the database does not name: it runs on a complete
    // listing of what the database names, or not at all.
    if (auto referenced = m_store.referenced_files()) {
        auto sweep = m_pools.sweep_orphans(*referenced, orphan_min_age);
        report.orphans_removed = sweep.files_removed;
    } else {
        report.errors.push_back("orphan sweep skipped: " + referenced.error().message);
    }
    if (report.expired_jobs || report.outputs_deleted || report.sources_deleted || report.uploads_abandoned)
        changed();
    return report;
}

}  // namespace distconv::dispatch
