// The user flow against a real in-process server: multipart submit, status, list pages, SSE events,
// cancel, retry, results (Range, ETag, 409 before completion, 410 after retention), idempotency,
// job ETags, HEAD, and queue expiry.

#include "common/hash.hpp"
#include "tests/integration/dispatch/server_fixture.hpp"
#include "tests/support/must.hpp"

#include <gtest/gtest.h>

namespace distconv::itest {
namespace {

using distconv::test::must;

using dispatch::FileKind;
using dispatch::JobState;
using dispatch::JobUpdate;
using dispatch::Role;

class FlowTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_FALSE(small_clip_bytes().empty()) << "ffmpeg could not make the test clip";
        // Sources go at the first maintenance pass after a job ends (the default keeps them 1 h).
        server = std::make_unique<InProcessServer>(
            dir / "data", [](dispatch::DispatchConfig& c) { c.source_retention = "0s"; });
        alice_key = server->key("alice", Role::User);
    }
    test::TempDir dir;
    std::unique_ptr<InProcessServer> server;
    std::string alice_key;

    std::string submit(http::Client& c, const json& job = json::object()) {
        auto r = submit_multipart(c, small_clip_bytes(), job);
        EXPECT_EQ(r.status, 202) << r.body;
        return body_json(r).value("job_id", "");
    }

    // Makes a queued job completed as an engine would (there is no engine API yet): output file in the
    // pool, accounting and the three transitions through the store.
    void complete(const std::string& id, const std::string& content, int64_t expires_at) {
        auto& pool = server->config().pools.front();
        auto rel = dispatch::StoragePools::job_file(id, FileKind::Output);
        stdfs::create_directories((pool.root / rel).parent_path());
        test::write_file(pool.root / rel, content);
        ASSERT_TRUE(
            server->store().transition(id, {JobState::Queued}, JobState::Assigned, {}, "test: assigned"));
        ASSERT_TRUE(
            server->store().transition(id, {JobState::Assigned}, JobState::Running, {}, "test: running"));
        JobUpdate u;
        u.output_pool = pool.name;
        u.output_path = rel;
        u.output_size = content.size();
        u.output_sha256 = sha256_hex(content);
        u.output_expires_at = expires_at;
        u.progress_percent = 100;
        u.finished_at = to_unix_ms(std::chrono::system_clock::now());
        ASSERT_TRUE(
            server->store().transition(id, {JobState::Running}, JobState::Completed, u, "test: completed"));
    }
};

TEST_F(FlowTest, MultipartSubmitStatusAndJob) {
    auto c = server->client(alice_key);
    auto r =
        submit_multipart(c, small_clip_bytes(),
                         {{"video", {{"codec", "libx264"}, {"crf", 28}}}, {"priority", 5}}, "holiday.mp4");
    ASSERT_EQ(r.status, 202) << r.body;
    auto j = body_json(r);
    std::string id = j.value("job_id", "");
    ASSERT_EQ(id.size(), 26u);
    EXPECT_EQ(j["state"], "queued");
    EXPECT_EQ(r.header("Location").value_or(""), "/api/v1/jobs/" + id);
    EXPECT_TRUE(r.header("ETag").has_value());
    EXPECT_EQ(j["priority"], 5);

    auto st = call(c, "GET", "/jobs/" + id + "/status");
    ASSERT_EQ(st.status, 200) << st.body;
    auto s = body_json(st);
    EXPECT_EQ(s["job_id"], id);
    EXPECT_EQ(s["state"], "queued");
    EXPECT_EQ(s["progress_percent"], 0);
    EXPECT_EQ(s["queue_position"], 1);
    EXPECT_TRUE(s.contains("created_at"));
    EXPECT_TRUE(s.contains("message"));

    auto g = call(c, "GET", "/jobs/" + id);
    ASSERT_EQ(g.status, 200);
    auto gj = body_json(g);
    EXPECT_EQ(gj["owner"], "alice");
    EXPECT_EQ(gj["source"]["size"], small_clip_bytes().size());
    EXPECT_EQ(gj["source"]["filename"], "holiday.mp4");
    // ETag + If-None-Match → 304; HEAD → headers only.
    auto etag = g.header("ETag").value_or("");
    ASSERT_FALSE(etag.empty());
    auto nm = call(c, "GET", "/jobs/" + id, "", "", {{"If-None-Match", etag}});
    EXPECT_EQ(nm.status, 304);
    EXPECT_TRUE(nm.body.empty());
    auto nm_status = call(c, "GET", "/jobs/" + id + "/status", "", "", {{"If-None-Match", etag}});
    EXPECT_EQ(nm_status.status, 304);
    auto head = call(c, "HEAD", "/jobs/" + id);
    EXPECT_EQ(head.status, 200);
    EXPECT_TRUE(head.body.empty());
    EXPECT_EQ(head.header("ETag").value_or(""), etag);
    // The source file sits in the pool under jobs/<id>/source.
    EXPECT_TRUE(stdfs::exists(server->config().pools.front().root / "jobs" / id / "source"));
}

TEST_F(FlowTest, ListPagingAndStateFilter) {
    auto c = server->client(alice_key);
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(submit(c));
    ASSERT_EQ(call(c, "DELETE", "/jobs/" + ids[0]).status, 202);
    // Bob's jobs are not Alice's.
    auto bob = server->client(server->key("bob", Role::User));
    submit(bob);

    std::vector<std::string> seen;
    std::string cursor;
    int pages = 0;
    while (true) {
        auto r = call(c, "GET", "/jobs?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor));
        ASSERT_EQ(r.status, 200) << r.body;
        auto j = body_json(r);
        EXPECT_EQ(j["total"], 5);
        EXPECT_LE(j["items"].size(), 2u);
        for (auto& item : j["items"]) seen.push_back(item["job_id"]);
        ++pages;
        if (!j.contains("next_cursor") || j["next_cursor"].is_null()) break;
        cursor = j["next_cursor"];
        ASSERT_LT(pages, 10);
    }
    EXPECT_EQ(pages, 3);
    std::vector<std::string> expected(ids.rbegin(), ids.rend());  // newest first
    EXPECT_EQ(seen, expected);

    auto queued = body_json(call(c, "GET", "/jobs?state=queued"));
    EXPECT_EQ(queued["total"], 4);
    for (auto& item : queued["items"]) EXPECT_EQ(item["state"], "queued");
    auto canceled = body_json(call(c, "GET", "/jobs?state=canceled"));
    ASSERT_EQ(canceled["total"], 1);
    EXPECT_EQ(canceled["items"][0]["job_id"], ids[0]);
    // Several states: comma-separated or repeated.
    EXPECT_EQ(body_json(call(c, "GET", "/jobs?state=queued,canceled"))["total"], 5);
    EXPECT_EQ(body_json(call(c, "GET", "/jobs?state=queued&state=canceled"))["total"], 5);
    EXPECT_EQ(body_json(call(c, "GET", "/jobs?state=running,failed"))["total"], 0);
    EXPECT_EQ(call(c, "GET", "/jobs?state=queued,nope").status, 400);
}

TEST_F(FlowTest, EventsStreamCancelAndRetry) {
    auto c = server->client(alice_key);
    std::string id = submit(c);
    ASSERT_FALSE(id.empty());

    RawConnection sse(server->port());
    ASSERT_TRUE(sse.ok());
    sse.send_all("GET /api/v1/jobs/" + id + "/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                 alice_key + "\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n");
    // The history arrives at once: at least the event that queued the job.
    ASSERT_TRUE(sse.read_until("\"queued\"")) << sse.received();
    EXPECT_EQ(sse.status(), 200);
    EXPECT_NE(sse.received().find("text/event-stream"), std::string::npos);
    EXPECT_NE(sse.received().find("event: state"), std::string::npos);
    EXPECT_EQ(sse.received().find("\"canceled\""), std::string::npos);

    auto cancel = call(c, "DELETE", "/jobs/" + id);
    ASSERT_EQ(cancel.status, 202) << cancel.body;
    EXPECT_EQ(body_json(cancel), (json{{"job_id", id}, {"state", "canceled"}}));
    // The stream reports the cancel and then ends (the job is terminal).
    EXPECT_TRUE(sse.read_until("\"canceled\"")) << sse.received();
    EXPECT_TRUE(sse.read_until("\r\n0\r\n\r\n", std::chrono::seconds(5))) << "the event stream did not end";
    EXPECT_TRUE(sse.read_to_close(std::chrono::seconds(5)));

    // Cancel again is idempotent; the result is not ready.
    EXPECT_EQ(call(c, "DELETE", "/jobs/" + id).status, 202);
    auto res = call(c, "GET", "/jobs/" + id + "/result");
    EXPECT_EQ(res.status, 409);
    EXPECT_EQ(error_code(res), "JOB_NOT_READY");

    auto retry = call(c, "POST", "/jobs/" + id + "/retry");
    ASSERT_EQ(retry.status, 202) << retry.body;
    EXPECT_EQ(body_json(retry)["state"], "queued");
    EXPECT_EQ(body_json(call(c, "GET", "/jobs/" + id + "/status"))["state"], "queued");
    // A queued job cannot be retried.
    auto again = call(c, "POST", "/jobs/" + id + "/retry");
    EXPECT_EQ(again.status, 409);
    EXPECT_EQ(error_code(again), "CONFLICT");
    // The events stream of a terminal job replays and ends at once; Last-Event-ID resumes after an id.
    ASSERT_EQ(call(c, "DELETE", "/jobs/" + id).status, 202);
    auto events = call(c, "GET", "/jobs/" + id + "/events");
    EXPECT_EQ(events.status, 200);
    auto all_events = must(server->store().job_events(id));
    ASSERT_GE(all_events.size(), 4u);
    EXPECT_NE(events.body.find("id: " + std::to_string(all_events.front().id) + "\n"), std::string::npos)
        << events.body;
    auto resumed = call(c, "GET", "/jobs/" + id + "/events", "", "",
                        {{"Last-Event-ID", std::to_string(all_events[all_events.size() - 2].id)}});
    EXPECT_EQ(resumed.status, 200);
    EXPECT_EQ(resumed.body.find("id: " + std::to_string(all_events.front().id) + "\n"), std::string::npos);
    EXPECT_NE(resumed.body.find("id: " + std::to_string(all_events.back().id) + "\n"), std::string::npos)
        << resumed.body;

    // Source retention (0s in this fixture) deletes a terminal job's source at the next maintenance pass;
    // a retry then says why it cannot run.
    server->jobs().run_maintenance();
    auto late = call(c, "POST", "/jobs/" + id + "/retry");
    EXPECT_EQ(late.status, 409) << late.body;
    EXPECT_NE(late.body.find("no longer stored"), std::string::npos) << late.body;
}

TEST_F(FlowTest, ResultDownloadRangeEtagAndRetention) {
    auto c = server->client(alice_key);
    std::string id = submit(c, {{"output_filename", "result file.mp4"}});
    auto before = call(c, "GET", "/jobs/" + id + "/result");
    EXPECT_EQ(before.status, 409);
    EXPECT_EQ(error_code(before), "JOB_NOT_READY");

    std::string content;
    for (int i = 0; i < 5000; ++i) content += static_cast<char>('a' + i % 26);
    int64_t now = to_unix_ms(std::chrono::system_clock::now());
    complete(id, content, now + 3'600'000);
    std::string etag = "\"" + sha256_hex(content) + "\"";

    auto full = call(c, "GET", "/jobs/" + id + "/result");
    ASSERT_EQ(full.status, 200) << full.body;
    EXPECT_EQ(full.body, content);
    EXPECT_EQ(full.header("ETag").value_or(""), etag);
    EXPECT_NE(full.header("Content-Disposition").value_or("").find("attachment"), std::string::npos);
    EXPECT_NE(full.header("Content-Disposition").value_or("").find("result"), std::string::npos);
    EXPECT_EQ(full.header("Accept-Ranges").value_or(""), "bytes");

    auto part = call(c, "GET", "/jobs/" + id + "/result", "", "", {{"Range", "bytes=10-19"}});
    EXPECT_EQ(part.status, 206);
    EXPECT_EQ(part.body, content.substr(10, 10));
    EXPECT_EQ(part.header("Content-Range").value_or(""), "bytes 10-19/5000");
    auto suffix = call(c, "GET", "/jobs/" + id + "/result", "", "", {{"Range", "bytes=-5"}});
    EXPECT_EQ(suffix.status, 206);
    EXPECT_EQ(suffix.body, content.substr(4995));
    auto open_end = call(c, "GET", "/jobs/" + id + "/result", "", "", {{"Range", "bytes=4990-"}});
    EXPECT_EQ(open_end.status, 206);
    EXPECT_EQ(open_end.body, content.substr(4990));

    auto cached = call(c, "GET", "/jobs/" + id + "/result", "", "", {{"If-None-Match", etag}});
    EXPECT_EQ(cached.status, 304);
    EXPECT_TRUE(cached.body.empty());

    auto bad = call(c, "GET", "/jobs/" + id + "/result", "", "", {{"Range", "bytes=6000-7000"}});
    EXPECT_EQ(bad.status, 416);
    EXPECT_EQ(error_code(bad), "RANGE_NOT_SATISFIABLE");
    EXPECT_EQ(bad.header("Content-Range").value_or(""), "bytes */5000");

    auto head = call(c, "HEAD", "/jobs/" + id + "/result");
    EXPECT_EQ(head.status, 200);
    EXPECT_TRUE(head.body.empty());
    EXPECT_EQ(head.header("ETag").value_or(""), etag);
    EXPECT_EQ(head.header("Content-Length").value_or(""), "5000");

    // Retention: the output expires and maintenance deletes it → 410 RESULT_GONE.
    dispatch::JobUpdate u;
    u.output_expires_at = now - 1;
    ASSERT_TRUE(server->store().update_job(id, u));
    auto report = server->jobs().run_maintenance();
    EXPECT_EQ(report.outputs_deleted, 1);
    auto gone = call(c, "GET", "/jobs/" + id + "/result");
    EXPECT_EQ(gone.status, 410) << gone.body;
    EXPECT_EQ(error_code(gone), "RESULT_GONE");
    EXPECT_FALSE(stdfs::exists(server->config().pools.front().root / "jobs" / id / "output"));
}

TEST_F(FlowTest, FailedJobResultIsTranscodeFailed) {
    auto c = server->client(alice_key);
    std::string id = submit(c);
    ASSERT_TRUE(server->store().transition(id, {JobState::Queued}, JobState::Assigned, {}));
    ASSERT_TRUE(server->store().transition(id, {JobState::Assigned}, JobState::Running, {}));
    JobUpdate u;
    u.failure_code = "TRANSCODE_FAILED";
    u.failure_reason = "ffmpeg exited with 1";
    ASSERT_TRUE(server->store().transition(id, {JobState::Running}, JobState::Failed, u));
    auto r = call(c, "GET", "/jobs/" + id + "/result");
    EXPECT_EQ(r.status, 422) << r.body;
    EXPECT_EQ(error_code(r), "TRANSCODE_FAILED");
}

TEST_F(FlowTest, IdempotencyKeyReturnsTheSameJob) {
    auto c = server->client(alice_key);
    auto first =
        submit_multipart(c, small_clip_bytes(), json::object(), "a.mp4", {{"Idempotency-Key", "order-42"}});
    ASSERT_EQ(first.status, 202) << first.body;
    EXPECT_FALSE(first.header("Idempotent-Replayed").has_value());
    auto second =
        submit_multipart(c, small_clip_bytes(), json::object(), "a.mp4", {{"Idempotency-Key", "order-42"}});
    ASSERT_EQ(second.status, 202) << second.body;
    EXPECT_EQ(body_json(second)["job_id"], body_json(first)["job_id"]);
    EXPECT_EQ(second.header("Idempotent-Replayed").value_or(""), "true");
    // JSON submits too.
    json job{{"source", {{"size", 1000}}}};
    auto j1 = call(c, "POST", "/jobs", job.dump(), "application/json", {{"Idempotency-Key", "json-1"}});
    auto j2 = call(c, "POST", "/jobs", job.dump(), "application/json", {{"Idempotency-Key", "json-1"}});
    ASSERT_EQ(j1.status, 202) << j1.body;
    ASSERT_EQ(j2.status, 202) << j2.body;
    EXPECT_EQ(body_json(j1)["job_id"], body_json(j2)["job_id"]);
    EXPECT_EQ(body_json(call(c, "GET", "/jobs"))["total"], 2);
    // The same key with a different request is a conflict, not a replay.
    json other{{"source", {{"size", 2000}}}};
    auto j3 = call(c, "POST", "/jobs", other.dump(), "application/json", {{"Idempotency-Key", "json-1"}});
    EXPECT_EQ(j3.status, 409) << j3.body;
    EXPECT_EQ(error_code(j3), "CONFLICT");
    auto m3 = submit_multipart(c, small_clip_bytes(), json{{"priority", 9}}, "a.mp4",
                               {{"Idempotency-Key", "order-42"}});
    EXPECT_EQ(m3.status, 409) << m3.body;
    EXPECT_EQ(body_json(call(c, "GET", "/jobs"))["total"], 2);
    // Another user's same key is their own job.
    auto bob = server->client(server->key("bob", Role::User));
    auto b =
        submit_multipart(bob, small_clip_bytes(), json::object(), "a.mp4", {{"Idempotency-Key", "order-42"}});
    ASSERT_EQ(b.status, 202);
    EXPECT_NE(body_json(b)["job_id"], body_json(first)["job_id"]);
    // Only one source file per job is kept (the replay's bytes were dropped).
    auto files = files_under(server->config().pools.front().root);
    EXPECT_EQ(std::count_if(files.begin(), files.end(),
                            [](const std::string& f) { return f.find("incoming") != std::string::npos; }),
              0);
}

TEST_F(FlowTest, QueuedJobPastItsTtlExpires) {
    auto c = server->client(alice_key);
    std::string id = submit(c, {{"ttl_seconds", 1}});
    std::string keep = submit(c);
    ASSERT_TRUE(test::wait_until(
        [&] {
            server->jobs().run_maintenance();
            return body_json(call(c, "GET", "/jobs/" + id))["state"] == "failed";
        },
        std::chrono::seconds(5)));
    auto j = body_json(call(c, "GET", "/jobs/" + id));
    EXPECT_NE(j.dump().find("expired"), std::string::npos) << j.dump();
    EXPECT_EQ(body_json(call(c, "GET", "/jobs/" + keep))["state"], "queued");
}

TEST_F(FlowTest, PresetsAndPools) {
    auto c = server->client(alice_key);
    auto p = call(c, "GET", "/presets");
    ASSERT_EQ(p.status, 200);
    EXPECT_FALSE(body_json(p)["items"].empty());
    auto pools = call(c, "GET", "/pools");
    ASSERT_EQ(pools.status, 200);
    auto items = body_json(pools)["items"];
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0]["name"], "default");
    EXPECT_FALSE(items[0].contains("path"));  // only admins see paths
    auto health = call(c, "GET", "http://127.0.0.1:" + std::to_string(server->port()) + "/healthz");
    EXPECT_EQ(health.status, 200);
    // Metrics need no key; the queue shows the job this test's fixture made (if any) and every state.
    auto metrics = call(c, "GET", "http://127.0.0.1:" + std::to_string(server->port()) + "/metrics");
    ASSERT_EQ(metrics.status, 200);
    for (const char* line :
         {"# TYPE distconv_jobs gauge", "distconv_jobs{state=\"awaiting_upload\"} ", "distconv_queue_depth ",
          "distconv_engines{state=\"idle\"} 0", "distconv_assignments_active 0"})
        EXPECT_NE(metrics.body.find(line), std::string::npos) << line << "\n" << metrics.body;
}

}  // namespace
}  // namespace distconv::itest
