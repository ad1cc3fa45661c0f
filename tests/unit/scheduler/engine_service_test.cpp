// EngineService over a real store and pool, with a clock the test moves: leases, fencing tokens,
// retries with backoff, cancel through progress, offline engines, long-polls that wake for work only.
#include "dispatch_server/service/engines.hpp"
#include "dispatch_server/service/jobs.hpp"
#include "tests/support/must.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace distconv;
using namespace distconv::dispatch;

namespace {

using distconv::test::must;

class FakeClock : public Clock {
  public:
    SystemTime now() const override { return from_unix_ms(m_ms); }
    void advance(int64_t ms) { m_ms += ms; }

  private:
    int64_t m_ms = 1'800'000'000'000;
};

// Cancel never probes media; any call would be a bug.
class NoProber : public Prober {
  public:
    Result<media::ProbeInfo> probe(const std::filesystem::path&) override {
        return Error(ErrorCode::Internal, "not expected");
    }
};

class EngineServiceTest : public ::testing::Test {
  protected:
    void SetUp() override {
        config.data_dir = dir.path().string();
        config.listen = "127.0.0.1:0";
        config.lease_timeout = "10s";
        config.heartbeat_interval = "2s";
        config.engine_offline_after = "30s";
        config.retry_backoff = "1s";
        ASSERT_TRUE(finalize(config).ok());
        auto opened = Store::open(config.database_path(), clock);
        ASSERT_TRUE(opened.ok());
        store = std::move(*opened);
        pools = std::make_unique<StoragePools>(config.pools);
        ASSERT_TRUE(pools->prepare().ok());
        engines =
            std::make_unique<EngineService>(*store, *pools, config, clock, notifier, &metrics, &credentials);
        auto user_key = store->create_api_key("user", Role::User, "h1", "p1");
        auto engine_key = store->create_api_key("engine", Role::Engine, "h2", "p2");
        user = Principal{user_key->id, "user", Role::User};
        engine_principal = Principal{engine_key->id, "engine", Role::Engine};
        protocol::EngineRegistration reg;
        reg.hostname = "box";
        reg.version = "0.1.0";
        reg.slots = 1;
        reg.capabilities.encoders = {"libx264", "aac"};
        reg.free_disk_bytes = 100ll << 30;
        engine_id = engines->register_engine(engine_principal, reg)->engine_id;
    }

    // A queued job whose source file is in the pool.
    std::string queued_job(int max_attempts = 3, const std::string& demuxer = "mov") {
        JobRecord j;
        j.owner_key_id = user.key_id;
        j.state = JobState::Queued;
        j.max_attempts = max_attempts;
        j.resolved = media::to_json(*media::resolve_options({}));
        j.output_filename = "out.mp4";
        j.source_size = 4;
        auto inserted = store->insert_job(j);
        JobUpdate u;
        u.source_pool = "default";
        u.source_path = StoragePools::job_file(inserted->id, FileKind::Source);
        u.source_probe =
            nlohmann::json{{"format_name", "mov,mp4,m4a,3gp,3g2,mj2"}, {"streams", nlohmann::json::array()}};
        if (!demuxer.empty()) (*u.source_probe)["demuxer"] = demuxer;
        std::filesystem::create_directories(
            pools->resolve("default", u.source_path->substr(0, u.source_path->rfind('/'))));
        test::write_file(pools->resolve("default", *u.source_path), "data");
        EXPECT_TRUE(store->update_job(inserted->id, u).ok());
        notifier.notify();
        return inserted->id;
    }

    protocol::Assignment claim() {
        protocol::ClaimRequest req;
        req.wait_seconds = 0;
        auto a = engines->claim(engine_principal, engine_id, req, "http://127.0.0.1:1");
        EXPECT_TRUE(a.ok());
        EXPECT_TRUE(a->has_value());
        return **a;
    }

    test::TempDir dir;
    FakeClock clock;
    DispatchConfig config;
    std::unique_ptr<Store> store;
    std::unique_ptr<StoragePools> pools;
    ChangeNotifier notifier;
    Metrics metrics;
    AssignmentCredentials credentials;
    std::unique_ptr<EngineService> engines;
    Principal user, engine_principal;
    std::string engine_id;
};

}  // namespace

TEST_F(EngineServiceTest, ClaimGivesAnAssignmentWithArgvAndToken) {
    auto job = queued_job();
    auto a = claim();
    EXPECT_EQ(a.job_id, job);
    EXPECT_EQ(a.fencing_token, 1);
    EXPECT_EQ(a.transfer_mode, protocol::TransferMode::File);
    EXPECT_NE(std::find(a.ffmpeg_argv.begin(), a.ffmpeg_argv.end(), "{input}"), a.ffmpeg_argv.end());
    EXPECT_EQ(a.ffmpeg_argv.back(), "{output}");
    EXPECT_EQ(a.source_url, "http://127.0.0.1:1/api/v1/assignments/" + a.assignment_id + "/source");
    EXPECT_EQ(store->get_job(job)->state, JobState::Assigned);
    // One slot: a second claim gets nothing even with another job queued.
    queued_job();
    protocol::ClaimRequest req;
    req.wait_seconds = 0;
    EXPECT_FALSE(engines->claim(engine_principal, engine_id, req, "")->has_value());
}

TEST_F(EngineServiceTest, AnUndeliveredClaimIsHandedBackAtOnceAndNotCounted) {
    auto job = queued_job();
    auto a = claim();
    EXPECT_EQ(store->get_job(job)->attempt_count, 1);
    ASSERT_TRUE(engines->hand_back(a.assignment_id, a.fencing_token).ok());
    auto j = store->get_job(job);
    EXPECT_EQ(j->state, JobState::Queued);
    EXPECT_EQ(j->attempt_count, 0) << "an answer the engine never got is not an attempt";
    EXPECT_FALSE(j->not_before.has_value()) << "no backoff: nothing failed";
    EXPECT_EQ(store->get_attempt(a.assignment_id)->state, AttemptState::Undelivered);
    // Claimable again at once, with a newer token; handing back the old one again changes nothing.
    auto again = claim();
    EXPECT_EQ(again.job_id, job);
    EXPECT_GT(again.fencing_token, a.fencing_token);
    ASSERT_TRUE(engines->hand_back(a.assignment_id, a.fencing_token).ok());
    EXPECT_EQ(store->get_job(job)->state, JobState::Assigned);
}

TEST_F(EngineServiceTest, AClaimWhoseCallerIsGoneTakesNothing) {
    queued_job();
    protocol::ClaimRequest req;
    req.wait_seconds = 0;
    auto a = engines->claim(engine_principal, engine_id, req, "", [] { return true; });
    ASSERT_TRUE(a.ok());
    EXPECT_FALSE(a->has_value());
    EXPECT_TRUE(claim().job_id.size() > 0);
}

TEST_F(EngineServiceTest, ExpiredLeaseRequeuesWithBackoffAndTheOldTokenIsLost) {
    auto job = queued_job();
    auto first = claim();
    clock.advance(11'000);
    EXPECT_EQ(engines->rescue().leases_expired, 1);
    auto j = store->get_job(job);
    EXPECT_EQ(j->state, JobState::Queued);
    ASSERT_TRUE(j->not_before.has_value());
    EXPECT_GT(*j->not_before, clock.now_ms());
    // Not claimable during the backoff.
    protocol::ClaimRequest req;
    req.wait_seconds = 0;
    EXPECT_FALSE(engines->claim(engine_principal, engine_id, req, "")->has_value());
    clock.advance(5'000);
    auto second = claim();
    EXPECT_EQ(second.fencing_token, 2);
    // Counted for /metrics: two hand-outs (the second waited 5 s in the queue), one expiry, one retry.
    auto text = metrics.render({});
    EXPECT_NE(text.find("distconv_assignments_total 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("distconv_lease_expiries_total 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("distconv_job_retries_total 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("distconv_queue_wait_seconds_bucket{le=\"1\"} 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("distconv_queue_wait_seconds_bucket{le=\"5\"} 2\n"), std::string::npos) << text;
    // The late first attempt can neither report nor finish.
    protocol::ProgressReport p;
    p.fencing_token = first.fencing_token;
    EXPECT_EQ(engines->progress(engine_principal, first.assignment_id, p).error().code, ErrorCode::LeaseLost);
    protocol::CompleteRequest c;
    c.fencing_token = first.fencing_token;
    EXPECT_EQ(engines->complete(engine_principal, first.assignment_id, c).error().code, ErrorCode::LeaseLost);
    EXPECT_EQ(engines->begin_output_upload(engine_principal, first.assignment_id, 1, 0).error().code,
              ErrorCode::LeaseLost);
}

TEST_F(EngineServiceTest, ProgressExtendsTheLeaseAndMovesToRunning) {
    auto job = queued_job();
    auto a = claim();
    clock.advance(8'000);
    protocol::ProgressReport p;
    p.fencing_token = a.fencing_token;
    p.percent = 40;
    p.fps = 50;
    auto reply = engines->progress(engine_principal, a.assignment_id, p);
    ASSERT_TRUE(reply.ok()) << reply.error().to_string();
    EXPECT_TRUE(reply->continue_);
    EXPECT_EQ(store->get_job(job)->state, JobState::Running);
    EXPECT_DOUBLE_EQ(store->get_job(job)->progress_percent, 40);
    clock.advance(8'000);  // 16 s after the claim, 8 s after progress: still leased
    EXPECT_EQ(engines->rescue().leases_expired, 0);
    clock.advance(3'000);
    EXPECT_EQ(engines->rescue().leases_expired, 1);
}

TEST_F(EngineServiceTest, PermanentFailureFailsAtOnceTransientRetriesUntilAttemptsRunOut) {
    auto job = queued_job(2);
    auto a = claim();
    protocol::FailRequest f;
    f.fencing_token = a.fencing_token;
    f.error_class = protocol::ErrorClass::Transient;
    f.message = "network";
    EXPECT_EQ(engines->fail(engine_principal, a.assignment_id, f)->state, JobState::Queued);
    clock.advance(60'000);
    auto b = claim();
    f.fencing_token = b.fencing_token;
    EXPECT_EQ(engines->fail(engine_principal, b.assignment_id, f)->state, JobState::Failed);
    EXPECT_EQ(store->get_job(job)->failure_code, "attempts_exhausted");

    auto job2 = queued_job();
    auto c = claim();
    protocol::FailRequest perm;
    perm.fencing_token = c.fencing_token;
    perm.error_class = protocol::ErrorClass::Permanent;
    perm.exit_code = 1;
    perm.message = "ffmpeg rejected the input";
    perm.stderr_tail = "line1\nin.mp4: Invalid data found when processing input\n";
    EXPECT_EQ(engines->fail(engine_principal, c.assignment_id, perm)->state, JobState::Failed);
    auto failed = store->get_job(job2);
    EXPECT_EQ(failed->failure_code, "TRANSCODE_FAILED");
    EXPECT_NE(failed->failure_reason.find("Invalid data found"), std::string::npos);
    EXPECT_NE(failed->failure_reason.find("exit code 1"), std::string::npos);
}

TEST_F(EngineServiceTest, CancelReachesTheEngineThroughProgressAndHeartbeat) {
    NoProber prober;
    JobService jobs(*store, *pools, config, prober, clock, notifier);
    auto job = queued_job();
    auto a = claim();
    ASSERT_EQ(jobs.cancel(user, job)->state, JobState::Canceling);
    protocol::ProgressReport p;
    p.fencing_token = a.fencing_token;
    auto reply = engines->progress(engine_principal, a.assignment_id, p);
    ASSERT_TRUE(reply.ok());
    EXPECT_FALSE(reply->continue_);
    EXPECT_EQ(store->get_job(job)->state, JobState::Canceled);

    auto job2 = queued_job();
    auto b = claim();
    ASSERT_EQ(jobs.cancel(user, job2)->state, JobState::Canceling);
    protocol::Heartbeat hb;
    hb.running_assignments = {b.assignment_id, "UNKNOWN"};
    auto hr = engines->heartbeat(engine_principal, engine_id, hb);
    ASSERT_TRUE(hr.ok());
    EXPECT_EQ(hr->cancel.size(), 2u);
    EXPECT_EQ(store->get_job(job2)->state, JobState::Canceled);
}

TEST_F(EngineServiceTest, SilentEngineGoesOfflineAndItsWorkIsRequeued) {
    auto job = queued_job();
    claim();
    clock.advance(9'000);
    protocol::Heartbeat hb;  // a heartbeat that does not list the assignment does not extend it
    ASSERT_TRUE(engines->heartbeat(engine_principal, engine_id, hb).ok());
    clock.advance(31'000);
    auto report = engines->rescue();
    EXPECT_EQ(report.engines_offline, 1);
    EXPECT_EQ(store->get_job(job)->state, JobState::Queued);
    EXPECT_EQ(store->get_engine(engine_id)->state, EngineState::Offline);
}

TEST_F(EngineServiceTest, DrainedEngineGetsNoWork) {
    queued_job();
    ASSERT_TRUE(engines->set_drain(engine_id, true).ok());
    protocol::ClaimRequest req;
    req.wait_seconds = 0;
    EXPECT_FALSE(engines->claim(engine_principal, engine_id, req, "")->has_value());
    ASSERT_TRUE(engines->set_drain(engine_id, false).ok());
    EXPECT_TRUE(engines->claim(engine_principal, engine_id, req, "")->has_value());
}

TEST_F(EngineServiceTest, BenchmarkRerunIsAskedOnceThroughTheHeartbeat) {
    protocol::Heartbeat hb;
    EXPECT_FALSE(engines->heartbeat(engine_principal, engine_id, hb)->rerun_benchmark);
    ASSERT_TRUE(engines->request_benchmark(engine_id).ok());
    EXPECT_TRUE(engines->heartbeat(engine_principal, engine_id, hb)->rerun_benchmark);
    EXPECT_FALSE(engines->heartbeat(engine_principal, engine_id, hb)->rerun_benchmark);
    hb.benchmark_score = 42.5;
    ASSERT_TRUE(engines->heartbeat(engine_principal, engine_id, hb).ok());
    EXPECT_DOUBLE_EQ(*store->get_engine(engine_id)->benchmark_score, 42.5);
    EXPECT_EQ(engines->request_benchmark("NOPE").error().code, ErrorCode::NotFound);
}

TEST_F(EngineServiceTest, HeartbeatRecordsReadingsKeepsDrainingAndAScoreItDoesNotCarry) {
    protocol::Heartbeat hb;
    hb.state = protocol::EngineState::Busy;
    hb.load_average = 1.5;
    hb.free_disk_bytes = 123456;
    hb.cpu_temperature_c = 61.0;
    hb.benchmark_score = 7.0;
    clock.advance(2'000);
    auto reply = engines->heartbeat(engine_principal, engine_id, hb);
    ASSERT_TRUE(reply.ok()) << reply.error().message;
    EXPECT_FALSE(reply->drain);
    auto e = store->get_engine(engine_id);
    EXPECT_EQ(e->state, EngineState::Busy);
    EXPECT_DOUBLE_EQ(*e->load_average, 1.5);
    EXPECT_EQ(e->free_disk_bytes, 123456);
    EXPECT_DOUBLE_EQ(*e->cpu_temperature_c, 61.0);
    EXPECT_EQ(e->last_seen_at, clock.now_ms());
    const auto hostname = e->hostname;

    ASSERT_TRUE(engines->set_drain(engine_id, true).ok());
    hb.benchmark_score.reset();
    hb.cpu_temperature_c.reset();  // a sensor gone: null, not the old reading
    reply = engines->heartbeat(engine_principal, engine_id, hb);
    ASSERT_TRUE(reply.ok());
    EXPECT_TRUE(reply->drain);
    e = store->get_engine(engine_id);
    EXPECT_EQ(e->state, EngineState::Draining);
    EXPECT_DOUBLE_EQ(*e->benchmark_score, 7.0);
    EXPECT_FALSE(e->cpu_temperature_c.has_value());
    EXPECT_EQ(e->hostname, hostname);  // what the heartbeat does not carry stays
    EXPECT_EQ(engines->heartbeat(engine_principal, "NOPE", hb).error().code, ErrorCode::NotFound);
}

TEST_F(EngineServiceTest, AnotherEnginesKeyCannotTouchTheEngine) {
    auto other = store->create_api_key("other", Role::Engine, "h3", "p3");
    Principal intruder{other->id, "other", Role::Engine};
    protocol::Heartbeat hb;
    EXPECT_EQ(engines->heartbeat(intruder, engine_id, hb).error().code, ErrorCode::NotFound);
    queued_job();
    auto a = claim();
    protocol::ProgressReport p;
    p.fencing_token = a.fencing_token;
    EXPECT_EQ(engines->progress(intruder, a.assignment_id, p).error().code, ErrorCode::NotFound);
}

TEST_F(EngineServiceTest, AWaitingClaimIsHandedWorkQueuedWhileItWaits) {
    protocol::ClaimRequest req;
    req.wait_seconds = 10;
    std::optional<protocol::Assignment> got;
    auto start = std::chrono::steady_clock::now();
    std::thread waiter([&] {
        auto a = engines->claim(engine_principal, engine_id, req, "");
        if (a.ok() && a->has_value()) got = **a;
    });
    notifier.notify_watchers();  // progress elsewhere: nothing to claim, the claim keeps waiting
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto job = queued_job();  // notify(): work
    waiter.join();
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->job_id, job);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(EngineServiceTest, StoreTellsWhetherAJobIsClaimableAndTheOnlineScores) {
    EXPECT_FALSE(must(store->any_claimable_job()));
    auto job = queued_job();
    EXPECT_TRUE(must(store->any_claimable_job()));
    JobUpdate u;
    u.not_before = clock.now_ms() + 5'000;  // in its backoff
    ASSERT_TRUE(store->update_job(job, u).ok());
    EXPECT_FALSE(must(store->any_claimable_job()));
    clock.advance(5'000);
    EXPECT_TRUE(must(store->any_claimable_job()));

    EXPECT_TRUE(must(store->online_benchmark_scores()).empty());  // the engine has no score yet
    auto e = *store->get_engine(engine_id);
    e.benchmark_score = 7.5;
    ASSERT_TRUE(store->update_engine(e).ok());
    EXPECT_EQ(must(store->online_benchmark_scores()), std::vector<double>{7.5});
    e.state = EngineState::Offline;
    ASSERT_TRUE(store->update_engine(e).ok());
    EXPECT_TRUE(must(store->online_benchmark_scores()).empty());
}

TEST(ChangeNotifierTest, ClaimWaitersWakeForWorkOnly) {
    using namespace std::chrono_literals;
    ChangeNotifier n;
    auto any = n.generation();
    auto work = n.work_generation();
    n.notify_watchers();
    EXPECT_NE(n.generation(), any);
    EXPECT_EQ(n.work_generation(), work);
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(n.wait_for_work(work, 50ms), work);  // times out: watchers' changes do not count
    EXPECT_GE(std::chrono::steady_clock::now() - start, 40ms);
    std::thread later([&] {
        std::this_thread::sleep_for(20ms);
        n.notify();
    });
    EXPECT_NE(n.wait_for_work(work, 10s), work);
    later.join();
    EXPECT_NE(n.generation(), any);
    n.close();
    auto closed_at = n.work_generation();
    EXPECT_EQ(n.wait_for_work(closed_at, 10s), closed_at);  // closed: returns at once
}

TEST_F(EngineServiceTest, ClaimPinsTheSourceFormatAndIssuesACredentialForThatAssignmentOnly) {
    auto job = queued_job();
    auto a = claim();
    EXPECT_EQ(a.source_format, "mov");
    auto f = std::find(a.ffmpeg_argv.begin(), a.ffmpeg_argv.end(), "-f");
    ASSERT_NE(f, a.ffmpeg_argv.end());
    EXPECT_EQ(*(f + 1), "mov");  // the input's -f comes before the output's
    // Planned from the probe the job stored, which the assignment carries for the engine to plan alike.
    EXPECT_TRUE(a.source_probe.is_object());
    auto plan = protocol::assignment_plan(a);
    ASSERT_TRUE(plan.ok() && plan->has_value());
    EXPECT_EQ(a.ffmpeg_argv, protocol::assignment_argv(a.options, a.transfer_mode, "mov", &**plan).value());
    ASSERT_FALSE(a.credential.empty());

    auto claims = credentials.verify(a.credential, clock.now_ms());
    ASSERT_TRUE(claims.ok());
    EXPECT_EQ(claims->assignment_id, a.assignment_id);
    EXPECT_EQ(claims->fencing_token, a.fencing_token);

    AuthService auth(*store, &credentials, &clock);
    auto who = auth.authenticate("Bearer " + a.credential);
    ASSERT_TRUE(who.ok());
    EXPECT_TRUE(who->scoped());
    // It moves bytes: the source, and the output's offset and upload.
    EXPECT_TRUE(require_transfer(*who).ok());
    EXPECT_TRUE(engines->source(*who, a.assignment_id, a.fencing_token).ok());
    EXPECT_TRUE(engines->output_offset(*who, a.assignment_id, a.fencing_token).ok());
    // Nothing else: not the engine endpoints, not the user or admin ones, not another assignment.
    EXPECT_EQ(require_engine(*who).error().code, ErrorCode::Forbidden);
    EXPECT_EQ(require_user(*who).error().code, ErrorCode::Forbidden);
    EXPECT_EQ(require_admin(*who).error().code, ErrorCode::Forbidden);
    EXPECT_EQ(engines->source(*who, "01J" + std::string(23, 'Z'), std::nullopt).error().code,
              ErrorCode::Forbidden);

    // Forged, altered and expired credentials are refused.
    std::string forged = a.credential;
    forged.back() = forged.back() == '0' ? '1' : '0';
    EXPECT_EQ(auth.authenticate("Bearer " + forged).error().code, ErrorCode::Unauthenticated);
    std::string other_token = a.credential;
    other_token.replace(other_token.find("." + std::to_string(a.fencing_token) + "."), 3, ".9.");
    EXPECT_EQ(auth.authenticate("Bearer " + other_token).error().code, ErrorCode::Unauthenticated);
    AssignmentCredentials other_server;
    EXPECT_FALSE(other_server.verify(a.credential, clock.now_ms()).ok());
    EXPECT_FALSE(credentials.verify(a.credential, claims->expires_at_ms).ok());
    (void)job;
}

TEST_F(EngineServiceTest, ProgressRenewsTheCredentialAndItDiesWithTheAttempt) {
    queued_job();
    auto a = claim();
    protocol::ProgressReport r;
    r.fencing_token = a.fencing_token;
    r.percent = 10;
    clock.advance(5000);
    auto reply = engines->progress(engine_principal, a.assignment_id, r);
    ASSERT_TRUE(reply.ok());
    ASSERT_TRUE(reply->credential);
    auto renewed = credentials.verify(*reply->credential, clock.now_ms());
    ASSERT_TRUE(renewed.ok());
    EXPECT_GT(renewed->expires_at_ms, credentials.verify(a.credential, clock.now_ms())->expires_at_ms);

    // The lease expires and the job is requeued: the still-unexpired credential no longer works.
    clock.advance(11000);
    engines->rescue();
    AuthService auth(*store, &credentials, &clock);
    auto who = auth.authenticate("Bearer " + *reply->credential);
    ASSERT_TRUE(who.ok());
    EXPECT_EQ(engines->source(*who, a.assignment_id, std::nullopt).error().code, ErrorCode::LeaseLost);
}

TEST_F(EngineServiceTest, AJobWithoutAReadableFormatFailsAtClaimInsteadOfComingBack) {
    auto job = queued_job(3, "hls");  // not an allowed demuxer (a row from before the format was checked)
    protocol::ClaimRequest req;
    req.wait_seconds = 0;
    auto a = engines->claim(engine_principal, engine_id, req, "http://127.0.0.1:1");
    ASSERT_TRUE(a.ok());
    EXPECT_FALSE(a->has_value());
    auto j = store->get_job(job);
    EXPECT_EQ(j->state, JobState::Failed);
    EXPECT_NE(j->failure_reason.find("source's format"), std::string::npos) << j->failure_reason;
}
