#pragma once
// The sandbox ffmpeg runs in on Linux engines: bubblewrap (Debian's `bubblewrap` package) with a
// read-only system, the assignment's directory as the only writable (and the only visible) part of
// the work dir, a private /tmp and /dev, no /proc, no home, new user/PID/IPC/UTS/network namespaces
// (the network namespace has nothing but its own loopback), a new session (no terminal to inject
// into), no capabilities. It dies with the engine.
//
// Stream mode needs ffmpeg to read the engine's relay (source_relay.hpp): sandbox_port.hpp gives the
// sandbox one port on its own loopback, served by the engine. Only when the engine cannot do that
// (no path to its own executable) does a stream-mode sandbox share the host's network, and then
// ffmpeg still has -protocol_whitelist http,tcp and the pinned demuxer.

#include "common/error.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace distconv::engine {

enum class SandboxMode { Auto, Bwrap, Off };
std::optional<SandboxMode> parse_sandbox_mode(std::string_view text);
std::string_view to_string(SandboxMode m);

struct SandboxSpec {
    std::filesystem::path writable_dir{};  // the assignment's directory: bound read-write at the same path
    bool network = false;                  // false: a network namespace of its own (no route anywhere)
    // Programs the sandboxed argv runs that live outside the read-only system directories (a test's
    // fake ffmpeg): bound read-only at the same path.
    std::vector<std::filesystem::path> extra_programs{};
};

// `bwrap ... --` + argv. `bwrap` is the program (looked up in PATH without a '/').
std::vector<std::string> bwrap_argv(const std::string& bwrap, const SandboxSpec& spec,
                                    const std::vector<std::string>& argv);

// Checks that bubblewrap can start a process with the sandbox's settings on this machine (it needs
// unprivileged user namespaces, or root): runs `true` inside it, in a scratch directory under
// `scratch_parent`. An Error says why it cannot.
Status probe_bwrap(const std::string& bwrap, const std::filesystem::path& scratch_parent);

// The path of program `name` (as PATH would find it), or nullopt.
std::optional<std::filesystem::path> find_program(const std::string& name);

}  // namespace distconv::engine
