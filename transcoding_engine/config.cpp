#include "transcoding_engine/config.hpp"

#include "common/config.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include <regex>

namespace distconv::engine {

void add_options(CLI::App& app, EngineConfig& c) {
    app.add_option("--server", c.server, "Dispatch server URL, e.g. http://127.0.0.1:8080");
    app.add_option("--key", c.key, "Engine API key")->envname("DISTCONV_API_KEY");
    app.add_option("--work-dir", c.work_dir, "Directory for the state file and the assignments' files");
    app.add_option("--slots", c.slots, "Assignments run at the same time")
        ->check(CLI::Range(1, 256))
        ->capture_default_str();
    app.add_option("--ffmpeg", c.ffmpeg, "ffmpeg program")->capture_default_str();
    app.add_option("--ffprobe", c.ffprobe, "ffprobe program")->capture_default_str();
    app.add_option("--tag", c.tags, "A tag jobs can require (repeat)");
    app.add_option("--ca-cert", c.ca_cert, "Extra CA bundle for https");
    app.add_option("--heartbeat-interval", c.heartbeat_interval, "Time between heartbeats")
        ->capture_default_str();
    app.add_option("--claim-wait", c.claim_wait, "Long-poll wait of a claim")->capture_default_str();
    app.add_option("--reserve-disk", c.reserve_disk, "Disk space to keep free in the work dir")
        ->capture_default_str();
    app.add_option("--drain-timeout", c.drain_timeout, "How long running work may finish after SIGTERM")
        ->capture_default_str();
    app.add_option("--log-level", c.log_level, "trace|debug|info|warn|error")->capture_default_str();
    app.add_option("--log-format", c.log_format, "text|json")->capture_default_str();
    app.add_option("--log-file", c.log_file, "Log to this file instead of stderr");
    app.add_option("--benchmark", c.benchmark, "Run the reference encode at start (on|off)")
        ->capture_default_str();
    app.add_option("--hostname", c.hostname, "Hostname to report (default: the machine's)");
    app.add_flag("--allow-insecure", c.allow_insecure,
                 "Allow sending the key over plain http to another host");
    app.add_option("--max-load", c.max_load, "Claim nothing while the 1-minute load is above this (0: off)")
        ->capture_default_str();
    app.add_option("--min-free-memory", c.min_free_memory,
                   "Claim nothing while available memory is below this (0: off)")
        ->capture_default_str();
    app.add_option("--cpu-set", c.cpu_set, "Pin ffmpeg to these CPUs, taskset-style (e.g. 0-3,6)");
    app.add_option("--sandbox", c.sandbox,
                   "Run ffmpeg under bubblewrap: auto (when it works here, else warn), bwrap (required), off")
        ->capture_default_str();
    app.add_option("--bwrap", c.bwrap, "The bubblewrap program")->capture_default_str();
    app.add_option("--ffmpeg-env", c.ffmpeg_env, "NAME=VALUE to set in ffmpeg's environment (repeat)");
}

std::optional<UrlParts> parse_server_url(const std::string& url) {
    auto sep = url.find("://");
    if (sep == std::string::npos) return std::nullopt;
    UrlParts parts;
    parts.scheme = url.substr(0, sep);
    std::transform(parts.scheme.begin(), parts.scheme.end(), parts.scheme.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (parts.scheme != "http" && parts.scheme != "https") return std::nullopt;
    std::string rest = url.substr(sep + 3);
    rest = rest.substr(0, rest.find_first_of("/?#"));
    if (auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
    if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos) return std::nullopt;
        parts.host = rest.substr(1, close - 1);
    } else {
        parts.host = rest.substr(0, rest.find(':'));
    }
    if (parts.host.empty()) return std::nullopt;
    return parts;
}

bool is_loopback_host(const std::string& host) {
    if (host == "localhost" || host == "::1") return true;
    // A dotted IPv4 address in 127.0.0.0/8; "127.example.com" is a remote name.
    static const std::regex k_v4(R"(^127\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$)");
    std::smatch m;
    if (!std::regex_match(host, m, k_v4)) return false;
    for (size_t i = 1; i < m.size(); ++i)
        if (std::stoi(m[i].str()) > 255) return false;
    return true;
}

Status finalize(EngineConfig& c) {
    if (c.server.empty()) return Error::invalid("server", "server is required (--server URL)");
    while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
    auto url = parse_server_url(c.server);
    if (!url)
        return Error::invalid("server", "server must be an http:// or https:// URL, not '" + c.server + "'");
    if (c.key.empty()) return Error::invalid("key", "key is required (--key or DISTCONV_API_KEY)");
    if (c.sandbox != "auto" && c.sandbox != "bwrap" && c.sandbox != "off")
        return Error::invalid("sandbox", "sandbox must be auto, bwrap or off, not '" + c.sandbox + "'");
    if (c.bwrap.empty()) return Error::invalid("bwrap", "bwrap must name the bubblewrap program");
    c.ffmpeg_env_pairs.clear();
    static const std::regex k_env_name(R"(^[A-Za-z_][A-Za-z0-9_]*$)");
    for (const auto& item : c.ffmpeg_env) {
        auto eq = item.find('=');
        std::string name = item.substr(0, eq);
        if (eq == std::string::npos || !std::regex_match(name, k_env_name))
            return Error::invalid("ffmpeg-env", "ffmpeg-env takes NAME=VALUE, not '" + item + "'");
        if (name.rfind("DISTCONV_", 0) == 0 || name == "LD_PRELOAD" || name == "LD_LIBRARY_PATH")
            return Error::invalid("ffmpeg-env", "ffmpeg-env may not set " + name);
        c.ffmpeg_env_pairs.emplace_back(name, item.substr(eq + 1));
    }
    if (url->scheme == "http" && !is_loopback_host(url->host) && !c.allow_insecure)
        return Error::invalid("server", "refusing to send the key over plain http to " + url->host +
                                            "; use https or --allow-insecure");
    if (c.work_dir.empty()) return Error::invalid("work-dir", "work-dir is required");
    {
        // Absolute from here on: ffmpeg runs in the assignment's directory (and in the sandbox, which
        // binds it by path), where a path relative to where the engine started names nothing.
        std::error_code ec;
        auto abs = std::filesystem::absolute(c.work_dir, ec);
        if (ec)
            return Error::invalid("work-dir", "cannot resolve work-dir " + c.work_dir + ": " + ec.message());
        c.work_dir = abs.lexically_normal().string();
    }
    if (c.slots < 1 || c.slots > 256) return Error::invalid("slots", "slots must be 1..256");
    c.api_base = c.server + "/api/v1";

    auto hb = config::parse_duration_ms(c.heartbeat_interval);
    if (!hb || *hb <= 0)
        return Error::invalid("heartbeat-interval", "heartbeat-interval must be a positive duration");
    c.heartbeat_interval_ms = std::chrono::milliseconds(*hb);
    auto wait = config::parse_duration_ms(c.claim_wait);
    if (!wait || *wait < 0 || *wait > 60000) return Error::invalid("claim-wait", "claim-wait must be 0..60s");
    c.claim_wait_seconds = static_cast<int>(*wait / 1000);
    auto reserve = config::parse_byte_size(c.reserve_disk);
    if (!reserve) return Error::invalid("reserve-disk", "reserve-disk: " + reserve.error().message);
    c.reserve_disk_bytes = *reserve;
    auto drain = config::parse_duration_ms(c.drain_timeout);
    if (!drain || *drain < 0) return Error::invalid("drain-timeout", "drain-timeout must be a duration");
    c.drain_timeout_ms = std::chrono::milliseconds(*drain);
    if (!std::isfinite(c.max_load) || c.max_load < 0)
        return Error::invalid("max-load", "max-load must be a number >= 0");
    auto memory = config::parse_byte_size(c.min_free_memory);
    if (!memory) return Error::invalid("min-free-memory", "min-free-memory: " + memory.error().message);
    c.min_free_memory_bytes = *memory;
    static const std::regex k_cpu_set(R"(^[0-9]{1,4}(-[0-9]{1,4})?(,[0-9]{1,4}(-[0-9]{1,4})?)*$)");
    if (!c.cpu_set.empty() && !std::regex_match(c.cpu_set, k_cpu_set))
        return Error::invalid("cpu-set", "cpu-set must be a CPU list like 0-3,6, not '" + c.cpu_set + "'");
    return {};
}

}  // namespace distconv::engine
