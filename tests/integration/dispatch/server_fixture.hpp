#pragma once
// Starts the REAL dispatch server for integration tests: in-process (DispatchServer on a thread) when
// the test needs the store or the services directly, or the distconv-dispatch binary as a child
// process when it needs a separate process (memory from /proc, SIGTERM, restart). Always port 0.
// Also: a tiny raw-socket HTTP helper for requests a well-behaved client will not send (oversized
// headers, broken framing) and for reading a Server-Sent Events stream as it arrives.

#include "common/http/client.hpp"
#include "dispatch_server/app.hpp"
#include "dispatch_server/config.hpp"
#include "dispatch_server/service/auth.hpp"
#include "dispatch_server/service/jobs.hpp"
#include "dispatch_server/store/store.hpp"
#include "tests/support/test_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace distconv::itest {

namespace stdfs = std::filesystem;
using nlohmann::json;

inline std::string dispatch_binary() {
    return std::string(DISTCONV_BINARY_DIR) + "/dispatch_server/distconv-dispatch";
}

inline http::ClientOptions client_options(int port, const std::string& key) {
    http::ClientOptions o;
    o.base_url = "http://127.0.0.1:" + std::to_string(port) + "/api/v1";
    o.api_key = key;
    o.retry.max_attempts = 1;
    o.connect_timeout = std::chrono::seconds(5);
    return o;
}
inline http::Client make_client(int port, const std::string& key) {
    return http::Client(client_options(port, key));
}

// One request with a client; fails the test (and returns an empty Response) on a transport error.
inline http::Response call(http::Client& c, const std::string& method, const std::string& path,
                           const std::string& body = "", const std::string& content_type = "",
                           http::HeaderList headers = {}) {
    http::Request r;
    r.method = method;
    r.path_or_url = path;
    r.body = body;
    r.content_type = content_type;
    r.headers = std::move(headers);
    r.retry = false;
    r.timeout = std::chrono::seconds(30);
    auto res = c.request(r);
    EXPECT_TRUE(res.ok()) << method << " " << path << ": " << (res.ok() ? "" : res.error().message);
    return res.ok() ? *res : http::Response{};
}

inline json body_json(const http::Response& r) {
    auto j = json::parse(r.body, nullptr, false);
    return j.is_discarded() ? json() : j;
}

// The error envelope's code ("" when the body is not an error envelope).
inline std::string error_code(const http::Response& r) {
    auto j = body_json(r);
    if (j.is_object() && j.contains("error") && j["error"].is_object() && j["error"].contains("code") &&
        j["error"]["code"].is_string())
        return j["error"]["code"].get<std::string>();
    return "";
}

inline const std::string k_boundary = "distconv-test-boundary-7MA4YWxkTrZu0gW";

struct Part {
    std::string name;
    std::string content;
    std::string filename;  // set for file parts
    std::string content_type = "application/octet-stream";
};

inline std::string multipart_body(const std::vector<Part>& parts) {
    std::string out;
    for (const auto& p : parts) {
        out += "--" + k_boundary + "\r\n";
        out += "Content-Disposition: form-data; name=\"" + p.name + "\"";
        if (!p.filename.empty()) out += "; filename=\"" + p.filename + "\"";
        out += "\r\n";
        if (!p.filename.empty()) out += "Content-Type: " + p.content_type + "\r\n";
        out += "\r\n" + p.content + "\r\n";
    }
    out += "--" + k_boundary + "--\r\n";
    return out;
}
inline std::string multipart_type() {
    return "multipart/form-data; boundary=" + k_boundary;
}

// POST /jobs as multipart (file + job).
inline http::Response submit_multipart(http::Client& c, const std::string& file_bytes, const json& job,
                                       const std::string& filename = "clip.mp4",
                                       http::HeaderList headers = {}) {
    return call(c, "POST", "/jobs",
                multipart_body({{"file", file_bytes, filename, "video/mp4"}, {"job", job.dump(), "", ""}}),
                multipart_type(), std::move(headers));
}

// Every regular file below `dir` (relative paths, sorted), to compare pool contents.
inline std::vector<std::string> files_under(const stdfs::path& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    if (!stdfs::exists(dir, ec)) return out;
    for (auto it = stdfs::recursive_directory_iterator(dir, ec); it != stdfs::recursive_directory_iterator();
         it.increment(ec)) {
        if (ec) break;
        if (it->is_regular_file(ec)) out.push_back(stdfs::relative(it->path(), dir).string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

// A small real clip, made once per test binary run (a few hundred KB).
inline const std::string& small_clip_bytes() {
    static std::string bytes = [] {
        auto dir = stdfs::temp_directory_path() / ("distconv-itest-clip-" + std::to_string(::getpid()));
        stdfs::create_directories(dir);
        auto path = dir / "clip.mp4";
        bool ok = test::make_test_clip(path, 2.0, 320, 240);
        std::string b = ok ? test::read_file(path) : std::string();
        std::error_code ec;
        stdfs::remove_all(dir, ec);
        return b;
    }();
    return bytes;
}

// --- in-process server ----------------------------------------------------------------------------

class InProcessServer {
  public:
    // `tweak` adjusts the config before finalize() (pools, retention, limits...).
    explicit InProcessServer(const stdfs::path& data_dir,
                             const std::function<void(dispatch::DispatchConfig&)>& tweak = nullptr) {
        m_config.data_dir = data_dir.string();
        m_config.listen = "127.0.0.1:0";
        m_config.http_threads = 16;
        m_config.log_level = "warn";
        if (tweak) tweak(m_config);
        auto st = dispatch::finalize(m_config);
        if (!st) throw std::runtime_error("finalize: " + st.error().message);
        auto server = dispatch::DispatchServer::create(m_config);
        if (!server) throw std::runtime_error("create: " + server.error().message);
        m_server = std::move(*server);
        m_thread = std::thread([this] { m_server->run(); });
        // Serving before the test goes on: a stop() that came before the listener started would be
        // lost (httplib stops only a running server) and the destructor would wait for ever.
        http::ClientOptions o = client_options(port(), "");
        o.base_url = "http://127.0.0.1:" + std::to_string(port());
        http::Client probe(o);
        for (int i = 0; i < 500; ++i) {
            auto r = probe.get("/healthz");
            if (r.ok() && r->status == 200) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    ~InProcessServer() {
        m_server->stop();
        if (m_thread.joinable()) m_thread.join();
    }
    int port() const { return m_server->port(); }
    dispatch::DispatchServer& server() { return *m_server; }
    dispatch::Store& store() { return m_server->store(); }
    dispatch::JobService& jobs() { return m_server->jobs(); }
    const dispatch::DispatchConfig& config() const { return m_config; }

    std::string key(const std::string& name, dispatch::Role role) {
        auto k = m_server->auth().create_key(name, role);
        if (!k) throw std::runtime_error("create_key: " + k.error().message);
        return k->secret;
    }
    http::Client client(const std::string& key) { return make_client(port(), key); }

  private:
    dispatch::DispatchConfig m_config;
    std::unique_ptr<dispatch::DispatchServer> m_server;
    std::thread m_thread;
};

// --- child-process server -------------------------------------------------------------------------

// Runs `distconv-dispatch ARGS...` and returns its stdout (trimmed) and exit code; stderr into *err.
inline int run_cli(const std::vector<std::string>& args, std::string* out = nullptr,
                   std::string* err = nullptr) {
    int out_pipe[2], err_pipe[2];
    if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) return -1;
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out_pipe[1], 1);
        ::dup2(err_pipe[1], 2);
        ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        std::vector<std::string> argv_s{dispatch_binary()};
        argv_s.insert(argv_s.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& s : argv_s) argv.push_back(s.data());
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    std::string o, e;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (::poll(fds, 2, 30000) <= 0) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buf[4096];
            ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            } else {
                (i == 0 ? o : e).append(buf, static_cast<size_t>(n));
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) ::close(f.fd);
    int status = 0;
    ::waitpid(pid, &status, 0);
    while (!o.empty() && (o.back() == '\n' || o.back() == '\r')) o.pop_back();
    if (out) *out = o;
    if (err) *err = e;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline std::string cli_key(const stdfs::path& data_dir, const std::string& name, const std::string& role) {
    std::string out, err;
    int rc = run_cli({"keys", "create", "--data-dir", data_dir.string(), "--role", role, "--name", name},
                     &out, &err);
    EXPECT_EQ(rc, 0) << err;
    return out;
}

class ChildServer {
  public:
    ChildServer(const stdfs::path& data_dir, std::vector<std::string> extra_args = {}) {
        std::vector<std::string> args_s{dispatch_binary(), "serve",       "--data-dir",     data_dir.string(),
                                        "--listen",        "127.0.0.1:0", "--http-threads", "8"};
        if (std::find(extra_args.begin(), extra_args.end(), "--log-level") == extra_args.end())
            args_s.insert(args_s.end(), {"--log-level", "warn"});
        args_s.insert(args_s.end(), extra_args.begin(), extra_args.end());
        int out_pipe[2];
        if (::pipe(out_pipe) != 0) throw std::runtime_error("pipe");
        auto log = (data_dir.parent_path() / ("server-" + data_dir.filename().string() + ".log")).string();
        m_pid = ::fork();
        if (m_pid == 0) {
            ::dup2(out_pipe[1], 1);
            int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) ::dup2(fd, 2);
            ::close(out_pipe[0]);
            std::vector<char*> argv;
            for (auto& s : args_s) argv.push_back(s.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(out_pipe[1]);
        m_stdout = out_pipe[0];
        // Read stdout until "listening on HOST:PORT".
        std::string text;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd p{m_stdout, POLLIN, 0};
            if (::poll(&p, 1, 200) <= 0) continue;
            char buf[256];
            ssize_t n = ::read(m_stdout, buf, sizeof buf);
            if (n <= 0) break;
            text.append(buf, static_cast<size_t>(n));
            auto at = text.find("listening on ");
            auto nl = at == std::string::npos ? std::string::npos : text.find('\n', at);
            if (nl != std::string::npos) {
                auto line = text.substr(at, nl - at);
                m_port = std::stoi(line.substr(line.rfind(':') + 1));
                break;
            }
        }
        if (m_port == 0) {
            stop();
            throw std::runtime_error("the server did not start: " + text + " / " + test::read_file(log));
        }
    }
    ~ChildServer() { stop(); }
    int port() const { return m_port; }
    pid_t pid() const { return m_pid; }
    http::Client client(const std::string& key) { return make_client(m_port, key); }

    // SIGTERM and wait; returns the exit code (-1 when killed by a signal).
    int stop() {
        if (m_pid <= 0) return m_exit;
        ::kill(m_pid, SIGTERM);
        int status = 0;
        bool exited = test::wait_until([&] { return ::waitpid(m_pid, &status, WNOHANG) == m_pid; },
                                       std::chrono::seconds(20));
        if (!exited) {
            ::kill(m_pid, SIGKILL);
            ::waitpid(m_pid, &status, 0);
        }
        m_exit = exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        m_pid = -1;
        if (m_stdout >= 0) ::close(m_stdout);
        m_stdout = -1;
        return m_exit;
    }

    // A field of /proc/PID/status in KiB (VmRSS, VmHWM).
    int64_t proc_kib(const std::string& field) const {
        std::ifstream in("/proc/" + std::to_string(m_pid) + "/status");
        std::string line;
        while (std::getline(in, line))
            if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
        return -1;
    }

  private:
    pid_t m_pid = -1;
    int m_stdout = -1;
    int m_port = 0;
    int m_exit = -1;
};

// Registers an engine (one slot) with `encoders` through the API; returns its id ("" after a failed
// assertion).
inline std::string register_engine(http::Client& engine, const json& encoders,
                                   int64_t free_disk_bytes = 1LL << 40) {
    auto reg = call(engine, "POST", "/engines",
                    json{{"hostname", "box"},
                         {"version", "t"},
                         {"slots", 1},
                         {"free_disk_bytes", free_disk_bytes},
                         {"capabilities",
                          {{"ffmpeg_version", "6.0"},
                           {"encoders", encoders},
                           {"decoders", json::array()},
                           {"hwaccels", json::array()}}}}
                        .dump(),
                    "application/json");
    EXPECT_EQ(reg.status / 100, 2) << reg.body;
    return body_json(reg).value("engine_id", "");
}

// /healthz answers 200 within 100 ms (the server has a worker free for it).
inline void expect_healthz_fast(int port) {
    auto anonymous = make_client(port, "");
    auto t0 = std::chrono::steady_clock::now();
    auto r = call(anonymous, "GET", "http://127.0.0.1:" + std::to_string(port) + "/healthz");
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(r.status, 200);
    EXPECT_LT(took, std::chrono::milliseconds(100))
        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
}

// --- raw sockets ----------------------------------------------------------------------------------

class RawConnection {
  public:
    explicit RawConnection(int port) {
        m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<uint16_t>(port));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            ::close(m_fd);
            m_fd = -1;
        }
    }
    ~RawConnection() {
        if (m_fd >= 0) ::close(m_fd);
    }
    bool ok() const { return m_fd >= 0; }
    bool send_all(const std::string& data) {
        size_t done = 0;
        while (done < data.size()) {
            ssize_t n = ::send(m_fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
            if (n <= 0) return false;
            done += static_cast<size_t>(n);
        }
        return true;
    }
    // Reads until `needle` is in what was received, the peer closes, or the timeout passes.
    bool read_until(const std::string& needle, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (m_received.find(needle) == std::string::npos) {
            if (m_closed) return false;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            pollfd p{m_fd, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            char buf[8192];
            ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
            if (n <= 0) {
                m_closed = true;
                return m_received.find(needle) != std::string::npos;
            }
            m_received.append(buf, static_cast<size_t>(n));
        }
        return true;
    }
    // Reads until the peer closes (true) or the timeout passes (false).
    bool read_to_close(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        read_until(std::string("\x01\x02\x03-never", 10), timeout);
        return m_closed;
    }
    const std::string& received() const { return m_received; }
    int status() const {
        if (m_received.rfind("HTTP/1.1 ", 0) != 0 || m_received.size() < 12) return 0;
        return std::stoi(m_received.substr(9, 3));
    }
    std::string body() const {
        auto at = m_received.find("\r\n\r\n");
        return at == std::string::npos ? "" : m_received.substr(at + 4);
    }

  private:
    int m_fd = -1;
    std::string m_received;
    bool m_closed = false;
};

}  // namespace distconv::itest
