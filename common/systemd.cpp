#include "common/systemd.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <string>

namespace distconv::systemd {
namespace {

void send(const std::string& state) {
    int rc = sd_notify(0, state.c_str());
    if (rc < 0) spdlog::warn("sd_notify({}) failed: error {}", state.substr(0, state.find('\n')), -rc);
}

}  // namespace

void notify_ready(std::string_view status) {
    std::string state = "READY=1";
    if (!status.empty()) state += "\nSTATUS=" + std::string(status);
    send(state);
}

void notify_stopping() {
    send("STOPPING=1");
}

void notify_status(std::string_view status) {
    send("STATUS=" + std::string(status));
}

std::optional<std::chrono::microseconds> watchdog_interval() {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::microseconds(usec);
}

Watchdog::Watchdog(std::function<bool()> healthy) : m_healthy(std::move(healthy)) {
    auto interval = watchdog_interval();
    if (!interval) return;
    auto period = std::chrono::duration_cast<std::chrono::milliseconds>(*interval / 2);
    if (period.count() < 1) period = std::chrono::milliseconds(1);
    spdlog::info("systemd watchdog on: pinging every {} ms while healthy", period.count());
    m_thread = std::thread([this, period] {
        std::unique_lock lock(m_mutex);
        while (!m_stop) {
            lock.unlock();
            bool ok = false;
            try {
                ok = m_healthy();
            } catch (const std::exception& e) {
                spdlog::error("health check failed: {}", e.what());
            }
            if (ok)
                send("WATCHDOG=1");
            else
                spdlog::warn("health check failed: not pinging the systemd watchdog");
            lock.lock();
            m_cv.wait_for(lock, period, [this] { return m_stop; });
        }
    });
}

Watchdog::~Watchdog() {
    {
        std::lock_guard lock(m_mutex);
        m_stop = true;
    }
    m_cv.notify_all();
    if (m_thread.joinable()) m_thread.join();
}

}  // namespace distconv::systemd
