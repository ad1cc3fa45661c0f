#include "transcoding_engine/cli.hpp"

#include "common/config.hpp"
#include "common/http/client.hpp"
#include "common/logging.hpp"
#include "common/systemd.hpp"
#include "transcoding_engine/capabilities.hpp"
#include "transcoding_engine/config.hpp"
#include "transcoding_engine/engine.hpp"
#include "transcoding_engine/sandbox.hpp"

#include <signal.h>

#include <cstring>
#include <iostream>
#include <thread>

#ifndef DISTCONV_VERSION
#define DISTCONV_VERSION "0.0.0"
#endif

extern char** environ;

namespace distconv::engine {
namespace {

// The key was read: overwrite it where the process started with it (its command line and its
// environment), so /proc/PID/cmdline and /proc/PID/environ of the engine no longer show it, and
// nothing the engine starts inherits it.
void hide_key(int argc, char** argv, const std::string& key) {
    if (key.empty()) return;
    auto scrub = [&key](char* text) {
        for (char* at = std::strstr(text, key.c_str()); at; at = std::strstr(at + key.size(), key.c_str()))
            std::memset(at, '*', key.size());
    };
    for (int i = 1; i < argc; ++i) scrub(argv[i]);
    for (char** e = environ; e && *e; ++e) scrub(*e);
}

}  // namespace

int engine_main(int argc, char** argv) {
    CLI::App app("distconv-engine: runs transcoding assignments from a distconv dispatch server");
    app.set_version_flag("--version", DISTCONV_VERSION);
    EngineConfig cfg;
    add_options(app, cfg);
    config::add_sources(app);
    auto parsed = config::parse(app, argc, argv, std::cout);
    if (!parsed) {
        std::cerr << "distconv-engine: " << parsed.error().message << "\n";
        return 2;
    }
    if (*parsed == config::Outcome::ExitSuccess) return 0;
    if (auto st = finalize(cfg); !st) {
        std::cerr << "distconv-engine: " << st.error().message << "\n";
        return 2;
    }
    hide_key(argc, argv, cfg.key);
    logging::Settings ls;
    ls.level = cfg.log_level;
    ls.file = cfg.log_file;
    ls.program = "distconv-engine";
    auto fmt = logging::parse_format(cfg.log_format);
    if (!fmt) {
        std::cerr << "distconv-engine: " << fmt.error().message << "\n";
        return 2;
    }
    ls.format = *fmt;
    if (auto st = logging::setup(ls); !st) {
        std::cerr << "distconv-engine: " << st.error().message << "\n";
        return 2;
    }
    for (const auto& name : config::unknown_env_vars(app, config::process_environment()))
        spdlog::warn("environment variable {} is not an engine setting; ignored", name);

    // Signals are taken by one thread with sigwait; every other thread (and ffmpeg's parent side)
    // runs with them blocked. ffmpeg itself gets the default mask back (see runner.cpp).
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGUSR2);  // sent by main to end the signal thread
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    std::error_code ec;
    std::filesystem::create_directories(cfg.work_dir, ec);
    if (ec) {
        spdlog::critical("cannot create work dir {}: {}", cfg.work_dir, ec.message());
        return 1;
    }
    auto state = StateStore::open(std::filesystem::path(cfg.work_dir) / "engine.db");
    if (!state) {
        spdlog::critical("{}", state.error().to_string());
        return 1;
    }
    auto caps = probe_capabilities(cfg.ffmpeg);
    if (!caps) {
        spdlog::critical("ffmpeg capabilities: {}", caps.error().to_string());
        return 1;
    }
    spdlog::info("ffmpeg {}: {} encoders, {} decoders, hwaccels [{}]", caps->ffmpeg_version,
                 caps->encoders.size(), caps->decoders.size(), fmt::join(caps->hwaccels, ", "));
    std::optional<double> score;
    BenchmarkFn bench = [ffmpeg = cfg.ffmpeg] { return run_benchmark(ffmpeg); };
    if (cfg.benchmark) {
        if (auto s = bench(); s) {
            score = *s;
            spdlog::info("benchmark: {:.1f} frames/s", *s);
        } else {
            spdlog::warn("benchmark failed: {}", s.error().to_string());
        }
    }

    HttpEngineApi api({cfg.server, cfg.key, cfg.ca_cert});
    PosixRunner runner;
    LinuxSystemInfo sys;
    EngineSettings es;
    es.work_dir = cfg.work_dir;
    es.slots = cfg.slots;
    es.tags = cfg.tags;
    es.hostname = cfg.hostname;
    es.version = DISTCONV_VERSION;
    es.heartbeat_interval = cfg.heartbeat_interval_ms;
    es.claim_wait_seconds = cfg.claim_wait_seconds;
    es.reserve_disk_bytes = cfg.reserve_disk_bytes;
    es.drain_timeout = cfg.drain_timeout_ms;
    es.max_load = cfg.max_load;
    es.min_free_memory_bytes = cfg.min_free_memory_bytes;
    es.executor.cpu_set = cfg.cpu_set;
    es.executor.work_dir = cfg.work_dir;
    es.executor.ffmpeg = cfg.ffmpeg;
    es.executor.ffprobe = cfg.ffprobe;
    es.executor.server = cfg.server;
    {
        std::error_code exe_ec;
        auto self = std::filesystem::read_symlink("/proc/self/exe", exe_ec);
        if (!exe_ec) es.executor.self_exe = self.string();
    }
    es.executor.ffmpeg_env = cfg.ffmpeg_env_pairs;
    // ffmpeg reads hostile media: sandboxed wherever bubblewrap works (sandbox.hpp).
    if (cfg.sandbox != "off") {
        if (auto st = probe_bwrap(cfg.bwrap, cfg.work_dir); st) {
            es.executor.bwrap = cfg.bwrap;
            spdlog::info("sandbox: ffmpeg runs under bubblewrap ({})", cfg.bwrap);
        } else if (cfg.sandbox == "bwrap") {
            spdlog::critical("sandbox: {} (sandbox = bwrap requires it)", st.error().message);
            return 1;
        } else {
            spdlog::warn(
                "sandbox: ffmpeg runs WITHOUT a sandbox: {}. Install bubblewrap (and allow user "
                "namespaces), or set sandbox = off to say this is intended",
                st.error().message);
        }
    }
    Engine engine(api, runner, **state, sys, es, *caps, score, bench);

    std::thread signal_thread([&engine, signals] {
        int count = 0;
        while (true) {
            int sig = 0;
            if (sigwait(&signals, &sig) != 0) continue;
            if (sig == SIGUSR2) return;  // the engine finished: stop waiting
            ++count;
            spdlog::info("signal {} received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            if (count == 1)
                engine.request_drain();
            else
                engine.stop_now();
        }
    });
    // Local set-up is done (state file, capabilities, benchmark): the engine now registers and keeps
    // retrying until the dispatch server answers, which may take a while after a boot.
    systemd::notify_ready("registering with " + http::redact_url(cfg.server));
    int rc = 0;
    {
        systemd::Watchdog watchdog([&engine] { return engine.responsive(); });
        rc = engine.run();
    }
    systemd::notify_stopping();
    pthread_kill(signal_thread.native_handle(), SIGUSR2);
    signal_thread.join();
    return rc;
}

}  // namespace distconv::engine
