#include "dispatch_server/api/budget.hpp"

namespace distconv::dispatch {

Result<LongRequestBudget::Slot> LongRequestBudget::acquire(const std::string& kind, const std::string& key_id,
                                                           int per_key) {
    std::lock_guard lock(m_mutex);
    auto id = std::make_pair(kind, key_id);
    int& mine = m_by_key[id];
    if (mine >= per_key) {
        if (mine == 0) m_by_key.erase(id);
        return Error(ErrorCode::TooManyRequests,
                     "this key already holds " + std::to_string(per_key) + " " + kind +
                         " at once; close one or retry later",
                     {{"limit", per_key}, {"kind", kind}});
    }
    if (m_total >= m_limit) {
        if (mine == 0) m_by_key.erase(id);
        return Error(ErrorCode::Unavailable,
                     "the server is holding as many long requests as it can; retry shortly",
                     {{"kind", kind}});
    }
    ++mine;
    ++m_total;
    return Slot(static_cast<void*>(this), [this, id](void*) {
        std::lock_guard release(m_mutex);
        --m_total;
        if (auto it = m_by_key.find(id); it != m_by_key.end() && --it->second <= 0) m_by_key.erase(it);
    });
}

int LongRequestBudget::held() const {
    std::lock_guard lock(m_mutex);
    return m_total;
}

}  // namespace distconv::dispatch
