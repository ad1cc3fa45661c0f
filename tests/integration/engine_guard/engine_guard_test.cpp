// The real distconv-engine against a fake dispatch server (cpp-httplib on 127.0.0.1) that answers
// its claims with malicious assignments: traversal ids, foreign source URLs, a tampered argv, a
// playlist demuxer, a header-injecting credential, an unknown container. The engine must refuse
// each before acting on it (transcoding_engine/assignment_check.hpp), report why with
// POST /assignments/{id}/fail, fetch nothing, run no ffmpeg, connect nowhere else and change
// nothing outside its work dir. A valid assignment at the end is the positive control: it runs
// for real (source GET, ffmpeg, output HEAD/PUT, complete), so the fake speaks enough of the
// protocol for the refusals above to mean something.

#include "common/hash.hpp"
#include "common/media/options.hpp"
#include "common/ulid.hpp"
#include "protocol/engines.hpp"
#include "tests/integration/engine_e2e/e2e_support.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;
namespace protocol = distconv::protocol;
namespace media = distconv::media;
namespace test = distconv::test;
namespace e2e = distconv::e2e;

namespace {

const std::string k_prefix = "/api/v1";
const std::string k_assignments = "/api/v1/assignments/";

std::string percent_decode(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
            i += 2;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

std::string printable(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7f) {
            out.push_back(static_cast<char>(c));
        } else {
            static constexpr char k_hex[] = "0123456789abcdef";
            out += "\\x";
            out.push_back(k_hex[c >> 4]);
            out.push_back(k_hex[c & 15]);
        }
    }
    return out;
}

protocol::Timestamp now_plus(std::chrono::seconds s) {
    return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()) + s;
}

// A TCP listener that accepts and counts every connection (and closes it at once): the engine
// must never connect to it.
class ConnectionTrap {
  public:
    ~ConnectionTrap() { stop(); }
    bool start(const std::string& address, int port = 0) {
        m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (m_fd < 0) return false;
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(static_cast<uint16_t>(port));
        if (::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1 ||
            ::bind(m_fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(m_fd, 16) != 0) {
            ::close(m_fd);
            m_fd = -1;
            return false;
        }
        socklen_t len = sizeof sa;
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&sa), &len);
        m_port = ntohs(sa.sin_port);
        m_address = address;
        m_thread = std::thread([this] {
            while (!m_stop) {
                pollfd p{m_fd, POLLIN, 0};
                if (::poll(&p, 1, 50) <= 0) continue;
                int c = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
                if (c < 0) continue;
                ++m_connections;
                ::close(c);
            }
        });
        return true;
    }
    void stop() {
        m_stop = true;
        if (m_thread.joinable()) m_thread.join();
        if (m_fd >= 0) ::close(m_fd);
        m_fd = -1;
    }
    int port() const { return m_port; }
    std::string origin() const { return "http://" + m_address + ":" + std::to_string(m_port); }
    int connections() const { return m_connections; }

  private:
    int m_fd = -1;
    int m_port = 0;
    std::string m_address;
    std::atomic<bool> m_stop{false};
    std::atomic<int> m_connections{0};
    std::thread m_thread;
};

// One request the fake saw: raw target and decoded path, the headers that matter, the body.
struct Seen {
    std::string method;
    std::string target;  // as sent (percent-encoded)
    std::string path;    // decoded by cpp-httplib
    std::string authorization;
    std::string fencing;
    std::string body;  // PUT bodies are kept by the fake, not here
    size_t body_size = 0;
    std::vector<std::string> header_names;
};

// The valid assignment the run ends with, and the source bytes served for it.
struct Control {
    std::string assignment_id;
    std::string job_id;
    std::string source;
};

// Just enough of the dispatch server's engine protocol: register, heartbeat, claim (a scripted
// list of assignments, then 204 after the long-poll wait), fail, and source/progress/output/
// complete. Every request is recorded before it is answered.
class FakeDispatch {
  public:
    FakeDispatch(std::string engine_key, Control control)
        : m_key(std::move(engine_key)), m_control(std::move(control)), m_engine_id(distconv::new_ulid()) {
        m_server.set_tcp_nodelay(true);
        m_server.new_task_queue = [] { return new httplib::ThreadPool(16); };
        auto h = [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); };
        // Every path, control characters included (std::regex's "." stops at a newline).
        const std::string any = R"([\s\S]*)";
        m_server.Get(any, h);  // GET and HEAD
        m_server.Post(any, h);
        m_server.Put(any, h);
        m_server.Patch(any, h);
        m_server.Delete(any, h);
        m_server.Options(any, h);
        m_server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
            std::lock_guard lock(m_mutex);
            m_logged.push_back(req.method + " " + req.target + " -> " + std::to_string(res.status));
        });
    }
    ~FakeDispatch() { stop(); }

    bool start() {
        m_port = m_server.bind_to_any_port("127.0.0.1");
        if (m_port <= 0) return false;
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        return test::wait_until([this] { return m_server.is_running(); });
    }
    void stop() {
        {
            std::lock_guard lock(m_mutex);
            m_stopping = true;
            m_cv.notify_all();
        }
        if (!m_thread.joinable()) return;
        m_server.stop();
        m_thread.join();
    }
    int port() const { return m_port; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }
    const std::string& engine_id() const { return m_engine_id; }

    void script(std::vector<json> claims) {
        std::lock_guard lock(m_mutex);
        m_script.assign(claims.begin(), claims.end());
    }
    std::vector<Seen> seen() const {
        std::lock_guard lock(m_mutex);
        return m_seen;
    }
    std::vector<std::string> logged() const {
        std::lock_guard lock(m_mutex);
        return m_logged;
    }
    // The control's complete request and uploaded output.
    std::optional<json> completed() const {
        std::lock_guard lock(m_mutex);
        auto it = m_completed.find(m_control.assignment_id);
        if (it == m_completed.end()) return std::nullopt;
        return it->second;
    }
    std::string output() const {
        std::lock_guard lock(m_mutex);
        auto it = m_outputs.find(m_control.assignment_id);
        return it == m_outputs.end() ? std::string() : it->second;
    }
    int heartbeats() const {
        std::lock_guard lock(m_mutex);
        return m_heartbeats;
    }
    size_t claims_left() const {
        std::lock_guard lock(m_mutex);
        return m_script.size();
    }

  private:
    static void error(httplib::Response& res, int status, const std::string& code,
                      const std::string& message) {
        res.status = status;
        res.set_content(json{{"error", {{"code", code}, {"message", message}}}}.dump(), "application/json");
    }
    bool engine_key(const httplib::Request& req) const {
        return req.get_header_value("Authorization") == "Bearer " + m_key;
    }

    void handle(const httplib::Request& req, httplib::Response& res) {
        Seen s;
        s.method = req.method;
        s.target = req.target;
        s.path = req.path;
        s.authorization = req.get_header_value("Authorization");
        s.fencing = req.get_header_value(std::string(protocol::k_fencing_token_header));
        s.body_size = req.body.size();
        if (req.method != "PUT") s.body = req.body;
        for (const auto& [name, _] : req.headers) s.header_names.push_back(name);
        {
            std::lock_guard lock(m_mutex);
            m_seen.push_back(s);
        }

        const std::string& path = req.path;
        const std::string engine = k_prefix + "/engines/" + m_engine_id;
        if (req.method == "POST" && path == k_prefix + "/engines") {
            if (!engine_key(req)) return error(res, 401, "UNAUTHENTICATED", "bad key");
            protocol::EngineRegistrationReply reply;
            reply.engine_id = m_engine_id;
            reply.heartbeat_interval_seconds = 1;
            reply.lease_seconds = 30;
            res.status = 201;
            res.set_content(protocol::to_json(reply).dump(), "application/json");
            return;
        }
        if (req.method == "POST" && path == engine + "/heartbeat") {
            if (!engine_key(req)) return error(res, 401, "UNAUTHENTICATED", "bad key");
            {
                std::lock_guard lock(m_mutex);
                ++m_heartbeats;
            }
            res.set_content(protocol::to_json(protocol::HeartbeatReply{}).dump(), "application/json");
            return;
        }
        if (req.method == "POST" && path == engine + "/claim") {
            if (!engine_key(req)) return error(res, 401, "UNAUTHENTICATED", "bad key");
            auto body = json::parse(req.body, nullptr, false);
            int wait = body.is_object() ? body.value("wait_seconds", 1) : 1;
            std::unique_lock lock(m_mutex);
            // The long poll: an assignment at once when one is scripted, else 204 after the wait.
            m_cv.wait_for(lock, std::chrono::seconds(std::clamp(wait, 0, 2)),
                          [&] { return m_stopping || !m_script.empty(); });
            if (m_stopping || m_script.empty()) {
                res.status = 204;
                return;
            }
            json a = std::move(m_script.front());
            m_script.pop_front();
            res.set_content(a.dump(), "application/json");
            return;
        }
        if (path.rfind(k_assignments, 0) == 0) {
            // The id is one percent-encoded segment of the target; its decoded form names the case.
            std::string target = req.target.substr(0, req.target.find('?'));
            if (target.rfind(k_assignments, 0) != 0) return error(res, 404, "NOT_FOUND", "no such resource");
            std::string rest = target.substr(k_assignments.size());
            auto slash = rest.find('/');
            if (slash == std::string::npos) return error(res, 404, "NOT_FOUND", "no such resource");
            const std::string id = percent_decode(rest.substr(0, slash));
            const std::string action = rest.substr(slash + 1);
            if (req.method == "POST" && action == "fail") {
                if (!engine_key(req)) return error(res, 401, "UNAUTHENTICATED", "bad key");
                protocol::AssignmentAck ack;
                ack.job_id = id == m_control.assignment_id ? m_control.job_id : distconv::new_ulid();
                ack.state = protocol::JobState::Queued;
                res.set_content(protocol::to_json(ack).dump(), "application/json");
                return;
            }
            // A honeypot: every assignment handed out is served as if it were genuine, so an engine
            // that acted on a malicious one would get far enough to show it (the test asserts that
            // only the control's requests came).
            const bool by_credential = req.get_header_value("Authorization").rfind("Bearer ", 0) == 0;
            if (action == "source" && req.method == "GET") {
                if (!by_credential) return error(res, 401, "UNAUTHENTICATED", "no credential");
                res.set_content(m_control.source, "application/octet-stream");
                return;
            }
            if (action == "progress" && req.method == "POST") {
                if (!engine_key(req)) return error(res, 401, "UNAUTHENTICATED", "bad key");
                protocol::ProgressReply reply;
                reply.continue_ = true;
                reply.lease_expires_at = now_plus(30s);
                res.set_content(protocol::to_json(reply).dump(), "application/json");
                return;
            }
            if (action == "output" && (req.method == "HEAD" || req.method == "PUT")) {
                if (!by_credential) return error(res, 401, "UNAUTHENTICATED", "no credential");
                std::lock_guard lock(m_mutex);
                auto& stored = m_outputs[id];
                if (req.method == "PUT") {
                    if (req.has_header("Content-Range"))
                        return error(res, 400, "INVALID_ARGUMENT", "no resume here");
                    stored = req.body;
                    protocol::OutputUploadStatus st{id, static_cast<std::int64_t>(stored.size())};
                    res.set_content(protocol::to_json(st).dump(), "application/json");
                }
                res.set_header(std::string(protocol::k_upload_offset_header), std::to_string(stored.size()));
                return;
            }
            if (action == "complete" && req.method == "POST") {
                if (!engine_key(req)) return error(res, 401, "UNAUTHENTICATED", "bad key");
                auto body = json::parse(req.body, nullptr, false);
                std::lock_guard lock(m_mutex);
                const std::string& stored = m_outputs[id];
                if (!body.is_object() ||
                    body.value("output_size", -1) != static_cast<std::int64_t>(stored.size()) ||
                    body.value("output_sha256", "") != distconv::sha256_hex(stored))
                    return error(res, 400, "INVALID_ARGUMENT",
                                 "size or SHA-256 differs from the stored output");
                m_completed[id] = body;
                protocol::AssignmentAck ack;
                ack.job_id = id == m_control.assignment_id ? m_control.job_id : distconv::new_ulid();
                ack.state = protocol::JobState::Completed;
                res.set_content(protocol::to_json(ack).dump(), "application/json");
                return;
            }
        }
        error(res, 404, "NOT_FOUND", "the fake does not serve " + req.method + " " + path);
    }

    httplib::Server m_server;
    std::thread m_thread;
    int m_port = 0;
    const std::string m_key;
    const Control m_control;
    const std::string m_engine_id;

    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_stopping = false;
    std::deque<json> m_script;
    std::vector<Seen> m_seen;
    std::vector<std::string> m_logged;
    std::map<std::string, json> m_completed;  // by assignment id
    std::map<std::string, std::string> m_outputs;
    int m_heartbeats = 0;
};

// Every file and directory under `root` (itself included) but the skipped paths: type, size, mtime.
struct Entry {
    unsigned mode = 0;
    std::int64_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const Entry&) const = default;
};
using Tree = std::map<std::string, Entry>;

Tree snapshot(const fs::path& root, const std::set<fs::path>& skip) {
    Tree out;
    auto add = [&](const fs::path& p) {
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0) return;
        out[fs::relative(p, root).string()] =
            Entry{static_cast<unsigned>(st.st_mode), static_cast<std::int64_t>(st.st_size),
                  static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
    };
    add(root);
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (skip.count(it->path())) {
            it.disable_recursion_pending();
            continue;
        }
        add(it->path());
    }
    return out;
}

std::string describe(const Tree& before, const Tree& after) {
    std::ostringstream out;
    for (const auto& [p, e] : before) {
        auto it = after.find(p);
        if (it == after.end())
            out << "  removed: " << p << "\n";
        else if (!(it->second == e))
            out << "  changed: " << p << " (size " << e.size << " -> " << it->second.size << ", mode "
                << std::oct << e.mode << " -> " << it->second.mode << std::dec << ", mtime " << e.mtime_ns
                << " -> " << it->second.mtime_ns << ")\n";
    }
    for (const auto& [p, e] : after)
        if (!before.count(p)) out << "  created: " << p << "\n";
    return out.str();
}

bool process_alive(pid_t pid) {
    std::string stat = test::read_file("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    if (stat.empty() || close == std::string::npos || close + 2 >= stat.size()) return false;
    return stat[close + 2] != 'Z';
}

std::vector<std::string> lines_with(const std::string& text, const std::string& needle) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.find(needle) != std::string::npos) out.push_back(line);
    return out;
}

struct Case {
    std::string name;
    std::string field;  // what the refusal must name
    protocol::Assignment a;
};

}  // namespace

TEST(EngineGuard, RefusesMaliciousAssignmentsReportsWhyAndStillRunsAValidOne) {
    const auto started = std::chrono::steady_clock::now();
    test::TempDir tmp;
    const fs::path root = tmp.path();
    const fs::path work = root / "work";
    const fs::path log = root / "engine.log";
    fs::create_directories(work);
    test::write_file(log, "");

    const fs::path clip = root / "clip.mov";
    ASSERT_TRUE(test::make_test_clip(clip, 1.0, 160, 120));
    const std::string source = test::read_file(clip);
    ASSERT_FALSE(source.empty());

    // Where the traversal ids would point: <work>/assignments/../../victim is <root>/victim, an
    // absolute id replaces the whole path, ".." names the work dir itself.
    for (const char* dir : {"victim", "victim-job", "victim-abs", "victim-abs/sub"}) {
        fs::create_directories(root / dir);
        test::write_file(root / dir / "keep.txt", std::string("sentinel ") + dir + "\n");
    }
    test::write_file(root / "keep.txt", "sentinel at the root\n");
    const bool abs_existed = fs::exists("/abs");

    // The assignments: a valid one as the template, each case changing one thing.
    auto options =
        media::parse_and_resolve(json{{"container", "mp4"},
                                      {"video", {{"codec", "libx264"}, {"preset", "ultrafast"}, {"crf", 35}}},
                                      {"audio", {{"codec", "aac"}, {"bitrate", "64k"}}}});
    ASSERT_TRUE(options) << options.error().to_string();
    std::int64_t next_token = 1;
    auto valid = [&](protocol::TransferMode mode = protocol::TransferMode::File) {
        protocol::Assignment a;
        a.assignment_id = distconv::new_ulid();
        a.job_id = distconv::new_ulid();
        a.fencing_token = next_token++;
        a.lease_expires_at = now_plus(30s);
        a.lease_seconds = 30;
        a.options = *options;
        a.source_format = "mov";
        a.transfer_mode = mode;
        a.ffmpeg_argv = protocol::assignment_argv(a.options, mode, "mov").value();
        a.source_url = k_assignments + a.assignment_id + "/source";
        a.source_size = static_cast<std::int64_t>(source.size());
        a.source_sha256 = distconv::sha256_hex(source);
        a.output_container = "mp4";
        a.output_filename = "clip.mp4";
        a.duration_seconds = 1.0;
        a.credential =
            "dca1." + a.assignment_id + "." + std::to_string(a.fencing_token) + ".1800000000000.0123abcd";
        a.credential_expires_at = now_plus(900s);
        return a;
    };
    const protocol::Assignment control = valid();

    ConnectionTrap foreign;  // another port on this host
    ASSERT_TRUE(foreign.start("127.0.0.1"));
    const std::string key = "guard-key-" + distconv::new_ulid();
    FakeDispatch fake(key, Control{control.assignment_id, control.job_id, source});
    ASSERT_TRUE(fake.start());
    ConnectionTrap other_host;  // another host (127.0.0.2) on the server's own port
    ASSERT_TRUE(other_host.start("127.0.0.2", fake.port())) << "cannot listen on 127.0.0.2:" << fake.port();

    std::vector<Case> cases;
    auto add = [&](std::string name, std::string field,
                   const std::function<void(protocol::Assignment&)>& edit,
                   protocol::TransferMode mode = protocol::TransferMode::File) {
        auto a = valid(mode);
        edit(a);
        cases.push_back({std::move(name), std::move(field), std::move(a)});
    };
    auto source_path = [](const protocol::Assignment& a) {
        return k_assignments + a.assignment_id + "/source";
    };
    const std::string server = fake.url();

    add("assignment_id ../../victim", "assignment_id", [](auto& a) { a.assignment_id = "../../victim"; });
    add("assignment_id ..", "assignment_id", [](auto& a) { a.assignment_id = ".."; });
    add("assignment_id absolute path", "assignment_id",
        [&](auto& a) { a.assignment_id = (root / "victim-abs").string(); });
    add("assignment_id /abs/path", "assignment_id", [](auto& a) { a.assignment_id = "/abs/path"; });
    add("assignment_id ULID-looking with /", "assignment_id",
        [](auto& a) { a.assignment_id = a.assignment_id.substr(0, 13) + "/" + a.assignment_id.substr(14); });
    add("assignment_id percent-encoded ../../victim", "assignment_id",
        [](auto& a) { a.assignment_id = "%2E%2E%2F%2E%2E%2Fvictim"; });
    add("assignment_id empty", "assignment_id", [](auto& a) { a.assignment_id = ""; });
    // Control characters must reach the fail URL percent-encoded (%0A), not as a broken request.
    add("assignment_id with a newline", "assignment_id",
        [](auto& a) { a.assignment_id = a.assignment_id + "\nFORGED line"; });
    add("job_id ../../victim-job", "job_id", [](auto& a) { a.job_id = "../../victim-job"; });
    add("source_url foreign port", "source_url",
        [&](auto& a) { a.source_url = foreign.origin() + source_path(a); });
    add("source_url foreign host, same port", "source_url",
        [&](auto& a) { a.source_url = other_host.origin() + source_path(a); });
    add("source_url userinfo", "source_url", [&](auto& a) {
        a.source_url = "http://guard:secret@127.0.0.1:" + std::to_string(fake.port()) + source_path(a);
    });
    add("source_url server as userinfo of a foreign authority", "source_url", [&](auto& a) {
        a.source_url = "http://127.0.0.1:" + std::to_string(fake.port()) +
                       "@127.0.0.1:" + std::to_string(foreign.port()) + source_path(a);
    });
    add("source_url default port", "source_url",
        [&](auto& a) { a.source_url = "http://127.0.0.1" + source_path(a); });
    add("source_url another assignment's source", "source_url",
        [&](auto& a) { a.source_url = server + k_assignments + control.assignment_id + "/source"; });
    add("source_url another path", "source_url",
        [&](auto& a) { a.source_url = k_prefix + "/jobs/" + a.job_id + "/source"; });
    add("source_url with a query", "source_url",
        [&](auto& a) { a.source_url = server + source_path(a) + "?x=1"; });
    add("source_url file:///etc/passwd", "source_url", [](auto& a) { a.source_url = "file:///etc/passwd"; });
    add("ffmpeg_argv extra -i /etc/passwd", "ffmpeg_argv", [](auto& a) {
        auto at = std::find(a.ffmpeg_argv.begin(), a.ffmpeg_argv.end(), "-map");
        ASSERT_NE(at, a.ffmpeg_argv.end());
        a.ffmpeg_argv.insert(at, {"-i", "/etc/passwd"});
    });
    add("ffmpeg_argv output outside the work dir", "ffmpeg_argv", [&](auto& a) {
        auto at = std::find(a.ffmpeg_argv.begin(), a.ffmpeg_argv.end(),
                            std::string(protocol::k_output_placeholder));
        ASSERT_NE(at, a.ffmpeg_argv.end());
        *at = (root / "stolen.mp4").string();
    });
    add("ffmpeg_argv -f lavfi input", "ffmpeg_argv", [](auto& a) {
        auto at =
            std::find(a.ffmpeg_argv.begin(), a.ffmpeg_argv.end(), std::string(protocol::k_input_placeholder));
        ASSERT_NE(at, a.ffmpeg_argv.end());
        auto k = at - a.ffmpeg_argv.begin();
        ASSERT_GE(k, 3);
        ASSERT_EQ(a.ffmpeg_argv[k - 1], "-i");
        ASSERT_EQ(a.ffmpeg_argv[k - 3], "-f");
        a.ffmpeg_argv[k - 2] = "lavfi";
        a.ffmpeg_argv[k] = "testsrc2=duration=1";
    });
    add("ffmpeg_argv without -protocol_whitelist", "ffmpeg_argv", [](auto& a) {
        auto at = std::find(a.ffmpeg_argv.begin(), a.ffmpeg_argv.end(), "-protocol_whitelist");
        ASSERT_NE(at, a.ffmpeg_argv.end());
        a.ffmpeg_argv.erase(at, at + 2);
    });
    add(
        "ffmpeg_argv of file mode in stream mode", "ffmpeg_argv",
        [](auto& a) {
            a.ffmpeg_argv = protocol::assignment_argv(a.options, protocol::TransferMode::File, "mov").value();
        },
        protocol::TransferMode::Stream);
    add("options.extra_args -i /etc/passwd (argv to match)", "options", [](auto& a) {
        a.options.extra_args = std::vector<std::string>{"-i", "/etc/passwd"};
        auto at = std::find(a.ffmpeg_argv.begin(), a.ffmpeg_argv.end(),
                            std::string(protocol::k_output_placeholder));
        a.ffmpeg_argv.insert(at - 2, {"-i", "/etc/passwd"});
    });
    add("source_format hls", "source_format", [](auto& a) { a.source_format = "hls"; });
    add("source_format concat", "source_format", [](auto& a) { a.source_format = "concat"; });
    add("source_format empty", "source_format", [](auto& a) { a.source_format = ""; });
    add("credential with CRLF header", "credential", [](auto& a) { a.credential = "dca1.tok\r\nX-Evil: 1"; });
    add("output_container unknown", "output_container", [](auto& a) { a.output_container = "exe"; });
    add("output_container differs from the job's", "output_container",
        [](auto& a) { a.output_container = "mkv"; });
    if (HasFatalFailure()) return;

    std::vector<json> script;
    std::map<std::string, size_t> case_of;  // assignment id -> case
    for (size_t i = 0; i < cases.size(); ++i) {
        ASSERT_TRUE(case_of.emplace(cases[i].a.assignment_id, i).second)
            << "duplicate id in " << cases[i].name;
        script.push_back(protocol::to_json(cases[i].a));
    }
    script.push_back(protocol::to_json(control));
    fake.script(std::move(script));

    const Tree before = snapshot(root, {work, log});

    // The engine exactly as an operator would start it, the key in its environment.
    ::setenv("DISTCONV_API_KEY", key.c_str(), 1);
    e2e::Daemon engine({e2e::engine_binary(), "--server", server, "--work-dir", work.string(), "--benchmark",
                        "off", "--claim-wait", "1s", "--heartbeat-interval", "500ms", "--hostname", "guard"},
                       log);
    ::unsetenv("DISTCONV_API_KEY");
    ASSERT_TRUE(engine.running());

    // Every scripted claim handed out and the control completed (or the engine gone).
    const bool done = test::wait_until([&] { return fake.completed() || !process_alive(engine.pid()); }, 20s);
    EXPECT_TRUE(done && fake.completed()) << "the control assignment did not complete; engine log:\n"
                                          << engine.log();
    EXPECT_EQ(fake.claims_left(), 0u);
    // Still alive and still talking to the server after all of it.
    const int heartbeats = fake.heartbeats();
    EXPECT_TRUE(test::wait_until([&] { return fake.heartbeats() > heartbeats; }, 5s))
        << "no heartbeat after the run";
    EXPECT_TRUE(process_alive(engine.pid())) << "the engine died; log:\n" << engine.log();

    // A clean stop: SIGTERM drains and exits 0.
    engine.signal(SIGTERM);
    EXPECT_TRUE(test::wait_until([&] { return !process_alive(engine.pid()); }, 10s))
        << "the engine did not stop";
    if (!process_alive(engine.pid())) {
        EXPECT_EQ(engine.wait_exit(), 0);
    }
    fake.stop();
    foreign.stop();
    other_host.stop();
    const std::string engine_log = engine.log();
    const auto seen = fake.seen();

    // 1. Each malicious assignment: exactly one fail report, at its own id as one path segment,
    //    with the case's fencing token, no exit code, and a message naming the field.
    std::vector<std::vector<json>> fails(cases.size());
    std::vector<std::string> unexpected;
    for (const auto& s : seen) {
        std::string id;
        std::string action;
        if (s.target.rfind(k_assignments, 0) == 0) {
            std::string rest = s.target.substr(k_assignments.size());
            auto slash = rest.find('/');
            if (slash != std::string::npos) {
                id = percent_decode(rest.substr(0, slash));
                action = rest.substr(slash + 1);
            }
        }
        bool allowed = false;
        if (s.method == "POST" && (s.target == k_prefix + "/engines" ||
                                   s.target == k_prefix + "/engines/" + fake.engine_id() + "/heartbeat" ||
                                   s.target == k_prefix + "/engines/" + fake.engine_id() + "/claim"))
            allowed = true;
        else if (s.method == "POST" && action == "fail" && case_of.count(id)) {
            allowed = true;
            fails[case_of[id]].push_back(json::parse(s.body, nullptr, false));
        } else if (id == control.assignment_id && !action.empty()) {
            allowed =
                (s.method == "GET" && action == "source") || (s.method == "POST" && action == "progress") ||
                (s.method == "HEAD" && action == "output") || (s.method == "PUT" && action == "output") ||
                (s.method == "POST" && action == "complete");
        }
        for (const auto& h : s.header_names)
            if (h.find("Evil") != std::string::npos || h.find("evil") != std::string::npos) allowed = false;
        if (!allowed)
            unexpected.push_back(s.method + " " + printable(s.target) + " (path " + printable(s.path) + ")");
    }
    EXPECT_TRUE(unexpected.empty()) << "requests the engine should not have made:\n  " << [&] {
        std::string out;
        for (const auto& u : unexpected) out += u + "\n  ";
        return out;
    }();
    for (size_t i = 0; i < cases.size(); ++i) {
        const auto& c = cases[i];
        SCOPED_TRACE(c.name + " (assignment_id '" + printable(c.a.assignment_id) + "')");
        if (fails[i].size() != 1 || !fails[i][0].is_object()) {
            ADD_FAILURE() << fails[i].size() << " fail reports";
            continue;
        }
        const json& f = fails[i][0];
        EXPECT_EQ(f.value("fencing_token", std::int64_t{0}), c.a.fencing_token);
        EXPECT_TRUE(f.contains("exit_code") && f["exit_code"].is_null()) << f.dump();
        const std::string message = f.value("message", "");
        EXPECT_EQ(message.rfind("assignment refused: " + c.field + " ", 0), 0u) << message;
        std::printf("[ refused ] %-55s -> %s\n", c.name.c_str(), message.c_str());
    }

    // 2. The fail reports went by the engine key; the control's bytes by its credential.
    for (const auto& s : seen) {
        if (s.target.find("/fail") != std::string::npos) {
            EXPECT_EQ(s.authorization, "Bearer " + key) << s.target;
        }
        if (s.target.find("/source") != std::string::npos || s.target.find("/output") != std::string::npos) {
            EXPECT_EQ(s.authorization, "Bearer " + control.credential) << s.method << " " << s.target;
            EXPECT_EQ(s.fencing, std::to_string(control.fencing_token)) << s.method << " " << s.target;
        }
    }

    // 3. Nothing connected to the foreign listeners.
    EXPECT_EQ(foreign.connections(), 0) << "connections to " << foreign.origin();
    EXPECT_EQ(other_host.connections(), 0) << "connections to " << other_host.origin();

    // 4. ffmpeg ran exactly once, for the control: the engine logs each command before it starts it.
    const std::string control_prefix = "assignment " + control.assignment_id + ": ";
    auto commands = lines_with(engine_log, "-nostdin");
    EXPECT_EQ(commands.size(), 1u);
    for (const auto& line : commands) {
        EXPECT_NE(line.find(control_prefix), std::string::npos)
            << "an ffmpeg command not for the control: " << line;
        EXPECT_NE(line.find((work / "assignments" / control.assignment_id).string()), std::string::npos)
            << line;
    }
    auto starts = lines_with(engine_log, "): starting");
    EXPECT_EQ(starts.size(), 1u);
    for (const auto& line : starts)
        EXPECT_NE(line.find("assignment " + control.assignment_id + " "), std::string::npos)
            << "an assignment other than the control started: " << line;
    EXPECT_GE(lines_with(engine_log, "assignment refused: ").size(), cases.size());
    EXPECT_TRUE(e2e::ffmpeg_pids_mentioning(root.string()).empty());

    // 5. Nothing outside the work dir changed; the work dir itself is intact and clean.
    const Tree after = snapshot(root, {work, log});
    EXPECT_TRUE(before == after) << "outside the work dir:\n" << describe(before, after);
    EXPECT_TRUE(fs::exists(work / "engine.db"));
    EXPECT_TRUE(fs::is_directory(work / "assignments"));
    EXPECT_TRUE(fs::is_empty(work / "assignments"));
    if (!abs_existed) {
        EXPECT_FALSE(fs::exists("/abs")) << "the engine created /abs";
    }
    for (const char* dir : {"victim", "victim-job", "victim-abs", "victim-abs/sub"})
        EXPECT_EQ(test::read_file(root / dir / "keep.txt"), std::string("sentinel ") + dir + "\n");

    // 6. The control really ran: its output is an MP4 with H.264 and AAC.
    auto complete = fake.completed();
    ASSERT_TRUE(complete);
    const std::string output = fake.output();
    ASSERT_FALSE(output.empty());
    EXPECT_EQ(complete->value("output_sha256", ""), distconv::sha256_hex(output));
    const fs::path received = root / "received.mp4";
    test::write_file(received, output);
    auto probe = e2e::ffprobe(received);
    ASSERT_TRUE(probe);
    EXPECT_NE(probe->format.find("mp4"), std::string::npos) << probe->format;
    EXPECT_EQ(probe->codecs, (std::vector<std::string>{"h264", "aac"}));

    // 7. Every request the server library answered went through the fake's handler.
    EXPECT_EQ(fake.logged().size(), seen.size());

    const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("[ guard   ] %zu malicious assignments scripted, %.1f s\n", cases.size(), elapsed);
}
