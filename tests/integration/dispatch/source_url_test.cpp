// source_url fetches, against the real distconv-dispatch binary and a small origin server in the
// test: a fetch from an allowed host stores the source with its SHA-256 and queues the job; ports are
// limited to the allowed ones; a source larger than it declared is cut as its bytes arrive; fetches
// are bounded in number (429 beyond) and in time.

#include "common/hash.hpp"
#include "tests/integration/dispatch/server_fixture.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace distconv::itest {
namespace {

using namespace std::chrono_literals;

// An HTTP/1.1 origin on 127.0.0.1 that answers every request with `body`. HEAD declares
// `declared_size` (the real size by default); GET may stall after its headers until released.
class Origin {
  public:
    explicit Origin(std::string body) : m_body(std::move(body)), m_declared(m_body.size()) {
        m_listen = ::socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        ::setsockopt(m_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(m_listen, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(m_listen, 16), 0);
        socklen_t len = sizeof a;
        ::getsockname(m_listen, reinterpret_cast<sockaddr*>(&a), &len);
        m_port = ntohs(a.sin_port);
        m_thread = std::thread([this] { serve(); });
    }
    ~Origin() {
        m_stop = true;
        release();
        ::shutdown(m_listen, SHUT_RDWR);
        ::close(m_listen);
        m_thread.join();
        for (auto& t : m_conns) t.join();
    }
    int port() const { return m_port; }
    std::string url(const std::string& path = "/clip.mp4") const {
        return "http://127.0.0.1:" + std::to_string(m_port) + path;
    }
    void declare(uint64_t size) { m_declared = size; }
    void stall_gets() { m_stall = true; }
    void release() { m_stall = false; }
    int gets_started() const { return m_gets.load(); }

  private:
    void serve() {
        while (!m_stop) {
            int fd = ::accept(m_listen, nullptr, nullptr);
            if (fd < 0) return;
            m_conns.emplace_back([this, fd] { answer(fd); });
        }
    }
    void answer(int fd) {
        std::string req;
        char buf[4096];
        while (req.find("\r\n\r\n") == std::string::npos) {
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            req.append(buf, static_cast<size_t>(n));
        }
        const bool head = req.rfind("HEAD ", 0) == 0;
        std::string headers =
            "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nConnection: close\r\nContent-Length: " +
            std::to_string(head ? m_declared.load() : m_body.size()) + "\r\n\r\n";
        send_all(fd, headers);
        if (!head) {
            ++m_gets;
            while (m_stall && !m_stop) std::this_thread::sleep_for(10ms);
            send_all(fd, m_body);
        }
        ::shutdown(fd, SHUT_WR);
        ::close(fd);
    }
    static void send_all(int fd, const std::string& s) {
        size_t at = 0;
        while (at < s.size()) {
            ssize_t n = ::send(fd, s.data() + at, s.size() - at, MSG_NOSIGNAL);
            if (n <= 0) return;
            at += static_cast<size_t>(n);
        }
    }

    std::string m_body;
    std::atomic<uint64_t> m_declared;
    std::atomic<bool> m_stall{false};
    std::atomic<bool> m_stop{false};
    std::atomic<int> m_gets{0};
    int m_listen = -1;
    int m_port = 0;
    std::thread m_thread;
    std::vector<std::thread> m_conns;
};

json fetch_job(const std::string& url) {
    return {{"source_url", url}, {"output_filename", "out.mkv"}};
}

json wait_end(http::Client& c, const std::string& id, const std::set<std::string>& states) {
    json last;
    EXPECT_TRUE(test::wait_until(
        [&] {
            last = body_json(call(c, "GET", "/jobs/" + id));
            return states.count(last.value("state", "")) > 0;
        },
        20s))
        << last.dump();
    return last;
}

TEST(SourceUrl, AFetchFromAnAllowedHostStoresTheSourceWithItsDigest) {
    Origin origin(small_clip_bytes());
    test::TempDir dir;
    auto data = dir / "data";
    auto key = cli_key(data, "alice", "user");
    ChildServer server(data, {"--source-url-host", "127.0.0.1:" + std::to_string(origin.port())});
    auto c = server.client(key);
    auto r = call(c, "POST", "/jobs", fetch_job(origin.url()).dump(), "application/json");
    ASSERT_EQ(r.status, 202) << r.body;
    auto job = wait_end(c, body_json(r)["job_id"], {"queued", "failed"});
    EXPECT_EQ(job.value("state", ""), "queued") << job.dump();
    EXPECT_EQ(job["source"].value("size", 0), static_cast<int64_t>(small_clip_bytes().size()));
    EXPECT_EQ(job["source"].value("sha256", ""), sha256_hex(small_clip_bytes())) << job.dump();
    EXPECT_EQ(job["source"].value("filename", ""), "clip.mp4");
}

TEST(SourceUrl, OnlyTheAllowedPortsOfAnAllowedHost) {
    Origin origin(small_clip_bytes());
    test::TempDir dir;
    auto data = dir / "data";
    auto key = cli_key(data, "alice", "user");
    // HOST alone allows ports 80 and 443 only: the origin's port is refused before any connection.
    ChildServer server(data, {"--source-url-host", "127.0.0.1"});
    auto c = server.client(key);
    auto r = call(c, "POST", "/jobs", fetch_job(origin.url()).dump(), "application/json");
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_EQ(error_code(r), "FORBIDDEN");
    EXPECT_NE(r.body.find(std::to_string(origin.port())), std::string::npos) << r.body;
    EXPECT_EQ(origin.gets_started(), 0);
    auto other = call(c, "POST", "/jobs", fetch_job("http://127.0.0.1:22/x.mp4").dump(), "application/json");
    EXPECT_EQ(other.status, 403) << other.body;
}

TEST(SourceUrl, ASourceLargerThanItDeclaredIsCutAsItArrives) {
    Origin origin(std::string(4 << 20, 'x'));
    origin.declare(1000);  // HEAD says 1000 bytes; GET sends 4 MiB
    test::TempDir dir;
    auto data = dir / "data";
    auto key = cli_key(data, "alice", "user");
    ChildServer server(data, {"--source-url-host", "127.0.0.1:" + std::to_string(origin.port())});
    auto c = server.client(key);
    auto r = call(c, "POST", "/jobs", fetch_job(origin.url()).dump(), "application/json");
    ASSERT_EQ(r.status, 202) << r.body;
    auto job = wait_end(c, body_json(r)["job_id"], {"queued", "failed"});
    EXPECT_EQ(job.value("state", ""), "failed");
    EXPECT_EQ(job.value("failure_code", ""), "FILE_TOO_LARGE") << job.dump();
    EXPECT_TRUE(files_under(data / "pool").empty()) << files_under(data / "pool").size();
    auto pools = body_json(call(c, "GET", "/pools"))["items"];
    EXPECT_EQ(pools[0]["reserved_bytes"], 0) << pools.dump();
}

TEST(SourceUrl, FetchesAreBoundedInNumberAndInTime) {
    Origin origin(small_clip_bytes());
    origin.stall_gets();
    test::TempDir dir;
    auto data = dir / "data";
    auto key = cli_key(data, "alice", "user");
    ChildServer server(data, {"--source-url-host", "127.0.0.1:" + std::to_string(origin.port()),
                              "--source-url-fetches", "1", "--source-url-timeout", "2s"});
    auto c = server.client(key);
    auto first = call(c, "POST", "/jobs", fetch_job(origin.url()).dump(), "application/json");
    ASSERT_EQ(first.status, 202) << first.body;
    ASSERT_TRUE(test::wait_until([&] { return origin.gets_started() == 1; }, 10s));
    auto second = call(c, "POST", "/jobs", fetch_job(origin.url()).dump(), "application/json");
    EXPECT_EQ(second.status, 429) << second.body;
    EXPECT_EQ(error_code(second), "TOO_MANY_REQUESTS");
    EXPECT_TRUE(body_json(second)["error"].value("retryable", false));
    // The stalled fetch ends at its time limit, and frees its slot.
    auto job = wait_end(c, body_json(first)["job_id"], {"queued", "failed"});
    EXPECT_EQ(job.value("state", ""), "failed") << job.dump();
    origin.release();
    json third;
    EXPECT_TRUE(test::wait_until(
        [&] {
            auto r = call(c, "POST", "/jobs", fetch_job(origin.url()).dump(), "application/json");
            third = body_json(r);
            return r.status == 202;
        },
        10s))
        << third.dump();
    auto done = wait_end(c, third.value("job_id", ""), {"queued", "failed"});
    EXPECT_EQ(done.value("state", ""), "queued") << done.dump();
}

TEST(SourceUrl, TheOwnersQuotaHoldsForAFetchedSource) {
    Origin origin(std::string(2 << 20, 'x'));
    test::TempDir dir;
    auto data = dir / "data";
    auto key = cli_key(data, "alice", "user");
    ChildServer server(
        data, {"--source-url-host", "127.0.0.1:" + std::to_string(origin.port()), "--user-quota", "1MiB"});
    auto c = server.client(key);
    auto r = call(c, "POST", "/jobs", fetch_job(origin.url()).dump(), "application/json");
    ASSERT_EQ(r.status, 202) << r.body;
    auto job = wait_end(c, body_json(r)["job_id"], {"queued", "failed"});
    EXPECT_EQ(job.value("failure_code", ""), "INSUFFICIENT_STORAGE") << job.dump();
    EXPECT_EQ(origin.gets_started(), 0) << "the bytes were fetched although the quota could not hold them";
}

}  // namespace
}  // namespace distconv::itest
