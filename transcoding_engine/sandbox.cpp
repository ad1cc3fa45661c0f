#include "transcoding_engine/sandbox.hpp"

#include "common/process.hpp"

#include <unistd.h>

#include <cstdlib>

namespace distconv::engine {

namespace stdfs = std::filesystem;

std::optional<SandboxMode> parse_sandbox_mode(std::string_view text) {
    if (text == "auto") return SandboxMode::Auto;
    if (text == "bwrap") return SandboxMode::Bwrap;
    if (text == "off") return SandboxMode::Off;
    return std::nullopt;
}

std::string_view to_string(SandboxMode m) {
    switch (m) {
        case SandboxMode::Auto:
            return "auto";
        case SandboxMode::Bwrap:
            return "bwrap";
        case SandboxMode::Off:
            return "off";
    }
    return "auto";
}

namespace {

// What ffmpeg needs of the system, read-only. /etc is not bound whole: it holds the engine's own
// configuration (and perhaps its key); only the dynamic linker's files and the alternatives that
// Debian links some of ffmpeg's libraries through are.
constexpr const char* k_etc_files[] = {"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
                                       "/etc/alternatives", "/etc/localtime"};
constexpr const char* k_top_dirs[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};

bool under_system(const stdfs::path& p) {
    const std::string s = p.lexically_normal().string();
    return s.rfind("/usr/", 0) == 0;
}

}  // namespace

std::vector<std::string> bwrap_argv(const std::string& bwrap, const SandboxSpec& spec,
                                    const std::vector<std::string>& argv) {
    std::vector<std::string> out = {bwrap,           "--die-with-parent",
                                    "--new-session", "--unshare-user",
                                    "--unshare-ipc", "--unshare-pid",
                                    "--unshare-uts", "--disable-userns",
                                    "--cap-drop",    "ALL",
                                    "--ro-bind",     "/usr",
                                    "/usr"};
    if (!spec.network) out.push_back("--unshare-net");
    // Merged-/usr systems link /bin and friends into /usr; older ones have them as directories.
    for (const char* dir : k_top_dirs) {
        std::error_code ec;
        auto st = stdfs::symlink_status(dir, ec);
        if (ec) continue;
        if (stdfs::is_symlink(st)) {
            auto target = stdfs::read_symlink(dir, ec);
            if (!ec) out.insert(out.end(), {"--symlink", target.string(), dir});
        } else if (stdfs::is_directory(st)) {
            out.insert(out.end(), {"--ro-bind", dir, dir});
        }
    }
    for (const char* f : k_etc_files) out.insert(out.end(), {"--ro-bind-try", f, f});
    // Later mounts go on top of earlier ones: the private /tmp first, then what must show through it.
    out.insert(out.end(), {"--dev", "/dev", "--tmpfs", "/tmp"});
    for (const auto& p : spec.extra_programs)
        if (!under_system(p)) out.insert(out.end(), {"--ro-bind", p.string(), p.string()});
    const std::string dir = spec.writable_dir.string();
    out.insert(out.end(), {"--bind", dir, dir, "--chdir", dir, "--"});
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

std::optional<stdfs::path> find_program(const std::string& name) {
    if (name.find('/') != std::string::npos) {
        std::error_code ec;
        auto abs = stdfs::absolute(name, ec);
        if (ec || ::access(abs.c_str(), X_OK) != 0) return std::nullopt;
        return abs;
    }
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
        size_t end = dirs.find(':', start);
        if (end == std::string::npos) end = dirs.size();
        stdfs::path candidate = stdfs::path(dirs.substr(start, end - start)) / name;
        if (!candidate.parent_path().empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
        start = end + 1;
    }
    return std::nullopt;
}

Status probe_bwrap(const std::string& bwrap, const stdfs::path& scratch_parent) {
    if (!find_program(bwrap))
        return Error(ErrorCode::Unavailable, "bubblewrap ('" + bwrap + "') is not installed");
    std::error_code ec;
    const auto scratch = scratch_parent / ".sandbox-probe";
    stdfs::create_directories(scratch, ec);
    if (ec) return Error(ErrorCode::Internal, "cannot create " + scratch.string() + ": " + ec.message());
    SandboxSpec spec;
    spec.writable_dir = scratch;
    auto run = process::run(bwrap_argv(bwrap, spec, {"true"}), {std::chrono::seconds(20), 1 << 16});
    stdfs::remove_all(scratch, ec);
    if (!run) return run.error();
    if (run->timed_out)
        return Error(ErrorCode::Unavailable, "bubblewrap did not start a process within 20 s");
    if (run->exit_code != 0)
        return Error(ErrorCode::Unavailable, "bubblewrap cannot create the sandbox here (exit " +
                                                 std::to_string(run->exit_code) +
                                                 "): " + process::tail_lines(run->err, 2));
    return {};
}

}  // namespace distconv::engine
