#include "transcoding_engine/system_info.hpp"

#include "common/fs.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

namespace distconv::engine {
namespace {

std::optional<std::string> slurp(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(i);
}

}  // namespace

std::optional<protocol::Memory> parse_meminfo(std::string_view text) {
    std::optional<std::int64_t> total, available, free_kb;
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string name;
        std::int64_t kb = 0;
        if (!(ls >> name >> kb)) continue;
        if (name == "MemTotal:")
            total = kb;
        else if (name == "MemAvailable:")
            available = kb;
        else if (name == "MemFree:")
            free_kb = kb;
    }
    if (!total) return std::nullopt;
    protocol::Memory m;
    m.total_bytes = *total * 1024;
    m.available_bytes = available.value_or(free_kb.value_or(0)) * 1024;
    return m;
}

std::optional<double> parse_loadavg(std::string_view text) {
    std::istringstream in{std::string(text)};
    double v = 0;
    if (!(in >> v) || v < 0) return std::nullopt;
    return v;
}

std::optional<double> parse_millidegrees(std::string_view text) {
    std::string t = trim(std::string(text));
    long long v = 0;
    auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || ptr != t.data() + t.size()) return std::nullopt;
    double c = static_cast<double>(v) / 1000.0;
    if (c <= -50.0 || c > 200.0) return std::nullopt;
    return c;
}

std::string LinuxSystemInfo::hostname() const {
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
    return buf;
}

std::optional<double> LinuxSystemInfo::load_average() const {
    if (auto text = slurp(m_root / "proc/loadavg")) return parse_loadavg(*text);
    if (m_root == "/") {
        double v[1];
        if (getloadavg(v, 1) == 1) return v[0];
    }
    return std::nullopt;
}

std::int64_t LinuxSystemInfo::free_disk_bytes(const std::filesystem::path& dir) const {
    auto space = fs::disk_space(dir);
    return space ? static_cast<std::int64_t>(space->free_bytes) : 0;
}

std::optional<protocol::Memory> LinuxSystemInfo::memory() const {
    auto text = slurp(m_root / "proc/meminfo");
    return text ? parse_meminfo(*text) : std::nullopt;
}

std::optional<double> LinuxSystemInfo::cpu_temperature_c() const {
    std::error_code ec;
    // Thermal zones: a CPU-looking one wins, else the first readable one.
    std::vector<std::filesystem::path> zones;
    for (const auto& e : std::filesystem::directory_iterator(m_root / "sys/class/thermal", ec))
        if (e.path().filename().string().rfind("thermal_zone", 0) == 0) zones.push_back(e.path());
    std::sort(zones.begin(), zones.end());
    std::optional<double> first;
    for (const auto& z : zones) {
        auto temp = slurp(z / "temp");
        if (!temp) continue;
        auto c = parse_millidegrees(*temp);
        if (!c) continue;
        std::string type = trim(slurp(z / "type").value_or(""));
        if (type == "x86_pkg_temp" || type.rfind("cpu", 0) == 0 || type.rfind("soc", 0) == 0) return c;
        if (!first) first = c;
    }
    if (first) return first;
    std::vector<std::filesystem::path> mons;
    for (const auto& e : std::filesystem::directory_iterator(m_root / "sys/class/hwmon", ec))
        mons.push_back(e.path());
    std::sort(mons.begin(), mons.end());
    for (const auto& h : mons)
        if (auto temp = slurp(h / "temp1_input"))
            if (auto c = parse_millidegrees(*temp)) return c;
    return std::nullopt;
}

}  // namespace distconv::engine
