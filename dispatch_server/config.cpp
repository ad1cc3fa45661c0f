#include "dispatch_server/config.hpp"

#include "common/config.hpp"

#include <algorithm>
#include <fstream>
#include <regex>

namespace distconv::dispatch {

Result<PoolConfig> parse_pool_spec(const std::string& spec) {
    static const std::regex k_name("^[a-z0-9_-]{1,32}$");
    auto eq = spec.find('=');
    if (eq == std::string::npos)
        return Error::invalid("pool", "pool '" + spec + "' must look like NAME=DIR or NAME=DIR:BYTES");
    PoolConfig pool;
    pool.name = spec.substr(0, eq);
    if (!std::regex_match(pool.name, k_name))
        return Error::invalid("pool", "pool name '" + pool.name + "' must be 1-32 of a-z, 0-9, '_' and '-'");
    std::string rest = spec.substr(eq + 1);
    auto colon = rest.rfind(':');
    if (colon != std::string::npos) {
        auto cap = config::parse_byte_size(rest.substr(colon + 1));
        if (!cap) return Error::invalid("pool", "pool '" + pool.name + "': " + cap.error().message);
        if (*cap == 0)
            return Error::invalid("pool", "pool '" + pool.name + "': the cap must be more than 0 bytes");
        pool.cap_bytes = *cap;
        rest = rest.substr(0, colon);
    }
    if (rest.empty()) return Error::invalid("pool", "pool '" + pool.name + "' names no directory");
    pool.root = rest;
    return pool;
}

void add_options(CLI::App& app, DispatchConfig& c) {
    app.add_option("--data-dir", c.data_dir, "Directory for the database and the default pool")
        ->capture_default_str();
    app.add_option("--log-level", c.log_level, "trace|debug|info|warn|error")->capture_default_str();
    app.add_option("--log-format", c.log_format, "text|json")->capture_default_str();
    app.add_option("--log-file", c.log_file, "Log to this file instead of stderr");
    app.add_option("--listen", c.listen, "HOST:PORT to serve on (port 0 picks a free one)")
        ->capture_default_str();
    app.add_option("--tls-cert", c.tls_cert, "PEM certificate (chain) to serve HTTPS with (needs --tls-key)");
    app.add_option("--tls-key", c.tls_key, "PEM private key of --tls-cert");
    app.add_option("--pool", c.pool_specs, "Storage pool NAME=DIR[:BYTES]; repeat for several");
    app.add_option("--max-upload", c.max_upload, "Largest accepted source")->capture_default_str();
    app.add_option("--output-retention", c.output_retention, "How long outputs are kept")
        ->capture_default_str();
    app.add_option("--source-retention", c.source_retention, "How long sources are kept after a job ends")
        ->capture_default_str();
    app.add_option("--job-ttl", c.job_ttl, "Default time a job may wait in the queue (0: forever)")
        ->capture_default_str();
    app.add_option("--maintenance-interval", c.maintenance_interval, "How often expiry and cleanup run")
        ->capture_default_str();
    app.add_option("--db-busy-timeout", c.db_busy_timeout,
                   "How long a database statement waits for a lock held elsewhere before answering 503")
        ->capture_default_str();
    app.add_option("--upload-idle-timeout", c.upload_idle_timeout,
                   "A job awaiting its upload with no bytes for this long fails (UPLOAD_ABANDONED) and frees "
                   "its space")
        ->capture_default_str();
    app.add_option("--user-quota", c.user_quota,
                   "Bytes one user's jobs may reserve or store in the pools (0: no quota)")
        ->capture_default_str();
    app.add_option("--source-url-host", c.source_url_hosts,
                   "A host that source_url may fetch from, HOST (ports 80 and 443) or HOST:PORT; repeat");
    app.add_option("--source-url-timeout", c.source_url_timeout, "Longest a whole source_url fetch may take")
        ->capture_default_str();
    app.add_option("--source-url-fetches", c.source_url_fetches,
                   "source_url fetches running at once (more: 429)")
        ->check(CLI::Range(1, 256))
        ->capture_default_str();
    app.add_option("--ffprobe", c.ffprobe, "ffprobe program")->capture_default_str();
    app.add_option("--media-nice", c.media_nice,
                   "CPU priority below the server's own of its ffprobe and ffmpeg runs (a nice increment; 0: "
                   "the same)")
        ->check(CLI::Range(0, 19))
        ->capture_default_str();
    app.add_option("--ffmpeg", c.ffmpeg,
                   "ffmpeg program (finishes streamed MP4 outputs, cuts and joins split jobs)")
        ->capture_default_str();
    app.add_option("--split-auto-after", c.split_auto_after,
                   "Split mode auto splits sources longer than this, when two or more engines can run them")
        ->capture_default_str();
    app.add_option("--lease-timeout", c.lease_timeout, "An assignment's lease without progress or heartbeats")
        ->capture_default_str();
    app.add_option("--heartbeat-interval", c.heartbeat_interval, "How often engines are told to heartbeat")
        ->capture_default_str();
    app.add_option("--engine-offline-after", c.engine_offline_after,
                   "Silence after which an engine is offline")
        ->capture_default_str();
    app.add_option("--retry-backoff", c.retry_backoff, "First delay before retrying a transient failure")
        ->capture_default_str();
    app.add_option("--retry-backoff-max", c.retry_backoff_max, "Longest retry delay")->capture_default_str();
    app.add_option("--transfer-reserve", c.transfer_reserve, "Disk an engine keeps free in file mode")
        ->capture_default_str();
    app.add_option("--http-threads", c.http_threads,
                   "HTTP worker threads at most, started as requests need them (long-polls and event streams "
                   "hold one each)")
        ->check(CLI::Range(4, 32768))
        ->capture_default_str();
    app.add_option("--http-reserve", c.http_reserve,
                   "HTTP workers event streams and claim long-polls never take (0: a quarter of "
                   "--http-threads, 2 to 64)")
        ->check(CLI::Range(0, 32767))
        ->capture_default_str();
    app.add_option("--max-event-streams-per-key", c.max_event_streams_per_key,
                   "Event streams one key may hold open at once (more: 429)")
        ->check(CLI::Range(1, 32768))
        ->capture_default_str();
    app.add_option("--max-claims-per-key", c.max_claims_per_key,
                   "Claim long-polls one key may hold at once (more: 429)")
        ->check(CLI::Range(1, 32768))
        ->capture_default_str();
    app.add_option("--event-stream-max", c.event_stream_max,
                   "Longest an event stream stays open (the client resumes with Last-Event-ID)")
        ->capture_default_str();
    app.add_option(
           "--header-timeout", c.header_timeout,
           "A request's headers must be complete this long after their first byte (else 408 and closed)")
        ->capture_default_str();
    app.add_option("--keep-alive-timeout", c.keep_alive_timeout,
                   "An idle connection waits this long for its next request")
        ->capture_default_str();
    app.add_option("--max-connections", c.max_connections,
                   "Client connections open at once (more are closed at once)")
        ->check(CLI::Range(16, 1 << 20))
        ->capture_default_str();
    app.add_option("--ui", c.ui, "The web dashboard at / and its sign-in sessions: on|off")
        ->capture_default_str();
    app.add_option("--session-idle", c.session_idle, "A dashboard session unused this long ends")
        ->capture_default_str();
    app.add_option("--session-max", c.session_max, "A dashboard session ends this long after sign-in")
        ->capture_default_str();
}

Status finalize(DispatchConfig& c) {
    auto colon = c.listen.rfind(':');
    if (colon == std::string::npos || colon == 0)
        return Error::invalid("listen", "listen must be HOST:PORT, not '" + c.listen + "'");
    c.host = c.listen.substr(0, colon);
    if (c.host.size() > 2 && c.host.front() == '[' && c.host.back() == ']')
        c.host = c.host.substr(1, c.host.size() - 2);
    try {
        size_t used = 0;
        c.port = std::stoi(c.listen.substr(colon + 1), &used);
        if (used != c.listen.size() - colon - 1 || c.port < 0 || c.port > 65535)
            throw std::out_of_range("port");
    } catch (...) {
        return Error::invalid("listen", "listen port must be 0..65535 in '" + c.listen + "'");
    }
    if (c.data_dir.empty()) return Error::invalid("data-dir", "data-dir must not be empty");
    if (c.tls_cert.empty() != c.tls_key.empty())
        return Error::invalid(c.tls_cert.empty() ? "tls-cert" : "tls-key",
                              "tls-cert and tls-key go together: set both or neither");
    for (const auto& [key, path] :
         {std::pair<const char*, const std::string&>{"tls-cert", c.tls_cert}, {"tls-key", c.tls_key}}) {
        if (path.empty()) continue;
        std::ifstream in(path);
        if (!in) return Error::invalid(key, std::string(key) + ": cannot read '" + path + "'");
    }

    auto size = config::parse_byte_size(c.max_upload);
    if (!size) return Error::invalid("max-upload", "max-upload: " + size.error().message);
    if (*size == 0) return Error::invalid("max-upload", "max-upload must be more than 0");
    c.max_upload_bytes = *size;

    struct DurationKey {
        const char* key;
        const std::string& text;
        int64_t& out;
    };
    int64_t ttl = 0;
    for (const DurationKey& d :
         {DurationKey{"output-retention", c.output_retention, c.output_retention_ms},
          DurationKey{"source-retention", c.source_retention, c.source_retention_ms},
          DurationKey{"job-ttl", c.job_ttl, ttl},
          DurationKey{"maintenance-interval", c.maintenance_interval, c.maintenance_interval_ms},
          DurationKey{"split-auto-after", c.split_auto_after, c.split_auto_after_ms},
          DurationKey{"db-busy-timeout", c.db_busy_timeout, c.db_busy_timeout_ms},
          DurationKey{"upload-idle-timeout", c.upload_idle_timeout, c.upload_idle_timeout_ms},
          DurationKey{"source-url-timeout", c.source_url_timeout, c.source_url_timeout_ms},
          DurationKey{"event-stream-max", c.event_stream_max, c.event_stream_max_ms},
          DurationKey{"header-timeout", c.header_timeout, c.header_timeout_ms},
          DurationKey{"keep-alive-timeout", c.keep_alive_timeout, c.keep_alive_timeout_ms},
          DurationKey{"session-idle", c.session_idle, c.session_idle_ms},
          DurationKey{"session-max", c.session_max, c.session_max_ms},
          DurationKey{"lease-timeout", c.lease_timeout, c.lease_ms},
          DurationKey{"heartbeat-interval", c.heartbeat_interval, c.heartbeat_interval_ms},
          DurationKey{"engine-offline-after", c.engine_offline_after, c.engine_offline_ms},
          DurationKey{"retry-backoff", c.retry_backoff, c.retry_backoff_ms},
          DurationKey{"retry-backoff-max", c.retry_backoff_max, c.retry_backoff_max_ms}}) {
        auto ms = config::parse_duration_ms(d.text);
        if (!ms) return Error::invalid(d.key, std::string(d.key) + ": " + ms.error().message);
        d.out = *ms;
    }
    c.job_ttl_ms = ttl > 0 ? std::optional<int64_t>(ttl) : std::nullopt;
    if (c.maintenance_interval_ms < 10)
        return Error::invalid("maintenance-interval", "maintenance-interval must be at least 10ms");

    if (c.ui != "on" && c.ui != "off")
        return Error::invalid("ui", "ui must be on or off, not '" + c.ui + "'");
    c.ui_enabled = c.ui == "on";
    if (c.session_idle_ms < 1000) return Error::invalid("session-idle", "session-idle must be at least 1s");
    if (c.session_max_ms < c.session_idle_ms)
        return Error::invalid("session-max", "session-max must be at least session-idle");

    if (c.event_stream_max_ms < 1000)
        return Error::invalid("event-stream-max", "event-stream-max must be at least 1s");
    if (c.header_timeout_ms < 100 || c.header_timeout_ms > 600000)
        return Error::invalid("header-timeout", "header-timeout must be between 100ms and 10m");
    if (c.keep_alive_timeout_ms < 100 || c.keep_alive_timeout_ms > 600000)
        return Error::invalid("keep-alive-timeout", "keep-alive-timeout must be between 100ms and 10m");
    if (c.http_reserve == 0) c.http_reserve = std::clamp(c.http_threads / 4, 2, 64);
    if (c.http_reserve >= c.http_threads)
        return Error::invalid("http-reserve", "http-reserve must be smaller than http-threads");
    if (c.source_url_timeout_ms < 1000)
        return Error::invalid("source-url-timeout", "source-url-timeout must be at least 1s");
    if (c.upload_idle_timeout_ms < 1000)
        return Error::invalid("upload-idle-timeout", "upload-idle-timeout must be at least 1s");
    auto quota = config::parse_byte_size(c.user_quota);
    if (!quota) return Error::invalid("user-quota", "user-quota: " + quota.error().message);
    c.user_quota_bytes = *quota;
    if (c.db_busy_timeout_ms < 10 || c.db_busy_timeout_ms > 600000)
        return Error::invalid("db-busy-timeout", "db-busy-timeout must be between 10ms and 10m");
    if (c.lease_ms < 100) return Error::invalid("lease-timeout", "lease-timeout must be at least 100ms");
    if (c.heartbeat_interval_ms < 100 || c.heartbeat_interval_ms >= c.lease_ms)
        return Error::invalid("heartbeat-interval",
                              "heartbeat-interval must be at least 100ms and shorter than lease-timeout");
    auto reserve = config::parse_byte_size(c.transfer_reserve);
    if (!reserve) return Error::invalid("transfer-reserve", "transfer-reserve: " + reserve.error().message);
    c.transfer_reserve_bytes = *reserve;

    c.pools.clear();
    for (const auto& spec : c.pool_specs) {
        auto pool = parse_pool_spec(spec);
        if (!pool) return pool.error();
        for (const auto& p : c.pools)
            if (p.name == pool->name) return Error::invalid("pool", "pool '" + p.name + "' is defined twice");
        c.pools.push_back(*pool);
    }
    if (c.pools.empty())
        c.pools.push_back(PoolConfig{"default", std::filesystem::path(c.data_dir) / "pool", {}});
    for (auto& p : c.pools)
        if (p.root.is_relative()) p.root = std::filesystem::absolute(p.root);

    auto fmt_ok = c.log_format == "text" || c.log_format == "json";
    if (!fmt_ok)
        return Error::invalid("log-format", "log-format must be text or json, not '" + c.log_format + "'");
    return {};
}

}  // namespace distconv::dispatch
