#include "dispatch_server/scheduler/scheduler.hpp"

#include <gtest/gtest.h>

using namespace distconv;
using namespace distconv::dispatch;

namespace {

ClaimCandidate candidate(const std::string& id, int priority, int64_t created_at, int owner_running = 0,
                         std::optional<double> duration = std::nullopt) {
    ClaimCandidate c;
    c.job.id = id;
    c.job.priority = priority;
    c.job.created_at = created_at;
    c.job.duration_seconds = duration;
    c.job.source_size = 1000;
    c.job.resolved = {{"video", {{"codec", "libx264"}}}, {"audio", {{"codec", "aac"}}}};
    c.owner_running = owner_running;
    return c;
}

EngineProfile engine(double rank = 0.5) {
    EngineProfile p;
    p.engine_id = "E1";
    p.encoders = {"libx264", "aac"};
    p.speed_rank = rank;
    p.free_disk_bytes = 100ull << 30;
    p.disk_reserve_bytes = 1ull << 30;
    return p;
}

}  // namespace

TEST(Scheduler, PriorityThenAge) {
    std::vector<ClaimCandidate> c{candidate("A", 0, 1), candidate("B", 5, 3), candidate("C", 5, 2)};
    auto choice = choose_job(c, engine());
    ASSERT_TRUE(choice);
    EXPECT_EQ(c[choice->index].job.id, "C");
}

TEST(Scheduler, FairShareBetweenOwnersWithinAPriority) {
    // The owner of A already runs 3 jobs; B's owner none: B goes first although it is younger.
    std::vector<ClaimCandidate> c{candidate("A", 0, 1, 3), candidate("B", 0, 2, 0)};
    EXPECT_EQ(c[choose_job(c, engine())->index].job.id, "B");
    // Priority still beats fair share.
    c[0].job.priority = 1;
    EXPECT_EQ(c[choose_job(c, engine())->index].job.id, "A");
}

TEST(Scheduler, FastEnginesTakeLongJobsSlowOnesShortJobs) {
    std::vector<ClaimCandidate> c{candidate("short", 0, 1, 0, 5.0), candidate("long", 0, 2, 0, 3600.0)};
    EXPECT_EQ(c[choose_job(c, engine(1.0))->index].job.id, "long");
    EXPECT_EQ(c[choose_job(c, engine(0.0))->index].job.id, "short");
}

TEST(Scheduler, RequirementsAreMet) {
    auto needs_x265 = candidate("A", 10, 1);
    needs_x265.job.resolved["video"]["codec"] = "libx265";
    auto needs_gpu = candidate("B", 9, 1);
    needs_gpu.job.requirements = {{"tags", {"gpu"}}};
    auto needs_vaapi = candidate("C", 8, 1);
    needs_vaapi.job.requirements = {{"hwaccel", "vaapi"}};
    auto plain = candidate("D", 0, 1);
    std::vector<ClaimCandidate> c{needs_x265, needs_gpu, needs_vaapi, plain};
    auto p = engine();
    EXPECT_EQ(c[choose_job(c, p)->index].job.id, "D");
    p.tags.insert("gpu");
    EXPECT_EQ(c[choose_job(c, p)->index].job.id, "B");
    p.encoders.insert("libx265");
    EXPECT_EQ(c[choose_job(c, p)->index].job.id, "A");
    // Nothing this engine can run: no choice.
    std::vector<ClaimCandidate> only{needs_vaapi};
    EXPECT_FALSE(choose_job(only, engine()).has_value());
    // copy/none need no encoder.
    auto copy = candidate("E", 0, 1);
    copy.job.resolved = {{"video", {{"codec", "copy"}}}, {"audio", {{"codec", "none"}}}};
    EngineProfile bare;
    EXPECT_TRUE(meets_requirements(copy.job, bare));
}

TEST(Scheduler, AnotherEnginePreferredForARetry) {
    auto retried = candidate("A", 0, 1);
    retried.last_engine = "E1";
    std::vector<ClaimCandidate> c{retried, candidate("B", 0, 2)};
    EXPECT_EQ(c[choose_job(c, engine())->index].job.id, "B");
    // Alone, it still runs here rather than wait.
    std::vector<ClaimCandidate> alone{retried};
    EXPECT_TRUE(choose_job(alone, engine()).has_value());
}

TEST(Scheduler, TransferModeFromFreeDisk) {
    EXPECT_EQ(choose_transfer_mode(10ull << 30, 100ull << 30, 1ull << 30), TransferMode::File);
    EXPECT_EQ(choose_transfer_mode(10ull << 30, 20ull << 30, 1ull << 30),
              TransferMode::Stream);  // 10+10+1 > 20
    EXPECT_EQ(choose_transfer_mode(UINT64_MAX / 2 + 10, UINT64_MAX - 1, 0),
              TransferMode::Stream);  // no overflow
    auto c = std::vector<ClaimCandidate>{candidate("A", 0, 1)};
    c[0].job.source_size = 60ull << 30;
    auto p = engine();
    EXPECT_EQ(choose_job(c, p)->transfer_mode, TransferMode::Stream);
}

TEST(Scheduler, SpeedRankFromBenchmarkScores) {
    EngineRecord slow, mid, fast;
    slow.id = "s";
    slow.benchmark_score = 10;
    mid.id = "m";
    mid.benchmark_score = 20;
    fast.id = "f";
    fast.benchmark_score = 40;
    std::vector<EngineRecord> all{slow, mid, fast};
    EXPECT_DOUBLE_EQ(profile_of(slow, all, 0).speed_rank, 0.0);
    EXPECT_DOUBLE_EQ(profile_of(mid, all, 0).speed_rank, 0.5);
    EXPECT_DOUBLE_EQ(profile_of(fast, all, 0).speed_rank, 1.0);
}

TEST(Scheduler, RetryBackoffGrowsWithJitterAndCap) {
    EXPECT_EQ(retry_backoff_ms(1, 1000, 60000, 0.5), 1000);
    EXPECT_EQ(retry_backoff_ms(3, 1000, 60000, 0.5), 4000);
    EXPECT_EQ(retry_backoff_ms(30, 1000, 60000, 0.5), 60000);
    EXPECT_EQ(retry_backoff_ms(2, 1000, 60000, 0.0), 1600);
    EXPECT_EQ(retry_backoff_ms(2, 1000, 60000, 1.0), 2400);
}
