#pragma once
// The engine side of the protocol, free of HTTP: registration, heartbeats, long-poll claims,
// progress under a lease, output uploads, complete/fail with fencing tokens, and the rescuer that
// ends expired leases and silent engines' work (requeue with backoff, or fail).

#include "common/error.hpp"
#include "common/time.hpp"
#include "dispatch_server/config.hpp"
#include "dispatch_server/metrics/metrics.hpp"
#include "dispatch_server/pools/pools.hpp"
#include "dispatch_server/service/auth.hpp"
#include "dispatch_server/service/notifier.hpp"
#include "dispatch_server/store/store.hpp"
#include "protocol/engines.hpp"

#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

namespace distconv::dispatch {

struct AssignmentFile {
    std::filesystem::path path;
    uint64_t size = 0;
    std::string sha256;  // may be empty
};

struct OutputUploadPlan {
    std::filesystem::path part_path;
    uint64_t offset = 0;
    uint64_t limit = 0;
};

class EngineService {
  public:
    // `credentials`: signs the per-assignment credentials handed out with each claim and renewed with
    // each progress answer (none are issued without it).
    EngineService(Store& store, StoragePools& pools, const DispatchConfig& config, const Clock& clock,
                  ChangeNotifier& notifier, Metrics* metrics = nullptr,
                  const AssignmentCredentials* credentials = nullptr);

    Result<protocol::EngineRegistrationReply> register_engine(const Principal& who,
                                                              const protocol::EngineRegistration& r);
    Result<protocol::HeartbeatReply> heartbeat(const Principal& who, const std::string& engine_id,
                                               const protocol::Heartbeat& hb);
    // Long-poll: waits up to the request's wait_seconds for a job; nullopt means no work (204).
    // `base_url` ("http://host:port") makes the assignment's absolute source_url.
    // `caller_gone`, when given, is asked while the claim waits: once it says the engine's connection
    // is closed, the claim ends without taking a job.
    Result<std::optional<protocol::Assignment>> claim(const Principal& who, const std::string& engine_id,
                                                      const protocol::ClaimRequest& request,
                                                      const std::string& base_url,
                                                      const std::function<bool()>& caller_gone = {});
    // An assignment whose claim answer never reached its engine: the job goes back to the queue at once,
    // the attempt not counted. Does nothing when the attempt no longer holds the job.
    Status hand_back(const std::string& assignment_id, int64_t fencing_token);
    Result<protocol::ProgressReply> progress(const Principal& who, const std::string& assignment_id,
                                             const protocol::ProgressReport& report);
    // The source file of an assignment (the token, when given, must be current).
    Result<AssignmentFile> source(const Principal& who, const std::string& assignment_id,
                                  std::optional<int64_t> fencing_token);
    Result<uint64_t> output_offset(const Principal& who, const std::string& assignment_id,
                                   int64_t fencing_token);
    Result<OutputUploadPlan> begin_output_upload(const Principal& who, const std::string& assignment_id,
                                                 int64_t fencing_token, uint64_t start);
    Result<protocol::AssignmentAck> complete(const Principal& who, const std::string& assignment_id,
                                             const protocol::CompleteRequest& request);
    Result<protocol::AssignmentAck> fail(const Principal& who, const std::string& assignment_id,
                                         const protocol::FailRequest& request);

    Result<std::vector<protocol::EngineInfo>> list_engines();
    Result<protocol::EngineInfo> set_drain(const std::string& engine_id, bool drain);
    // The engine's next heartbeat answer asks it to re-run its benchmark.
    Result<protocol::EngineInfo> request_benchmark(const std::string& engine_id);

    struct RescueReport {
        int leases_expired = 0;
        int engines_offline = 0;
        int jobs_unplaceable = 0;  // queued jobs no online engine can run (their message says why)
    };
    // Ends expired leases and the work of engines silent past engine-offline-after.
    RescueReport rescue();

  private:
    // A stored output against its job's stream plan: what differs, or nullopt when it matches (or the
    // job has no plan to check against).
    std::optional<std::string> verify_stored_output(const JobRecord& job, const std::filesystem::path& file);
    // Sets the status message of queued jobs that no online engine can run, and clears it once one can.
    int explain_unplaceable_jobs();
    Result<EngineRecord> owned_engine(const Principal& who, const std::string& engine_id);
    Result<AttemptRecord> owned_attempt(const Principal& who, const std::string& assignment_id);
    // The end of an attempt that did not complete: canceled when the job was being canceled, requeued
    // with backoff while attempts remain, else failed.
    // "" when the job's stored source still matches its SHA-256; else why it does not.
    Result<std::string> check_stored_source(const std::string& job_id);
    Result<JobRecord> end_unfinished(const AttemptRecord& attempt, AttemptState attempt_state, bool permanent,
                                     const std::string& reason, const std::string& stderr_tail,
                                     std::optional<int> exit_code, const std::string& error_class,
                                     const std::string& failure_code = "TRANSCODE_FAILED");
    std::string output_relpath(const AttemptRecord& a) const;
    // A credential for the attempt valid until k_credential_grace after `lease_expires_ms`, and its expiry.
    std::optional<std::pair<std::string, int64_t>> credential_for(const AttemptRecord& a,
                                                                  int64_t lease_expires_ms) const;
    Result<protocol::EngineInfo> to_info(const EngineRecord& e);
    void changed() { m_notifier.notify(); }
    void changed_for_watchers() { m_notifier.notify_watchers(); }

    Store& m_store;
    StoragePools& m_pools;
    const DispatchConfig& m_config;
    const Clock& m_clock;
    ChangeNotifier& m_notifier;
    Metrics* m_metrics;
    const AssignmentCredentials* m_credentials;
    // One claim at a time looks for work and takes it: when a queued job wakes every parked claim,
    // the first takes it and the others find the queue empty with one cheap read, instead of each
    // reading the engines' scores and opening a write transaction for the same job.
    std::mutex m_claim_mutex;
};

}  // namespace distconv::dispatch
