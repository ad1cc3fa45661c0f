#pragma once
// The engine's typed configuration: flags = INI keys = DISTCONV_* variables (see common/config.hpp).

#include "common/error.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace distconv::engine {

struct EngineConfig {
    // As given (text, so INI/env values go through the same parsing).
    std::string server;
    std::string key;
    std::string work_dir;
    int slots = 1;
    std::string ffmpeg = "ffmpeg";
    std::string ffprobe = "ffprobe";
    std::vector<std::string> tags;
    std::string ca_cert;
    std::string heartbeat_interval = "5s";
    std::string claim_wait = "30s";
    std::string reserve_disk = "1GiB";
    std::string drain_timeout = "5m";
    std::string log_level = "info";
    std::string log_format = "text";
    std::string log_file;
    bool benchmark = true;
    std::string hostname;
    bool allow_insecure = false;
    double max_load = 0;                    // 0: no limit
    std::string min_free_memory = "0";      // claim nothing while available memory is below this (0: off)
    std::string cpu_set;                    // pin ffmpeg to these CPUs (taskset list, e.g. 0-3,6)
    std::string sandbox = "auto";           // auto|bwrap|off (sandbox.hpp)
    std::string bwrap = "bwrap";            // the bubblewrap program
    std::vector<std::string> ffmpeg_env{};  // NAME=VALUE set in ffmpeg's environment (repeat)

    // Derived by finalize().
    std::string api_base;  // server + "/api/v1"
    std::chrono::milliseconds heartbeat_interval_ms{5000};
    int claim_wait_seconds = 30;
    std::uint64_t min_free_memory_bytes = 0;
    std::uint64_t reserve_disk_bytes = 1ull << 30;
    std::chrono::milliseconds drain_timeout_ms{300000};
    std::vector<std::pair<std::string, std::string>> ffmpeg_env_pairs{};
};

void add_options(CLI::App& app, EngineConfig& c);

// Parses durations and sizes, checks ranges, and refuses to send the key in clear text to a
// non-loopback host unless allow_insecure.
Status finalize(EngineConfig& c);

// "http://127.0.0.1:8080/" -> scheme "http", host "127.0.0.1". nullopt when not http(s)://host...
struct UrlParts {
    std::string scheme;
    std::string host;
};
std::optional<UrlParts> parse_server_url(const std::string& url);
bool is_loopback_host(const std::string& host);

}  // namespace distconv::engine
