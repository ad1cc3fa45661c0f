#pragma once
// Stream mode without a network in the sandbox. ffmpeg reads the source over HTTP from the
// engine's relay (source_relay.hpp), but the sandbox has a network namespace of its own with
// nothing but its loopback. So the sandbox gets one listening socket on its own 127.0.0.1 and the
// engine serves it:
//
//   inside:  `distconv-engine sandbox-listen PORT -- ffmpeg ...` binds 127.0.0.1:PORT in the
//            sandbox's network namespace, hands the listening socket to the engine over fd 4
//            (SCM_RIGHTS), closes its copy and execs ffmpeg;
//   outside: SandboxPort receives it, accepts ffmpeg's connections on it and pumps each to the
//            relay on the host's 127.0.0.1.
//
// ffmpeg can reach that one port and nothing else: no route out of the sandbox exists.

#include "common/error.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace distconv::engine {

// The fd the sandboxed helper hands the listening socket over.
inline constexpr int k_sandbox_port_fd = 4;

// The engine's `sandbox-listen` mode (argv: program, "sandbox-listen", PORT, "--", command...).
// Never returns on success (it execs the command); 126 on failure.
int sandbox_listen_main(int argc, char** argv);

class SandboxPort {
  public:
    // Connections accepted in the sandbox go to 127.0.0.1:relay_port on the host.
    explicit SandboxPort(int relay_port);
    ~SandboxPort();
    SandboxPort(const SandboxPort&) = delete;
    SandboxPort& operator=(const SandboxPort&) = delete;

    // The end to give the child as fd k_sandbox_port_fd (RunSpec::pass_fd); -1 when it could not be made.
    int child_fd() const { return m_child; }
    // Call after the child started: receives the socket and serves it on a thread of its own.
    void start();
    void stop();
    int connections() const { return m_connections.load(); }

  private:
    void serve();
    void pump(int a, int b);

    int m_relay_port;
    int m_parent = -1;
    int m_child = -1;
    std::atomic<bool> m_stop{false};
    std::atomic<int> m_connections{0};
    std::thread m_thread;
    std::mutex m_mutex;
    std::vector<std::thread> m_pumps;
};

}  // namespace distconv::engine
