#pragma once
// The user-facing job logic of the dispatch server, free of HTTP: submit (multipart or JSON + upload
// or source_url), resumable source uploads, status, listing, cancel, retry, result access, and the
// maintenance passes (queue TTL, retention, orphan sweep). The HTTP layer decodes, calls, encodes.

#include "common/error.hpp"
#include "common/hash.hpp"
#include "common/media/ffprobe.hpp"
#include "common/time.hpp"
#include "dispatch_server/config.hpp"
#include "dispatch_server/metrics/metrics.hpp"
#include "dispatch_server/pools/file_sink.hpp"
#include "dispatch_server/pools/pools.hpp"
#include "dispatch_server/service/auth.hpp"
#include "dispatch_server/service/notifier.hpp"
#include "dispatch_server/store/store.hpp"
#include "protocol/jobs.hpp"

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace distconv::dispatch {

// Reads media facts from a file (ffprobe in production, a fake in unit tests).
class Prober {
  public:
    virtual ~Prober() = default;
    virtual Result<media::ProbeInfo> probe(const std::filesystem::path& file) = 0;
};

class FfprobeProber final : public Prober {
  public:
    explicit FfprobeProber(std::string ffprobe) : m_ffprobe(std::move(ffprobe)) {}
    Result<media::ProbeInfo> probe(const std::filesystem::path& file) override;

  private:
    std::string m_ffprobe;
};

// Where a source upload should go and what it may hold (PUT /jobs/{id}/source).
struct SourceUploadPlan {
    JobRecord job;
    std::filesystem::path part_path;
    uint64_t offset = 0;  // where this request's bytes start
    uint64_t limit = 0;   // bytes the file may hold at most
};

struct ResultFile {
    std::filesystem::path path;
    uint64_t size = 0;
    std::string sha256;
    std::string filename;
};

class JobService {
  public:
    JobService(Store& store, StoragePools& pools, const DispatchConfig& config, Prober& prober,
               const Clock& clock, ChangeNotifier& notifier);
    // Stops running source_url fetches and waits for them (they use this service).
    ~JobService();
    JobService(const JobService&) = delete;
    JobService& operator=(const JobService&) = delete;

    // --- submit -----------------------------------------------------------------------------------
    // JSON submit: validates the job, reserves space for the declared source (507 when none fits, 413
    // above the limit) or starts fetching source_url; the job waits in awaiting_upload.
    Result<JobRecord> submit_json(const Principal& who, const nlohmann::json& job,
                                  const std::optional<std::string>& idempotency_key);
    // Multipart submit, after the HTTP layer streamed the `file` part to `incoming`: validates the job
    // JSON and the media, stores the job as queued. On error the incoming file is removed and nothing
    // is stored. The incoming reservation is released in every case.
    Result<JobRecord> submit_multipart(const Principal& who, const nlohmann::json& job,
                                       const StoragePools::Incoming& incoming, uint64_t size,
                                       const std::string& filename,
                                       const std::optional<std::string>& idempotency_key,
                                       const std::optional<std::string>& file_sha256 = std::nullopt);
    // Multipart submit, before the body is read: the caller's quota and pool space for a body of
    // `length` bytes. The HTTP layer writes the `file` part to `path`, then calls submit_multipart
    // (which releases the reservation) or discard_multipart.
    struct MultipartTarget {
        StoragePools::Incoming incoming;
        std::filesystem::path path;
    };
    Result<MultipartTarget> reserve_multipart(const Principal& who, uint64_t length);
    // Removes what was written to a reserved target and frees its space.
    void discard_multipart(const MultipartTarget& target);
    // Validation alone (used by the multipart path before bytes are accepted, to fail early).
    Status validate_job_json(const nlohmann::json& job) const;

    // --- source upload ------------------------------------------------------------------------------
    // The stored offset of a job's partial source (HEAD /jobs/{id}/source).
    Result<uint64_t> source_offset(const Principal& who, const std::string& id);
    // Checks a PUT: state, offset (CONFLICT with details.offset when `start` is not the stored offset),
    // sizes (FILE_TOO_LARGE), and reserves space if the job has none yet.
    Result<SourceUploadPlan> begin_source_upload(const Principal& who, const std::string& id, uint64_t start,
                                                 std::optional<uint64_t> content_length,
                                                 std::optional<uint64_t> total_from_range);
    // Records what a PUT wrote; when the source is complete, checks SHA-256 and the media and queues the
    // job. Returns the job (state awaiting_upload while incomplete).
    // `part_sha256` is the whole part file's SHA-256 when the caller hashed it while writing.
    Result<JobRecord> end_source_upload(const std::string& id, uint64_t end_position, bool request_complete,
                                        const std::optional<std::string>& part_sha256 = std::nullopt);
    // Ends a begun upload that wrote nothing (the HTTP layer could not open the file).
    void abandon_source_upload(const std::string& id);

    // --- read ---------------------------------------------------------------------------------------
    Result<JobRecord> get(const Principal& who, const std::string& id);
    Result<JobPage> list(const Principal& who, const JobQuery& query, bool all);
    Result<std::optional<int64_t>> queue_position(const std::string& id) {
        return m_store.queue_position(id);
    }
    // What a job's answers show besides the record: its owner's key name, queue position, attempts.
    struct JobView {
        std::string owner_name;
        std::optional<int64_t> queue_position;
        std::vector<AttemptRecord> attempts;  // only when asked for
        std::vector<TaskAttempts> tasks;      // a split job's tasks, with their attempts (when asked)
    };
    Result<JobView> view(const JobRecord& job, bool with_attempts);
    // The views of a list page, without attempts, in a few queries whatever the page's size.
    Result<std::vector<JobView>> views(const std::vector<JobRecord>& jobs);

    // The dashboard's overview: job counts by state (the caller's, or every job for an admin), the
    // last hour's completed and failed jobs in 5-minute buckets, and the failed ones.
    struct Overview {
        std::map<JobState, int64_t> counts;
        int64_t since_ms = 0;
        int64_t bucket_ms = 0;
        Store::Throughput throughput;
        std::vector<JobRecord> failed;
    };
    Result<Overview> overview(const Principal& who);
    // Events of every job the caller may see (all=true: every job, admins) after `after_id`.
    Result<std::vector<Store::FeedEvent>> feed(const Principal& who, bool all, int64_t after_id);
    Result<int64_t> last_event_id() { return m_store.last_event_id(); }
    // The job as stored now, without an ownership check (for a stream the caller was already allowed).
    Result<JobRecord> current(const std::string& id);
    // The gauges /metrics shows, read now.
    Result<MetricGauges> gauges();
    // /readyz: pools writable, database writable and readable.
    struct ReadinessCheck {
        std::string name;
        bool ok = false;
        std::string message;
    };
    std::vector<ReadinessCheck> readiness();
    Result<std::vector<StoragePools::Usage>> pool_usage();
    // INSUFFICIENT_STORAGE (details: quota_bytes, used_bytes, needed_bytes) when `bytes` more would take
    // the caller past --user-quota; admins have no quota.
    Status check_quota(const Principal& who, uint64_t bytes);
    Status check_owner_quota(const std::string& owner_key_id, uint64_t bytes);  // as above, for a job's owner
    Result<std::vector<JobEvent>> events(const std::string& id, int64_t after) {
        return m_store.job_events(id, after);
    }

    // --- change -------------------------------------------------------------------------------------
    Result<JobRecord> cancel(const Principal& who, const std::string& id);
    Result<JobRecord> retry(const Principal& who, const std::string& id);
    // The finished output: JOB_NOT_READY before completion, RESULT_GONE after retention.
    Result<ResultFile> result(const Principal& who, const std::string& id);

    // --- maintenance --------------------------------------------------------------------------------
    struct MaintenanceReport {
        int expired_jobs = 0;
        int outputs_deleted = 0;
        int sources_deleted = 0;
        int orphans_removed = 0;
        int uploads_abandoned = 0;
        std::vector<std::string> errors;  // steps skipped because the database could not list their work
    };
    MaintenanceReport run_maintenance(std::chrono::seconds orphan_min_age = std::chrono::seconds(600));

  private:
    struct ParsedJob;
    Result<ParsedJob> parse_job(const nlohmann::json& job, protocol::SubmitKind kind) const;
    Status check_source_url(const std::string& url) const;
    JobRecord new_record(const Principal& who, const ParsedJob& parsed,
                         const std::optional<std::string>& idempotency_key) const;
    // Checks sha/media of a complete source file and moves the job to queued (or failed, when
    // `fail_job_on_bad_media`).
    // Records the probe and moves an awaiting_upload job to queued (with `u`'s other changes).
    Result<JobRecord> queue_probed(const JobRecord& job, const media::ProbeInfo& probe, JobUpdate u);
    Result<JobRecord> finish_source(const JobRecord& job, const std::filesystem::path& file,
                                    const std::optional<std::string>& known_sha256 = std::nullopt);
    void fetch_source_url(std::string job_id, std::string url, std::shared_ptr<void> slot);
    void delete_file(const std::string& pool, const std::string& relative);
    Result<JobRecord> owned(const Principal& who, const std::string& id);
    void changed() { m_notifier.notify(); }

    // Jobs with a PUT in progress: a second PUT (a client retrying while the first is still being
    // read) would write into the same .part file, so it gets 409 until the first one ends.
    // source_url fetches running now (bounded by --source-url-fetches); a slot is held from the submit
    // until its fetch thread ends.
    std::shared_ptr<void> try_fetch_slot();
    std::mutex m_fetch_mutex;
    std::condition_variable m_fetch_cv;
    int m_fetches = 0;
    bool m_stopping = false;
    std::mutex m_uploads_mutex;
    std::set<std::string> m_uploads;

    Store& m_store;
    StoragePools& m_pools;
    const DispatchConfig& m_config;
    Prober& m_prober;
    const Clock& m_clock;
    ChangeNotifier& m_notifier;
};

}  // namespace distconv::dispatch
