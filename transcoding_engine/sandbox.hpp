#pragma once
// The sandbox ffmpeg runs in on Linux engines: bubblewrap (Debian's `bubblewrap` package) with a
// read-only system, the assignment's directory as the only writable (and the only visible) part of
// the work dir, a private /tmp and /dev, no /proc, no home, new user/PID/IPC/UTS namespaces, a new
// session (no terminal to inject into), no capabilities, and in file mode no network at all (a new
// network namespace with only its own loopback). It dies with the engine.
//
// Stream mode keeps the host's network namespace: ffmpeg reads the engine's relay on 127.0.0.1
// (source_relay.hpp), which holds the only credential and verifies the server's TLS itself; ffmpeg
// gets -protocol_whitelist http,tcp and the pinned demuxer, so it has no reason or means to reach
// further (docs/operations.md, "Threat model").

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
    std::filesystem::path writable_dir;  // the assignment's directory: bound read-write at the same path
    bool network = false;                // false: a network namespace of its own (no route anywhere)
    // Programs the sandboxed argv runs that live outside the read-only system directories (a test's
    // fake ffmpeg): bound read-only at the same path.
    std::vector<std::filesystem::path> extra_programs;
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
