// Bounded resources per caller, against the real distconv-dispatch binary with few HTTP workers:
// a flood of event streams from one user key, or of claim long-polls from one engine key, cannot
// take every worker — /healthz answers within 100 ms throughout and other users' requests succeed;
// one key holds at most its limit (429 beyond); an event stream on a job that never runs ends at
// --event-stream-max instead of holding a worker for ever.

#include "tests/integration/dispatch/server_fixture.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace distconv::itest {
namespace {

using namespace std::chrono_literals;

// One raw HTTP/1.1 request on its own connection, kept open; the status line is read at once.
class RawRequest {
  public:
    RawRequest(int port, const std::string& method, const std::string& path, const std::string& key,
               const std::string& body = "") {
        m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        timeval tv{5, 0};
        ::setsockopt(m_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (::connect(m_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
        std::string req =
            method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + key +
            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n" + body;
        (void)::send(m_fd, req.data(), req.size(), MSG_NOSIGNAL);
    }
    ~RawRequest() {
        if (m_fd >= 0) ::close(m_fd);
    }
    RawRequest(const RawRequest&) = delete;
    RawRequest& operator=(const RawRequest&) = delete;

    // The answer's status (0 when none came within the socket timeout).
    int status() {
        while (m_head.find("\r\n") == std::string::npos) {
            char buf[512];
            ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
            if (n <= 0) return 0;
            m_head.append(buf, static_cast<size_t>(n));
        }
        return std::atoi(m_head.c_str() + m_head.find(' ') + 1);
    }
    // Reads until the server closes the connection (true) or `timeout` passes (false).
    bool closed_within(std::chrono::milliseconds timeout) {
        auto end = std::chrono::steady_clock::now() + timeout;
        char buf[4096];
        while (std::chrono::steady_clock::now() < end) {
            ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
            if (n == 0) return true;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return true;
        }
        return false;
    }

  private:
    int m_fd = -1;
    std::string m_head;
};

std::string waiting_job(http::Client& c) {
    auto r = call(c, "POST", "/jobs", json{{"source", {{"filename", "a.mp4"}, {"size", 1000}}}}.dump(),
                  "application/json");
    EXPECT_EQ(r.status, 202) << r.body;
    return body_json(r).value("job_id", "");
}

TEST(Limits, AnEventStreamFloodFromOneKeyLeavesHealthAndOtherUsersServed) {
    test::TempDir dir;
    auto data = dir / "data";
    auto mallory_key = cli_key(data, "mallory", "user");
    auto alice_key = cli_key(data, "alice", "user");
    // 8 workers, 2 reserved: long requests may hold 6; one key at most 4.
    ChildServer server(data, {"--http-reserve", "2", "--max-event-streams-per-key", "4"});
    auto mallory = server.client(mallory_key);
    auto alice = server.client(alice_key);
    const std::string job = waiting_job(mallory);  // never gets a source: its stream would never end

    std::vector<std::unique_ptr<RawRequest>> streams;
    std::map<int, int> statuses;
    for (int i = 0; i < 12; ++i) {
        auto stream = std::make_unique<RawRequest>(server.port(), "GET", "/api/v1/jobs/" + job + "/events",
                                                   mallory_key);
        int status = stream->status();
        ++statuses[status];
        // The held streams stay open; a refused one's connection is closed by the server.
        if (status == 200) streams.push_back(std::move(stream));
        stream.reset();
        expect_healthz_fast(server.port());
    }
    EXPECT_EQ(statuses[200], 4) << "one key holds at most its limit";
    EXPECT_EQ(statuses[429], 8);
    // Another user is served: a submit, a stream of their own, and the health check, still fast.
    EXPECT_EQ(call(alice, "POST", "/jobs", json{{"source", {{"filename", "b.mp4"}, {"size", 10}}}}.dump(),
                   "application/json")
                  .status,
              202);
    const std::string alices = waiting_job(alice);
    RawRequest own(server.port(), "GET", "/api/v1/jobs/" + alices + "/events", alice_key);
    EXPECT_EQ(own.status(), 200);
    expect_healthz_fast(server.port());
    // Closing streams frees their slots (the server notices at its next keep-alive write, within 5 s).
    streams.clear();
    EXPECT_TRUE(test::wait_until(
        [&] {
            RawRequest again(server.port(), "GET", "/api/v1/jobs/" + job + "/events", mallory_key);
            return again.status() == 200;
        },
        20s));
}

TEST(Limits, LongRequestsOfManyKeysLeaveTheReserve) {
    test::TempDir dir;
    auto data = dir / "data";
    std::vector<std::string> keys;
    for (int i = 0; i < 8; ++i) keys.push_back(cli_key(data, "user" + std::to_string(i), "user"));
    ChildServer server(data, {"--http-reserve", "3"});
    std::vector<std::string> jobs;
    for (const auto& k : keys) {
        auto c = server.client(k);
        jobs.push_back(waiting_job(c));
    }
    std::vector<std::unique_ptr<RawRequest>> streams;
    std::map<int, int> statuses;
    for (size_t i = 0; i < keys.size(); ++i) {
        auto stream = std::make_unique<RawRequest>(server.port(), "GET",
                                                   "/api/v1/jobs/" + jobs[i] + "/events", keys[i]);
        int status = stream->status();
        ++statuses[status];
        if (status == 200) streams.push_back(std::move(stream));
    }
    EXPECT_EQ(statuses[200], 5) << "8 workers less 3 reserved";
    EXPECT_EQ(statuses[503], 3);
    for (int i = 0; i < 5; ++i) expect_healthz_fast(server.port());
    auto c = server.client(keys[0]);
    EXPECT_EQ(call(c, "GET", "/jobs").status, 200);
}

TEST(Limits, ClaimLongPollsFromOneEngineKeyAreBounded) {
    test::TempDir dir;
    auto data = dir / "data";
    auto engine_key = cli_key(data, "farm", "engine");
    ChildServer server(data, {"--max-claims-per-key", "3"});
    auto engine = server.client(engine_key);
    const std::string id = register_engine(engine, json::array(), 1 << 30);
    ASSERT_FALSE(id.empty());
    const std::string claim = json{{"free_slots", 1}, {"wait_seconds", 20}}.dump();
    std::vector<std::unique_ptr<RawRequest>> polls;
    for (int i = 0; i < 3; ++i)
        polls.push_back(std::make_unique<RawRequest>(server.port(), "POST",
                                                     "/api/v1/engines/" + id + "/claim", engine_key, claim));
    // Parked (no answer yet) while the fourth is refused at once.
    std::this_thread::sleep_for(200ms);  // lets the three reach their long-poll (there is nothing to observe)
    RawRequest fourth(server.port(), "POST", "/api/v1/engines/" + id + "/claim", engine_key, claim);
    EXPECT_EQ(fourth.status(), 429);
    expect_healthz_fast(server.port());
    // A heartbeat of that engine still goes through.
    auto hb =
        call(engine, "POST", "/engines/" + id + "/heartbeat",
             json{{"state", "idle"}, {"running_assignments", json::array()}, {"free_disk_bytes", 1}}.dump(),
             "application/json");
    EXPECT_EQ(hb.status, 200) << hb.body;
}

TEST(Limits, AnEventStreamOnAJobThatNeverRunsEnds) {
    test::TempDir dir;
    auto data = dir / "data";
    auto key = cli_key(data, "alice", "user");
    ChildServer server(data, {"--event-stream-max", "1s"});
    auto c = server.client(key);
    const std::string job = waiting_job(c);
    RawRequest stream(server.port(), "GET", "/api/v1/jobs/" + job + "/events", key);
    ASSERT_EQ(stream.status(), 200);
    EXPECT_TRUE(stream.closed_within(10s)) << "the stream held its worker past --event-stream-max";
}

}  // namespace
}  // namespace distconv::itest
