#pragma once
// Wakes waiters (event streams, long-polls) when something changes, instead of polling the store.
// Two kinds of change: any change (event streams follow jobs), and a change that may have made work
// claimable (a job queued, an engine undrained). Claim long-polls wait for the second kind only, so a
// progress report or a hand-out does not wake every idle engine's claim to search the queue again.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace distconv::dispatch {

class ChangeNotifier {
  public:
    uint64_t generation() const {
        std::lock_guard lock(m_mutex);
        return m_generation;
    }
    // Something changed that may let a waiting claim find work.
    void notify() {
        {
            std::lock_guard lock(m_mutex);
            ++m_generation;
            ++m_work_generation;
        }
        m_cv.notify_all();
        m_work_cv.notify_all();
    }
    // Something changed that only followers of jobs care about (progress, an assignment, a completion).
    void notify_watchers() {
        {
            std::lock_guard lock(m_mutex);
            ++m_generation;
        }
        m_cv.notify_all();
    }
    uint64_t work_generation() const {
        std::lock_guard lock(m_mutex);
        return m_work_generation;
    }
    // Waits until work may have appeared since `seen` (a work_generation()) or the timeout passes.
    uint64_t wait_for_work(uint64_t seen, std::chrono::milliseconds timeout) {
        std::unique_lock lock(m_mutex);
        m_work_cv.wait_for(lock, timeout, [&] { return m_work_generation != seen || m_closed; });
        return m_work_generation;
    }
    // Waits until the generation differs from `seen` or the timeout passes; returns the current generation.
    uint64_t wait_for_change(uint64_t seen, std::chrono::milliseconds timeout) {
        std::unique_lock lock(m_mutex);
        m_cv.wait_for(lock, timeout, [&] { return m_generation != seen || m_closed; });
        return m_generation;
    }
    // Wakes every waiter for good (server shutdown).
    void close() {
        {
            std::lock_guard lock(m_mutex);
            m_closed = true;
            ++m_generation;
            ++m_work_generation;
        }
        m_cv.notify_all();
        m_work_cv.notify_all();
    }
    bool closed() const {
        std::lock_guard lock(m_mutex);
        return m_closed;
    }

  private:
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    std::condition_variable m_work_cv;
    uint64_t m_generation = 0;
    uint64_t m_work_generation = 0;
    bool m_closed = false;
};

}  // namespace distconv::dispatch
