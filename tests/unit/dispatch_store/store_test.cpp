// The dispatch server's SQLite store against a real database file in a temp dir.
// The raw sqlite3 connections below inspect the file from outside (journal mode, schema_version, the
// TEXT stored for enums) or write what this program never would (a newer schema, unknown names).

#include "dispatch_server/store/store.hpp"

#include "common/ulid.hpp"
#include "tests/support/must.hpp"
#include "tests/support/test_support.hpp"

#include "tests/support/sqlite_peer.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <set>
#include <thread>

namespace distconv::dispatch {
namespace {

using distconv::test::must;

using nlohmann::json;

class FakeClock final : public Clock {
  public:
    explicit FakeClock(int64_t ms = 1'700'000'000'000) : m_ms(ms) {}
    SystemTime now() const override { return from_unix_ms(m_ms.load()); }
    void set(int64_t ms) { m_ms = ms; }
    void advance(int64_t ms) { m_ms += ms; }

  private:
    std::atomic<int64_t> m_ms;
};

// Reads one text or integer value from a database file through a separate connection.
std::string query_one(const std::filesystem::path& db_path, const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    std::string out = "<error>";
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK) {
        out = "<no row>";
        if (sqlite3_step(stmt) == SQLITE_ROW) {
            const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
            out = t ? t : "<null>";
        }
    }
    sqlite3_finalize(stmt);
    sqlite3_close_v2(db);
    return out;
}

// Runs one statement on the database file through a separate connection.
bool exec_outside(const std::filesystem::path& db_path, const std::string& sql) {
    sqlite3* db = nullptr;
    bool ok = sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK;
    char* err = nullptr;
    ok = ok && sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) == SQLITE_OK;
    EXPECT_TRUE(ok) << sql << ": " << (err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    sqlite3_close_v2(db);
    return ok;
}

class StoreTest : public ::testing::Test {
  protected:
    void SetUp() override { reopen(); }

    void reopen() {
        m_store.reset();
        auto r = Store::open(db_path(), m_clock);
        ASSERT_TRUE(r.ok()) << r.error().to_string();
        m_store = std::move(r.value());
    }

    std::filesystem::path db_path() const { return m_dir / "dispatch.db"; }

    std::string make_key(const std::string& name, Role role = Role::User) {
        auto r = m_store->create_api_key(name, role, "hash-" + name, name.substr(0, 4));
        EXPECT_TRUE(r.ok()) << r.error().to_string();
        return r.ok() ? r->id : std::string();
    }

    JobRecord new_job(const std::string& owner, JobState state = JobState::Queued, int priority = 0) {
        JobRecord j;
        j.id = m_ids.next_at(static_cast<uint64_t>(m_clock.now_ms()));
        j.owner_key_id = owner;
        j.state = state;
        j.priority = priority;
        j.output_filename = "out.mp4";
        return j;
    }

    JobRecord insert(const JobRecord& j) {
        auto r = m_store->insert_job(j);
        EXPECT_TRUE(r.ok()) << r.error().to_string();
        return r.ok() ? r.value() : JobRecord{};
    }

    test::TempDir m_dir;
    FakeClock m_clock;
    UlidGenerator m_ids;
    std::unique_ptr<Store> m_store;
};

// --- schema, pragmas, migrations -----------------------------------------------------------------

TEST_F(StoreTest, MigrationsRunOnceAndDataSurvivesReopen) {
    EXPECT_GE(m_store->schema_version(), 1);
    const int version = m_store->schema_version();
    EXPECT_EQ(query_one(db_path(), "SELECT MAX(version) FROM schema_version"), std::to_string(version));
    EXPECT_EQ(query_one(db_path(), "SELECT COUNT(*) FROM schema_version"), std::to_string(version));
    const std::string applied_at =
        query_one(db_path(), "SELECT applied_at FROM schema_version WHERE version = 1");
    EXPECT_EQ(applied_at, std::to_string(m_clock.now_ms()));
    // The tables the engine issue will fill exist from migration 1.
    EXPECT_EQ(query_one(db_path(),
                        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                        "('api_keys', 'jobs', 'job_events', 'engines', 'attempts')"),
              "5");

    const auto owner = make_key("alice");
    const auto job = insert(new_job(owner));

    m_clock.advance(60'000);
    reopen();
    EXPECT_EQ(m_store->schema_version(), version);
    EXPECT_EQ(query_one(db_path(), "SELECT COUNT(*) FROM schema_version"), std::to_string(version));
    // Not re-applied: the recorded time is still the first open's.
    EXPECT_EQ(query_one(db_path(), "SELECT applied_at FROM schema_version WHERE version = 1"), applied_at);
    ASSERT_TRUE(m_store->get_job(job.id).ok());
    EXPECT_EQ(m_store->get_job(job.id)->owner_key_id, owner);
    ASSERT_TRUE(m_store->get_api_key(owner).ok());
    EXPECT_EQ(m_store->get_api_key(owner)->name, "alice");
}

TEST_F(StoreTest, UsesWalModeAndForeignKeys) {
    EXPECT_EQ(query_one(db_path(), "PRAGMA journal_mode"), "wal");
    make_key("bob");
    EXPECT_TRUE(std::filesystem::exists(m_dir / "dispatch.db-wal"));
    // foreign_keys=ON: a job whose owner is not a key is refused.
    auto r = m_store->insert_job(new_job("no-such-key"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::InvalidArgument);
    EXPECT_EQ(must(m_store->list_jobs({})).total, 0);
}

TEST_F(StoreTest, RefusesADatabaseFromANewerVersion) {
    m_store.reset();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "INSERT INTO schema_version (version, applied_at) VALUES (9999, 0)", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
    auto r = Store::open(db_path(), m_clock);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("newer"), std::string::npos) << r.error().message;
}

TEST_F(StoreTest, OpenFailsCleanlyOnAnUnusablePath) {
    test::write_file(m_dir / "not-a-dir", "x");
    auto r = Store::open(m_dir / "not-a-dir" / "db.sqlite", m_clock);
    EXPECT_FALSE(r.ok());
}

TEST_F(StoreTest, IntegrityOkAndBackupOpensWithTheData) {
    EXPECT_TRUE(m_store->integrity_check().ok());
    const auto owner = make_key("carol");
    auto job = new_job(owner);
    job.options = {{"video", {{"codec", "libx264"}}}};
    insert(job);

    const auto backup = m_dir / "backup" / "copy.db";
    std::filesystem::create_directories(backup.parent_path());
    auto st = m_store->backup_to(backup);
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    EXPECT_FALSE(std::filesystem::exists(m_dir / "backup" / "copy.db.tmp"));
    // A second backup over the first replaces it.
    ASSERT_TRUE(m_store->backup_to(backup).ok());

    FakeClock other_clock;
    auto copy = Store::open(backup, other_clock);
    ASSERT_TRUE(copy.ok()) << copy.error().to_string();
    EXPECT_TRUE(copy.value()->integrity_check().ok());
    auto got = copy.value()->get_job(job.id);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->options, job.options);
    EXPECT_TRUE(copy.value()->find_api_key_by_hash("hash-carol").ok());
    EXPECT_EQ(copy.value()->schema_version(), m_store->schema_version());

    EXPECT_FALSE(m_store->backup_to(m_dir / "missing-dir" / "x.db").ok());
}

// --- API keys ------------------------------------------------------------------------------------

TEST_F(StoreTest, ApiKeysCreateFindListRevoke) {
    auto admin = m_store->create_api_key("root", Role::Admin, "h-root", "dcv_abcd");
    ASSERT_TRUE(admin.ok());
    EXPECT_EQ(admin->name, "root");
    EXPECT_EQ(admin->role, Role::Admin);
    EXPECT_EQ(admin->prefix, "dcv_abcd");
    EXPECT_EQ(admin->created_at, m_clock.now_ms());
    EXPECT_FALSE(admin->revoked_at.has_value());
    EXPECT_TRUE(is_ulid(admin->id));

    m_clock.advance(10);
    auto engine = m_store->create_api_key("gpu-box", Role::Engine, "h-gpu", "dcv_gpu");
    ASSERT_TRUE(engine.ok());

    auto found = m_store->find_api_key_by_hash("h-gpu");
    ASSERT_TRUE(found.ok());
    EXPECT_EQ(found->id, engine->id);
    EXPECT_EQ(found->role, Role::Engine);
    EXPECT_FALSE(m_store->find_api_key_by_hash("h-nope").ok());

    // Same name while active → CONFLICT; same hash → CONFLICT.
    auto dup = m_store->create_api_key("root", Role::User, "h-other", "x");
    ASSERT_FALSE(dup.ok());
    EXPECT_EQ(dup.error().code, ErrorCode::Conflict);
    EXPECT_EQ(dup.error().details.value("name", ""), "root");
    auto dup_hash = m_store->create_api_key("another", Role::User, "h-root", "x");
    ASSERT_FALSE(dup_hash.ok());
    EXPECT_EQ(dup_hash.error().code, ErrorCode::Conflict);

    auto list = must(m_store->list_api_keys());
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].name, "root");
    EXPECT_EQ(list[1].name, "gpu-box");

    // Revoke by name, then the hash no longer authenticates and the name is free again.
    m_clock.advance(10);
    auto revoked = m_store->revoke_api_key("gpu-box");
    ASSERT_TRUE(revoked.ok()) << revoked.error().to_string();
    EXPECT_EQ(revoked->id, engine->id);
    EXPECT_EQ(revoked->revoked_at, m_clock.now_ms());
    EXPECT_FALSE(m_store->find_api_key_by_hash("h-gpu").ok());
    ASSERT_TRUE(m_store->get_api_key(engine->id).ok());
    EXPECT_EQ(m_store->get_api_key(engine->id)->revoked_at, m_clock.now_ms());
    EXPECT_EQ(must(m_store->list_api_keys()).size(), 1u);
    EXPECT_EQ(must(m_store->list_api_keys(true)).size(), 2u);

    auto again = m_store->revoke_api_key("gpu-box");
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, ErrorCode::NotFound);
    EXPECT_EQ(m_store->revoke_api_key("nobody").error().code, ErrorCode::NotFound);

    auto reused = m_store->create_api_key("gpu-box", Role::Engine, "h-gpu2", "y");
    ASSERT_TRUE(reused.ok()) << reused.error().to_string();

    // Revoke by id.
    ASSERT_TRUE(m_store->revoke_api_key(admin->id).ok());
    EXPECT_FALSE(m_store->find_api_key_by_hash("h-root").ok());
    EXPECT_FALSE(m_store->get_api_key("01ARZ3NDEKTSV4RRFFQ69G5FAV").ok());
}

// --- jobs ----------------------------------------------------------------------------------------

TEST_F(StoreTest, InsertAndGetRoundTripEveryField) {
    const auto owner = make_key("dave");
    JobRecord j;
    j.id = new_ulid();
    j.owner_key_id = owner;
    j.state = JobState::AwaitingUpload;
    j.priority = -42;
    j.options = {{"preset", "h264-web"},
                 {"video", {{"crf", 23}, {"scale", "1280:720"}}},
                 {"extra_args", {"-movflags", "+faststart"}}};
    j.resolved = {{"container", "mp4"}, {"video", {{"codec", "libx264"}, {"crf", 23}}}};
    j.ffmpeg_command = "ffmpeg -i 'in put.mkv' -c:v libx264 out.mp4";
    j.output_filename = "résumé.mp4";
    j.requirements = {{"encoders", {"libx265"}}, {"tags", {"gpu"}}};
    j.max_attempts = 7;
    j.attempt_count = 2;
    j.ttl_ms = 3'600'000;
    j.idempotency_key = "idem-1";
    j.source_filename = "in put.mkv";
    j.source_size = 5'000'000'000ull;  // beyond 32 bits
    j.source_sha256 = std::string(64, 'a');
    j.source_url = "https://example.com/in.mkv";
    j.source_pool = "fast";
    j.source_path = "jobs/x/source";
    j.source_reserved = 5'000'000'001ull;
    j.source_received = 123;
    j.source_probe = {{"format", "matroska"}, {"streams", json::array({{{"codec", "h264"}}})}};
    j.duration_seconds = 12.25;
    j.source_deleted = true;
    j.output_pool = "slow";
    j.output_path = "jobs/x/out.mp4";
    j.output_reserved = 77;
    j.output_size = 66;
    j.output_sha256 = std::string(64, 'b');
    j.output_expires_at = 1'800'000'000'000;
    j.output_deleted = true;
    j.progress_percent = 55.5;
    j.progress = {{"fps", 29.97}, {"speed", 1.5}, {"eta_seconds", 4}};
    j.message = "transcoding";
    j.failure_code = "TRANSCODE_FAILED";
    j.failure_reason = "it broke\nline 2";
    j.created_at = 1;  // overwritten by the store
    j.updated_at = 2;  // overwritten by the store
    j.queued_at = 1'700'000'000'100;
    j.started_at = 1'700'000'000'200;
    j.finished_at = 1'700'000'000'300;
    j.not_before = 1'700'000'000'400;
    j.version = 99;  // overwritten by the store

    auto inserted = m_store->insert_job(j);
    ASSERT_TRUE(inserted.ok()) << inserted.error().to_string();
    auto got = m_store->get_job(j.id);
    ASSERT_TRUE(got.ok());
    for (const JobRecord* r : {&inserted.value(), &*got}) {
        EXPECT_EQ(r->id, j.id);
        EXPECT_EQ(r->owner_key_id, owner);
        EXPECT_EQ(r->state, JobState::AwaitingUpload);
        EXPECT_EQ(r->priority, -42);
        EXPECT_EQ(r->options, j.options);
        EXPECT_EQ(r->resolved, j.resolved);
        EXPECT_EQ(r->ffmpeg_command, j.ffmpeg_command);
        EXPECT_EQ(r->output_filename, j.output_filename);
        EXPECT_EQ(r->requirements, j.requirements);
        EXPECT_EQ(r->max_attempts, 7);
        EXPECT_EQ(r->attempt_count, 2);
        EXPECT_EQ(r->ttl_ms, j.ttl_ms);
        EXPECT_EQ(r->idempotency_key, j.idempotency_key);
        EXPECT_EQ(r->source_filename, j.source_filename);
        EXPECT_EQ(r->source_size, j.source_size);
        EXPECT_EQ(r->source_sha256, j.source_sha256);
        EXPECT_EQ(r->source_url, j.source_url);
        EXPECT_EQ(r->source_pool, "fast");
        EXPECT_EQ(r->source_path, j.source_path);
        EXPECT_EQ(r->source_reserved, j.source_reserved);
        EXPECT_EQ(r->source_received, 123u);
        EXPECT_EQ(r->source_probe, j.source_probe);
        EXPECT_EQ(r->duration_seconds, 12.25);
        EXPECT_TRUE(r->source_deleted);
        EXPECT_EQ(r->output_pool, "slow");
        EXPECT_EQ(r->output_path, j.output_path);
        EXPECT_EQ(r->output_reserved, 77u);
        EXPECT_EQ(r->output_size, 66u);
        EXPECT_EQ(r->output_sha256, j.output_sha256);
        EXPECT_EQ(r->output_expires_at, j.output_expires_at);
        EXPECT_TRUE(r->output_deleted);
        EXPECT_DOUBLE_EQ(r->progress_percent, 55.5);
        EXPECT_EQ(r->progress, j.progress);
        EXPECT_EQ(r->message, "transcoding");
        EXPECT_EQ(r->failure_code, "TRANSCODE_FAILED");
        EXPECT_EQ(r->failure_reason, j.failure_reason);
        EXPECT_EQ(r->created_at, m_clock.now_ms());
        EXPECT_EQ(r->updated_at, m_clock.now_ms());
        EXPECT_EQ(r->queued_at, j.queued_at);
        EXPECT_EQ(r->started_at, j.started_at);
        EXPECT_EQ(r->finished_at, j.finished_at);
        EXPECT_EQ(r->not_before, j.not_before);
        EXPECT_EQ(r->version, 1);
    }
}

TEST_F(StoreTest, InsertWithDefaultsKeepsNullsAndEmptyObjects) {
    const auto owner = make_key("erin");
    JobRecord j;  // no id: the store makes one
    j.owner_key_id = owner;
    auto r = m_store->insert_job(j);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_TRUE(is_ulid(r->id));
    auto got = m_store->get_job(r->id);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->options, json::object());
    EXPECT_EQ(got->resolved, json::object());
    EXPECT_EQ(got->requirements, json::object());
    EXPECT_TRUE(got->source_probe.is_null());
    EXPECT_TRUE(got->progress.is_null());
    EXPECT_FALSE(got->ttl_ms.has_value());
    EXPECT_FALSE(got->idempotency_key.has_value());
    EXPECT_FALSE(got->source_size.has_value());
    EXPECT_FALSE(got->source_sha256.has_value());
    EXPECT_FALSE(got->source_url.has_value());
    EXPECT_FALSE(got->duration_seconds.has_value());
    EXPECT_FALSE(got->output_size.has_value());
    EXPECT_FALSE(got->output_expires_at.has_value());
    EXPECT_FALSE(got->queued_at.has_value());
    EXPECT_FALSE(got->not_before.has_value());
    EXPECT_FALSE(got->source_deleted);
    EXPECT_FALSE(got->output_deleted);
    EXPECT_EQ(got->max_attempts, 3);
    EXPECT_FALSE(m_store->get_job("01ARZ3NDEKTSV4RRFFQ69G5FAV").ok());

    // The same id twice is a CONFLICT, not a silent overwrite.
    auto again = m_store->insert_job(got.value());
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, ErrorCode::Conflict);
}

TEST_F(StoreTest, IdempotencyKeyReturnsTheExistingJobPerOwner) {
    const auto alice = make_key("alice");
    const auto bob = make_key("bob");
    auto first = new_job(alice);
    first.idempotency_key = "k1";
    first.priority = 5;
    const auto a = insert(first);

    m_clock.advance(1000);
    auto retry = new_job(alice);  // a different id and fields, same key
    retry.idempotency_key = "k1";
    retry.priority = 9;
    auto b = m_store->insert_job(retry);
    ASSERT_TRUE(b.ok()) << b.error().to_string();
    EXPECT_EQ(b->id, a.id);
    EXPECT_EQ(b->priority, 5);
    EXPECT_EQ(b->created_at, a.created_at);
    EXPECT_FALSE(m_store->get_job(retry.id).ok());
    EXPECT_EQ(must(m_store->job_events(a.id)).size(), 1u);  // no second "created" event

    // Another owner may use the same key.
    auto other = new_job(bob);
    other.idempotency_key = "k1";
    auto c = m_store->insert_job(other);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->id, other.id);
    EXPECT_EQ(must(m_store->list_jobs({})).total, 2);
}

TEST_F(StoreTest, ListPagesNewestFirstWithCursorAndTotal) {
    const auto alice = make_key("alice");
    const auto bob = make_key("bob");
    std::vector<std::string> alice_ids;
    for (int i = 0; i < 7; ++i) {
        m_clock.advance(5);
        alice_ids.push_back(insert(new_job(alice, i % 2 ? JobState::Running : JobState::Queued)).id);
        m_clock.advance(5);
        insert(new_job(bob));
    }

    JobQuery q;
    q.owner_key_id = alice;
    q.limit = 3;
    std::vector<std::string> seen;
    std::vector<size_t> sizes;
    for (int page_no = 0; page_no < 10; ++page_no) {
        auto page = must(m_store->list_jobs(q));
        EXPECT_EQ(page.total, 7);
        sizes.push_back(page.items.size());
        for (const auto& j : page.items) {
            EXPECT_EQ(j.owner_key_id, alice);
            seen.push_back(j.id);
        }
        if (!page.next_cursor) break;
        EXPECT_EQ(*page.next_cursor, page.items.back().id);
        q.cursor = page.next_cursor;
    }
    EXPECT_EQ(sizes, (std::vector<size_t>{3, 3, 1}));
    std::vector<std::string> expected(alice_ids.rbegin(), alice_ids.rend());
    EXPECT_EQ(seen, expected);  // newest first, no overlap, nothing missing

    // Exactly a full page: no next cursor.
    JobQuery exact;
    exact.owner_key_id = alice;
    exact.limit = 7;
    auto all = must(m_store->list_jobs(exact));
    EXPECT_EQ(all.items.size(), 7u);
    EXPECT_FALSE(all.next_cursor.has_value());

    // State filter (alice has 4 queued, 3 running) and no owner filter (admins).
    JobQuery running;
    running.owner_key_id = alice;
    running.state = JobState::Running;
    auto r = must(m_store->list_jobs(running));
    EXPECT_EQ(r.total, 3);
    EXPECT_EQ(r.items.size(), 3u);
    for (const auto& j : r.items) EXPECT_EQ(j.state, JobState::Running);

    JobQuery everyone;
    everyone.limit = 1000;  // clamped to 500
    auto e = must(m_store->list_jobs(everyone));
    EXPECT_EQ(e.total, 14);
    EXPECT_EQ(e.items.size(), 14u);
    JobQuery zero;
    zero.limit = 0;  // clamped to 1
    auto z = must(m_store->list_jobs(zero));
    EXPECT_EQ(z.items.size(), 1u);
    EXPECT_TRUE(z.next_cursor.has_value());
    EXPECT_EQ(z.total, 14);
}

TEST_F(StoreTest, TransitionIsGuardedByTheCurrentState) {
    const auto owner = make_key("alice");
    const auto job = insert(new_job(owner, JobState::AwaitingUpload));

    m_clock.advance(100);
    JobUpdate up;
    up.queued_at = m_clock.now_ms();
    up.message = "waiting for an engine";
    auto q = m_store->transition(job.id, {JobState::AwaitingUpload}, JobState::Queued, up, "upload complete");
    ASSERT_TRUE(q.ok()) << q.error().to_string();
    EXPECT_EQ(q->state, JobState::Queued);
    EXPECT_EQ(q->version, 2);
    EXPECT_EQ(q->updated_at, m_clock.now_ms());
    EXPECT_EQ(q->queued_at, m_clock.now_ms());
    EXPECT_EQ(q->message, "waiting for an engine");
    EXPECT_EQ(q->created_at, job.created_at);

    m_clock.advance(100);
    ASSERT_TRUE(m_store->transition(job.id, {JobState::Queued}, JobState::Assigned, {}, "claimed").ok());
    m_clock.advance(100);
    JobUpdate start;
    start.started_at = m_clock.now_ms();
    ASSERT_TRUE(m_store->transition(job.id, {JobState::Assigned}, JobState::Running, start).ok());

    // Wrong from-state: CONFLICT naming the current state, nothing written.
    auto bad =
        m_store->transition(job.id, {JobState::Queued, JobState::AwaitingUpload}, JobState::Canceled, {});
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, ErrorCode::Conflict);
    EXPECT_EQ(bad.error().details.value("state", ""), "running");
    EXPECT_EQ(bad.error().message, "job is running, expected one of queued, awaiting_upload");
    EXPECT_EQ(m_store->get_job(job.id)->state, JobState::Running);
    EXPECT_EQ(m_store->get_job(job.id)->version, 4);

    // An edge the state machine does not have (running → queued is fine, running → awaiting_upload is not).
    auto illegal = m_store->transition(job.id, {JobState::Running}, JobState::AwaitingUpload, {});
    ASSERT_FALSE(illegal.ok());
    EXPECT_EQ(illegal.error().code, ErrorCode::Conflict);
    EXPECT_EQ(illegal.error().details.value("state", ""), "running");
    EXPECT_EQ(m_store->get_job(job.id)->version, 4);

    auto missing =
        m_store->transition("01ARZ3NDEKTSV4RRFFQ69G5FAV", {JobState::Queued}, JobState::Assigned, {});
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code, ErrorCode::JobNotFound);

    auto events = must(m_store->job_events(job.id));
    ASSERT_EQ(events.size(), 4u);
    EXPECT_EQ(events[0].type, "state");
    EXPECT_FALSE(events[0].from_state.has_value());
    EXPECT_EQ(events[0].to_state, JobState::AwaitingUpload);
    EXPECT_EQ(events[1].from_state, JobState::AwaitingUpload);
    EXPECT_EQ(events[1].to_state, JobState::Queued);
    EXPECT_EQ(events[1].message, "upload complete");
    EXPECT_EQ(events[1].at, job.created_at + 100);
    EXPECT_EQ(events[2].from_state, JobState::Queued);
    EXPECT_EQ(events[2].to_state, JobState::Assigned);
    EXPECT_EQ(events[2].message, "claimed");
    EXPECT_EQ(events[3].to_state, JobState::Running);
    for (size_t i = 1; i < events.size(); ++i) EXPECT_GT(events[i].id, events[i - 1].id);
    for (const auto& e : events) EXPECT_EQ(e.job_id, job.id);

    // after_id and limit.
    auto tail = must(m_store->job_events(job.id, events[1].id));
    ASSERT_EQ(tail.size(), 2u);
    EXPECT_EQ(tail[0].id, events[2].id);
    EXPECT_EQ(must(m_store->job_events(job.id, 0, 2)).size(), 2u);
    EXPECT_TRUE(must(m_store->job_events(job.id, events[3].id)).empty());
}

TEST_F(StoreTest, UpdateJobBumpsVersionAndRecordsProgress) {
    const auto owner = make_key("alice");
    const auto job = insert(new_job(owner, JobState::Running));
    m_clock.advance(250);
    JobUpdate u;
    u.progress_percent = 42.5;
    u.progress = json{{"fps", 30}, {"speed", 1.25}};
    u.not_before = std::optional<int64_t>(123);
    u.source_deleted = true;
    const json data = {{"percent", 42.5}, {"fps", 30}};
    auto r = m_store->update_job(job.id, u, data);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->version, 2);
    EXPECT_EQ(r->updated_at, m_clock.now_ms());
    EXPECT_DOUBLE_EQ(r->progress_percent, 42.5);
    EXPECT_EQ(r->progress, u.progress);
    EXPECT_EQ(r->not_before, 123);
    EXPECT_TRUE(r->source_deleted);
    EXPECT_EQ(r->state, JobState::Running);
    EXPECT_EQ(r->output_filename, "out.mp4");  // untouched fields stay

    // not_before back to NULL; no event this time.
    JobUpdate clear;
    clear.not_before = std::optional<int64_t>();
    auto r2 = m_store->update_job(job.id, clear);
    ASSERT_TRUE(r2.ok());
    EXPECT_FALSE(r2->not_before.has_value());
    EXPECT_EQ(r2->version, 3);

    auto events = must(m_store->job_events(job.id));
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[1].type, "progress");
    EXPECT_EQ(events[1].to_state, JobState::Running);
    EXPECT_FALSE(events[1].from_state.has_value());
    EXPECT_EQ(events[1].data, data);
    EXPECT_EQ(events[1].at, m_clock.now_ms());

    auto missing = m_store->update_job("01ARZ3NDEKTSV4RRFFQ69G5FAV", u);
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code, ErrorCode::JobNotFound);
}

TEST_F(StoreTest, ConcurrentTransitionsExactlyOneWins) {
    const auto owner = make_key("alice");
    for (int round = 0; round < 5; ++round) {
        const auto job = insert(new_job(owner, JobState::Queued));
        constexpr int k_threads = 8;
        std::atomic<int> wins{0};
        std::atomic<int> conflicts{0};
        std::atomic<bool> go{false};
        std::vector<std::thread> threads;
        for (int t = 0; t < k_threads; ++t) {
            threads.emplace_back([&, t] {
                while (!go.load()) std::this_thread::yield();
                JobUpdate u;
                u.message = "claimed by " + std::to_string(t);
                auto r = m_store->transition(job.id, {JobState::Queued}, JobState::Assigned, u);
                if (r.ok())
                    ++wins;
                else if (r.error().code == ErrorCode::Conflict &&
                         r.error().details.value("state", "") == "assigned")
                    ++conflicts;
            });
        }
        go = true;
        for (auto& th : threads) th.join();
        EXPECT_EQ(wins.load(), 1);
        EXPECT_EQ(conflicts.load(), k_threads - 1);
        EXPECT_EQ(m_store->get_job(job.id)->version, 2);
        EXPECT_EQ(must(m_store->job_events(job.id)).size(), 2u);
    }
}

// Two Store objects on one file stand in for two processes: BEGIN IMMEDIATE + busy_timeout keep the
// guard correct across connections too.
TEST_F(StoreTest, ConcurrentTransitionsAcrossTwoConnections) {
    const auto owner = make_key("alice");
    auto second = Store::open(db_path(), m_clock);
    ASSERT_TRUE(second.ok()) << second.error().to_string();
    Store* stores[2] = {m_store.get(), second.value().get()};
    std::vector<std::string> ids;
    for (int i = 0; i < 20; ++i) ids.push_back(insert(new_job(owner, JobState::Queued)).id);
    std::atomic<int> wins{0};
    std::atomic<int> other_errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (const auto& id : ids) {
                auto r = stores[t % 2]->transition(id, {JobState::Queued}, JobState::Assigned, {});
                if (r.ok())
                    ++wins;
                else if (r.error().code != ErrorCode::Conflict)
                    ++other_errors;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(wins.load(), 20);
    EXPECT_EQ(other_errors.load(), 0);
    EXPECT_EQ(must(m_store->count_by_state())[JobState::Assigned], 20);
}

TEST_F(StoreTest, QueuePositionFollowsClaimOrder) {
    const auto owner = make_key("alice");
    m_clock.advance(1);
    const auto low_old = insert(new_job(owner, JobState::Queued, 0));
    m_clock.advance(1);
    const auto high = insert(new_job(owner, JobState::Queued, 10));
    m_clock.advance(1);
    const auto low_new = insert(new_job(owner, JobState::Queued, 0));
    m_clock.advance(1);
    auto delayed = new_job(owner, JobState::Queued, 0);
    delayed.not_before = m_clock.now_ms() + 1'000'000;  // still counts
    delayed = insert(delayed);
    // Same created_at as `delayed`: the id breaks the tie.
    const auto same_time = insert(new_job(owner, JobState::Queued, 0));
    const auto running = insert(new_job(owner, JobState::Running, 100));
    const auto negative = insert(new_job(owner, JobState::Queued, -5));

    EXPECT_EQ(must(m_store->queue_position(high.id)), 1);
    EXPECT_EQ(must(m_store->queue_position(low_old.id)), 2);
    EXPECT_EQ(must(m_store->queue_position(low_new.id)), 3);
    EXPECT_EQ(must(m_store->queue_position(delayed.id)), 4);
    EXPECT_EQ(must(m_store->queue_position(same_time.id)), 5);
    EXPECT_EQ(must(m_store->queue_position(negative.id)), 6);
    EXPECT_FALSE(must(m_store->queue_position(running.id)).has_value());
    EXPECT_FALSE(must(m_store->queue_position("01ARZ3NDEKTSV4RRFFQ69G5FAV")).has_value());

    // The head leaves the queue: everyone moves up.
    ASSERT_TRUE(m_store->transition(high.id, {JobState::Queued}, JobState::Assigned, {}).ok());
    EXPECT_EQ(must(m_store->queue_position(low_old.id)), 1);
    EXPECT_EQ(must(m_store->queue_position(negative.id)), 5);

    auto counts = must(m_store->count_by_state());
    EXPECT_EQ(counts.size(), 3u);
    EXPECT_EQ(counts[JobState::Queued], 5);
    EXPECT_EQ(counts[JobState::Assigned], 1);
    EXPECT_EQ(counts[JobState::Running], 1);
}

TEST_F(StoreTest, TtlAndRetentionQueries) {
    const auto owner = make_key("alice");
    const int64_t t0 = m_clock.now_ms();
    auto own_ttl = new_job(owner, JobState::Queued);
    own_ttl.ttl_ms = 1000;
    own_ttl = insert(own_ttl);
    auto uploading = new_job(owner, JobState::AwaitingUpload);
    uploading.ttl_ms = 5000;
    uploading = insert(uploading);
    const auto no_ttl = insert(new_job(owner, JobState::Queued));
    auto running = new_job(owner, JobState::Running);
    running.ttl_ms = 1;
    running = insert(running);

    auto ids = [](const std::vector<JobRecord>& v) {
        std::set<std::string> s;
        for (const auto& j : v) s.insert(j.id);
        return s;
    };
    EXPECT_TRUE(must(m_store->jobs_past_ttl(t0 + 1000, std::nullopt)).empty());  // strictly past
    EXPECT_EQ(ids(must(m_store->jobs_past_ttl(t0 + 1001, std::nullopt))),
              (std::set<std::string>{own_ttl.id}));
    EXPECT_EQ(ids(must(m_store->jobs_past_ttl(t0 + 6000, std::nullopt))),
              (std::set<std::string>{own_ttl.id, uploading.id}));
    // A default applies only to jobs without their own ttl.
    EXPECT_EQ(ids(must(m_store->jobs_past_ttl(t0 + 2000, 1500))),
              (std::set<std::string>{own_ttl.id, no_ttl.id}));
    EXPECT_EQ(ids(must(m_store->jobs_past_ttl(t0 + 2000, 100'000))), (std::set<std::string>{own_ttl.id}));

    // Expired outputs: completed, expiry passed, not yet deleted.
    auto done = new_job(owner, JobState::Completed);
    done.output_path = "o1";
    done.output_expires_at = t0 + 100;
    done = insert(done);
    auto done_later = new_job(owner, JobState::Completed);
    done_later.output_expires_at = t0 + 10'000;
    done_later = insert(done_later);
    auto done_deleted = new_job(owner, JobState::Completed);
    done_deleted.output_expires_at = t0 + 100;
    done_deleted.output_deleted = true;
    insert(done_deleted);
    EXPECT_EQ(ids(must(m_store->jobs_with_expired_outputs(t0 + 200))), (std::set<std::string>{done.id}));
    EXPECT_EQ(ids(must(m_store->jobs_with_expired_outputs(t0 + 20'000))),
              (std::set<std::string>{done.id, done_later.id}));

    // Terminal jobs whose source is still there.
    auto failed_src = new_job(owner, JobState::Failed);
    failed_src.source_pool = "p";
    failed_src.source_path = "s1";
    failed_src = insert(failed_src);
    auto canceled_reserved = new_job(owner, JobState::Canceled);
    canceled_reserved.source_pool = "p";
    canceled_reserved.source_reserved = 10;
    canceled_reserved = insert(canceled_reserved);
    auto queued_src = new_job(owner, JobState::Queued);
    queued_src.source_path = "s2";
    insert(queued_src);
    auto done_src_deleted = new_job(owner, JobState::Completed);
    done_src_deleted.source_path = "s3";
    done_src_deleted.source_deleted = true;
    insert(done_src_deleted);
    EXPECT_EQ(ids(must(m_store->terminal_jobs_with_sources())),
              (std::set<std::string>{failed_src.id, canceled_reserved.id}));
}

// --- pools ---------------------------------------------------------------------------------------

TEST_F(StoreTest, ReserveSpaceRespectsCapsAndDiskFree) {
    const auto owner = make_key("alice");
    const auto a = insert(new_job(owner, JobState::AwaitingUpload));
    const auto b = insert(new_job(owner, JobState::AwaitingUpload));
    const auto c = insert(new_job(owner, JobState::AwaitingUpload));
    const uint64_t big_disk = 1ull << 40;
    const std::vector<PoolCandidate> pools = {{"small", 1000, big_disk}, {"large", 10'000, big_disk}};

    auto ra = m_store->reserve_space(a.id, FileKind::Source, 600, pools);
    ASSERT_TRUE(ra.ok()) << ra.error().to_string();
    EXPECT_EQ(*ra, "small");
    EXPECT_EQ(must(m_store->reserved_bytes("small")), 600u);
    auto ja = m_store->get_job(a.id);
    EXPECT_EQ(ja->source_pool, "small");
    EXPECT_EQ(ja->source_reserved, 600u);
    EXPECT_EQ(ja->version, 2);

    // 600 + 600 > 1000: the first pool is full, the second is used.
    auto rb = m_store->reserve_space(b.id, FileKind::Source, 600, pools);
    ASSERT_TRUE(rb.ok());
    EXPECT_EQ(*rb, "large");
    // Exactly filling the cap fits.
    auto rc = m_store->reserve_space(c.id, FileKind::Output, 400, pools);
    ASSERT_TRUE(rc.ok());
    EXPECT_EQ(*rc, "small");
    EXPECT_EQ(must(m_store->reserved_bytes("small")), 1000u);
    EXPECT_EQ(m_store->get_job(c.id)->output_pool, "small");
    EXPECT_EQ(m_store->get_job(c.id)->output_reserved, 400u);

    // Nothing fits: INSUFFICIENT_STORAGE with the needed bytes, and nothing recorded.
    auto none = m_store->reserve_space(c.id, FileKind::Source, 9500, pools);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code, ErrorCode::InsufficientStorage);
    EXPECT_EQ(none.error().details.value("needed_bytes", uint64_t{0}), 9500u);
    EXPECT_EQ(m_store->get_job(c.id)->source_reserved, 0u);
    EXPECT_EQ(m_store->get_job(c.id)->source_pool, "");

    // No cap, but the disk is too small: skipped; the capped pool with a big disk takes it.
    const std::vector<PoolCandidate> by_disk = {{"uncapped", std::nullopt, 100}, {"large", 10'000, big_disk}};
    auto rd = m_store->reserve_space(c.id, FileKind::Source, 200, by_disk);
    ASSERT_TRUE(rd.ok());
    EXPECT_EQ(*rd, "large");
    auto re = m_store->reserve_space(c.id, FileKind::Source, 50, by_disk);  // replaces the 200 in "large"
    ASSERT_TRUE(re.ok());
    EXPECT_EQ(*re, "uncapped");
    EXPECT_EQ(must(m_store->reserved_bytes("large")), 600u);
    EXPECT_EQ(must(m_store->reserved_bytes("uncapped")), 50u);

    auto missing = m_store->reserve_space("01ARZ3NDEKTSV4RRFFQ69G5FAV", FileKind::Source, 1, pools);
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code, ErrorCode::JobNotFound);
}

TEST_F(StoreTest, ReReserveReplacesAndReleaseFrees) {
    const auto owner = make_key("alice");
    const auto a = insert(new_job(owner, JobState::AwaitingUpload));
    const auto b = insert(new_job(owner, JobState::AwaitingUpload));
    const std::vector<PoolCandidate> one = {{"p", 1000, 1ull << 40}};

    ASSERT_TRUE(m_store->reserve_space(a.id, FileKind::Source, 900, one).ok());
    // Growing its own reservation to the whole cap works: its old 900 is not counted against it.
    auto grow = m_store->reserve_space(a.id, FileKind::Source, 1000, one);
    ASSERT_TRUE(grow.ok()) << grow.error().to_string();
    EXPECT_EQ(must(m_store->reserved_bytes("p")), 1000u);
    EXPECT_EQ(m_store->reserve_space(b.id, FileKind::Source, 1, one).error().code,
              ErrorCode::InsufficientStorage);

    ASSERT_TRUE(m_store->release_space(a.id, FileKind::Source).ok());
    EXPECT_EQ(must(m_store->reserved_bytes("p")), 0u);
    EXPECT_EQ(m_store->get_job(a.id)->source_reserved, 0u);
    EXPECT_EQ(m_store->get_job(a.id)->source_pool, "p");  // the file's pool is still known
    ASSERT_TRUE(m_store->reserve_space(b.id, FileKind::Source, 1000, one).ok());
    EXPECT_EQ(m_store->release_space("01ARZ3NDEKTSV4RRFFQ69G5FAV", FileKind::Output).error().code,
              ErrorCode::JobNotFound);

    // A deleted file's reservation no longer counts.
    JobUpdate del;
    del.source_deleted = true;
    ASSERT_TRUE(m_store->update_job(b.id, del).ok());
    EXPECT_EQ(must(m_store->reserved_bytes("p")), 0u);
    EXPECT_TRUE(m_store->reserve_space(a.id, FileKind::Output, 1000, one).ok());
    EXPECT_EQ(must(m_store->reserved_bytes("p")), 1000u);
    ASSERT_TRUE(m_store->release_space(a.id, FileKind::Output).ok());
    EXPECT_EQ(must(m_store->reserved_bytes("p")), 0u);
}

TEST_F(StoreTest, ReferencedFilesListsLiveSourcesAndOutputs) {
    const auto owner = make_key("alice");
    auto a = new_job(owner, JobState::Completed);
    a.source_pool = "p1";
    a.source_path = "a/source";
    a.output_pool = "p2";
    a.output_path = "a/out.mp4";
    insert(a);
    auto b = new_job(owner, JobState::Completed);
    b.source_pool = "p1";
    b.source_path = "b/source";
    b.source_deleted = true;
    b.output_pool = "p1";
    b.output_path = "b/out.mkv";
    insert(b);
    auto c = new_job(owner, JobState::Completed);
    c.output_pool = "p2";
    c.output_path = "c/out.mp4";
    c.output_deleted = true;
    c.source_pool = "p2";  // reserved but nothing written: no path
    insert(c);

    const std::vector<std::pair<std::string, std::string>> expected = {
        {"p1", "a/source"}, {"p1", "b/out.mkv"}, {"p2", "a/out.mp4"}};
    EXPECT_EQ(must(m_store->referenced_files()), expected);
}

// --- engines and attempts ------------------------------------------------------------------------

TEST_F(StoreTest, DrainAndSightingsAreSingleStatementsThatKeepEachOthersFields) {
    const auto owner = make_key("alice");
    EngineRecord e;
    e.key_id = owner;
    e.hostname = "box";
    const auto engine = must(m_store->insert_engine(e));
    // A claim read the row before an admin drained the engine; its sighting comes after and must not
    // write back the drain it read (the drain used to be undone this way).
    const EngineRecord read_before = must(m_store->get_engine(engine.id));
    ASSERT_TRUE(m_store->set_engine_flags(engine.id, true, false).ok());
    ASSERT_TRUE(m_store->engine_seen(engine.id, read_before.last_seen_at + 1000, 5000).ok());
    auto now = must(m_store->get_engine(engine.id));
    EXPECT_TRUE(now.drain);
    EXPECT_EQ(now.state, EngineState::Draining);
    EXPECT_EQ(now.free_disk_bytes, 5000);
    EXPECT_EQ(now.last_seen_at, read_before.last_seen_at + 1000);

    ASSERT_TRUE(m_store->set_engine_flags(engine.id, false, true).ok());
    now = must(m_store->get_engine(engine.id));
    EXPECT_FALSE(now.drain);
    EXPECT_EQ(now.state, EngineState::Idle);
    EXPECT_TRUE(now.rerun_benchmark);
    ASSERT_TRUE(m_store->set_engine_flags(engine.id, std::nullopt, false).ok());
    EXPECT_TRUE(must(m_store->get_engine(engine.id)).rerun_benchmark) << "asked once, kept until a heartbeat";

    // An offline engine seen again comes back idle, or draining while its drain is set.
    test::SqlitePeer(db_path()).exec("UPDATE engines SET state = 'offline', drain = 1 WHERE id = '" +
                                     engine.id + "'");
    ASSERT_TRUE(m_store->engine_seen(engine.id, now.last_seen_at + 2000, std::nullopt).ok());
    now = must(m_store->get_engine(engine.id));
    EXPECT_EQ(now.state, EngineState::Draining);
    EXPECT_EQ(now.free_disk_bytes, 5000) << "no reading: kept";
    EXPECT_EQ(m_store->set_engine_flags("NOSUCHENGINE", true, false).error().code, ErrorCode::NotFound);
    EXPECT_EQ(m_store->engine_seen("NOSUCHENGINE", 1, std::nullopt).error().code, ErrorCode::NotFound);
}

TEST_F(StoreTest, EngineAndAttemptEnumsAreStoredByTheirProtocolNames) {
    const auto owner = make_key("alice");
    insert(new_job(owner));
    EngineRecord e;
    e.key_id = owner;
    e.hostname = "box";
    e.state = EngineState::Draining;
    const auto engine = must(m_store->insert_engine(e));
    EXPECT_EQ(must(m_store->get_engine(engine.id)).state, EngineState::Draining);
    EXPECT_EQ(query_one(db_path(), "SELECT state FROM engines WHERE id = '" + engine.id + "'"), "draining");

    EngineHeartbeat hb;
    hb.engine_id = engine.id;
    hb.state = EngineState::Busy;
    ASSERT_TRUE(m_store->record_heartbeat(hb, std::nullopt).ok());
    EXPECT_EQ(must(m_store->get_engine(engine.id)).state, EngineState::Busy);
    EXPECT_EQ(query_one(db_path(), "SELECT state FROM engines WHERE id = '" + engine.id + "'"), "busy");

    auto claimed = must(m_store->claim_job(engine.id, 60'000, [](const std::vector<ClaimCandidate>&) {
        return std::optional<ClaimChoice>(ClaimChoice{0, TransferMode::Stream});
    }));
    ASSERT_TRUE(claimed.has_value());
    const auto attempt = claimed->second;
    EXPECT_EQ(attempt.state, AttemptState::Active);
    EXPECT_EQ(attempt.transfer_mode, TransferMode::Stream);
    const auto stored = must(m_store->get_attempt(attempt.id));
    EXPECT_EQ(stored.state, AttemptState::Active);
    EXPECT_EQ(stored.transfer_mode, TransferMode::Stream);
    const std::string row = " FROM attempts WHERE id = '" + attempt.id + "'";
    EXPECT_EQ(query_one(db_path(), "SELECT state" + row), "active");
    EXPECT_EQ(query_one(db_path(), "SELECT transfer_mode" + row), "stream");

    AttemptEnd end;
    end.attempt_state = AttemptState::Undelivered;
    end.job_to = JobState::Queued;
    ASSERT_TRUE(m_store->end_attempt(attempt.id, attempt.fencing_token, end).ok());
    EXPECT_EQ(must(m_store->get_attempt(attempt.id)).state, AttemptState::Undelivered);
    EXPECT_EQ(query_one(db_path(), "SELECT state" + row), "undelivered");
}

TEST_F(StoreTest, AStoredNameThatIsNotAStateIsAnErrorNotAGuess) {
    const auto owner = make_key("alice");
    insert(new_job(owner));
    EngineRecord e;
    e.key_id = owner;
    e.hostname = "box";
    const auto engine = must(m_store->insert_engine(e));
    auto claimed = must(m_store->claim_job(engine.id, 60'000, [](const std::vector<ClaimCandidate>&) {
        return std::optional<ClaimChoice>(ClaimChoice{});
    }));
    ASSERT_TRUE(claimed.has_value());
    const auto attempt = claimed->second;

    auto expect_unreadable = [](const auto& r, const std::string& bad) {
        ASSERT_FALSE(r.ok()) << "answered with a guess for '" << bad << "'";
        EXPECT_EQ(r.error().code, ErrorCode::Unavailable) << r.error().to_string();
        EXPECT_NE(r.error().message.find("'" + bad + "'"), std::string::npos) << r.error().message;
    };
    ASSERT_TRUE(
        exec_outside(db_path(), "UPDATE engines SET state = 'online' WHERE id = '" + engine.id + "'"));
    expect_unreadable(m_store->get_engine(engine.id), "online");
    expect_unreadable(m_store->list_engines(), "online");
    ASSERT_TRUE(exec_outside(db_path(), "UPDATE engines SET state = 'idle'"));
    EXPECT_TRUE(m_store->list_engines().ok());

    ASSERT_TRUE(exec_outside(db_path(), "UPDATE attempts SET transfer_mode = 'pigeon'"));
    expect_unreadable(m_store->get_attempt(attempt.id), "pigeon");
    ASSERT_TRUE(exec_outside(db_path(), "UPDATE attempts SET transfer_mode = 'file', state = 'paused'"));
    expect_unreadable(m_store->get_attempt(attempt.id), "paused");
    expect_unreadable(m_store->attempts_for_job(attempt.job_id), "paused");
    // An attempt in a state nobody knows cannot be ended either (the job stays as it is).
    AttemptEnd end;
    end.attempt_state = AttemptState::Lost;
    end.job_to = JobState::Queued;
    expect_unreadable(m_store->end_attempt(attempt.id, attempt.fencing_token, end), "paused");
    EXPECT_EQ(must(m_store->get_job(attempt.job_id)).state, JobState::Assigned);
}

}  // namespace
}  // namespace distconv::dispatch
