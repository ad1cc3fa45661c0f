#pragma once
// distconv-dispatch's typed configuration: one struct, filled from flags, the INI file and DISTCONV_*
// variables (common/config.hpp), then finalize()d into checked values. Passed as const& afterwards.

#include "common/error.hpp"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace distconv::dispatch {

struct PoolConfig {
    std::string name;
    std::filesystem::path root;
    std::optional<uint64_t> cap_bytes;
};

// "NAME=DIR" or "NAME=DIR:BYTES" (BYTES like 500G); the name is [a-z0-9_-]{1,32}.
Result<PoolConfig> parse_pool_spec(const std::string& spec);

struct DispatchConfig {
    // As given (strings, so the INI and env can use "24h" and "20GiB").
    std::string listen = "127.0.0.1:8080";
    std::string tls_cert;  // PEM certificate (chain); with tls_key the server speaks HTTPS only
    std::string tls_key;   // PEM private key
    std::string data_dir = "distconv-data";
    std::vector<std::string> pool_specs;
    std::string max_upload = "20GiB";
    std::string output_retention = "24h";
    std::string source_retention = "1h";
    std::string job_ttl = "0s";  // 0: jobs never expire in the queue
    std::string maintenance_interval = "30s";
    std::string db_busy_timeout = "5s";
    std::string upload_idle_timeout = "30m";  // awaiting_upload with no bytes for this long: UPLOAD_ABANDONED
    std::string user_quota = "0";  // bytes one user's jobs may hold in the pools (0: no quota)  // a
                                   // statement waits this long for a lock another process holds
    std::vector<std::string>
        source_url_hosts;  // hosts `source_url` may name (none by default); HOST or HOST:PORT
    std::string source_url_timeout = "1h";  // a whole source_url fetch
    int source_url_fetches = 4;             // source_url fetches running at once
    std::string ffprobe = "ffprobe";
    int media_nice = 10;  // ffprobe/ffmpeg helpers run this much below the server's CPU priority
    std::string ffmpeg =
        "ffmpeg";  // finishes stream-mode MP4 outputs (-c copy, faststart); cuts and joins split jobs
    // Split mode "auto" splits a source longer than this (when two or more engines can run it).
    std::string split_auto_after = "10m";
    int http_threads = 4096;  // at most: workers start as requests need them and end when idle
    int http_reserve = 0;     // workers long requests never take (0: a quarter of http_threads, 2 to 64)
    int max_event_streams_per_key = 8;  // event streams one key may hold open at once
    int max_claims_per_key = 4096;      // claim long-polls one key may hold at once (engines may share a key)
    std::string event_stream_max =
        "1h";  // an event stream ends after this; the client resumes with Last-Event-ID
    std::string header_timeout =
        "10s";  // a request's headers must be complete this long after its first byte
    std::string keep_alive_timeout = "15s";  // an idle connection waits this long for its next request
    int max_connections = 8192;              // open client connections (more are closed at once)
    // The web dashboard at / and its browser sessions.
    std::string ui = "on";             // on|off
    std::string session_idle = "30m";  // a dashboard session unused this long ends
    std::string session_max = "12h";   // a dashboard session ends this long after sign-in, used or not
    std::string log_level = "info";
    std::string log_format = "text";
    std::string log_file;
    // Engines.
    std::string lease_timeout = "30s";      // an assignment ends when neither progress nor heartbeats arrive
    std::string heartbeat_interval = "5s";  // what engines are told to use
    std::string engine_offline_after = "30s";  // no heartbeat for this long: offline, its work rescued
    std::string retry_backoff = "5s";          // first delay before a transient failure is retried (doubles)
    std::string retry_backoff_max = "5m";
    std::string transfer_reserve = "1GiB";  // free disk an engine keeps beyond source + output in file mode

    // Derived by finalize().
    std::string host;
    int port = 0;
    std::vector<PoolConfig> pools;
    uint64_t max_upload_bytes = 0;
    int64_t output_retention_ms = 0;
    int64_t source_retention_ms = 0;
    std::optional<int64_t> job_ttl_ms;
    int64_t maintenance_interval_ms = 0;
    int64_t split_auto_after_ms = 0;
    int64_t db_busy_timeout_ms = 0;
    int64_t upload_idle_timeout_ms = 0;
    uint64_t user_quota_bytes = 0;
    int64_t source_url_timeout_ms = 0;
    int64_t event_stream_max_ms = 0;
    int64_t header_timeout_ms = 0;
    int64_t keep_alive_timeout_ms = 0;
    bool ui_enabled = true;
    int64_t session_idle_ms = 0;
    int64_t session_max_ms = 0;
    int64_t lease_ms = 0;
    int64_t heartbeat_interval_ms = 0;
    int64_t engine_offline_ms = 0;
    int64_t retry_backoff_ms = 0;
    int64_t retry_backoff_max_ms = 0;
    uint64_t transfer_reserve_bytes = 0;

    std::filesystem::path database_path() const { return std::filesystem::path(data_dir) / "dispatch.db"; }
};

// The options every subcommand understands (data dir, logging) plus the serve options.
void add_options(CLI::App& app, DispatchConfig& config);

// Checks values and fills the derived fields; errors name the key ("max-upload", "pool").
// Without any --pool, one pool "default" under <data-dir>/pool is used.
Status finalize(DispatchConfig& config);

}  // namespace distconv::dispatch
