#pragma once
// Scheduling decisions as pure functions (no I/O): which queued job a claiming engine gets, whether
// the engine can run a job at all, how the bytes move (file or stream), and the retry backoff.

#include "dispatch_server/store/store.hpp"

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace distconv::dispatch {

struct EngineProfile {
    std::string engine_id;
    std::set<std::string> encoders;
    std::set<std::string> hwaccels;
    std::set<std::string> tags;
    double speed_rank = 0.5;  // 0 = slowest online engine, 1 = fastest (by benchmark score)
    uint64_t free_disk_bytes = 0;
    uint64_t disk_reserve_bytes = 1ull << 30;
};

EngineProfile profile_of(const EngineRecord& engine, const std::vector<EngineRecord>& online_engines,
                         uint64_t disk_reserve_bytes);
// The same from the online engines' benchmark scores alone (Store::online_benchmark_scores).
EngineProfile profile_of(const EngineRecord& engine, const std::vector<double>& online_scores,
                         uint64_t disk_reserve_bytes);

// The engine has every encoder the job's resolved options use (copy/none need none), the job's
// required encoders, hwaccel and tags.
bool meets_requirements(const JobRecord& job, const EngineProfile& engine);

// What the job needs of an engine, for messages: "encoders libx265, aac; tags gpu".
std::string describe_requirements(const JobRecord& job);

// File when the engine's free disk holds the source, an output estimate (the source size) and the
// reserve; otherwise Stream.
TransferMode choose_transfer_mode(uint64_t source_size, uint64_t free_disk_bytes, uint64_t reserve_bytes);

// Picks among candidates (already in priority, then age order): the highest priority first; within
// it the owner with the fewest running jobs (fair share); then, for engines faster than the median,
// longer jobs first and for slower ones shorter jobs first (coarse size classes, so age still counts);
// then age. A job whose previous attempt ran on this engine goes after the others of its class.
std::optional<ClaimChoice> choose_job(const std::vector<ClaimCandidate>& candidates,
                                      const EngineProfile& engine);

// Exponential backoff with jitter before attempt `attempt_no + 1`: base * 2^(attempt_no-1), capped,
// spread by +-20% using random01.
int64_t retry_backoff_ms(int attempt_no, int64_t base_ms, int64_t max_ms, double random01);

}  // namespace distconv::dispatch
