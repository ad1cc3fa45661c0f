#include "common/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace distconv::process {
namespace {

std::atomic<int> g_child_nice{0};

void append_capped(std::string& s, const char* data, size_t n, size_t cap, bool keep_tail) {
    s.append(data, n);
    if (s.size() > cap) {
        if (keep_tail)
            s.erase(0, s.size() - cap);
        else
            s.resize(cap);
    }
}

}  // namespace

Result<Outcome> run(const std::vector<std::string>& argv, const Options& options) {
    if (argv.empty()) return Error(ErrorCode::InvalidArgument, "empty command");
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0)
        return Error(ErrorCode::Internal, std::string("pipe: ") + strerror(errno));
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        close(out_pipe[0]);
        close(out_pipe[1]);
        return Error(ErrorCode::Internal, std::string("pipe: ") + strerror(errno));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (rc != 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        return Error(ErrorCode::Unavailable, "cannot run " + argv[0] + ": " + strerror(rc));
    }

    if (int increment = g_child_nice.load(); increment > 0) {
        // Set from here, just after the start: posix_spawn has no attribute for it. The child's first
        // instants (its loader) may run at the parent's priority.
        errno = 0;
        int own = ::getpriority(PRIO_PROCESS, 0);
        if (errno == 0) ::setpriority(PRIO_PROCESS, static_cast<id_t>(pid), std::min(19, own + increment));
    }

    Outcome outcome;
    auto deadline = std::chrono::steady_clock::now() + options.timeout;
    std::array<pollfd, 2> fds{{{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}}};
    int open_fds = 2;
    std::array<char, 65536> buf{};
    while (open_fds > 0) {
        int wait_ms = -1;
        if (options.timeout.count() > 0) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                kill(pid, SIGKILL);
                outcome.timed_out = true;
                break;
            }
            wait_ms = static_cast<int>(left.count());
        }
        int n = poll(fds.data(), fds.size(), wait_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        for (size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t got = read(fds[i].fd, buf.data(), buf.size());
            if (got > 0) {
                append_capped(i == 0 ? outcome.out : outcome.err, buf.data(), static_cast<size_t>(got),
                              options.max_output, i == 1);
            } else if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) close(f.fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return outcome;
}

std::string tail_lines(const std::string& text, size_t max_lines) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(start, end - start);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (!line.empty()) lines.push_back(line);
        start = end + 1;
    }
    std::string out;
    size_t first = lines.size() > max_lines ? lines.size() - max_lines : 0;
    for (size_t i = first; i < lines.size(); ++i) {
        if (!out.empty()) out += "\n";
        out += lines[i];
    }
    return out;
}

void set_child_nice(int increment) {
    g_child_nice.store(std::clamp(increment, 0, 19));
}

}  // namespace distconv::process
