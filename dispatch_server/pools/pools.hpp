#pragma once
// Storage pools: directories (optionally capped) that hold job sources and outputs.
// Layout in a pool root:  jobs/<job_id>/source[.part]  jobs/<job_id>/output[.part]  incoming/<id>.part
// Bytes are written to a ".part" name, fsynced and renamed into place. Space is reserved before bytes
// are accepted: in the store for files that belong to a job, in memory for multipart uploads whose
// job does not exist yet (their files live under incoming/ and are swept after a crash).

#include "common/error.hpp"
#include "dispatch_server/config.hpp"
#include "dispatch_server/store/store.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace distconv::dispatch {

class StoragePools {
  public:
    explicit StoragePools(std::vector<PoolConfig> pools);

    // Creates the pool directories; fails if one cannot be created or written.
    Status prepare();
    // Every pool writable right now (for /readyz).
    Status check_writable() const;

    const std::vector<PoolConfig>& pools() const { return m_pools; }
    const PoolConfig* find(const std::string& name) const;

    // The pools as reservation candidates (with the filesystem's free bytes, minus in-flight reservations).
    std::vector<PoolCandidate> candidates() const;

    // Absolute path of a pool-relative path; empty if the pool is unknown.
    std::filesystem::path resolve(const std::string& pool, const std::string& relative) const;
    static std::string job_file(const std::string& job_id, FileKind kind);  // "jobs/<id>/source"
    static std::string part_of(const std::string& relative) { return relative + ".part"; }

    // In-memory reservation for an upload whose job is not stored yet. INSUFFICIENT_STORAGE when no
    // pool fits `bytes` after the store's reservations and other in-flight ones.
    struct Incoming {
        std::string pool;
        std::string relative;  // incoming/<id>.part
        uint64_t bytes = 0;
    };
    Result<Incoming> reserve_incoming(Store& store, uint64_t bytes);
    void release_incoming(const Incoming& incoming);

    // Removes files no job references (and empty job directories), older than `min_age`.
    struct SweepReport {
        int files_removed = 0;
        uint64_t bytes_removed = 0;
    };
    SweepReport sweep_orphans(const std::vector<std::pair<std::string, std::string>>& referenced,
                              std::chrono::seconds min_age) const;

    // GET /pools: name, cap, reserved, disk free.
    // Each pool's space right now, by the one free-space formula every caller uses (GET /pools, the
    // submit-time fit check): free = min(disk free - in-flight, cap - reserved - in-flight).
    struct Usage {
        std::string name;
        std::filesystem::path root;
        std::optional<uint64_t> cap_bytes;
        uint64_t reserved_bytes = 0;  // by stored jobs (in-flight multipart uploads count in free_bytes)
        uint64_t used_bytes = 0;      // the files under jobs/ now
        uint64_t disk_free_bytes = 0;
        uint64_t free_bytes = 0;  // what a new reservation may take
        bool writable = false;    // the filesystem answered
    };
    Result<std::vector<Usage>> usage(Store& store) const;

  private:
    std::vector<PoolConfig> m_pools;
    mutable std::mutex m_mutex;
    std::map<std::string, uint64_t> m_inflight;  // pool -> bytes reserved by incoming uploads
};

}  // namespace distconv::dispatch
