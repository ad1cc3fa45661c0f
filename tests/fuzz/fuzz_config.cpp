// Fuzzes the configuration path of both daemons: an INI file (given with --config) and command-line
// flags go through CLI11 and common/config.cpp into DispatchConfig / EngineConfig, then finalize().
// Input: the INI text, optionally followed by a line "--" and one command-line argument per line.
// Every input is tried as the dispatch server's and as the engine's configuration.
// Invariants: parsing never throws; a configuration that finalize() accepts is within its documented
// ranges (port 0..65535, heartbeat shorter than the lease, pools unique and absolute, slots 1..256,
// finite max-load, ...), and the engine never sends its key over plain http to a non-loopback host.

#include "common/config.hpp"
#include "dispatch_server/config.hpp"
#include "fuzz_check.hpp"
#include "transcoding_engine/config.hpp"

#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace cfg = distconv::config;

namespace {

// One scratch file per fuzzing process, removed when the process exits.
struct IniFile {
    std::string path = "/tmp/distconv-fuzz-config." + std::to_string(::getpid()) + ".ini";
    ~IniFile() { std::remove(path.c_str()); }
};

const std::string& ini_path() {
    static const IniFile file;
    return file.path;
}

void check_sizes_and_durations(const std::string& text) {
    (void)cfg::parse_byte_size(text);  // UBSan: no out-of-range float -> integer conversion
    if (auto ms = cfg::parse_duration_ms(text)) FUZZ_CHECK(*ms >= 0, "a duration is not negative");
    if (auto pool = distconv::dispatch::parse_pool_spec(text)) {
        FUZZ_CHECK(!pool->name.empty() && pool->name.size() <= 32, "pool name 1..32");
        FUZZ_CHECK(!pool->root.empty(), "a pool names a directory");
        FUZZ_CHECK(!pool->cap_bytes || *pool->cap_bytes > 0, "a pool cap is more than 0");
    }
}

// A loopback host as the engine means it: localhost, ::1 or a dotted IPv4 address in 127.0.0.0/8.
bool really_loopback(const std::string& host) {
    static const std::regex k_v4("^127\\.([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})$");
    std::smatch m;
    if (host == "localhost" || host == "::1") return true;
    if (!std::regex_match(host, m, k_v4)) return false;
    for (int i = 1; i <= 3; ++i)
        if (std::stoi(m[i].str()) > 255) return false;
    return true;
}

// The config layer over an app: true when it parsed to a run (not --help, not an error); parse
// errors must be INVALID_ARGUMENT.
bool parses_to_run(CLI::App& app, const std::vector<std::string>& args) {
    cfg::add_sources(app, {.env_prefix = "DISTCONV_FUZZ_NOT_SET_", .default_files = {}});
    std::ostringstream out;
    auto parsed = cfg::parse(app, args, out);
    if (!parsed) {
        FUZZ_CHECK(parsed.error().code == distconv::ErrorCode::InvalidArgument,
                   "parse errors are INVALID_ARGUMENT");
        return false;
    }
    return *parsed == cfg::Outcome::Run;
}

void fuzz_dispatch(const std::vector<std::string>& args) {
    CLI::App app{"dispatch"};
    distconv::dispatch::DispatchConfig c;
    distconv::dispatch::add_options(app, c);
    app.add_subcommand("check-config", "")->fallthrough();
    if (!parses_to_run(app, args)) return;
    // Certificate files are opened by finalize(): keep it to the configuration's own checks.
    c.tls_cert.clear();
    c.tls_key.clear();
    auto st = distconv::dispatch::finalize(c);
    if (!st) {
        FUZZ_CHECK(st.error().code == distconv::ErrorCode::InvalidArgument,
                   "finalize errors are INVALID_ARGUMENT");
        return;
    }
    FUZZ_CHECK(c.port >= 0 && c.port <= 65535, "port 0..65535");
    FUZZ_CHECK(!c.host.empty() || c.listen.front() == ':', "a host");
    FUZZ_CHECK(c.max_upload_bytes > 0, "max-upload > 0");
    FUZZ_CHECK(c.output_retention_ms >= 0 && c.source_retention_ms >= 0, "retentions >= 0");
    FUZZ_CHECK(!c.job_ttl_ms || *c.job_ttl_ms > 0, "job-ttl unset or > 0");
    FUZZ_CHECK(c.maintenance_interval_ms >= 10, "maintenance-interval >= 10ms");
    FUZZ_CHECK(c.lease_ms >= 100, "lease >= 100ms");
    FUZZ_CHECK(c.heartbeat_interval_ms >= 100 && c.heartbeat_interval_ms < c.lease_ms,
               "heartbeat shorter than the lease");
    FUZZ_CHECK(c.engine_offline_ms >= 0 && c.retry_backoff_ms >= 0 && c.retry_backoff_max_ms >= 0,
               "durations >= 0");
    FUZZ_CHECK(c.http_threads >= 4 && c.http_threads <= 32768, "http-threads 4..32768");
    FUZZ_CHECK(c.log_format == "text" || c.log_format == "json", "log-format text|json");
    FUZZ_CHECK(!c.pools.empty(), "at least one pool");
    std::set<std::string> names;
    for (const auto& p : c.pools) {
        FUZZ_CHECK(names.insert(p.name).second, "pool names are unique");
        FUZZ_CHECK(p.root.is_absolute(), "pool roots are absolute");
        FUZZ_CHECK(!p.cap_bytes || *p.cap_bytes > 0, "pool caps > 0");
    }
}

void fuzz_engine(const std::vector<std::string>& args) {
    CLI::App app{"engine"};
    distconv::engine::EngineConfig c;
    distconv::engine::add_options(app, c);
    if (!parses_to_run(app, args)) return;
    auto st = distconv::engine::finalize(c);
    if (!st) {
        FUZZ_CHECK(st.error().code == distconv::ErrorCode::InvalidArgument,
                   "finalize errors are INVALID_ARGUMENT");
        return;
    }
    FUZZ_CHECK(c.slots >= 1 && c.slots <= 256, "slots 1..256");
    FUZZ_CHECK(!c.key.empty() && !c.work_dir.empty(), "key and work-dir are set");
    FUZZ_CHECK(c.api_base == c.server + "/api/v1", "api_base is server + /api/v1");
    FUZZ_CHECK(c.heartbeat_interval_ms.count() > 0, "heartbeat > 0");
    FUZZ_CHECK(c.claim_wait_seconds >= 0 && c.claim_wait_seconds <= 60, "claim-wait 0..60s");
    FUZZ_CHECK(c.drain_timeout_ms.count() >= 0, "drain-timeout >= 0");
    FUZZ_CHECK(std::isfinite(c.max_load) && c.max_load >= 0, "max-load finite and >= 0");
    auto url = distconv::engine::parse_server_url(c.server);
    FUZZ_CHECK(url.has_value(), "the server is an http(s) URL");
    if (url->scheme == "http" && !c.allow_insecure)
        FUZZ_CHECK(really_loopback(url->host), "the key goes over plain http only to a loopback host");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::string ini = text;
    std::vector<std::string> flags;
    if (auto sep = text.find("\n--\n"); sep != std::string::npos) {
        ini = text.substr(0, sep + 1);
        std::istringstream lines(text.substr(sep + 4));
        for (std::string line; std::getline(lines, line);) flags.push_back(line);
    }
    {
        std::ofstream file(ini_path(), std::ios::binary | std::ios::trunc);
        file << ini;
    }
    check_sizes_and_durations(text);

    std::vector<std::string> dispatch_args = {"check-config", "--config", ini_path()};
    dispatch_args.insert(dispatch_args.end(), flags.begin(), flags.end());
    fuzz_dispatch(dispatch_args);

    std::vector<std::string> engine_args = {"--config", ini_path()};
    engine_args.insert(engine_args.end(), flags.begin(), flags.end());
    fuzz_engine(engine_args);
    return 0;
}
