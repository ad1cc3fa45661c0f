#pragma once
// Running ffmpeg: start an argv (never a shell) in its own process group, stream its stdout to a
// callback, keep the tail of its stderr, optionally hand its output over a pipe (fd 3), kill it.

#include "common/error.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace distconv::engine {

struct RunSpec {
    std::vector<std::string> argv;  // argv[0] is the program (looked up in PATH without a '/')
    std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing in) the environment
    // false: the child gets only PATH, the locale and TZ of the engine's environment (plus `env`),
    // never the engine's own variables (DISTCONV_API_KEY, ...).
    bool inherit_env = true;
    bool output_pipe =
        false;  // the child gets a pipe's write end as fd 3 ("pipe:3"); read it with output_fd()
    int pass_fd =
        -1;  // when set, the child gets a copy of it as fd 4 (sandbox_port.hpp); the caller keeps its own
    std::size_t stderr_tail_bytes = 65536;
};

struct RunResult {
    std::optional<int> exit_code;  // nullopt: killed by a signal
    std::optional<int> signal;
    bool killed = false;  // terminate() was called
    std::string stderr_tail;
};

using OutputFn = std::function<void(std::string_view chunk)>;

class RunningProcess {
  public:
    virtual ~RunningProcess() = default;
    // The read end of the output pipe (RunSpec::output_pipe), else -1. The caller reads it until EOF
    // while another thread is inside wait(); the process owns the descriptor.
    virtual int output_fd() const = 0;
    // SIGTERM to the whole process group now, SIGKILL after `grace` if it is still there. Thread-safe,
    // does not block.
    virtual void terminate(std::chrono::milliseconds grace = std::chrono::seconds(3)) = 0;
    // Streams stdout to `on_stdout` until the process exits; returns how it ended. Call once.
    virtual RunResult wait(const OutputFn& on_stdout) = 0;
    virtual int pid() const = 0;
};

class FfmpegRunner {
  public:
    virtual ~FfmpegRunner() = default;
    virtual Result<std::unique_ptr<RunningProcess>> start(const RunSpec& spec) = 0;
};

// fork/exec via posix_spawn with pipes; the child leads a new process group.
class PosixRunner final : public FfmpegRunner {
  public:
    Result<std::unique_ptr<RunningProcess>> start(const RunSpec& spec) override;
};

}  // namespace distconv::engine
