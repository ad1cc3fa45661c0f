// A failed read is an error, never an empty answer: every Store reader returns UNAVAILABLE (503,
// retryable) when the database cannot answer, and every writer does while another process holds the
// write lock past the busy timeout. The faults are real: another SQLite connection to the same file
// hides the tables (the schema a reader needs is gone) or holds BEGIN IMMEDIATE.

#include "dispatch_server/store/store.hpp"

#include "common/ulid.hpp"
#include "tests/support/sqlite_peer.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <functional>

namespace distconv::dispatch {
namespace {

using namespace std::chrono_literals;

using OtherConnection = test::SqlitePeer;

class StoreFaultTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto r = Store::open(m_dir / "dispatch.db", m_clock, 50ms);
        ASSERT_TRUE(r.ok()) << r.error().to_string();
        m_store = std::move(r.value());
        auto key = m_store->create_api_key("alice", Role::User, "hash-alice", "dcv_");
        ASSERT_TRUE(key.ok());
        m_key = *key;
        JobRecord j;
        j.id = new_ulid();
        j.owner_key_id = m_key.id;
        j.state = JobState::Queued;
        j.output_filename = "out.mp4";
        j.source_pool = "default";
        j.source_path = "jobs/" + j.id + "/source";
        j.source_reserved = 1000;
        auto job = m_store->insert_job(j);
        ASSERT_TRUE(job.ok());
        m_job = *job;
        EngineRecord e;
        e.key_id = m_key.id;
        e.hostname = "box";
        auto engine = m_store->insert_engine(e);
        ASSERT_TRUE(engine.ok());
        m_engine = *engine;
    }

    // Every reader, by name, each returning the error it got (or nothing when it answered).
    std::vector<std::pair<std::string, std::function<std::optional<Error>()>>> readers() {
        auto err = [](const auto& r) -> std::optional<Error> {
            if (r.ok()) return std::nullopt;
            return r.error();
        };
        Store& s = *m_store;
        const std::string job = m_job.id, key = m_key.id, engine = m_engine.id;
        return {
            {"find_api_key_by_hash", [&s, err] { return err(s.find_api_key_by_hash("hash-alice")); }},
            {"get_api_key", [&s, err, key] { return err(s.get_api_key(key)); }},
            {"list_api_keys", [&s, err] { return err(s.list_api_keys(true)); }},
            {"get_job", [&s, err, job] { return err(s.get_job(job)); }},
            {"list_jobs", [&s, err] { return err(s.list_jobs({})); }},
            {"job_events", [&s, err, job] { return err(s.job_events(job)); }},
            {"queue_position", [&s, err, job] { return err(s.queue_position(job)); }},
            {"count_by_state", [&s, err] { return err(s.count_by_state()); }},
            {"count_by_state of an owner", [&s, err, key] { return err(s.count_by_state(key)); }},
            {"queue_positions", [&s, err, job] { return err(s.queue_positions({job})); }},
            {"event_feed", [&s, err] { return err(s.event_feed(0, std::nullopt)); }},
            {"last_event_id", [&s, err] { return err(s.last_event_id()); }},
            {"finished_since", [&s, err] { return err(s.finished_since(0, 1000, 12, std::nullopt)); }},
            {"failed_since", [&s, err] { return err(s.failed_since(0, std::nullopt, 20)); }},
            {"list_jobs by name",
             [&s, err] {
                 JobQuery q;
                 q.name_contains = "x";
                 q.sort = JobSort::Name;
                 return err(s.list_jobs(q));
             }},
            {"jobs_past_ttl", [&s, err] { return err(s.jobs_past_ttl(0, 1)); }},
            {"jobs_with_expired_outputs", [&s, err] { return err(s.jobs_with_expired_outputs(0)); }},
            {"terminal_jobs_with_sources", [&s, err] { return err(s.terminal_jobs_with_sources()); }},
            {"referenced_files", [&s, err] { return err(s.referenced_files()); }},
            {"tasks_of", [&s, err, job] { return err(s.tasks_of(job)); }},
            {"jobs_in_split_state",
             [&s, err] {
                 return err(s.jobs_in_split_state({"pending", "split"}));
             }},
            {"reserved_bytes", [&s, err] { return err(s.reserved_bytes("default")); }},
            {"get_engine", [&s, err, engine] { return err(s.get_engine(engine)); }},
            {"list_engines", [&s, err] { return err(s.list_engines()); }},
            {"online_benchmark_scores", [&s, err] { return err(s.online_benchmark_scores()); }},
            {"any_claimable_job", [&s, err] { return err(s.any_claimable_job()); }},
            {"get_attempt", [&s, err] { return err(s.get_attempt("01ARZ3NDEKTSV4RRFFQ69G5FAV")); }},
            {"attempts_for_job", [&s, err, job] { return err(s.attempts_for_job(job)); }},
            {"active_attempts", [&s, err] { return err(s.active_attempts()); }},
            {"expired_attempts", [&s, err] { return err(s.expired_attempts(0)); }},
            {"check_readable",
             [&s] {
                 auto r = s.check_readable();
                 return r.ok() ? std::nullopt : std::optional(r.error());
             }},
        };
    }

    test::TempDir m_dir;
    SystemClock m_clock;
    std::unique_ptr<Store> m_store;
    ApiKeyRecord m_key;
    JobRecord m_job;
    EngineRecord m_engine;
};

TEST_F(StoreFaultTest, EveryReaderAnswersUnavailableWhenTheDatabaseCannotBeRead) {
    OtherConnection other(m_dir / "dispatch.db");
    ASSERT_TRUE(other.hide_store_tables());
    for (const auto& [name, read] : readers()) {
        auto e = read();
        ASSERT_TRUE(e.has_value()) << name << " answered from a database it could not read";
        EXPECT_EQ(e->code, ErrorCode::Unavailable) << name << ": " << e->to_string();
        EXPECT_TRUE(e->retryable) << name;
        EXPECT_TRUE(e->details.contains("sqlite_code")) << name;
    }
    // The maintenance's listing in particular: no partial or empty list that a sweep could act on.
    EXPECT_FALSE(m_store->referenced_files().ok());

    ASSERT_TRUE(other.restore_store_tables());
    for (const auto& [name, read] : readers()) {
        auto e = read();
        // get_attempt of an id that does not exist is NOT_FOUND, not a database error.
        if (name == "get_attempt") {
            ASSERT_TRUE(e.has_value());
            EXPECT_EQ(e->code, ErrorCode::NotFound);
            continue;
        }
        EXPECT_FALSE(e.has_value()) << name << " after the fault: " << e->to_string();
    }
    auto files = m_store->referenced_files();
    ASSERT_TRUE(files.ok());
    ASSERT_EQ(files->size(), 1u);
    EXPECT_EQ(files->front().second, m_job.source_path);
    EXPECT_EQ(*m_store->reserved_bytes("default"), 1000u);
}

TEST_F(StoreFaultTest, MissingRowsAreNotFoundNotDatabaseErrors) {
    EXPECT_EQ(m_store->get_job("01ARZ3NDEKTSV4RRFFQ69G5FAV").error().code, ErrorCode::JobNotFound);
    EXPECT_EQ(m_store->get_api_key("nope").error().code, ErrorCode::NotFound);
    EXPECT_EQ(m_store->find_api_key_by_hash("nope").error().code, ErrorCode::NotFound);
    EXPECT_EQ(m_store->get_engine("nope").error().code, ErrorCode::NotFound);
    EXPECT_EQ(m_store->get_attempt("nope").error().code, ErrorCode::NotFound);
    auto position = m_store->queue_position("01ARZ3NDEKTSV4RRFFQ69G5FAV");
    ASSERT_TRUE(position.ok());
    EXPECT_FALSE(position->has_value());
}

TEST_F(StoreFaultTest, WritersAnswerUnavailableWhileAnotherProcessHoldsTheWriteLock) {
    OtherConnection other(m_dir / "dispatch.db");
    other.exec("BEGIN IMMEDIATE");
    JobRecord j;
    j.id = new_ulid();
    j.owner_key_id = m_key.id;
    j.output_filename = "b.mp4";
    auto inserted = m_store->insert_job(j);
    ASSERT_FALSE(inserted.ok());
    EXPECT_EQ(inserted.error().code, ErrorCode::Unavailable) << inserted.error().to_string();
    EXPECT_TRUE(inserted.error().retryable);
    auto moved = m_store->transition(m_job.id, {JobState::Queued}, JobState::Canceled, {}, "x");
    ASSERT_FALSE(moved.ok());
    EXPECT_EQ(moved.error().code, ErrorCode::Unavailable);
    EXPECT_FALSE(m_store->check_writable(20ms).ok());
    // WAL: readers still answer while a writer holds the lock.
    ASSERT_TRUE(m_store->get_job(m_job.id).ok());
    EXPECT_EQ(m_store->get_job(m_job.id)->state, JobState::Queued);

    other.exec("ROLLBACK");
    EXPECT_TRUE(m_store->check_writable().ok());
    ASSERT_TRUE(m_store->insert_job(j).ok());
    EXPECT_EQ(m_store->get_job(m_job.id)->state, JobState::Queued);  // the refused transition did nothing
}

}  // namespace
}  // namespace distconv::dispatch
