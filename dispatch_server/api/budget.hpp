#pragma once
// How many HTTP workers long requests may hold. An event stream or a claim long-poll keeps one worker
// for its whole life; without a bound, a few callers (one user key opening streams, engines that
// claim from many connections) take every worker and /healthz, /metrics and heartbeats stop.
// So: each key may hold at most `per_key` of a kind at once (429 beyond, retryable), and all long
// requests together leave `reserve` workers for short ones (503 beyond, retryable).

#include "common/error.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace distconv::dispatch {

class LongRequestBudget {
  public:
    // `workers`: the server's HTTP threads; `reserve`: what long requests never take.
    LongRequestBudget(int workers, int reserve) : m_limit(workers > reserve ? workers - reserve : 1) {}

    // A held slot (released when the last copy goes); an error when none is free.
    using Slot = std::shared_ptr<void>;
    Result<Slot> acquire(const std::string& kind, const std::string& key_id, int per_key);

    int held() const;

  private:
    mutable std::mutex m_mutex;
    int m_limit;
    int m_total = 0;
    std::map<std::pair<std::string, std::string>, int> m_by_key;
};

}  // namespace distconv::dispatch
