// The HTTP client against a real cpp-httplib server on 127.0.0.1, port 0.

#include "common/http/client.hpp"
#include "common/hash.hpp"
#include "tests/support/test_support.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using distconv::Error;
using distconv::ErrorCode;
namespace http = distconv::http;
namespace fs = std::filesystem;

namespace {

std::string random_bytes(size_t n, uint32_t seed = 42) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
}

// Lets a handler block until the test (or its teardown) opens the gate.
class Gate {
  public:
    void open() {
        std::lock_guard lock(m_mutex);
        m_open = true;
        m_cv.notify_all();
    }
    void wait(std::chrono::milliseconds limit) {
        std::unique_lock lock(m_mutex);
        m_cv.wait_for(lock, limit, [&] { return m_open; });
    }

  private:
    std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_open = false;
};

class TestServer {
  public:
    TestServer() {
        m_server.set_tcp_nodelay(true);
        m_server.new_task_queue = [] { return new httplib::ThreadPool(8); };
    }
    ~TestServer() { stop(); }
    httplib::Server& operator*() { return m_server; }
    httplib::Server* operator->() { return &m_server; }

    void start() {
        m_port = m_server.bind_to_any_port("127.0.0.1");
        ASSERT_GT(m_port, 0);
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        ASSERT_TRUE(distconv::test::wait_until([this] { return m_server.is_running(); }));
        // One answered request first. The server library (a shared object not built with the
        // sanitizers) sets up function-local statics on the first request it parses; answering
        // that request publishes them to every later worker thread in a way ThreadSanitizer can
        // see. Without it, a test whose first request hangs in its handler (the timeout tests)
        // has a second worker read those statics with no visible hand-off, a false report.
        httplib::Client warm_up("127.0.0.1", m_port);
        ASSERT_TRUE(warm_up.Get("/warm-up"));
    }
    void stop() {
        if (!m_thread.joinable()) return;
        m_server.stop();
        m_thread.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }

  private:
    httplib::Server m_server;
    std::thread m_thread;
    int m_port = 0;
};

// A PUT handler that streams the body with a content reader and records what arrived.
struct Received {
    std::mutex mutex;
    std::string body;
    std::string content_length;
    std::string transfer_encoding;
    std::string content_range;
    std::string method;
    int hits = 0;
};

void record_stream(Received& got, const httplib::Request& req, httplib::Response& res,
                   const httplib::ContentReader& reader, int status = 200) {
    std::string body;
    reader([&](const char* data, size_t n) {
        body.append(data, n);
        return true;
    });
    std::lock_guard lock(got.mutex);
    ++got.hits;
    got.body = std::move(body);
    got.method = req.method;
    got.content_length = req.get_header_value("Content-Length");
    got.transfer_encoding = req.get_header_value("Transfer-Encoding");
    got.content_range = req.get_header_value("Content-Range");
    res.status = status;
    res.set_content(nlohmann::json{{"received", got.body.size()}}.dump(), "application/json");
}

// Serves `data` at /api/v1/file with Range support (cpp-httplib applies Range to a sized provider).
// On the first request it cuts the connection after `cut_after` bytes when that is set.
struct FileServer {
    std::string data;
    size_t cut_after = 0;
    // A pause after each 64 KiB piece of the first request, so the client sees the body arrive in
    // pieces whatever its receive buffer (on loopback it could otherwise take it all in one go).
    std::chrono::milliseconds pace{0};
    std::atomic<int> hits{0};
    std::mutex mutex;
    std::vector<std::string> ranges;  // the Range header of each request ("" when none)

    void install(httplib::Server& s) {
        s.Get("/api/v1/file", [this](const httplib::Request& req, httplib::Response& res) {
            const int n = ++hits;
            {
                std::lock_guard lock(mutex);
                ranges.push_back(req.get_header_value("Range"));
            }
            res.set_content_provider(data.size(), "application/octet-stream",
                                     [this, n](size_t offset, size_t length, httplib::DataSink& sink) {
                                         if (n == 1 && cut_after > 0 && offset >= cut_after)
                                             return false;  // drops the connection mid-body
                                         size_t end = offset + std::min<size_t>(length, 64 * 1024);
                                         if (n == 1 && cut_after > 0) end = std::min(end, cut_after);
                                         sink.write(data.data() + offset, end - offset);
                                         if (n == 1 && pace.count() > 0) std::this_thread::sleep_for(pace);
                                         return true;
                                     });
        });
    }
};

class HttpClientTest : public ::testing::Test {
  protected:
    void TearDown() override {
        gate.open();  // let blocked handlers finish so the server can stop promptly
        server.stop();
    }

    void start() { server.start(); }

    http::ClientOptions options() const {
        http::ClientOptions o;
        o.base_url = server.url() + "/api/v1";
        o.retry.initial_backoff = 1ms;
        o.retry.max_backoff = 20ms;
        o.connect_timeout = 2s;
        return o;
    }

    // State that handlers use lives here, before the server, so it outlives handlers still running
    // after the client gave up (timeouts, aborts).
    Gate gate;
    Received got;
    FileServer files;
    TestServer server;
    distconv::test::TempDir dir;
};

TEST_F(HttpClientTest, GetsAndPostsJson) {
    server->Get("/api/v1/hello", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(R"({"hello":"world","n":3})", "application/json");
    });
    server->Post("/api/v1/echo", [](const httplib::Request& req, httplib::Response& res) {
        auto body = nlohmann::json::parse(req.body);
        body["content_type"] = req.get_header_value("Content-Type");
        res.status = 201;
        res.set_content(body.dump(), "application/json");
    });
    start();
    http::Client client(options());

    auto r = client.get("/hello");
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("content-TYPE"), "application/json");
    EXPECT_EQ((*r->json())["n"], 3);

    auto j = client.call_json("POST", "/echo", nlohmann::json{{"a", 1}});
    ASSERT_TRUE(j.ok()) << j.error().to_string();
    EXPECT_EQ((*j)["a"], 1);
    EXPECT_EQ((*j)["content_type"], "application/json");

    auto p = client.post_json("echo", nlohmann::json{{"b", 2}});  // without the leading slash
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->status, 201);
}

TEST_F(HttpClientTest, SendsBearerKeyAndUserAgent) {
    std::string auth, agent;
    server->Get("/api/v1/me", [&](const httplib::Request& req, httplib::Response& res) {
        auth = req.get_header_value("Authorization");
        agent = req.get_header_value("User-Agent");
        res.set_content("{}", "application/json");
    });
    start();
    auto o = options();
    o.api_key = "k3y-s3cret";
    http::Client client(o);
    ASSERT_TRUE(client.call_json("GET", "/me").ok());
    EXPECT_EQ(auth, "Bearer k3y-s3cret");
    EXPECT_EQ(agent, "distconv/0.1");
}

TEST_F(HttpClientTest, ParsesTheApiErrorEnvelope) {
    server->Get("/api/v1/jobs/42", [](const httplib::Request&, httplib::Response& res) {
        res.status = 404;
        res.set_content(
            Error(ErrorCode::JobNotFound, "job 42 does not exist", {{"job_id", "42"}}).to_json().dump(),
            "application/json");
    });
    start();
    http::Client client(options());
    auto j = client.call_json("GET", "/jobs/42");
    ASSERT_FALSE(j.ok());
    EXPECT_EQ(j.error().code, ErrorCode::JobNotFound);
    EXPECT_EQ(j.error().message, "job 42 does not exist");
    EXPECT_EQ(j.error().details["job_id"], "42");

    // request() hands back the response itself; expect_success turns it into the error.
    auto r = client.get("/jobs/42");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 404);
    auto e = http::expect_success(std::move(r));
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code, ErrorCode::JobNotFound);
}

TEST_F(HttpClientTest, MapsAnErrorWithoutEnvelopeFromItsStatus) {
    server->Get("/api/v1/boom", [](const httplib::Request&, httplib::Response& res) {
        res.status = 500;
        res.set_content("oops", "text/plain");
    });
    start();
    auto o = options();
    o.api_key = "never-show-me";
    http::Client client(o);
    auto j = client.call_json("GET", "/boom");
    ASSERT_FALSE(j.ok());
    EXPECT_EQ(j.error().code, ErrorCode::Internal);
    EXPECT_EQ(j.error().message, "HTTP 500 from " + server.url() + "/api/v1/boom");
    EXPECT_EQ(j.error().to_json().dump().find("never-show-me"), std::string::npos);
}

TEST_F(HttpClientTest, RetriesUnavailableThenSucceeds) {
    std::atomic<int> hits{0};
    server->Get("/api/v1/flaky", [&](const httplib::Request&, httplib::Response& res) {
        if (++hits <= 2) {
            res.status = 503;
            res.set_header("Retry-After", "0");
            return;
        }
        res.set_content(R"({"ok":true})", "application/json");
    });
    start();
    http::Client client(options());
    auto j = client.call_json("GET", "/flaky");
    ASSERT_TRUE(j.ok()) << j.error().to_string();
    EXPECT_EQ((*j)["ok"], true);
    EXPECT_EQ(hits, 3);
}

TEST_F(HttpClientTest, DoesNotRetryClientErrors) {
    std::atomic<int> hits{0};
    server->Get("/api/v1/bad", [&](const httplib::Request&, httplib::Response& res) {
        ++hits;
        res.status = 400;
        res.set_content(Error::invalid("video.crf", "crf must be 0..51").to_json().dump(),
                        "application/json");
    });
    start();
    http::Client client(options());
    auto j = client.call_json("GET", "/bad");
    ASSERT_FALSE(j.ok());
    EXPECT_EQ(j.error().code, ErrorCode::InvalidArgument);
    EXPECT_EQ(j.error().details["field"], "video.crf");
    EXPECT_EQ(hits, 1);
}

TEST_F(HttpClientTest, PostIsRetriedOnlyWhenAskedTo) {
    std::atomic<int> hits{0};
    server->Post("/api/v1/submit", [&](const httplib::Request&, httplib::Response& res) {
        res.status = ++hits <= 1 ? 503 : 200;
    });
    start();
    http::Client client(options());
    auto r = client.post_json("/submit", nlohmann::json::object());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 503);
    EXPECT_EQ(hits, 1);

    http::Request req;
    req.method = "POST";
    req.path_or_url = "/submit";
    req.body = "{}";
    req.content_type = "application/json";
    req.retry = true;  // e.g. with an Idempotency-Key
    r = client.request(req);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(hits, 2);
}

TEST_F(HttpClientTest, GivesUpAfterMaxAttemptsWithTheLastError) {
    std::atomic<int> hits{0};
    server->Get("/api/v1/down", [&](const httplib::Request&, httplib::Response& res) {
        int n = ++hits;
        res.status = 503;
        res.set_content(Error(ErrorCode::Unavailable, "busy #" + std::to_string(n)).to_json().dump(),
                        "application/json");
    });
    start();
    http::Client client(options());
    auto j = client.call_json("GET", "/down");
    ASSERT_FALSE(j.ok());
    EXPECT_EQ(j.error().code, ErrorCode::Unavailable);
    EXPECT_EQ(j.error().message, "busy #4");
    EXPECT_EQ(hits, 4);
}

TEST_F(HttpClientTest, RetryAfterIsHonouredButCapped) {
    std::atomic<int> hits{0};
    server->Get("/api/v1/slow-down", [&](const httplib::Request&, httplib::Response& res) {
        if (++hits == 1) {
            res.status = 429;
            res.set_header("Retry-After", "3600");
            return;
        }
        res.set_content("{}", "application/json");
    });
    start();
    auto o = options();
    o.retry.max_backoff = 100ms;
    http::Client client(o);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(client.call_json("GET", "/slow-down").ok());
    auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, 100ms);  // the Retry-After wait, capped at max_backoff
    EXPECT_LT(waited, 2s);
    EXPECT_EQ(hits, 2);
}

TEST_F(HttpClientTest, ConnectionRefusedIsUnavailable) {
    // Take a free port, then close it so nothing listens there.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    const int port = ntohs(addr.sin_port);
    ::close(fd);

    http::ClientOptions o;
    o.base_url = "http://127.0.0.1:" + std::to_string(port) + "/api/v1";
    o.api_key = "secret-key-123";
    o.retry.initial_backoff = 1ms;
    o.retry.max_backoff = 5ms;
    http::Client client(o);
    auto t0 = std::chrono::steady_clock::now();
    auto j = client.call_json("GET", "/jobs?token=abc");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    ASSERT_FALSE(j.ok());
    EXPECT_EQ(j.error().code, ErrorCode::Unavailable);
    EXPECT_TRUE(j.error().retryable);
    EXPECT_NE(j.error().message.find("127.0.0.1"), std::string::npos) << j.error().message;
    EXPECT_NE(j.error().message.find("token=REDACTED"), std::string::npos) << j.error().message;
    const auto dumped = j.error().to_json().dump();
    EXPECT_EQ(dumped.find("secret-key-123"), std::string::npos);
    EXPECT_EQ(dumped.find("abc"), std::string::npos);
}

TEST_F(HttpClientTest, RequestTimeoutIsUnavailableAndQuick) {
    std::atomic<int> hits{0};
    server->Get("/api/v1/hang", [&](const httplib::Request&, httplib::Response& res) {
        ++hits;
        gate.wait(10s);
        res.set_content("late", "text/plain");
    });
    start();
    auto o = options();
    o.request_timeout = 150ms;
    o.retry.max_attempts = 2;
    http::Client client(o);
    auto t0 = std::chrono::steady_clock::now();
    auto r = client.get("/hang");
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Unavailable);
    EXPECT_TRUE(r.error().retryable);
    EXPECT_LT(took, 2s);
    // A timeout is retried: the server sees the second request (it may reach the handler after the
    // client has already given up on it, so wait for it rather than read the count at once).
    EXPECT_TRUE(distconv::test::wait_until([&] { return hits == 2; })) << hits.load();

    // A per-request timeout overrides the client's.
    http::Request req;
    req.path_or_url = "/hang";
    req.timeout = 50ms;
    req.retry = false;
    t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(client.request(req).ok());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

TEST_F(HttpClientTest, AnIdleLongPollCanBeAbortedByTheCaller) {
    server->Get("/api/v1/hang", [&](const httplib::Request&, httplib::Response& res) {
        gate.wait(20s);
        res.set_content("late", "text/plain");
    });
    start();
    http::Client client(options());
    std::atomic<bool> abort{false};
    http::Request req;
    req.path_or_url = "/hang";
    req.retry = false;
    req.timeout = 60s;
    req.progress = [&](uint64_t, uint64_t) { return !abort.load(); };
    std::thread aborter([&] { abort = true; });
    auto r = client.request(req);
    aborter.join();
    // Nothing ever arrived, yet the caller's "stop" was heard (libcurl asks about once a second).
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("aborted by the caller"), std::string::npos) << r.error().message;
    gate.open();
}

TEST_F(HttpClientTest, ConnectTimeoutIsUnavailable) {
    // A listener with a full backlog that never accepts: further SYNs are dropped, so connect() hangs.
    int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(lfd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(lfd, 0), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    std::vector<int> fillers;
    bool stalled = false;
    for (int i = 0; i < 8 && !stalled; ++i) {
        int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        fillers.push_back(c);
        if (::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno == EINPROGRESS) {
            // Still in progress after a moment means the backlog is full.
            stalled = !distconv::test::wait_until(
                [&] {
                    int err = 0;
                    socklen_t l = sizeof err;
                    fd_set w;
                    FD_ZERO(&w);
                    FD_SET(c, &w);
                    timeval tv{0, 0};
                    return ::select(c + 1, nullptr, &w, nullptr, &tv) > 0 &&
                           ::getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &l) == 0;
                },
                100ms);
        }
    }
    auto cleanup = [&] {
        for (int c : fillers) ::close(c);
        ::close(lfd);
    };
    if (!stalled) {
        cleanup();
        GTEST_SKIP() << "could not make connect() stall on this system";
    }
    http::ClientOptions o;
    o.base_url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    o.connect_timeout = 200ms;
    o.retry.max_attempts = 1;
    http::Client client(o);
    auto t0 = std::chrono::steady_clock::now();
    auto r = client.get("/x");
    const auto took = std::chrono::steady_clock::now() - t0;
    cleanup();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Unavailable);
    EXPECT_GE(took, 150ms);
    EXPECT_LT(took, 2s);
}

TEST_F(HttpClientTest, ReusesConnectionsAndIsSafeAcrossThreads) {
    std::mutex mutex;
    std::set<int> ports;
    std::atomic<int> hits{0};
    server->Get("/api/v1/ping", [&](const httplib::Request& req, httplib::Response& res) {
        {
            std::lock_guard lock(mutex);
            ports.insert(req.remote_port);
        }
        ++hits;
        res.set_content("pong", "text/plain");
    });
    start();
    http::Client client(options());
    for (int i = 0; i < 3; ++i) ASSERT_EQ(client.get("/ping")->body, "pong");
    EXPECT_EQ(ports.size(), 1u);  // one kept-alive connection

    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 15; ++i) {
                auto r = client.get("/ping");
                if (r.ok() && r->body == "pong") ++ok;
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok, 60);
    EXPECT_EQ(hits, 63);
}

TEST_F(HttpClientTest, UploadsALargeFileStreamingFromDisk) {
    server->Put("/api/v1/upload",
                [&](const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& reader) { record_stream(got, req, res, reader); });
    start();
    const std::string data = random_bytes(8 << 20);
    const fs::path file = dir / "big.bin";
    distconv::test::write_file(file, data);

    http::Client client(options());
    std::vector<uint64_t> seen;
    uint64_t last_total = 0;
    http::Upload up;
    up.path_or_url = "/upload";
    up.progress = [&](uint64_t done, uint64_t total) {
        seen.push_back(done);
        last_total = total;
        return true;
    };
    auto r = client.upload_file(up, file);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(got.content_length, std::to_string(data.size()));
    EXPECT_TRUE(got.body == data) << "upload differs: " << got.body.size() << " bytes arrived";
    ASSERT_FALSE(seen.empty());
    EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
    EXPECT_EQ(seen.back(), data.size());
    EXPECT_EQ(last_total, data.size());
}

TEST_F(HttpClientTest, UploadsFromAnOffsetWithExtraHeaders) {
    server->Put("/api/v1/upload",
                [&](const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& reader) { record_stream(got, req, res, reader); });
    start();
    const std::string data = random_bytes(100'000, 7);
    const fs::path file = dir / "src.bin";
    distconv::test::write_file(file, data);
    http::Client client(options());
    http::Upload up;
    up.path_or_url = "/upload";
    up.headers = {{"Content-Range", "bytes 40000-99999/100000"}};
    auto r = client.upload_file(up, file, 40'000);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_TRUE(got.body == data.substr(40'000));
    EXPECT_EQ(got.content_range, "bytes 40000-99999/100000");

    EXPECT_FALSE(client.upload_file(up, file, 100'001).ok());
    EXPECT_FALSE(client.upload_file(up, dir / "missing.bin").ok());
}

TEST_F(HttpClientTest, RetriedFileUploadResendsFromTheOffset) {
    server->Put("/api/v1/upload", [&](const httplib::Request& req, httplib::Response& res,
                                      const httplib::ContentReader& reader) {
        int hits_before;
        {
            std::lock_guard lock(got.mutex);
            hits_before = got.hits;
        }
        record_stream(got, req, res, reader, hits_before == 0 ? 503 : 200);
    });
    start();
    const std::string data = random_bytes(300'000, 9);
    const fs::path file = dir / "src.bin";
    distconv::test::write_file(file, data);
    http::Client client(options());
    http::Upload up;
    up.path_or_url = "/upload";
    auto r = client.upload_file(up, file, 1000);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(got.hits, 2);
    EXPECT_TRUE(got.body == data.substr(1000));
}

TEST_F(HttpClientTest, UploadsFromACallbackChunkedOrSized) {
    server->Post("/api/v1/stream",
                 [&](const httplib::Request& req, httplib::Response& res,
                     const httplib::ContentReader& reader) { record_stream(got, req, res, reader); });
    start();
    http::Client client(options());
    const std::string data = random_bytes(200'000, 3);
    auto make_reader = [&data](size_t& pos) {
        return [&data, &pos](char* buf, size_t size) {
            size_t n = std::min({size, data.size() - pos, size_t{7000}});  // odd piece sizes
            std::memcpy(buf, data.data() + pos, n);
            pos += n;
            return n;
        };
    };
    http::Upload up;
    up.method = "POST";
    up.path_or_url = "/stream";

    size_t pos = 0;
    auto r = client.upload_callback(up, make_reader(pos));  // unknown size: chunked
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(got.method, "POST");
    EXPECT_EQ(got.transfer_encoding, "chunked");
    EXPECT_TRUE(got.body == data);

    pos = 0;
    r = client.upload_callback(up, make_reader(pos), data.size());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(got.content_length, std::to_string(data.size()));
    EXPECT_TRUE(got.body == data);

    // The reader can abort the upload.
    r = client.upload_callback(
        up, [](char*, size_t) { return http::k_read_abort; }, 10);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().details["aborted"], true);
}

TEST_F(HttpClientTest, DownloadsToAFile) {
    files.data = random_bytes(1 << 20, 11);
    files.install(*server);
    start();
    http::Client client(options());
    const fs::path dest = dir / "out.bin";
    auto r = client.download_to_file("/file", dest);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->size, files.data.size());
    EXPECT_EQ(r->resumed_from, 0u);
    EXPECT_TRUE(distconv::test::read_file(dest) == files.data);
    EXPECT_EQ(r->sha256, distconv::sha256_hex(files.data));  // hashed while written
    EXPECT_FALSE(fs::exists(dir / "out.bin.part"));
}

TEST_F(HttpClientTest, ResumesAnInterruptedDownload) {
    files.data = random_bytes(1 << 20, 12);
    files.cut_after = 300'000;
    files.install(*server);
    start();
    http::Client client(options());
    const fs::path dest = dir / "out.bin";
    std::vector<uint64_t> seen;
    http::DownloadOptions opts;
    opts.progress = [&](uint64_t done, uint64_t) {
        seen.push_back(done);
        return true;
    };
    auto r = client.download_to_file("/file", dest, opts);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->status, 206);
    EXPECT_EQ(r->attempts, 2);
    EXPECT_EQ(files.hits, 2);
    ASSERT_EQ(files.ranges.size(), 2u);
    EXPECT_EQ(files.ranges[0], "");
    EXPECT_EQ(files.ranges[1], "bytes=300000-");
    EXPECT_TRUE(distconv::test::read_file(dest) == files.data);
    EXPECT_EQ(r->sha256, distconv::sha256_hex(files.data));  // across the cut
    EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));   // resuming never goes backwards
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back(), files.data.size());
}

TEST_F(HttpClientTest, ResumesAPreExistingPartialFile) {
    files.data = random_bytes(500'000, 13);
    files.install(*server);
    start();
    const fs::path dest = dir / "out.bin";
    distconv::test::write_file(dir / "out.bin.part", files.data.substr(0, 123'456));
    http::Client client(options());
    auto r = client.download_to_file("/file", dest);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->resumed_from, 123'456u);
    EXPECT_EQ(r->status, 206);
    ASSERT_EQ(files.ranges.size(), 1u);
    EXPECT_EQ(files.ranges[0], "bytes=123456-");
    EXPECT_TRUE(distconv::test::read_file(dest) == files.data);
    EXPECT_EQ(r->sha256, distconv::sha256_hex(files.data));  // the kept prefix is hashed too

    // resume = false starts from zero even when a .part exists.
    distconv::test::write_file(dir / "again.bin.part", "garbage");
    http::DownloadOptions opts;
    opts.resume = false;
    r = client.download_to_file("/file", dir / "again.bin", opts);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(files.ranges.back(), "");
    EXPECT_TRUE(distconv::test::read_file(dir / "again.bin") == files.data);
    EXPECT_EQ(r->sha256, distconv::sha256_hex(files.data));
}

TEST_F(HttpClientTest, RestartsFromZeroWhenTheServerIgnoresRange) {
    const std::string data = random_bytes(200'000, 14);
    std::string range_seen;
    server->Get("/api/v1/plain", [&](const httplib::Request& req, httplib::Response& res) {
        range_seen = req.get_header_value("Range");
        res.status = 200;  // a chunked body with an explicit 200 is sent whole, Range or not
        res.set_chunked_content_provider(
            "application/octet-stream", [&](size_t offset, httplib::DataSink& sink) {
                if (offset >= data.size()) {
                    sink.done();
                    return true;
                }
                sink.write(data.data() + offset, std::min<size_t>(data.size() - offset, 32 * 1024));
                return true;
            });
    });
    start();
    const fs::path dest = dir / "out.bin";
    distconv::test::write_file(dir / "out.bin.part", std::string(5000, 'x'));
    http::Client client(options());
    auto r = client.download_to_file("/plain", dest);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(range_seen, "bytes=5000-");
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->resumed_from, 0u);
    EXPECT_TRUE(distconv::test::read_file(dest) == data);
    EXPECT_EQ(r->sha256, distconv::sha256_hex(data));  // the dropped prefix is not in the hash
}

TEST_F(HttpClientTest, AnAlreadyCompletePartialFileIsFinished) {
    const std::string data = random_bytes(50'000, 15);
    server->Get("/api/v1/whole", [&](const httplib::Request&, httplib::Response& res) {
        res.set_content(data, "application/octet-stream");  // answers 416 to bytes=50000-
    });
    start();
    const fs::path dest = dir / "out.bin";
    distconv::test::write_file(dir / "out.bin.part", data);
    http::Client client(options());
    auto r = client.download_to_file("/whole", dest);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->status, 416);
    EXPECT_EQ(r->size, data.size());
    EXPECT_TRUE(distconv::test::read_file(dest) == data);
    EXPECT_EQ(r->sha256, distconv::sha256_hex(data));

    // A .part longer than the resource is not a prefix of it: start again from zero.
    distconv::test::write_file(dir / "long.bin.part", data + "extra");
    r = client.download_to_file("/whole", dir / "long.bin");
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_TRUE(distconv::test::read_file(dir / "long.bin") == data);
    EXPECT_EQ(r->sha256, distconv::sha256_hex(data));
}

TEST_F(HttpClientTest, DownloadErrorsAreApiErrors) {
    std::atomic<int> hits{0};
    server->Get("/api/v1/gone", [&](const httplib::Request&, httplib::Response& res) {
        ++hits;
        res.status = 410;
        res.set_content(Error(ErrorCode::ResultGone, "expired").to_json().dump(), "application/json");
    });
    start();
    http::Client client(options());
    const fs::path dest = dir / "out.bin";
    auto r = client.download_to_file("/gone", dest);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::ResultGone);
    EXPECT_EQ(r.error().message, "expired");
    EXPECT_EQ(hits, 1);
    EXPECT_FALSE(fs::exists(dest));
    EXPECT_EQ(fs::file_size(dir / "out.bin.part"), 0u);  // the error body is not written to the file
}

TEST_F(HttpClientTest, ProgressCanAbortADownload) {
    files.data = random_bytes(2 << 20, 16);
    files.pace = std::chrono::milliseconds(2);
    files.install(*server);
    start();
    http::Client client(options());
    const fs::path dest = dir / "out.bin";
    uint64_t last = 0;
    http::DownloadOptions opts;
    opts.progress = [&](uint64_t done, uint64_t total) {
        EXPECT_GE(done, last);
        last = done;
        return done == 0 || done >= total;  // abort at the first real progress
    };
    auto r = client.download_to_file("/file", dest, opts);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().details["aborted"], true);
    EXPECT_FALSE(r.error().retryable);
    EXPECT_EQ(files.hits, 1);  // an abort is not retried
    EXPECT_FALSE(fs::exists(dest));
    EXPECT_LT(fs::file_size(dir / "out.bin.part"), files.data.size());

    // Resuming afterwards completes the file.
    auto again = client.download_to_file("/file", dest);
    ASSERT_TRUE(again.ok()) << again.error().to_string();
    EXPECT_GT(again->resumed_from, 0u);
    EXPECT_TRUE(distconv::test::read_file(dest) == files.data);
}

TEST_F(HttpClientTest, AStalledTransferIsCutByLowSpeedTime) {
    server->Get("/api/v1/stall", [&](const httplib::Request&, httplib::Response& res) {
        res.set_chunked_content_provider("text/plain", [&](size_t offset, httplib::DataSink& sink) {
            if (offset == 0) {
                sink.write("s", 1);  // one byte: curl averages speed over a few seconds
                return true;
            }
            gate.wait(10s);  // then nothing more until teardown
            return false;
        });
    });
    start();
    auto o = options();
    o.low_speed_time = 1s;
    o.retry.max_attempts = 1;
    http::Client client(o);
    auto t0 = std::chrono::steady_clock::now();
    auto r = client.get("/stall");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Unavailable);
    EXPECT_NE(r.error().message.find("too slow"), std::string::npos) << r.error().message;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

}  // namespace
