#pragma once
// Runs one assignment from claim to complete/fail: records it in the state file first, moves the
// bytes (file or stream mode), runs ffmpeg, reports progress, and always cleans its files.

#include "protocol/engines.hpp"
#include "transcoding_engine/engine_api.hpp"
#include "transcoding_engine/runner.hpp"
#include "transcoding_engine/state_store.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace distconv::engine {

enum class StopReason { None, Canceled, LeaseLost, Draining };

// An assignment in flight: other threads (heartbeat answers, drain) ask it to stop.
class ActiveAssignment {
  public:
    explicit ActiveAssignment(protocol::Assignment a)
        : m_assignment(std::move(a)), m_credential(m_assignment.credential) {}
    const protocol::Assignment& assignment() const { return m_assignment; }
    const std::string& id() const { return m_assignment.assignment_id; }

    // The first reason wins; a running ffmpeg is terminated (SIGTERM, then SIGKILL after `grace`).
    void stop(StopReason reason, std::chrono::milliseconds grace = std::chrono::seconds(3));
    StopReason stop_reason() const { return static_cast<StopReason>(m_reason.load()); }
    bool stopping() const { return stop_reason() != StopReason::None; }

    void attach(RunningProcess* process);
    void detach() { attach(nullptr); }

    // The assignment as the transfers need it now: with the newest credential (progress answers
    // renew it).
    protocol::Assignment current() const;
    void renew_credential(const std::string& credential);

  private:
    protocol::Assignment m_assignment;
    std::string m_credential;
    std::atomic<int> m_reason{static_cast<int>(StopReason::None)};
    mutable std::mutex m_mutex;
    RunningProcess* m_process = nullptr;
    std::chrono::milliseconds m_grace{3000};
};

enum class AssignmentOutcome { Completed, Failed, Canceled, LeaseLost, HandedBack };
std::string_view to_string(AssignmentOutcome o);

struct ExecutorSettings {
    std::filesystem::path work_dir;  // assignments live in <work_dir>/assignments/<id>
    std::string ffmpeg = "ffmpeg";
    // Reads every output before it is uploaded (verify_output in media/stream_plan.hpp), sandboxed as
    // ffmpeg is.
    std::string ffprobe = "ffprobe";
    std::string server{};  // the configured dispatch server: assignments must name it (assignment_check.hpp)
    std::string cpu_set;   // when set, ffmpeg runs under `taskset -c <cpu_set>`
    // ffmpeg runs under bubblewrap (sandbox.hpp) when set: the program path, e.g. "bwrap".
    std::string bwrap{};
    // This engine's own executable: in stream mode it opens ffmpeg's one port inside the sandbox
    // (sandbox_port.hpp), so the sandbox needs no network. Without it a stream-mode sandbox shares
    // the engine's network.
    std::string self_exe{};
    // Set in ffmpeg's environment (e.g. LIBVA_DRIVER_NAME for VAAPI); nothing else of the engine's
    // environment but PATH, the locale and TZ reaches it.
    std::vector<std::pair<std::string, std::string>> ffmpeg_env{};
    std::chrono::milliseconds progress_interval{1000};
    // SIGTERM to SIGKILL when an assignment is stopped. Short: a stopped ffmpeg's output is thrown
    // away, and on SIGTERM ffmpeg first flushes its encoders (a second or more with x264's lookahead),
    // which a cancel must not wait for.
    std::chrono::milliseconds kill_grace{500};
};

// Prefixes argv with `taskset -c LIST` when a CPU set is configured (taskset execs ffmpeg in place, so
// the pid and process group stay ffmpeg's).
std::vector<std::string> with_cpu_set(std::vector<std::string> argv, const std::string& cpu_set);

// argv for file mode: ffmpeg + the assignment's argv with {input}/{output} replaced, and
// "-progress pipe:1 -nostats" added when the server's argv lacks -progress.
std::vector<std::string> build_file_argv(const protocol::Assignment& a, const std::string& ffmpeg,
                                         const std::string& input, const std::string& output);
// argv for stream mode: {input} is the engine's relay URL (source_relay.hpp: no credential, no TLS,
// no server address for ffmpeg), and the output goes to fd 3 ("pipe:3").
std::vector<std::string> build_stream_argv(const protocol::Assignment& a, const std::string& ffmpeg,
                                           const std::string& relay_url);

class Executor {
  public:
    Executor(EngineApi& api, FfmpegRunner& runner, StateStore& state, ExecutorSettings settings)
        : m_api(api), m_runner(runner), m_state(state), m_settings(std::move(settings)) {}

    AssignmentOutcome run(ActiveAssignment& active);

    std::filesystem::path assignment_dir(const std::string& assignment_id) const {
        return m_settings.work_dir / "assignments" / assignment_id;
    }

  private:
    struct Attempt;
    AssignmentOutcome run_file(ActiveAssignment& active, Attempt& at);
    AssignmentOutcome run_stream(ActiveAssignment& active, Attempt& at);
    AssignmentOutcome finish_stopped(ActiveAssignment& active);
    // The RunSpec for an ffmpeg argv: CPU set, sandbox (writable: `dir`; the host's network only
    // when `network`) and an environment with nothing of the engine's but PATH and the locale.
    RunSpec run_spec(std::vector<std::string> argv, const std::filesystem::path& dir, bool network) const;
    // ffmpeg ended badly: fail the assignment, permanent or transient as its exit and stderr say.
    AssignmentOutcome report_ffmpeg_exit(ActiveAssignment& active, const RunResult& rr);
    // The output against the assignment's stream plan: its duration as ffprobe read it (nullopt when
    // the assignment has no plan, so nothing was probed), OUTPUT_MISMATCH naming the differences, or
    // another error when ffprobe could not be run at all.
    Result<std::optional<double>> verify_file_output(ActiveAssignment& active,
                                                     const std::filesystem::path& output,
                                                     const std::filesystem::path& dir);
    AssignmentOutcome report_failure(ActiveAssignment& active, std::optional<int> exit_code,
                                     const std::string& stderr_tail, protocol::ErrorClass cls,
                                     const std::string& message);

    EngineApi& m_api;
    FfmpegRunner& m_runner;
    StateStore& m_state;
    ExecutorSettings m_settings;
};

}  // namespace distconv::engine
