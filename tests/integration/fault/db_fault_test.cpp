// The database fails under a running farm, for real: another process holds its write lock past the
// busy timeout, and then hides its tables so no read succeeds. The real distconv-dispatch and
// distconv-engine binaries run throughout, with maintenance every 100 ms over pool files made old
// enough for the orphan sweep. During each fault: requests that need the database get 503
// UNAVAILABLE with the error envelope (retryable), /readyz says not ready, /healthz still answers.
// After it: every stored file is still there, every completed result downloads with the same bytes,
// nothing half-written is left, and new work completes.

#include "common/hash.hpp"
#include "common/http/client.hpp"
#include "tests/integration/engine_e2e/e2e_support.hpp"
#include "tests/support/sqlite_peer.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <map>
#include <thread>

using namespace distconv;
using namespace distconv::e2e;
using namespace std::chrono_literals;
namespace stdfs = std::filesystem;

namespace {

using OtherProcessConnection = test::SqlitePeer;

// Every file in the pool with its SHA-256 (the database, its secret and logs are not pool files).
std::map<std::string, std::string> pool_files(const stdfs::path& pool) {
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (auto it = stdfs::recursive_directory_iterator(pool, ec); !ec && it != stdfs::recursive_directory_iterator();
         it.increment(ec))
        if (it->is_regular_file()) out[stdfs::relative(it->path(), pool).string()] = sha256_file(it->path()).value_or("?");
    return out;
}

void make_old(const stdfs::path& pool) {
    std::error_code ec;
    for (auto it = stdfs::recursive_directory_iterator(pool, ec); !ec && it != stdfs::recursive_directory_iterator();
         it.increment(ec))
        if (it->is_regular_file()) stdfs::last_write_time(it->path(), stdfs::file_time_type::clock::now() - 2h, ec);
}

http::Client client_for(const Cluster& c, const std::string& key, std::chrono::milliseconds timeout = 10s) {
    http::ClientOptions o;
    o.base_url = c.url();
    o.api_key = key;
    o.request_timeout = timeout;
    o.retry.max_attempts = 1;
    return http::Client(o);
}

struct Answer {
    int status = 0;
    nlohmann::json body;
    std::chrono::milliseconds took{};
};

Answer call(http::Client& client, const std::string& method, const std::string& path, const std::string& body = "") {
    http::Request r;
    r.method = method;
    r.path_or_url = path;
    if (!body.empty()) {
        r.body = body;
        r.content_type = "application/json";
    }
    auto t0 = std::chrono::steady_clock::now();
    auto got = client.request(r);
    Answer a;
    a.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    if (!got) return a;
    a.status = got->status;
    a.body = nlohmann::json::parse(got->body, nullptr, false);
    return a;
}

void expect_unavailable(const Answer& a, const std::string& what) {
    EXPECT_EQ(a.status, 503) << what << ": " << a.body.dump();
    ASSERT_TRUE(a.body.is_object() && a.body.contains("error")) << what << ": no error envelope: " << a.body.dump();
    EXPECT_EQ(a.body["error"].value("code", ""), "UNAVAILABLE") << what;
    EXPECT_TRUE(a.body["error"].value("retryable", false)) << what;
}

nlohmann::json small_job() { return {{"output_filename", "out.mkv"}, {"container", "mkv"}}; }

}  // namespace

TEST(DatabaseFaults, LockedAndUnreadableDatabaseAnswers503AndLosesNothing) {
    DispatchTimings t;
    t.extra_args = {"--db-busy-timeout", "200ms", "--maintenance-interval", "100ms", "--source-retention", "24h"};
    Cluster c(t);
    const stdfs::path clip = c.dir() / "clip.mp4";
    ASSERT_TRUE(test::make_test_clip(clip, 1.0, 320, 240));
    auto engine = c.start_engine("engineA");

    std::vector<std::string> done;
    for (int i = 0; i < 2; ++i) {
        auto id = c.submit(clip, small_job());
        ASSERT_FALSE(id.empty());
        done.push_back(id);
    }
    for (const auto& id : done) ASSERT_TRUE(c.wait_state(id, "completed", 60s)) << c.job(id).dump();
    std::map<std::string, std::string> result_sha;
    for (const auto& id : done) {
        auto dest = c.dir() / ("before-" + id + ".mkv");
        ASSERT_TRUE(c.download_result(id, dest));
        result_sha[id] = *sha256_file(dest);
    }
    // A job still waiting for its source: its reservation must survive too.
    auto user = client_for(c, c.user_key());
    auto waiting = call(user, "POST", "/api/v1/jobs",
                        nlohmann::json{{"source", {{"filename", "later.mp4"}, {"size", 1000}}}, {"output_filename", "x.mkv"}}.dump());
    ASSERT_EQ(waiting.status, 202) << waiting.body.dump();

    const stdfs::path pool = c.dir() / "data" / "pool";
    make_old(pool);  // every file is past the orphan sweep's minimum age
    const auto files_before = pool_files(pool);
    ASSERT_FALSE(files_before.empty());
    auto anonymous = client_for(c, "");
    auto health = [&] {
        auto h = call(anonymous, "GET", "/healthz");
        EXPECT_EQ(h.status, 200);
        EXPECT_LT(h.took, 1000ms);
    };

    {
        SCOPED_TRACE("write lock held by another process past the busy timeout");
        OtherProcessConnection other(c.dir() / "data" / "dispatch.db");
        ASSERT_TRUE(other.exec("BEGIN IMMEDIATE"));
        ASSERT_TRUE(other.exec("UPDATE write_check SET checked_at = checked_at"));
        std::string answer;
        EXPECT_TRUE(c.submit(clip, small_job(), &answer).empty());
        EXPECT_EQ(answer.rfind("503 ", 0), 0u) << answer;  // "<status> <body>"
        auto submitted = nlohmann::json::parse(answer.substr(std::min(answer.find('{'), answer.size())), nullptr, false);
        ASSERT_TRUE(submitted.is_object()) << answer;
        EXPECT_EQ(submitted["error"].value("code", ""), "UNAVAILABLE") << answer;
        expect_unavailable(call(user, "DELETE", "/api/v1/jobs/" + waiting.body.value("job_id", std::string())), "cancel");
        auto ready = call(anonymous, "GET", "/readyz");
        EXPECT_EQ(ready.status, 503) << ready.body.dump();
        health();
        // Readers still answer under a write lock (WAL): results download.
        EXPECT_EQ(call(user, "GET", "/api/v1/jobs/" + done[0]).status, 200);
        EXPECT_TRUE(c.download_result(done[1], c.dir() / "during-lock.mkv"));
        ASSERT_TRUE(other.exec("ROLLBACK"));
    }
    EXPECT_TRUE(test::wait_until([&] { return call(anonymous, "GET", "/readyz").status == 200; }, 10s));

    {
        SCOPED_TRACE("no read succeeds");
        OtherProcessConnection other(c.dir() / "data" / "dispatch.db");
        ASSERT_TRUE(other.hide_store_tables());
        expect_unavailable(call(user, "GET", "/api/v1/jobs"), "list jobs");
        expect_unavailable(call(user, "GET", "/api/v1/jobs/" + done[0]), "get job");
        expect_unavailable(call(user, "GET", "/api/v1/jobs/" + done[0] + "/result"), "result");
        expect_unavailable(call(user, "GET", "/api/v1/pools"), "pools");
        auto ready = call(anonymous, "GET", "/readyz");
        EXPECT_EQ(ready.status, 503) << ready.body.dump();
        health();
        // Maintenance passes (every 100 ms) run while nothing can be listed: each skips the sweep.
        EXPECT_TRUE(test::wait_until(
            [&] { return c.dispatch().log().find("orphan sweep skipped: the database is unavailable") != std::string::npos; },
            10s))
            << c.dispatch().log();
        EXPECT_EQ(pool_files(pool), files_before) << "files changed while the database could not be read";
        ASSERT_TRUE(other.restore_store_tables());
    }
    EXPECT_TRUE(test::wait_until([&] { return call(anonymous, "GET", "/readyz").status == 200; }, 10s));

    EXPECT_EQ(pool_files(pool), files_before) << "a stored file was lost, or a half-written one was left";
    for (const auto& id : done) {
        auto dest = c.dir() / ("after-" + id + ".mkv");
        ASSERT_TRUE(c.download_result(id, dest)) << id;
        EXPECT_EQ(*sha256_file(dest), result_sha[id]) << id;
    }
    auto still_waiting = call(user, "GET", "/api/v1/jobs/" + waiting.body.value("job_id", std::string()));
    EXPECT_EQ(still_waiting.body.value("state", ""), "awaiting_upload") << still_waiting.body.dump();
    auto next = c.submit(clip, small_job());
    ASSERT_FALSE(next.empty());
    EXPECT_TRUE(c.wait_state(next, "completed", 60s)) << c.job(next).dump();
    engine.reset();
}
