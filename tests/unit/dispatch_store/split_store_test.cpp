// Split mode in the store: a split job's tasks are jobs with a parent. They are claimed like any job
// but never listed or counted as jobs; the parent waits unclaimable while it is cut, and its tasks
// are inserted with its move to running in one transaction.

#include "dispatch_server/store/store.hpp"

#include "tests/support/must.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

namespace distconv::dispatch {
namespace {

using test::must;

class SplitStoreTest : public ::testing::Test {
  protected:
    void SetUp() override {
        m_store = must(Store::open(m_dir / "dispatch.db", m_clock));
        m_owner = must(m_store->create_api_key("alice", Role::User, "hash-alice", "dcv_")).id;
        EngineRecord e;
        e.key_id = m_owner;
        e.hostname = "box";
        m_engine = must(m_store->insert_engine(e)).id;
    }

    JobRecord pending_parent() {
        JobRecord j;
        j.owner_key_id = m_owner;
        j.state = JobState::Queued;
        j.output_filename = "film.mp4";
        j.split = {{"mode", "on"}, {"state", "pending"}};
        j.split_state = "pending";
        return must(m_store->insert_job(j));
    }

    std::vector<JobRecord> tasks(int n) {
        std::vector<JobRecord> out;
        for (int i = 0; i < n; ++i) {
            JobRecord t;
            t.owner_key_id = m_owner;
            t.state = JobState::Queued;
            t.output_filename = "segment-" + std::to_string(i) + ".nut";
            t.task = {{"kind", "video"}, {"index", i}, {"frames", 100}};
            out.push_back(t);
        }
        return out;
    }

    std::optional<std::pair<JobRecord, AttemptRecord>> claim() {
        return must(m_store->claim_job(m_engine, 60'000, [](const std::vector<ClaimCandidate>& c) {
            return c.empty() ? std::nullopt : std::optional<ClaimChoice>(ClaimChoice{});
        }));
    }

    test::TempDir m_dir;
    SystemClock m_clock;
    std::unique_ptr<Store> m_store;
    std::string m_owner, m_engine;
};

TEST_F(SplitStoreTest, APendingJobIsNotClaimableWhileItIsCut) {
    auto parent = pending_parent();
    EXPECT_FALSE(must(m_store->any_claimable_job()));
    EXPECT_FALSE(claim().has_value());
    auto pending = must(m_store->jobs_in_split_state({"pending"}));
    ASSERT_EQ(pending.size(), 1u);
    EXPECT_EQ(pending[0].id, parent.id);
    EXPECT_EQ(pending[0].split["mode"], "on");
}

TEST_F(SplitStoreTest, StartSplitStoresTheTasksAndRunsTheJobInOneStep) {
    auto parent = pending_parent();
    JobUpdate u;
    u.split_state = "split";
    u.split = nlohmann::json{{"state", "split"}, {"frames", 300}};
    auto running = must(m_store->start_split(parent.id, tasks(3), u, "split into 3 segments"));
    EXPECT_EQ(running.state, JobState::Running);
    EXPECT_EQ(running.split_state, "split");

    auto stored = must(m_store->tasks_of(parent.id));
    ASSERT_EQ(stored.size(), 3u);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(stored[static_cast<size_t>(i)].parent_id, parent.id);
        EXPECT_EQ(stored[static_cast<size_t>(i)].task["index"], i);
        EXPECT_EQ(stored[static_cast<size_t>(i)].state, JobState::Queued);
    }
    // Lists and counts show the job, not its tasks.
    auto page = must(m_store->list_jobs({}));
    ASSERT_EQ(page.items.size(), 1u);
    EXPECT_EQ(page.items[0].id, parent.id);
    EXPECT_EQ(page.total, 1);
    auto counts = must(m_store->count_by_state());
    EXPECT_EQ(counts[JobState::Running], 1);
    EXPECT_EQ(counts[JobState::Queued], 0);
    // The events: the parent's queued -> running, each task's creation.
    auto events = must(m_store->job_events(parent.id));
    EXPECT_EQ(events.back().to_state, JobState::Running);
    EXPECT_EQ(events.back().message, "split into 3 segments");

    // Engines claim the tasks like jobs.
    auto claimed = claim();
    ASSERT_TRUE(claimed.has_value());
    EXPECT_EQ(claimed->first.parent_id, parent.id);
    EXPECT_EQ(claimed->first.task["index"], 0);
    EXPECT_EQ(must(m_store->count_by_state())[JobState::Assigned], 0);
}

TEST_F(SplitStoreTest, StartSplitRefusesAJobCanceledMeanwhileAndStoresNoTask) {
    auto parent = pending_parent();
    must(m_store->transition(parent.id, {JobState::Queued}, JobState::Canceled, {}, "canceled"));
    auto r = m_store->start_split(parent.id, tasks(2), {}, "split");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::Conflict);
    EXPECT_TRUE(must(m_store->tasks_of(parent.id)).empty());
}

TEST_F(SplitStoreTest, TasksAreRemovedOnlyOnceEveryOneHasEnded) {
    auto parent = pending_parent();
    must(m_store->start_split(parent.id, tasks(2), {}, "split"));
    auto stored = must(m_store->tasks_of(parent.id));
    auto st = m_store->delete_tasks(parent.id);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::Conflict);
    for (const auto& t : stored)
        must(m_store->transition(t.id, {JobState::Queued}, JobState::Canceled, {}, "canceled with its job"));
    ASSERT_TRUE(m_store->delete_tasks(parent.id).ok());
    EXPECT_TRUE(must(m_store->tasks_of(parent.id)).empty());
    EXPECT_EQ(must(m_store->get_job(parent.id)).state, JobState::Running);
    // The counters were never touched by the tasks.
    EXPECT_EQ(must(m_store->count_by_state())[JobState::Canceled], 0);
}

}  // namespace
}  // namespace distconv::dispatch
