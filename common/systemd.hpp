#pragma once
// The systemd service protocol (sd_notify): READY=1 once a daemon serves, STOPPING=1 when it shuts
// down, STATUS= lines, and WATCHDOG=1 pings while the daemon is healthy. Every call is a no-op when
// the program was not started by systemd (no NOTIFY_SOCKET), so daemons call them unconditionally.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

namespace distconv::systemd {

void notify_ready(std::string_view status = {});
void notify_stopping();
void notify_status(std::string_view status);

// The watchdog interval systemd expects pings within (WatchdogSec=), or none when it is off.
std::optional<std::chrono::microseconds> watchdog_interval();

// Pings WATCHDOG=1 at half the watchdog interval for as long as it lives, but only while `healthy()`
// answers true: a daemon whose health check fails (or hangs) is restarted by systemd.
// Does nothing when the watchdog is off.
class Watchdog {
  public:
    explicit Watchdog(std::function<bool()> healthy);
    ~Watchdog();
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

  private:
    std::function<bool()> m_healthy;
    std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_stop = false;
    std::thread m_thread;
};

}  // namespace distconv::systemd
