#include "transcoding_engine/runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

extern char** environ;

namespace distconv::engine {
namespace {

// What a child started with inherit_env = false keeps of the engine's environment.
bool passed_to_children(const std::string& name) {
    return name == "PATH" || name == "LANG" || name == "TZ" || name.rfind("LC_", 0) == 0;
}

// Moves fd above `min` (keeping O_CLOEXEC) so dup2 onto 0..3 in the child never meets itself.
int lift_fd(int fd, int min) {
    if (fd > min) return fd;
    int lifted = fcntl(fd, F_DUPFD_CLOEXEC, min + 1);
    close(fd);
    return lifted;
}

class PosixProcess final : public RunningProcess {
  public:
    PosixProcess(pid_t pid, int out_fd, int err_fd, int output_fd, std::size_t tail)
        : m_pid(pid), m_out(out_fd), m_err(err_fd), m_output(output_fd), m_tail_bytes(tail) {}

    ~PosixProcess() override {
        if (!m_reaped) {
            ::kill(-m_pid, SIGKILL);
            int status = 0;
            while (waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
            }
        }
        for (int fd : {m_out, m_err, m_output})
            if (fd >= 0) close(fd);
    }

    int output_fd() const override { return m_output; }
    int pid() const override { return m_pid; }

    void terminate(std::chrono::milliseconds grace) override {
        std::lock_guard lock(m_mutex);
        if (m_reaped) return;
        m_killed = true;
        ::kill(-m_pid, SIGTERM);
        auto deadline = std::chrono::steady_clock::now() + grace;
        if (!m_kill_deadline || deadline < *m_kill_deadline) m_kill_deadline = deadline;
    }

    RunResult wait(const OutputFn& on_stdout) override {
        RunResult result;
        std::array<pollfd, 2> fds{{{m_out, POLLIN, 0}, {m_err, POLLIN, 0}}};
        std::array<char, 16384> buf{};
        std::string err;
        int open_fds = 2;
        bool exited = false;
        int status = 0;
        while (!exited) {
            check_kill_deadline();
            if (open_fds > 0) {
                int n = poll(fds.data(), fds.size(), 100);
                if (n < 0 && errno != EINTR) break;
                for (size_t i = 0; n > 0 && i < fds.size(); ++i) {
                    if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                    ssize_t got = read(fds[i].fd, buf.data(), buf.size());
                    if (got > 0) {
                        if (i == 0) {
                            if (on_stdout) on_stdout(std::string_view(buf.data(), static_cast<size_t>(got)));
                        } else {
                            err.append(buf.data(), static_cast<size_t>(got));
                            if (err.size() > 2 * m_tail_bytes) err.erase(0, err.size() - m_tail_bytes);
                        }
                    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                        fds[i].fd = -1;
                        --open_fds;
                    }
                }
            }
            // The pipes may stay open after the exit (a grandchild holds them), so look at the child too.
            pid_t r = waitpid(m_pid, &status, WNOHANG);
            if (r == m_pid || (r < 0 && errno == ECHILD)) {
                exited = true;
            } else if (open_fds == 0) {
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
        }
        // Drain what is left in the pipes after the exit.
        for (auto& f : fds) {
            if (f.fd < 0) continue;
            int fl = fcntl(f.fd, F_GETFL);
            fcntl(f.fd, F_SETFL, fl | O_NONBLOCK);
            ssize_t got = 0;
            while ((got = read(f.fd, buf.data(), buf.size())) > 0) {
                if (f.fd == m_out) {
                    if (on_stdout) on_stdout(std::string_view(buf.data(), static_cast<size_t>(got)));
                } else {
                    err.append(buf.data(), static_cast<size_t>(got));
                }
            }
        }
        {
            std::lock_guard lock(m_mutex);
            m_reaped = true;
            result.killed = m_killed;
        }
        if (WIFEXITED(status))
            result.exit_code = WEXITSTATUS(status);
        else if (WIFSIGNALED(status))
            result.signal = WTERMSIG(status);
        if (err.size() > m_tail_bytes) err.erase(0, err.size() - m_tail_bytes);
        result.stderr_tail = std::move(err);
        return result;
    }

  private:
    void check_kill_deadline() {
        std::lock_guard lock(m_mutex);
        if (m_kill_deadline && std::chrono::steady_clock::now() >= *m_kill_deadline) {
            ::kill(-m_pid, SIGKILL);
            m_kill_deadline.reset();
        }
    }

    pid_t m_pid;
    int m_out;
    int m_err;
    int m_output;
    std::size_t m_tail_bytes;
    std::mutex m_mutex;
    bool m_reaped = false;
    bool m_killed = false;
    std::optional<std::chrono::steady_clock::time_point> m_kill_deadline;
};

}  // namespace

Result<std::unique_ptr<RunningProcess>> PosixRunner::start(const RunSpec& spec) {
    if (spec.argv.empty()) return Error(ErrorCode::InvalidArgument, "empty command");
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, data_pipe[2] = {-1, -1};
    auto close_all = [&] {
        for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], data_pipe[0], data_pipe[1]})
            if (fd >= 0) close(fd);
    };
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
        (spec.output_pipe && pipe2(data_pipe, O_CLOEXEC) != 0)) {
        int e = errno;
        close_all();
        return Error(ErrorCode::Internal, std::string("pipe: ") + strerror(e));
    }
    out_pipe[1] = lift_fd(out_pipe[1], 3);
    err_pipe[1] = lift_fd(err_pipe[1], 3);
    if (spec.output_pipe) data_pipe[1] = lift_fd(data_pipe[1], 3);

    // The environment: ours, with the spec's names replaced or added.
    std::map<std::string, std::string> env;
    for (char** e = environ; e && *e; ++e) {
        std::string item(*e);
        auto eq = item.find('=');
        if (eq == std::string::npos) continue;
        std::string name = item.substr(0, eq);
        if (!spec.inherit_env && !passed_to_children(name)) continue;
        env[name] = item.substr(eq + 1);
    }
    for (const auto& [k, v] : spec.env) env[k] = v;
    std::vector<std::string> env_items;
    for (const auto& [k, v] : env) env_items.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& item : env_items) envp.push_back(item.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_copy = spec.argv;
    std::vector<char*> args;
    for (auto& a : argv_copy) args.push_back(a.data());
    args.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
    if (spec.output_pipe) posix_spawn_file_actions_adddup2(&actions, data_pipe[1], 3);
    // A copy above 4 (so no dup2 onto 0..4 meets it), made fd 4 in the child and closed here after.
    int passed = spec.pass_fd >= 0 ? fcntl(spec.pass_fd, F_DUPFD_CLOEXEC, 5) : -1;
    if (passed >= 0) posix_spawn_file_actions_adddup2(&actions, passed, 4);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // A new process group, so a kill reaches whatever ffmpeg starts; default signal handling and
    // mask, since the engine blocks SIGTERM/SIGINT in its threads.
    sigset_t none, all;
    sigemptyset(&none);
    sigemptyset(&all);
    sigaddset(&all, SIGTERM);
    sigaddset(&all, SIGINT);
    sigaddset(&all, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (passed >= 0) close(passed);
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_pipe[1] = err_pipe[1] = -1;
    if (data_pipe[1] >= 0) {
        close(data_pipe[1]);
        data_pipe[1] = -1;
    }
    if (rc != 0) {
        close_all();
        return Error(ErrorCode::Unavailable, "cannot run " + spec.argv[0] + ": " + strerror(rc));
    }
    return std::unique_ptr<RunningProcess>(
        std::make_unique<PosixProcess>(pid, out_pipe[0], err_pipe[0], data_pipe[0], spec.stderr_tail_bytes));
}

}  // namespace distconv::engine
