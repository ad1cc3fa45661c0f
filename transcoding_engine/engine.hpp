#pragma once
// The engine's main loop: recover what a crash left, register (or reuse the stored id), heartbeat
// every interval, and let up to `slots` workers long-poll for assignments and run them.

#include "protocol/engines.hpp"
#include "transcoding_engine/engine_api.hpp"
#include "transcoding_engine/executor.hpp"
#include "transcoding_engine/runner.hpp"
#include "transcoding_engine/state_store.hpp"
#include "transcoding_engine/system_info.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace distconv::engine {

struct EngineSettings {
    std::filesystem::path work_dir;
    int slots = 1;
    std::vector<std::string> tags;
    std::string hostname;  // empty: SystemInfo::hostname()
    std::string version = "0.1.0";
    std::chrono::milliseconds heartbeat_interval{5000};
    int claim_wait_seconds = 30;
    std::uint64_t reserve_disk_bytes = 0;
    std::chrono::milliseconds drain_timeout{300000};
    double max_load = 0;                      // 0: no limit
    std::uint64_t min_free_memory_bytes = 0;  // 0: no limit
    ExecutorSettings executor;
};

// What a heartbeat says, from the engine's situation and the machine's readings.
struct HeartbeatInputs {
    bool draining = false;
    bool overloaded = false;
    int slots = 1;
    std::vector<std::string> running_assignments;
    std::optional<double> benchmark_score;
    std::uint64_t reserve_disk_bytes = 0;
};
// Backpressure: true while the machine's load is above max_load or its available memory below
// min_free_memory (each 0 = no limit); an overloaded engine reports busy and claims nothing.
bool machine_overloaded(const SystemInfo& sys, double max_load, std::uint64_t min_free_memory);

protocol::Heartbeat build_heartbeat(const HeartbeatInputs& in, const SystemInfo& sys,
                                    const std::filesystem::path& work_dir);

using BenchmarkFn = std::function<Result<double>()>;

class Engine {
  public:
    Engine(EngineApi& api, FfmpegRunner& runner, StateStore& state, const SystemInfo& sys,
           EngineSettings settings, protocol::Capabilities capabilities,
           std::optional<double> benchmark_score, BenchmarkFn benchmark = {});
    ~Engine();

    // Runs until drained (request_drain) or stopped; returns the process exit code.
    int run();
    // SIGTERM/SIGINT: claim nothing new, let running work finish up to drain_timeout, then hand it back.
    void request_drain();
    // A second signal: hand running work back now.
    void stop_now();

    // Reports the assignments a crash left in the state file as transient failures, deletes their
    // files and forgets them. Returns false while the server cannot be reached (try again later).
    bool recover();
    // Registers unless the state file has an id; `force` registers anew (the server forgot us).
    Status ensure_registered(bool force = false);
    std::string engine_id() const;
    // One heartbeat round: send, then act on the answer (cancel, drain, benchmark).
    Status heartbeat_once();
    std::vector<std::string> running_assignments() const;
    // True while the engine's control loop (registration, then heartbeats) keeps turning: what the
    // systemd watchdog checks. A dispatch server that cannot be reached does not make it false.
    bool responsive() const;

  private:
    void worker_loop(int index);
    void heartbeat_loop();
    bool sleep_unless_draining(std::chrono::milliseconds d);
    bool overloaded() const;
    std::int64_t reported_free_disk() const;

    EngineApi& m_api;
    StateStore& m_state;
    const SystemInfo& m_sys;
    EngineSettings m_settings;
    protocol::Capabilities m_capabilities;
    BenchmarkFn m_benchmark;
    Executor m_executor;

    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    std::string m_engine_id;
    std::optional<double> m_benchmark_score;
    bool m_benchmark_rerun = false;  // a fresh score to send in the next heartbeat
    std::map<std::string, std::shared_ptr<ActiveAssignment>> m_active;
    std::atomic<bool> m_draining{false};
    std::atomic<bool> m_stop_now{false};
    std::atomic<bool> m_server_drain{false};
    std::atomic<bool> m_finished{false};
    std::atomic<int64_t> m_last_tick_ms{0};  // steady clock, when the control loop last went round
    void tick();
    std::mutex m_register_mutex;
};

}  // namespace distconv::engine
