// Connections that never finish their requests, against the real distconv-dispatch binary with 8 HTTP
// workers: slow headers without any key (slowloris), slow small bodies, and many idle keep-alive
// connections hold no worker — /healthz answers within 100 ms throughout and other users' submits
// succeed; a request not complete within --header-timeout gets 408 and its connection is closed.
// And a claim long-poll whose engine went away takes no job (or gives it back at once).

#include "dispatch_server/api/connection_gate.hpp"
#include "tests/integration/dispatch/server_fixture.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace distconv::itest {
namespace {

using namespace std::chrono_literals;

TEST(RequestHead, EndAndBytesNeeded) {
    using dispatch::request_bytes_needed;
    using dispatch::request_head_end;
    const std::string get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    EXPECT_EQ(request_head_end(get.data(), get.size()), get.size());
    EXPECT_EQ(request_head_end(get.data(), get.size() - 1), std::string::npos);
    const std::string lf = "GET / HTTP/1.1\nHost: x\n\nrest";
    EXPECT_EQ(request_head_end(lf.data(), lf.size()), lf.size() - 4);

    auto uploads = [](const std::string& method, const std::string& path) {
        return method == "PUT" && path == "/api/v1/jobs/J/source";
    };
    const std::string post = "POST /api/v1/keys HTTP/1.1\r\ncontent-LENGTH:  42 \r\n\r\n";
    EXPECT_EQ(request_bytes_needed(post, uploads), post.size() + 42);
    const std::string put = "PUT /api/v1/jobs/J/source?x=1 HTTP/1.1\r\nContent-Length: 42\r\n\r\n";
    EXPECT_EQ(request_bytes_needed(put, uploads), put.size()) << "an upload's body is its handler's";
    const std::string big = "POST /api/v1/keys HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
    EXPECT_EQ(request_bytes_needed(big, uploads), big.size()) << "a large body is read by a worker";
    const std::string expect =
        "POST /api/v1/keys HTTP/1.1\r\nContent-Length: 42\r\nExpect: 100-continue\r\n\r\n";
    EXPECT_EQ(request_bytes_needed(expect, uploads), expect.size()) << "the body comes after 100 Continue";
    const std::string chunked = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    EXPECT_EQ(request_bytes_needed(chunked, uploads), chunked.size());
    const std::string twice = "POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    EXPECT_EQ(request_bytes_needed(twice, uploads), twice.size()) << "odd framing is httplib's to refuse";
    const std::string garbage = "NONSENSE\r\n\r\n";
    EXPECT_EQ(request_bytes_needed(garbage, uploads), garbage.size());
}

// The gate's workers start as requests need them, up to `workers`, and those beyond `min_workers`
// end once idle for `worker_idle`: 24 requests held at once by a handler are all served by a server
// that started with 2 workers, and the pool shrinks back to 2 after they are released.
TEST(WorkerPool, GrowsWithHeldRequestsAndShrinksWhenIdle) {
    dispatch::GateSettings settings;
    settings.workers = 64;
    settings.min_workers = 2;
    settings.worker_idle = 300ms;
    dispatch::GatedServer server(settings);
    std::mutex m;
    std::condition_variable cv;
    bool release = false;
    int held = 0;
    server.Get("/hold", [&](const httplib::Request&, httplib::Response& res) {
        std::unique_lock lock(m);
        ++held;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
        res.set_content("done", "text/plain");
    });
    int port = server.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port, 0);
    std::thread listener([&] { server.listen_after_bind(); });
    ASSERT_TRUE(test::wait_until([&] { return server.is_running(); }, 10s));
    EXPECT_EQ(server.counters().workers, 2u) << "only the kept workers run before any request";

    constexpr int k_held = 24;
    std::vector<std::unique_ptr<RawConnection>> conns;
    for (int i = 0; i < k_held; ++i) {
        conns.push_back(std::make_unique<RawConnection>(port));
        ASSERT_TRUE(conns.back()->send_all("GET /hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    }
    {
        std::unique_lock lock(m);
        EXPECT_TRUE(cv.wait_for(lock, 20s, [&] { return held == k_held; }))
            << held << " of " << k_held << " requests reached a worker";
    }
    auto grown = server.counters().workers;
    EXPECT_GE(grown, static_cast<size_t>(k_held));
    EXPECT_LE(grown, 64u);
    {
        std::lock_guard lock(m);
        release = true;
    }
    cv.notify_all();
    for (auto& c : conns) EXPECT_TRUE(c->read_until("done")) << "every held request is answered";
    EXPECT_TRUE(test::wait_until([&] { return server.counters().workers == 2u; }, 20s))
        << server.counters().workers << " workers still running after they were idle";
    server.stop();
    listener.join();
}

// Opens `n` connections that each send the start of a request and then one more byte every 200 ms.
struct Dribblers {
    std::vector<std::unique_ptr<RawConnection>> conns;
    Dribblers(int port, int n, const std::string& start) {
        for (int i = 0; i < n; ++i) {
            auto c = std::make_unique<RawConnection>(port);
            EXPECT_TRUE(c->ok());
            c->send_all(start);
            conns.push_back(std::move(c));
        }
    }
    // For `how_long`: one more byte on every connection, then `check`, every 200 ms.
    void drip_for(std::chrono::milliseconds how_long, const std::string& byte,
                  const std::function<void()>& check) {
        auto until = std::chrono::steady_clock::now() + how_long;
        while (std::chrono::steady_clock::now() < until) {
            for (auto& c : conns) c->send_all(byte);
            check();
            std::this_thread::sleep_for(200ms);
        }
    }
};

TEST(Connections, SlowHeadersWithoutAKeyHoldNoWorker) {
    test::TempDir dir;
    auto data = dir / "data";
    auto alice_key = cli_key(data, "alice", "user");
    ChildServer server(data, {"--header-timeout", "2s"});
    auto alice = server.client(alice_key);
    // Eight times the workers, no key, headers that never end.
    Dribblers slow(server.port(), 64, "GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    int submits = 0;
    slow.drip_for(1500ms, "a", [&] {
        expect_healthz_fast(server.port());
        auto r = call(alice, "POST", "/jobs", json{{"source", {{"filename", "b.mp4"}, {"size", 10}}}}.dump(),
                      "application/json");
        EXPECT_EQ(r.status, 202) << r.body;
        ++submits;
    });
    EXPECT_GE(submits, 3);
    // Past --header-timeout (counted from the first byte) each gets 408 with the envelope and is closed.
    for (auto& c : slow.conns) {
        EXPECT_TRUE(c->read_to_close(5s));
        EXPECT_EQ(c->status(), 408) << c->received();
        EXPECT_NE(c->body().find("\"error\""), std::string::npos) << c->received();
    }
    expect_healthz_fast(server.port());
    // Operators see it in /metrics.
    auto anonymous = make_client(server.port(), "");
    auto metrics = call(anonymous, "GET", "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics");
    EXPECT_NE(metrics.body.find("distconv_http_connections_closed_total{reason=\"slow_headers\"} 64"),
              std::string::npos)
        << metrics.body;
    EXPECT_NE(metrics.body.find("distconv_http_connections{state=\"waiting\"}"), std::string::npos);
}

TEST(Connections, SlowSmallBodiesWithoutAKeyHoldNoWorker) {
    test::TempDir dir;
    auto data = dir / "data";
    auto alice_key = cli_key(data, "alice", "user");
    ChildServer server(data, {"--header-timeout", "2s"});
    auto alice = server.client(alice_key);
    // Complete heads announcing a 100-byte body that comes a byte at a time (a route that reads its body
    // before its handler runs, so nothing would check a key before the body is in).
    Dribblers slow(server.port(), 32,
                   "POST /api/v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   "Content-Length: 100\r\n\r\n{");
    slow.drip_for(1500ms, " ", [&] {
        expect_healthz_fast(server.port());
        EXPECT_EQ(call(alice, "GET", "/jobs").status, 200);
    });
    for (auto& c : slow.conns) {
        EXPECT_TRUE(c->read_to_close(5s));
        EXPECT_EQ(c->status(), 408) << c->received();
    }
}

TEST(Connections, IdleKeepAliveConnectionsHoldNoWorkerAndEnd) {
    test::TempDir dir;
    auto data = dir / "data";
    ChildServer server(data, {"--keep-alive-timeout", "1s"});
    // 100 clients, each one request answered and the connection kept open, idle.
    std::vector<std::unique_ptr<RawConnection>> idle;
    for (int i = 0; i < 100; ++i) {
        auto c = std::make_unique<RawConnection>(server.port());
        ASSERT_TRUE(c->send_all("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        ASSERT_TRUE(c->read_until("{\"status\":\"ok\"}")) << c->received();
        idle.push_back(std::move(c));
    }
    expect_healthz_fast(server.port());
    // A kept connection carries a second request (keep-alive works, pipelining too).
    ASSERT_TRUE(
        idle[0]->send_all("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                          "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    EXPECT_TRUE(idle[0]->read_until("\"ready\":true")) << idle[0]->received();
    // Idle past --keep-alive-timeout: closed by the server, without an answer.
    for (size_t i = 1; i < idle.size(); ++i) {
        EXPECT_TRUE(idle[i]->read_to_close(5s));
        // Exactly the one answer it asked for: no second status line (a 408 or anything else).
        const auto& got = idle[i]->received();
        EXPECT_EQ(got.find("HTTP/1.1 200 OK"), 0u) << got;
        EXPECT_EQ(got.find("HTTP/1.1 ", 1), std::string::npos) << got;
    }
}

TEST(Connections, AClientWaitingFor100ContinueGetsItAtOnce) {
    test::TempDir dir;
    auto data = dir / "data";
    auto admin_key = cli_key(data, "root", "admin");
    ChildServer server(data);
    // A small body on a route that reads it before its handler: the head alone still reaches a worker,
    // which answers 100 Continue (the client holds the body back until then).
    const std::string body = json{{"name", "bob"}, {"role", "user"}}.dump();
    RawConnection c(server.port());
    ASSERT_TRUE(c.send_all("POST /api/v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                           admin_key +
                           "\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n"));
    ASSERT_TRUE(c.read_until("100 Continue", 900ms)) << c.received();
    ASSERT_TRUE(c.send_all(body));
    ASSERT_TRUE(c.read_until("\"bob\"")) << c.received();
    EXPECT_NE(c.received().find("HTTP/1.1 201"), std::string::npos) << c.received();
}

TEST(Connections, AClaimWhoseEngineLeftTakesNoJob) {
    test::TempDir dir;
    auto data = dir / "data";
    auto engine_key = cli_key(data, "farm", "engine");
    auto alice_key = cli_key(data, "alice", "user");
    ChildServer server(data);
    auto engine = server.client(engine_key);
    auto alice = server.client(alice_key);
    const std::string id = register_engine(engine, json::array({"libx264", "aac"}));
    ASSERT_FALSE(id.empty());
    const std::string claim = json{{"free_slots", 1}, {"wait_seconds", 30}}.dump();
    const std::string request =
        "POST /api/v1/engines/" + id + "/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
        engine_key + "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(claim.size()) +
        "\r\n\r\n" + claim;
    {
        RawConnection parked(server.port());
        ASSERT_TRUE(parked.send_all(request));
        EXPECT_FALSE(parked.read_until("HTTP/1.1", 300ms)) << "the claim waits for work";
    }  // the engine is gone: its connection closes with the claim still parked

    auto submitted = submit_multipart(alice, small_clip_bytes(), json::object());
    ASSERT_EQ(submitted.status, 202) << submitted.body;
    const std::string job = body_json(submitted).value("job_id", "");
    // The job is queued, and stays so: nobody took it for the gone claim.
    ASSERT_TRUE(test::wait_until(
        [&] { return body_json(call(alice, "GET", "/jobs/" + job)).value("state", "") == "queued"; }, 20s));
    std::this_thread::sleep_for(1s);  // the parked claim would have taken it at once (nothing to poll for)
    auto view = body_json(call(alice, "GET", "/jobs/" + job));
    EXPECT_EQ(view.value("state", ""), "queued") << view.dump();
    EXPECT_EQ(view.value("attempts", json::array()).size(), 0u) << view.dump();
    // A live claim gets it at once.
    auto got = call(engine, "POST", "/engines/" + id + "/claim",
                    json{{"free_slots", 1}, {"wait_seconds", 0}}.dump(), "application/json");
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_EQ(body_json(got).value("job_id", ""), job);
}

}  // namespace
}  // namespace distconv::itest
