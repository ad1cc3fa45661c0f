#pragma once
// Time helpers: RFC 3339 UTC timestamps and a Clock interface that tests can fake.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace distconv {

using SystemTime = std::chrono::system_clock::time_point;

// "2026-02-20T12:00:00Z", or with milliseconds "2026-02-20T12:00:00.123Z".
std::string format_rfc3339(SystemTime t, bool with_millis = false);
std::string format_rfc3339_ms(int64_t unix_ms, bool with_millis = false);
std::optional<SystemTime> parse_rfc3339(std::string_view s);
int64_t to_unix_ms(SystemTime t);
SystemTime from_unix_ms(int64_t ms);

// Wall-clock time source passed to components that expire things (leases, retention, TTLs).
class Clock {
  public:
    virtual ~Clock() = default;
    virtual SystemTime now() const = 0;
    int64_t now_ms() const { return to_unix_ms(now()); }
};

class SystemClock final : public Clock {
  public:
    SystemTime now() const override { return std::chrono::system_clock::now(); }
};

}  // namespace distconv
