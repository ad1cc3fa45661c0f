#pragma once
// What the engine reports about its machine, behind a small interface: Linux reads /proc and /sys
// (under a root that tests point at a fake tree); another OS can provide its own implementation.

#include "protocol/engines.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace distconv::engine {

class SystemInfo {
  public:
    virtual ~SystemInfo() = default;
    virtual std::string hostname() const = 0;
    virtual std::optional<double> load_average() const = 0;  // 1-minute
    virtual std::int64_t free_disk_bytes(const std::filesystem::path& dir) const = 0;
    virtual std::optional<protocol::Memory> memory() const = 0;
    virtual std::optional<double> cpu_temperature_c() const = 0;  // absent sensor: nullopt
};

// Linux: /proc/loadavg, /proc/meminfo, /sys/class/thermal/thermal_zone*/temp (preferring a zone of
// type x86_pkg_temp / cpu*), else /sys/class/hwmon/hwmon*/temp1_input; statvfs for the disk.
class LinuxSystemInfo final : public SystemInfo {
  public:
    explicit LinuxSystemInfo(std::filesystem::path root = "/") : m_root(std::move(root)) {}
    std::string hostname() const override;
    std::optional<double> load_average() const override;
    std::int64_t free_disk_bytes(const std::filesystem::path& dir) const override;
    std::optional<protocol::Memory> memory() const override;
    std::optional<double> cpu_temperature_c() const override;

  private:
    std::filesystem::path m_root;
};

// "MemTotal:  8000 kB\nMemAvailable: 6000 kB\n..." -> bytes; nullopt without MemTotal.
std::optional<protocol::Memory> parse_meminfo(std::string_view text);
// "0.52 0.58 0.59 1/467 12345" -> 0.52
std::optional<double> parse_loadavg(std::string_view text);
// "48500\n" (millidegrees) -> 48.5; nonsense (negative, > 200 °C) -> nullopt.
std::optional<double> parse_millidegrees(std::string_view text);

}  // namespace distconv::engine
