#pragma once
// The dispatch server's SQLite store: the only place with SQL.
//
// One writer connection in WAL mode (foreign keys on, busy timeout, synchronous=NORMAL), guarded by a
// mutex; prepared statements cached per SQL text. Numbered migrations recorded in schema_version run
// once, in order, each in its own transaction. Every job state change goes through transition(): one
// transaction that checks the expected current state, applies the change and appends a job_events row.
// Times are unix milliseconds (int64) from the Clock given at open().
//
// A failed read is an error, never an empty answer: every reader returns Result<T>. A database that
// cannot be read or written (locked past the busy timeout, read-only, full, I/O error) answers
// UNAVAILABLE (503, retryable) with details.sqlite_code; a missing row answers NOT_FOUND/JOB_NOT_FOUND.

#include "common/error.hpp"
#include "common/time.hpp"
#include "protocol/job_state.hpp"
#include "protocol/types.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace distconv::dispatch {

// Job states and key roles are the protocol's (protocol/job_state.hpp, protocol/types.hpp): their
// names, parsing and is_terminal() live there, found by ADL. Do not define them again here. So are
// engine and attempt states and transfer modes: the store writes their names as TEXT and a name it
// reads back that is not one of them is an error (UNAVAILABLE, as for a corrupt database), not a guess.
using JobState = protocol::JobState;
using Role = protocol::Role;
using EngineState = protocol::EngineState;
using AttemptState = protocol::AttemptState;
using TransferMode = protocol::TransferMode;

struct ApiKeyRecord {
    std::string id;    // ULID
    std::string name;  // unique among keys that are not revoked
    Role role = Role::User;
    std::string key_hash;  // SHA-256 hex of the secret; the secret itself is never stored
    std::string prefix;    // the first characters of the secret, to recognise a key in listings
    int64_t created_at = 0;
    std::optional<int64_t> revoked_at;
};

struct JobRecord {
    std::string id;            // ULID
    std::string owner_key_id;  // api_keys.id of the submitter
    JobState state = JobState::AwaitingUpload;
    int priority = 0;                                    // -100..100, higher first
    nlohmann::json options = nlohmann::json::object();   // as submitted
    nlohmann::json resolved = nlohmann::json::object();  // after preset resolution (what runs)
    std::string ffmpeg_command;                          // display form of the argv
    std::string output_filename;
    nlohmann::json requirements = nlohmann::json::object();
    int max_attempts = 3;
    int attempt_count = 0;
    std::optional<int64_t> ttl_ms;  // a job queued (or awaiting upload) longer than this expires
    std::optional<std::string> idempotency_key;

    // Source: declared by the submitter, then received into a pool.
    std::string source_filename;
    std::optional<uint64_t> source_size;  // declared size (known before upload for JSON submits)
    std::optional<std::string> source_sha256;
    std::optional<std::string> source_url;
    std::string source_pool;       // pool name, empty until space is reserved
    std::string source_path;       // path relative to the pool root
    uint64_t source_reserved = 0;  // bytes reserved in source_pool
    uint64_t source_received = 0;  // bytes stored so far (resumable uploads)
    nlohmann::json source_probe;   // ffprobe summary (null until probed)
    std::optional<double> duration_seconds;
    bool source_deleted = false;

    // Output: stored into a pool when an engine completes.
    std::string output_pool;
    std::string output_path;
    uint64_t output_reserved = 0;
    std::optional<uint64_t> output_size;
    std::optional<std::string> output_sha256;
    std::optional<int64_t> output_expires_at;
    bool output_deleted = false;

    double progress_percent = 0;
    nlohmann::json progress;     // latest {fps, speed, eta_seconds, out_time_seconds} or null
    std::string message;         // human status text
    std::string failure_code;    // e.g. "expired", "TRANSCODE_FAILED", "canceled"
    std::string failure_reason;  // human text, ffmpeg stderr summary

    int64_t created_at = 0;
    int64_t updated_at = 0;
    std::optional<int64_t> queued_at;
    std::optional<int64_t> started_at;
    std::optional<int64_t> finished_at;
    std::optional<int64_t> not_before;  // retry backoff: not claimable before this time
    int64_t version = 0;                // bumped on every change; the ETag of job resources

    // Split mode (service/split.hpp). A task of a split job has its parent's id and its task
    // ({kind, index, frames, start_seconds, duration_seconds}); a split job has its split state
    // (pending, split, single, joining, joined; empty: never split) and details.
    std::optional<std::string> parent_id;
    nlohmann::json task;   // null on jobs that are not tasks
    nlohmann::json split;  // null on jobs that are not split
    std::string split_state;
};

// Fields a call may change; only the ones that are set are written.
struct JobUpdate {
    std::optional<int> priority;
    std::optional<std::string> ffmpeg_command;
    std::optional<int> attempt_count;
    std::optional<std::string> source_pool;
    std::optional<std::string> source_path;
    std::optional<uint64_t> source_reserved;
    std::optional<uint64_t> source_received;
    std::optional<uint64_t> source_size;
    std::optional<std::string> source_sha256;
    std::optional<nlohmann::json> source_probe;
    std::optional<double> duration_seconds;
    std::optional<bool> source_deleted;
    std::optional<std::string> output_pool;
    std::optional<std::string> output_path;
    std::optional<uint64_t> output_reserved;
    std::optional<uint64_t> output_size;
    std::optional<std::string> output_sha256;
    std::optional<int64_t> output_expires_at;
    std::optional<bool> output_deleted;
    std::optional<double> progress_percent;
    std::optional<nlohmann::json> progress;
    std::optional<std::string> message;
    std::optional<std::string> failure_code;
    std::optional<std::string> failure_reason;
    std::optional<int64_t> queued_at;
    std::optional<int64_t> started_at;
    std::optional<int64_t> finished_at;
    std::optional<std::optional<int64_t>> not_before;  // set to a value or back to NULL
    std::optional<nlohmann::json> split;
    std::optional<std::string> split_state;
};

struct JobEvent {
    int64_t id = 0;  // increasing; SSE streams resume after an id
    std::string job_id;
    int64_t at = 0;
    std::string type;  // "state" or "progress"
    std::optional<JobState> from_state;
    JobState to_state = JobState::Queued;
    std::string message;
    nlohmann::json data;  // for progress events: percent, fps, speed, eta
};

enum class JobSort { Newest, Oldest, Name, NameDesc };  // by id (a ULID) or by output file name

struct JobQuery {
    std::optional<std::string> owner_key_id;  // nullopt: all owners (admins)
    std::optional<JobState> state;
    std::vector<JobState> states;          // any of these (when not empty)
    std::string name_contains;             // case-insensitive (ASCII) substring of the output file name
    std::optional<std::string> engine_id;  // jobs with an attempt on this engine
    JobSort sort = JobSort::Newest;
    int limit = 50;
    std::optional<std::string> cursor;  // the id of the last item of the previous page
};

struct JobPage {
    std::vector<JobRecord> items;  // in the query's order
    // All matching jobs, not just this page: read from per-owner, per-state counters kept by the
    // database, so it costs no scan; only a name or engine filter counts the rows it matches.
    int64_t total = 0;
    std::optional<std::string> next_cursor;
};

// A pool a reservation may go to, as the pools module sees it right now.
struct PoolCandidate {
    std::string name;
    std::optional<uint64_t>
        cap_bytes;                 // nullopt: no cap (disk free space still applies, checked by the caller)
    uint64_t disk_free_bytes = 0;  // what the filesystem says is free for this pool
};

enum class FileKind { Source, Output };

// An engine as registered; refreshed by heartbeats.
struct EngineRecord {
    std::string id;
    std::string key_id;
    std::string hostname;
    std::string version;
    int slots = 1;
    EngineState state = EngineState::Idle;
    nlohmann::json capabilities = nlohmann::json::object();  // {ffmpeg_version, encoders, decoders, hwaccels}
    std::vector<std::string> tags;
    std::optional<double> benchmark_score;
    int64_t free_disk_bytes = 0;
    std::optional<double> load_average;
    std::optional<double> cpu_temperature_c;
    nlohmann::json memory;  // {total_bytes, available_bytes} or null
    int64_t registered_at = 0;
    int64_t last_seen_at = 0;
    bool drain = false;
    bool rerun_benchmark = false;  // asked by an admin; cleared once a heartbeat answer carried it
};

// What an engine's heartbeat writes: its state (kept draining while drain is set), readings and
// last_seen_at; a benchmark score only when the heartbeat carries a new one.
struct EngineHeartbeat {
    std::string engine_id;
    EngineState state = EngineState::Idle;
    std::optional<double> load_average;
    int64_t free_disk_bytes = 0;
    nlohmann::json memory;
    std::optional<double> cpu_temperature_c;
    std::optional<double> benchmark_score;
    int64_t seen_at = 0;
};

// What the heartbeat's answer needs from the engine row, as it was before the heartbeat.
struct HeartbeatSeen {
    bool drain = false;
    bool rerun_benchmark = false;
};

// One attempt at a job: one assignment to one engine, under a lease and a fencing token.
struct AttemptRecord {
    std::string id;  // the assignment id
    std::string job_id;
    int attempt_no = 1;
    std::string engine_id;
    int64_t fencing_token = 0;  // grows with every attempt of a job; only the newest may act
    AttemptState state = AttemptState::Active;
    TransferMode transfer_mode = TransferMode::File;
    int64_t started_at = 0;
    std::optional<int64_t> lease_expires_at;
    std::optional<int64_t> finished_at;
    std::optional<int> exit_code;
    std::optional<std::string> error_class;
    std::string message;
};

// A task of a split job with its attempts, as GET /jobs/{id} shows them.
struct TaskAttempts {
    JobRecord task;
    std::vector<AttemptRecord> attempts;
};

// A queued job offered to a claiming engine, with what the scheduler weighs.
struct ClaimCandidate {
    JobRecord job;
    int owner_running = 0;                   // the owner's jobs assigned/running now (fair share)
    std::optional<std::string> last_engine;  // the engine of the job's previous attempt
};
struct ClaimChoice {
    size_t index = 0;  // into the candidates
    TransferMode transfer_mode = TransferMode::File;
};
using ClaimChooser = std::function<std::optional<ClaimChoice>(const std::vector<ClaimCandidate>&)>;

// How an attempt ends, and what happens to its job, in one transaction (Store::end_attempt).
struct AttemptEnd {
    AttemptState attempt_state = AttemptState::Failed;  // any but active
    std::optional<int> exit_code;
    std::optional<std::string> error_class;
    std::string message;
    JobState job_to = JobState::Queued;
    JobUpdate job_changes;
    std::string event_message;
};

class Store {
  public:
    // Opens (creating if needed) the database at `path` and runs pending migrations. `busy_timeout`:
    // how long a statement waits for a lock another process holds before it fails with UNAVAILABLE.
    static Result<std::unique_ptr<Store>> open(
        const std::filesystem::path& path, const Clock& clock,
        std::chrono::milliseconds busy_timeout = std::chrono::milliseconds(5000));
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    int schema_version() const;
    // `PRAGMA integrity_check` == "ok"; INTERNAL naming the first problems otherwise, UNAVAILABLE when
    // the check itself cannot run.
    Status integrity_check();
    // A one-row read of the jobs table: UNAVAILABLE when the database cannot be read (readiness).
    Status check_readable();
    // Commits a one-row write (waiting at most `wait` for a lock held by another writer): an error when
    // the database cannot take writes (read-only, disk full, locked, corrupt).
    Status check_writable(std::chrono::milliseconds wait = std::chrono::milliseconds(1000));
    // Online backup of the whole database to `dest` (SQLite backup API).
    Status backup_to(const std::filesystem::path& dest);

    // --- API keys -------------------------------------------------------------------------------
    // CONFLICT if a key that is not revoked already has this name.
    Result<ApiKeyRecord> create_api_key(const std::string& name, Role role, const std::string& key_hash,
                                        const std::string& prefix);
    // The key with this hash, if it exists and is not revoked (NOT_FOUND otherwise).
    Result<ApiKeyRecord> find_api_key_by_hash(const std::string& key_hash);
    Result<ApiKeyRecord> get_api_key(const std::string& id);  // NOT_FOUND when there is no such key
    Result<std::vector<ApiKeyRecord>> list_api_keys(bool include_revoked = false);
    // Revokes by id or name; NOT_FOUND when there is no such key that is not yet revoked.
    Result<ApiKeyRecord> revoke_api_key(const std::string& id_or_name);

    // --- Jobs -----------------------------------------------------------------------------------
    // Inserts a new job (created_at/updated_at set from the clock, version 1) and its first event.
    // When job.idempotency_key is set and the owner already has a job with that key, returns that
    // job unchanged instead (the caller compares ids to know which happened).
    Result<JobRecord> insert_job(const JobRecord& job);
    Result<JobRecord> get_job(const std::string& id);  // JOB_NOT_FOUND when there is no such job
    Result<JobPage> list_jobs(const JobQuery& query);

    // In one transaction: if the job's state is one of `from`, set it to `to`, apply `changes`, bump
    // version and updated_at, and append a "state" event with `message`. Otherwise CONFLICT with
    // details {"state": current} (JOB_NOT_FOUND if there is no such job).
    Result<JobRecord> transition(const std::string& id, const std::vector<JobState>& from, JobState to,
                                 const JobUpdate& changes, const std::string& message = "");
    // Applies `changes` without a state change (bumps version). When `progress_event` is set, also
    // appends a "progress" event with that data.
    Result<JobRecord> update_job(const std::string& id, const JobUpdate& changes,
                                 const std::optional<nlohmann::json>& progress_event = std::nullopt);

    // Events of a job with id > after_id, oldest first.
    Result<std::vector<JobEvent>> job_events(const std::string& job_id, int64_t after_id = 0,
                                             int limit = 1000);

    // 1-based position among queued jobs in claim order (priority desc, then created_at, then id);
    // nullopt when the job is not queued.
    Result<std::optional<int64_t>> queue_position(const std::string& job_id);
    // The same for several jobs in one pass over the queue (a list page): queued ones only.
    Result<std::map<std::string, int64_t>> queue_positions(const std::vector<std::string>& job_ids);
    // From the counters the database keeps (no scan); one owner's jobs when `owner_key_id` is set.
    Result<std::map<JobState, int64_t>> count_by_state(const std::optional<std::string>& owner_key_id = {});

    // Events of every job (one owner's when set) with id > after_id, oldest first, each with its
    // job's progress now: the dashboard's list-wide stream.
    struct FeedEvent {
        JobEvent event;
        double job_progress_percent = 0;
    };
    Result<std::vector<FeedEvent>> event_feed(int64_t after_id,
                                              const std::optional<std::string>& owner_key_id,
                                              int limit = 500);
    Result<int64_t> last_event_id();
    // Jobs that ended completed or failed since `since`, counted per bucket of `bucket_ms` (index 0
    // is the oldest), and the failed ones, newest first.
    struct Throughput {
        std::vector<int64_t> completed, failed;
    };
    Result<Throughput> finished_since(int64_t since, int64_t bucket_ms, int buckets,
                                      const std::optional<std::string>& owner_key_id);
    Result<std::vector<JobRecord>> failed_since(int64_t since, const std::optional<std::string>& owner_key_id,
                                                int limit);

    // --- Split mode ---------------------------------------------------------------------------------
    // The tasks of a split job, in the order they were inserted (video segments, then audio).
    Result<std::vector<JobRecord>> tasks_of(const std::string& parent_id);
    // Jobs (not tasks) in one of these split states, oldest first.
    Result<std::vector<JobRecord>> jobs_in_split_state(const std::vector<std::string>& split_states);
    // In one transaction: inserts the tasks (each queued, with an event), moves the parent from queued
    // to running with `parent_changes` and appends its event. CONFLICT when the parent is no longer
    // queued with split state pending (a cancel came first).
    Result<JobRecord> start_split(const std::string& parent_id, const std::vector<JobRecord>& tasks,
                                  const JobUpdate& parent_changes, const std::string& message);
    // Removes the tasks of a split job (their attempts and events go with them): a retried job is
    // cut again. Only terminal tasks are removed; CONFLICT when one is not terminal.
    Status delete_tasks(const std::string& parent_id);

    // Jobs in awaiting_upload whose last change (creation or recorded bytes) is before `idle_before`.
    Result<std::vector<JobRecord>> idle_uploads(int64_t idle_before);
    // Jobs in awaiting_upload or queued whose ttl (or `default_ttl_ms` when the job has none) has passed.
    Result<std::vector<JobRecord>> jobs_past_ttl(int64_t now, std::optional<int64_t> default_ttl_ms);
    // Completed jobs whose output expires before `now` and is not yet deleted.
    Result<std::vector<JobRecord>> jobs_with_expired_outputs(int64_t now);
    // Terminal jobs whose source file is not yet deleted.
    Result<std::vector<JobRecord>> terminal_jobs_with_sources();
    // Every (pool, relative path) a live job still references (sources not deleted, outputs not deleted),
    // for the janitor to tell orphans from real files. Complete or an error: never a partial list.
    Result<std::vector<std::pair<std::string, std::string>>> referenced_files();

    // --- Pool accounting ------------------------------------------------------------------------
    // Bytes reserved in a pool by jobs whose file is not deleted (source_reserved + output_reserved).
    Result<uint64_t> reserved_bytes(const std::string& pool);
    // Bytes one owner's jobs hold in all pools (reserved or stored, files not deleted): the user quota.
    Result<uint64_t> owner_reserved_bytes(const std::string& owner_key_id);
    // In one transaction: picks the first candidate where cap (if any) - reserved >= bytes and
    // disk_free_bytes >= bytes, records the reservation on the job (source_pool/source_reserved or
    // output_pool/output_reserved) and returns the pool name. INSUFFICIENT_STORAGE when none fits.
    // Re-reserving for a job that already holds a reservation of that kind replaces it.
    Result<std::string> reserve_space(const std::string& job_id, FileKind kind, uint64_t bytes,
                                      const std::vector<PoolCandidate>& candidates);
    // Drops a job's reservation of that kind (sets *_reserved to 0).
    Status release_space(const std::string& job_id, FileKind kind);

    // --- Engines and attempts -------------------------------------------------------------------
    Result<EngineRecord> insert_engine(const EngineRecord& engine);
    Result<EngineRecord> get_engine(const std::string& id);  // NOT_FOUND when there is no such engine
    // One heartbeat: the engine's state and readings, last_seen_at, and the one-shot rerun_benchmark
    // flag cleared, in one narrow UPDATE (no row decoded or re-encoded). key_id: the caller's key,
    // which must own the engine (nullopt: an admin, any engine). NotFound when there is no such engine
    // for that key.
    Result<HeartbeatSeen> record_heartbeat(const EngineHeartbeat& hb,
                                           const std::optional<std::string>& key_id);
    Result<std::vector<EngineRecord>> list_engines();
    // The benchmark scores of the engines that are not offline (the scheduler ranks speed by them).
    Result<std::vector<double>> online_benchmark_scores();
    // Whether a queued job is past its backoff: a cheap read before claim_job's write transaction.
    Result<bool> any_claimable_job();
    // Writes every field but id, key_id and registered_at.
    Status update_engine(const EngineRecord& engine);
    // In one statement, so that no read-modify-write of the whole row (a claim's, a heartbeat's)
    // can undo it: sets the drain flag (the state follows: draining, or idle again) and/or asks for
    // a benchmark re-run. NOT_FOUND for an unknown engine.
    Status set_engine_flags(const std::string& engine_id, std::optional<bool> drain, bool rerun_benchmark);
    // A claim's sighting of its engine, in one statement: last_seen_at, free disk when given, and an
    // offline engine back (idle, or draining while its drain is set). Nothing else of the row.
    Status engine_seen(const std::string& engine_id, int64_t seen_at, std::optional<int64_t> free_disk_bytes);

    // One transaction: reads up to `max_candidates` claimable queued jobs (not_before passed) in
    // priority, then age order, lets `choose` pick one, moves it to assigned, and records a new active
    // attempt with the next fencing token and a lease until now + lease_ms. nullopt: nothing chosen.
    Result<std::optional<std::pair<JobRecord, AttemptRecord>>> claim_job(const std::string& engine_id,
                                                                         int64_t lease_ms,
                                                                         const ClaimChooser& choose,
                                                                         int max_candidates = 200);
    Result<AttemptRecord> get_attempt(const std::string& id);  // NOT_FOUND when there is no such assignment
    Result<std::vector<AttemptRecord>> attempts_for_job(const std::string& job_id);
    // Active attempts, of one engine or of all.
    Result<std::vector<AttemptRecord>> active_attempts(
        const std::optional<std::string>& engine_id = std::nullopt);
    // Active attempts whose lease ended before `now`.
    Result<std::vector<AttemptRecord>> expired_attempts(int64_t now);
    // Extends an active attempt's lease; LEASE_LOST when it is not active or the token is not its own.
    Result<AttemptRecord> extend_lease(const std::string& attempt_id, int64_t fencing_token,
                                       int64_t lease_until);
    // Ends an active attempt (checked against its token: LEASE_LOST otherwise) and moves its job from
    // its current state (assigned, running or canceling) to end.job_to with end.job_changes.
    Result<JobRecord> end_attempt(const std::string& attempt_id, int64_t fencing_token,
                                  const AttemptEnd& end);

  private:
    struct Impl;
    explicit Store(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace distconv::dispatch
