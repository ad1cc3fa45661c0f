#pragma once
// Wakes waiters (event streams, long-polls) when something changes, instead of polling the store.

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
    void notify() {
        {
            std::lock_guard lock(m_mutex);
            ++m_generation;
        }
        m_cv.notify_all();
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
        }
        m_cv.notify_all();
    }
    bool closed() const {
        std::lock_guard lock(m_mutex);
        return m_closed;
    }

private:
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    uint64_t m_generation = 0;
    bool m_closed = false;
};

}  // namespace distconv::dispatch
