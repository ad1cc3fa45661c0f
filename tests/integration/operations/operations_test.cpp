// What a sysadmin relies on, against the real server: /metrics that promtool accepts and that counts
// requests by route and status, readiness that turns false when the database or a pool stops taking
// writes, and a request id on every answer and in the request's log line.

#include "tests/integration/dispatch/server_fixture.hpp"

#include <sqlite3.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <regex>

namespace distconv::itest {
namespace {

using namespace std::chrono_literals;

std::string root_url(int port, const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(port) + path;
}

class OperationsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        server = std::make_unique<InProcessServer>(dir / "data");
        user_key = server->key("alice", dispatch::Role::User);
    }
    test::TempDir dir;
    std::unique_ptr<InProcessServer> server;
    std::string user_key;
};

TEST_F(OperationsTest, MetricsPassPromtoolAndCountRequestsByRouteAndStatus) {
    auto c = server->client(user_key);
    // Some traffic: a JSON submit (202), a job read (200), an unknown job (404), an unknown route.
    auto submitted =
        call(c, "POST", "/jobs", R"({"source": {"filename": "a.mp4", "size": 10}})", "application/json");
    ASSERT_EQ(submitted.status, 202) << submitted.body;
    auto id = body_json(submitted)["job_id"].get<std::string>();
    EXPECT_EQ(call(c, "GET", "/jobs/" + id).status, 200);
    EXPECT_EQ(call(c, "GET", "/jobs/01NOSUCHJOB").status, 404);
    EXPECT_EQ(call(c, "GET", root_url(server->port(), "/nowhere")).status, 404);

    auto metrics = call(c, "GET", root_url(server->port(), "/metrics"));
    ASSERT_EQ(metrics.status, 200);
    EXPECT_EQ(metrics.header("Content-Type").value_or("").rfind("text/plain; version=0.0.4", 0), 0u);
    const std::string& text = metrics.body;
    for (const char* line :
         {"distconv_http_requests_total{method=\"POST\",route=\"/api/v1/jobs\",status=\"202\"} 1",
          "distconv_http_requests_total{method=\"GET\",route=\"/api/v1/jobs/{id}\",status=\"200\"} 1",
          "distconv_http_requests_total{method=\"GET\",route=\"/api/v1/jobs/{id}\",status=\"404\"} 1",
          "distconv_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
          "distconv_jobs{state=\"awaiting_upload\"} 1",
          "# TYPE distconv_http_request_duration_seconds histogram",
          "# TYPE distconv_job_duration_seconds histogram", "# TYPE distconv_queue_wait_seconds histogram",
          "# TYPE distconv_bytes_received_total counter", "# TYPE distconv_lease_expiries_total counter",
          "# TYPE distconv_job_retries_total counter", "distconv_engines{state=\"idle\"} 0"})
        EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << text;

    // Debian's promtool (package prometheus) checks the exposition format and the naming conventions.
    test::write_file(dir / "metrics.txt", text);
    std::string out;
    int rc = test::run_command(
        {"/bin/sh", "-c", "promtool check metrics < '" + (dir / "metrics.txt").string() + "' 2>&1"}, &out);
    EXPECT_EQ(rc, 0) << out << "\n" << text;
    EXPECT_EQ(out, "") << out;
}

TEST_F(OperationsTest, ReadinessFollowsTheDatabaseAndThePools) {
    auto c = server->client(user_key);
    auto ready = call(c, "GET", root_url(server->port(), "/readyz"));
    ASSERT_EQ(ready.status, 200) << ready.body;
    EXPECT_TRUE(body_json(ready)["ready"].get<bool>());

    // Another writer holds the database's write lock: the server cannot commit, so it is not ready.
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open((dir / "data" / "dispatch.db").c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
    auto locked = call(c, "GET", root_url(server->port(), "/readyz"));
    EXPECT_EQ(locked.status, 503) << locked.body;
    auto body = body_json(locked);
    EXPECT_FALSE(body["ready"].get<bool>());
    bool db_failed = false;
    for (const auto& check : body["checks"])
        if (check["name"] == "database") db_failed = !check["ok"].get<bool>();
    EXPECT_TRUE(db_failed) << locked.body;
    ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(other);
    EXPECT_EQ(call(c, "GET", root_url(server->port(), "/readyz")).status, 200);

    // The pool directory is replaced by a file (root ignores permissions, so this is how a test makes a
    // pool unwritable): not ready, and the pool check says which pool.
    auto pool = dir / "data" / "pool";
    stdfs::rename(pool, dir / "pool.moved");
    test::write_file(pool, "not a directory");
    auto broken = call(c, "GET", root_url(server->port(), "/readyz"));
    EXPECT_EQ(broken.status, 503) << broken.body;
    EXPECT_NE(broken.body.find("pool 'default' is not writable"), std::string::npos) << broken.body;
    // /healthz only says the process is alive.
    EXPECT_EQ(call(c, "GET", root_url(server->port(), "/healthz")).status, 200);
    stdfs::remove(pool);
    stdfs::rename(dir / "pool.moved", pool);
    EXPECT_EQ(call(c, "GET", root_url(server->port(), "/readyz")).status, 200);
}

TEST_F(OperationsTest, EveryAnswerCarriesARequestId) {
    auto c = server->client(user_key);
    auto given = call(c, "GET", "/jobs", "", "", {{"X-Request-Id", "trace-42.a_b:c"}});
    EXPECT_EQ(given.header("X-Request-Id").value_or(""), "trace-42.a_b:c");
    auto made = call(c, "GET", "/jobs");
    auto id = made.header("X-Request-Id").value_or("");
    EXPECT_GE(id.size(), 16u);
    EXPECT_NE(call(c, "GET", "/jobs").header("X-Request-Id").value_or(""), id);
    // Unsafe ids are replaced, not echoed.
    auto unsafe = call(c, "GET", "/jobs", "", "", {{"X-Request-Id", "bad id with spaces"}});
    EXPECT_NE(unsafe.header("X-Request-Id").value_or(""), "bad id with spaces");
    // Errors too.
    auto missing = call(c, "GET", "/jobs/01NOSUCHJOB", "", "", {{"X-Request-Id", "r-404"}});
    EXPECT_EQ(missing.status, 404);
    EXPECT_EQ(missing.header("X-Request-Id").value_or(""), "r-404");
}

// The child process logs one line per request with its id and the job it names, as JSON lines when
// asked, and never the key.
TEST(RequestLog, OneJsonLinePerRequestWithRequestAndJobIds) {
    test::TempDir dir;
    auto data = dir / "data";
    auto key = cli_key(data, "bob", "user");
    ASSERT_FALSE(key.empty());
    std::string id;
    {
        ChildServer child(data, {"--log-level", "info", "--log-format", "json"});
        {
            auto c = child.client(key);
            auto submitted = call(c, "POST", "/jobs", R"({"source": {"filename": "a.mp4", "size": 10}})",
                                  "application/json");
            ASSERT_EQ(submitted.status, 202);
            id = body_json(submitted)["job_id"].get<std::string>();
            ASSERT_EQ(call(c, "GET", "/jobs/" + id, "", "", {{"X-Request-Id", "look-for-me"}}).status, 200);
        }
        EXPECT_EQ(child.stop(), 0);
    }
    auto log = test::read_file(dir / "server-data.log");
    bool found = false;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
        EXPECT_EQ(line.find(key), std::string::npos) << "the key leaked: " << line;
        auto j = json::parse(line, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << "not a JSON line: " << line;
        if (j.value("request_id", "") != "look-for-me") continue;
        found = true;
        EXPECT_EQ(j.value("job_id", ""), id) << line;
        EXPECT_NE(j.value("msg", "").find("GET /api/v1/jobs/" + id + " -> 200"), std::string::npos) << line;
    }
    EXPECT_TRUE(found) << log;
}

}  // namespace
}  // namespace distconv::itest

// --- systemd: READY=1 when serving, WATCHDOG=1 while healthy, STOPPING=1 on the way out ------------

namespace distconv::itest {
namespace {

// A NOTIFY_SOCKET as systemd makes one: a datagram socket the daemon sends its state lines to, read
// all the time (as systemd does: a full socket would block the daemon's sd_notify).
class NotifySocket {
  public:
    explicit NotifySocket(const stdfs::path& path) {
        m_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
        EXPECT_EQ(::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
        m_reader = std::thread([this] {
            while (!m_stop) {
                pollfd p{m_fd, POLLIN, 0};
                if (::poll(&p, 1, 50) <= 0) continue;
                char buf[4096];
                ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
                if (n <= 0) continue;
                std::lock_guard lock(m_mutex);
                m_messages.append(buf, static_cast<size_t>(n)).push_back('\n');
            }
        });
    }
    ~NotifySocket() {
        m_stop = true;
        m_reader.join();
        ::close(m_fd);
    }
    // Waits until `done(all messages so far)` or the timeout.
    bool wait_for(const std::function<bool(const std::string&)>& done, std::chrono::milliseconds timeout) {
        return test::wait_until([&] { return done(messages()); }, timeout);
    }
    std::string messages() const {
        std::lock_guard lock(m_mutex);
        return m_messages;
    }

  private:
    int m_fd = -1;
    std::atomic<bool> m_stop{false};
    mutable std::mutex m_mutex;
    std::string m_messages;
    std::thread m_reader;
};

size_t count_of(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// The variables systemd sets for a Type=notify unit with WatchdogSec=, for the children forked while
// this object lives.
class SystemdEnvironment {
  public:
    SystemdEnvironment(const stdfs::path& socket, const std::string& watchdog_usec) {
        ::setenv("NOTIFY_SOCKET", socket.c_str(), 1);
        ::setenv("WATCHDOG_USEC", watchdog_usec.c_str(), 1);
    }
    ~SystemdEnvironment() {
        ::unsetenv("NOTIFY_SOCKET");
        ::unsetenv("WATCHDOG_USEC");
    }
};

TEST(Systemd, DispatchSaysReadyKeepsTheWatchdogFedAndSaysStopping) {
    test::TempDir dir;
    NotifySocket socket(dir / "notify.sock");
    std::unique_ptr<ChildServer> child;
    {
        SystemdEnvironment env(dir / "notify.sock", "200000");  // 0.2 s: a ping every 0.1 s
        child = std::make_unique<ChildServer>(dir / "data");
    }
    EXPECT_TRUE(socket.wait_for(
        [](const std::string& m) {
            return m.find("READY=1") != std::string::npos && count_of(m, "WATCHDOG=1") >= 3;
        },
        10s))
        << socket.messages();
    EXPECT_NE(socket.messages().find("STATUS=serving on http://127.0.0.1:" + std::to_string(child->port())),
              std::string::npos)
        << socket.messages();
    EXPECT_EQ(child->stop(), 0);
    EXPECT_TRUE(
        socket.wait_for([](const std::string& m) { return m.find("STOPPING=1") != std::string::npos; }, 5s))
        << socket.messages();
}

TEST(Systemd, EngineSaysReadyThenRegisteredAndFeedsTheWatchdog) {
    test::TempDir dir;
    auto data = dir / "data";
    auto engine_key = cli_key(data, "engine", "engine");
    ChildServer server(data);
    NotifySocket socket(dir / "notify.sock");
    pid_t pid = -1;
    {
        SystemdEnvironment env(dir / "notify.sock", "200000");
        std::vector<std::string> args{
            std::string(DISTCONV_BINARY_DIR) + "/transcoding_engine/distconv-engine",
            "--server",
            "http://127.0.0.1:" + std::to_string(server.port()),
            "--key",
            engine_key,
            "--work-dir",
            (dir / "engine").string(),
            "--benchmark",
            "off",
            "--log-file",
            (dir / "engine.log").string()};
        pid = ::fork();
        if (pid == 0) {
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
    }
    ASSERT_GT(pid, 0);
    bool seen = socket.wait_for(
        [](const std::string& m) {
            return m.find("READY=1") != std::string::npos &&
                   m.find("STATUS=registered as engine") != std::string::npos &&
                   count_of(m, "WATCHDOG=1") >= 3;
        },
        20s);
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(seen) << socket.messages() << "\n" << test::read_file(dir / "engine.log");
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_TRUE(
        socket.wait_for([](const std::string& m) { return m.find("STOPPING=1") != std::string::npos; }, 5s))
        << socket.messages();
}

}  // namespace
}  // namespace distconv::itest
