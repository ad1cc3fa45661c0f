// The database fails under a running farm, for real: another process holds its write lock past the
// busy timeout, and then hides its tables so no read succeeds. The real distconv-dispatch and
// distconv-engine binaries run throughout, with maintenance every 100 ms over pool files made old
// enough for the orphan sweep. During each fault: requests that need the database get 503
// UNAVAILABLE with the error envelope (retryable), /readyz says not ready, /healthz still answers.
// After it: every stored file is still there, every completed result downloads with the same bytes,
// nothing half-written is left, and new work completes.
//
// The second test puts the data dir (the database, its WAL) on a small tmpfs of its own and fills it:
// every write fails with SQLITE_FULL while the pools, on another filesystem, keep working. Submits,
// cancels, key creation (API and CLI) and the engine's heartbeats get 503s, reads and result downloads
// go on, and maintenance, whose source deletions fall due meanwhile, keeps the files it cannot record
// as deleted. Once space is back, /readyz is ready, those deletions are recorded and done, nothing
// else is gone and new work completes. (A read-only remount is no alternative: Linux refuses it with
// EBUSY while the server holds the database open for writing, and chmod does not stop root.) It
// needs root (mount(2)) and skips otherwise.

#include "common/hash.hpp"
#include "common/http/client.hpp"
#include "common/time.hpp"
#include "tests/integration/engine_e2e/e2e_support.hpp"
#include "tests/support/sqlite_peer.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

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
    for (auto it = stdfs::recursive_directory_iterator(pool, ec);
         !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file())
            out[stdfs::relative(it->path(), pool).string()] = sha256_file(it->path()).value_or("?");
    return out;
}

void make_old(const stdfs::path& pool) {
    std::error_code ec;
    for (auto it = stdfs::recursive_directory_iterator(pool, ec);
         !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file())
            stdfs::last_write_time(it->path(), stdfs::file_time_type::clock::now() - 2h, ec);
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

Answer send(http::Client& client, const http::Request& r) {
    auto t0 = std::chrono::steady_clock::now();
    auto got = client.request(r);
    Answer a;
    a.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    if (!got) return a;
    a.status = got->status;
    a.body = nlohmann::json::parse(got->body, nullptr, false);
    return a;
}

Answer call(http::Client& client, const std::string& method, const std::string& path,
            const std::string& body = "") {
    http::Request r;
    r.method = method;
    r.path_or_url = path;
    if (!body.empty()) {
        r.body = body;
        r.content_type = "application/json";
    }
    return send(client, r);
}

void expect_unavailable(const Answer& a, const std::string& what) {
    EXPECT_EQ(a.status, 503) << what << ": " << a.body.dump();
    ASSERT_TRUE(a.body.is_object() && a.body.contains("error"))
        << what << ": no error envelope: " << a.body.dump();
    EXPECT_EQ(a.body["error"].value("code", ""), "UNAVAILABLE") << what;
    EXPECT_TRUE(a.body["error"].value("retryable", false)) << what;
}

nlohmann::json small_job() {
    return {{"output_filename", "out.mkv"}, {"container", "mkv"}};
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

// The /readyz check called `name` (an empty object when there is none).
nlohmann::json readiness_check(const nlohmann::json& body, const std::string& name) {
    if (body.is_object() && body.contains("checks") && body["checks"].is_array())
        for (const auto& c : body["checks"])
            if (c.is_object() && c.value("name", "") == name) return c;
    return nlohmann::json::object();
}

// The SQLite result code an error envelope reports in its details (0 when none).
int sqlite_code_of(const nlohmann::json& body) {
    return body.is_object() ? body.value(nlohmann::json::json_pointer("/error/details/sqlite_code"), 0) : 0;
}

// A tmpfs of `size` mounted at `dir` (created) for as long as this lives. Declare it before what runs
// on it: it is unmounted once the daemons using it are gone. It is mounted in a mount namespace of
// this process's own (the daemons it starts inherit it), so it goes with the process even when that
// is killed first; where no namespace can be made, in the machine's. When the test failed (or
// DISTCONV_KEEP_TEST_DIRS is set) its contents are first copied to <dir>-contents, since the kept
// test directories on it would go with it.
class TmpfsMount {
  public:
    TmpfsMount(const stdfs::path& dir, const std::string& size) : m_dir(dir) {
        std::error_code ec;
        stdfs::create_directories(dir, ec);
        const std::string options = "size=" + size + ",mode=0700";
        if (::unshare(CLONE_NEWNS) == 0) ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
        if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) == 0) {
            m_mounted = true;
        } else {
            m_errno = errno;
            m_error = "mount -t tmpfs -o " + options + " " + dir.string() + ": " + std::strerror(errno);
        }
    }
    ~TmpfsMount() {
        if (!m_mounted) return;
        if (::testing::Test::HasFailure() || std::getenv("DISTCONV_KEEP_TEST_DIRS")) {
            std::error_code ec;
            stdfs::copy(m_dir, m_dir.string() + "-contents", stdfs::copy_options::recursive, ec);
            std::cerr << "[ kept    ] the tmpfs's contents in " << m_dir.string() << "-contents\n";
        }
        if (::umount2(m_dir.c_str(), 0) != 0) {
            ADD_FAILURE() << "umount " << m_dir << ": " << std::strerror(errno) << " (detached instead)";
            ::umount2(m_dir.c_str(), MNT_DETACH);
        }
    }
    TmpfsMount(const TmpfsMount&) = delete;
    TmpfsMount& operator=(const TmpfsMount&) = delete;

    bool mounted() const { return m_mounted; }
    int error_number() const { return m_errno; }
    const std::string& error() const { return m_error; }
    const stdfs::path& path() const { return m_dir; }

  private:
    stdfs::path m_dir;
    bool m_mounted = false;
    int m_errno = 0;
    std::string m_error;
};

// An environment variable set for as long as this lives (child processes started meanwhile inherit it).
class ScopedEnv {
  public:
    ScopedEnv(const char* name, const std::string& value) : m_name(name) {
        if (const char* old = std::getenv(name)) m_old = old;
        ::setenv(name, value.c_str(), 1);
    }
    ~ScopedEnv() {
        if (m_old)
            ::setenv(m_name, m_old->c_str(), 1);
        else
            ::unsetenv(m_name);
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

  private:
    const char* m_name;
    std::optional<std::string> m_old;
};

// Writes `file` until its filesystem has no byte left; true when a write failed with ENOSPC.
bool fill_filesystem(const stdfs::path& file) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    const std::vector<char> buf(size_t{1} << 20, 'F');
    int err = 0;
    for (size_t chunk : {size_t{1} << 20, size_t{4096}, size_t{1}}) {
        for (;;) {
            const ssize_t n = ::write(fd, buf.data(), chunk);
            if (n > 0) continue;
            err = n < 0 ? errno : ENOSPC;
            if (err != EINTR) break;
        }
        if (err != ENOSPC) break;
    }
    ::close(fd);
    return err == ENOSPC;
}

// Keeps `bytes` allocated past the end of `file` (fallocate KEEP_SIZE), which its appends then use:
// the server's log still records what happens while the filesystem it is on is full.
bool reserve_past_end(const stdfs::path& file, off_t bytes) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st {};
    const bool ok = ::fstat(fd, &st) == 0 && ::fallocate(fd, FALLOC_FL_KEEP_SIZE, st.st_size, bytes) == 0;
    ::close(fd);
    return ok;
}

dev_t device_of(const stdfs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_dev : 0;
}

}  // namespace

TEST(DatabaseFaults, LockedAndUnreadableDatabaseAnswers503AndLosesNothing) {
    DispatchTimings t;
    t.extra_args = {"--db-busy-timeout",  "200ms", "--maintenance-interval", "100ms",
                    "--source-retention", "24h"};
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
    auto waiting = call(
        user, "POST", "/api/v1/jobs",
        nlohmann::json{{"source", {{"filename", "later.mp4"}, {"size", 1000}}}, {"output_filename", "x.mkv"}}
            .dump());
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
        auto submitted =
            nlohmann::json::parse(answer.substr(std::min(answer.find('{'), answer.size())), nullptr, false);
        ASSERT_TRUE(submitted.is_object()) << answer;
        EXPECT_EQ(submitted["error"].value("code", ""), "UNAVAILABLE") << answer;
        expect_unavailable(
            call(user, "DELETE", "/api/v1/jobs/" + waiting.body.value("job_id", std::string())), "cancel");
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
            [&] {
                return c.dispatch().log().find("orphan sweep skipped: the database is unavailable") !=
                       std::string::npos;
            },
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

TEST(DatabaseFaults, FullDatabaseFilesystemAnswers503AndLosesNothing) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root to mount a tmpfs for the database (CI runs the suite as root)";
    // On the test's ordinary filesystem: the pool, the clip, the engine, the downloads.
    test::TempDir outside;
    // The database's own filesystem, small enough to fill at once.
    TmpfsMount dbfs(outside / "db-fs", "32m");
    if (!dbfs.mounted() && (dbfs.error_number() == EPERM || dbfs.error_number() == EACCES))
        GTEST_SKIP() << "mounting a tmpfs is not permitted here (" << dbfs.error() << ")";
    ASSERT_TRUE(dbfs.mounted()) << dbfs.error();

    // Sources are deleted 3 s after their job ends: the first jobs' retention runs out during the
    // fault, so maintenance must record a deletion it cannot write (and keep the file).
    constexpr auto k_source_retention = 3s;
    const stdfs::path pool = outside / "pool";
    DispatchTimings t;
    t.extra_args = {"--db-busy-timeout", "200ms", "--maintenance-interval", "100ms"};
    t.extra_args.insert(t.extra_args.end(), {"--source-retention", "3s", "--pool", "main=" + pool.string()});
    std::unique_ptr<Cluster> cluster;
    {
        // The cluster makes its directory (data dir with the database, the server's log) under TMPDIR:
        // on the tmpfs. SQLite's temporary files (SQLITE_TMPDIR goes first) stay off it.
        ScopedEnv tmpdir("TMPDIR", dbfs.path().string());
        ScopedEnv sqlite_tmpdir("SQLITE_TMPDIR", outside.path().string());
        cluster = std::make_unique<Cluster>(t);
    }
    Cluster& c = *cluster;
    const stdfs::path data = c.dir() / "data";
    const stdfs::path db = data / "dispatch.db";
    ASSERT_TRUE(stdfs::exists(db)) << db;
    ASSERT_EQ(device_of(db), device_of(dbfs.path())) << "the database is not on the tmpfs";
    ASSERT_NE(device_of(db), device_of(outside.path())) << "the tmpfs is not a filesystem of its own";

    const stdfs::path clip = outside / "clip.mp4";
    ASSERT_TRUE(test::make_test_clip(clip, 1.0, 320, 240));
    auto create_key_cli = [&](const std::string& name, std::string* out) {
        return test::run_command({dispatch_binary(), "keys", "create", "--data-dir", data.string(), "--role",
                                  "admin", "--name", name},
                                 out);
    };
    std::string admin_key;
    ASSERT_EQ(create_key_cli("admin", &admin_key), 0);
    admin_key = trimmed(admin_key);
    ASSERT_FALSE(admin_key.empty());
    auto user = client_for(c, c.user_key());
    auto admin = client_for(c, admin_key);
    auto anonymous = client_for(c, "");
    const nlohmann::json later_job = {{"source", {{"filename", "later.mp4"}, {"size", 1000}}},
                                      {"output_filename", "x.mkv"}};
    const std::string later = later_job.dump();
    auto waiting = call(user, "POST", "/api/v1/jobs", later);  // waits for its source: its reservation stays
    ASSERT_EQ(waiting.status, 202) << waiting.body.dump();
    const std::string waiting_id = waiting.body.value("job_id", std::string());

    // start_engine puts the work dir at dir()/name: an absolute name keeps it off the tmpfs, so the
    // engine (running through the fault) meets only the server's answers, not a full disk of its own.
    auto engine = c.start_engine((outside / "engineA").string());
    std::vector<std::string> done;
    for (int i = 0; i < 2; ++i) {
        auto id = c.submit(clip, small_job());
        ASSERT_FALSE(id.empty());
        done.push_back(id);
    }
    for (const auto& id : done) ASSERT_TRUE(c.wait_state(id, "completed", 60s)) << c.job(id).dump();
    std::map<std::string, std::string> source_of;  // job id -> its source, relative to the pool
    int64_t first_finished_ms = 0;                 // when the first of them ended (the server's clock)
    {
        OtherProcessConnection other(db);
        for (const auto& id : done)
            source_of[id] = other.value("SELECT source_path FROM jobs WHERE id = '" + id + "'");
        first_finished_ms =
            std::stoll(other.value("SELECT MIN(finished_at) FROM jobs WHERE state = 'completed'"));
    }
    std::map<std::string, std::string> result_sha;
    for (const auto& id : done) {
        auto dest = outside / ("before-" + id + ".mkv");
        ASSERT_TRUE(c.download_result(id, dest));
        result_sha[id] = *sha256_file(dest);
    }
    make_old(pool);  // every file is past the orphan sweep's minimum age
    const auto files_before = pool_files(pool);
    for (const auto& [id, source] : source_of) ASSERT_TRUE(files_before.count(source)) << id << " " << source;

    auto health = [&] {
        auto h = call(anonymous, "GET", "/healthz");
        EXPECT_EQ(h.status, 200);
        EXPECT_LT(h.took, 1000ms);
    };
    auto multipart = [&] {
        auto r = multipart_submit(clip, small_job());
        r.path_or_url = "/api/v1/jobs";
        return r;
    };
    const stdfs::path filler = dbfs.path() / "filler";

    {
        SCOPED_TRACE("the database's filesystem is full");
        ASSERT_TRUE(reserve_past_end(c.dispatch().log_path(), 1 << 20)) << std::strerror(errno);
        // With the WAL cut to 0 bytes the server's next commit must grow it, which a full disk refuses
        // (a WAL keeps its size after a checkpoint and is written over from the start again).
        OtherProcessConnection other(db);
        ASSERT_TRUE(test::wait_until([&] { return other.checkpoint_truncate(); }, 10s));
        ASSERT_TRUE(fill_filesystem(filler));
        struct statvfs fs {};
        ASSERT_EQ(::statvfs(dbfs.path().c_str(), &fs), 0);
        EXPECT_EQ(fs.f_bavail, 0u) << "the tmpfs still has room";
        ASSERT_LT(to_unix_ms(std::chrono::system_clock::now()) - first_finished_ms,
                  std::chrono::milliseconds(k_source_retention - 1s).count())
            << "this machine took too long to start the fault: the sources' retention may pass before it";
        for (const auto& [id, source] : source_of)
            ASSERT_TRUE(stdfs::exists(pool / source)) << id << " " << source;

        Answer ready;
        EXPECT_TRUE(
            test::wait_until([&] { return (ready = call(anonymous, "GET", "/readyz")).status == 503; }, 10s))
            << ready.body.dump();
        auto write_check = readiness_check(ready.body, "database");
        ASSERT_TRUE(write_check.contains("ok")) << ready.body.dump();
        EXPECT_FALSE(write_check.value("ok", true)) << ready.body.dump();
        EXPECT_NE(write_check.value("message", "").find("full"), std::string::npos) << ready.body.dump();
        EXPECT_TRUE(readiness_check(ready.body, "database_read").value("ok", false)) << ready.body.dump();
        EXPECT_TRUE(readiness_check(ready.body, "pools").value("ok", false)) << ready.body.dump();
        health();

        // Every write answers 503 UNAVAILABLE, retryable, with SQLite's code; none answers 2xx.
        auto submitted = send(user, multipart());
        expect_unavailable(submitted, "submit with upload");
        EXPECT_EQ(sqlite_code_of(submitted.body), SQLITE_FULL) << submitted.body.dump();
        expect_unavailable(call(user, "POST", "/api/v1/jobs", later), "submit awaiting upload");
        expect_unavailable(call(user, "DELETE", "/api/v1/jobs/" + waiting_id), "cancel");
        expect_unavailable(
            call(admin, "POST", "/api/v1/keys", nlohmann::json{{"name", "during"}, {"role", "user"}}.dump()),
            "create key");
        // Nor does another process's write succeed: the CLI prints no key that was never stored.
        std::string printed;
        EXPECT_NE(create_key_cli("during-cli", &printed), 0);
        EXPECT_EQ(trimmed(printed), "");

        // Reads still answer: jobs, and completed results with their bytes.
        auto got = call(user, "GET", "/api/v1/jobs/" + done[0]);
        EXPECT_EQ(got.status, 200) << got.body.dump();
        EXPECT_EQ(got.body.value("state", ""), "completed") << got.body.dump();
        EXPECT_EQ(call(user, "GET", "/api/v1/jobs").status, 200);
        for (const auto& id : done) {
            auto dest = outside / ("during-" + id + ".mkv");
            ASSERT_TRUE(c.download_result(id, dest)) << id;
            EXPECT_EQ(*sha256_file(dest), result_sha[id]) << id;
        }

        // The fault lasts until maintenance (every 100 ms) has met it: the sources' retention ran out,
        // their deletion could not be recorded, so they stay. Meanwhile the engine's heartbeats and
        // claims meet it too, and clients keep trying.
        auto kept_by_maintenance = [&] {
            const auto log = c.dispatch().log();
            for (const auto& id : done)
                if (log.find("maintenance: source of job " + id + " kept") == std::string::npos) return false;
            return true;
        };
        const bool met = test::wait_until(
            [&] {
                auto again = call(user, "POST", "/api/v1/jobs", later);
                if (again.status != 503) {
                    ADD_FAILURE() << "a submit during the fault answered " << again.status << ": "
                                  << again.body.dump();
                    return true;
                }
                health();
                return kept_by_maintenance();
            },
            20s);
        EXPECT_TRUE(met) << c.dispatch().log();
        EXPECT_EQ(pool_files(pool), files_before) << "files changed while the database could not be written";
        std::error_code ec;
        ASSERT_TRUE(stdfs::remove(filler, ec)) << ec.message();
    }
    Answer ready;
    EXPECT_TRUE(
        test::wait_until([&] { return (ready = call(anonymous, "GET", "/readyz")).status == 200; }, 10s))
        << ready.body.dump();
    // What the server logged meanwhile (in the log's reserved space): SQLite's own "full" answers.
    EXPECT_NE(c.dispatch().log().find("database or disk is full"), std::string::npos) << c.dispatch().log();

    // Now the deletions are recorded first, then done. Nothing else went: every other file is there
    // with its bytes, and every completed result downloads.
    {
        OtherProcessConnection other(db);
        EXPECT_TRUE(test::wait_until(
            [&] {
                for (const auto& id : done)
                    if (other.value("SELECT source_deleted FROM jobs WHERE id = '" + id + "'") != "1")
                        return false;
                return true;
            },
            10s));
        for (const auto& [id, source] : source_of)
            EXPECT_TRUE(test::wait_until([&] { return !stdfs::exists(pool / source); }, 10s))
                << id << " " << source;
        EXPECT_EQ(other.value("PRAGMA integrity_check"), "ok");
        EXPECT_EQ(other.value("SELECT COUNT(*) FROM api_keys WHERE name LIKE 'during%'"), "0");
    }
    auto expected = files_before;
    for (const auto& [id, source] : source_of) expected.erase(source);
    EXPECT_EQ(pool_files(pool), expected) << "a stored file was lost, or a half-written one was left";
    for (const auto& id : done) {
        auto dest = outside / ("after-" + id + ".mkv");
        ASSERT_TRUE(c.download_result(id, dest)) << id;
        EXPECT_EQ(*sha256_file(dest), result_sha[id]) << id;
    }
    auto still_waiting = call(user, "GET", "/api/v1/jobs/" + waiting_id);
    EXPECT_EQ(still_waiting.body.value("state", ""), "awaiting_upload") << still_waiting.body.dump();

    // The writes refused during the fault now succeed, and new work completes.
    auto key =
        call(admin, "POST", "/api/v1/keys", nlohmann::json{{"name", "after"}, {"role", "user"}}.dump());
    EXPECT_EQ(key.status, 201) << key.body.dump();
    std::string printed;
    EXPECT_EQ(create_key_cli("after-cli", &printed), 0);
    EXPECT_FALSE(trimmed(printed).empty());
    auto next = c.submit(clip, small_job());
    ASSERT_FALSE(next.empty());
    EXPECT_TRUE(c.wait_state(next, "completed", 60s)) << c.job(next).dump();
    engine.reset();
}

// Found by the fault harness: a multipart submit whose try failed between storing the job and
// queueing it (the dispatch killed, or the database failing, in between) left a job awaiting_upload
// that its client's retry, with the same Idempotency-Key, answered as done and dropped its bytes: the
// job waited forever. The failure is made real here by a trigger that fails the one write that queues
// a job; the retry must finish that same job with its own bytes, and a later replay must answer it.
TEST(DatabaseFaults, SubmitFailedBeforeQueueingIsFinishedByItsRetry) {
    Cluster c;
    const stdfs::path clip = c.dir() / "clip.mp4";
    ASSERT_TRUE(test::make_test_clip(clip, 1.0, 320, 240));
    auto user = client_for(c, c.user_key());
    auto submit = [&] {
        auto req = multipart_submit(clip, small_job());
        req.path_or_url = "/api/v1/jobs";
        req.headers.push_back({"Idempotency-Key", "submit-retried-1"});
        return send(user, req);
    };

    std::string first_id;
    {
        OtherProcessConnection other(c.dir() / "data" / "dispatch.db");
        ASSERT_TRUE(
            other.exec("CREATE TRIGGER fail_queueing BEFORE UPDATE OF state ON jobs "
                       "WHEN NEW.state = 'queued' BEGIN SELECT RAISE(ABORT, 'injected fault'); END"));
        expect_unavailable(submit(), "submit while queueing fails");
        auto listed = call(user, "GET", "/api/v1/jobs");
        ASSERT_EQ(listed.status, 200) << listed.body.dump();
        ASSERT_EQ(listed.body["items"].size(), 1u) << listed.body.dump();
        EXPECT_EQ(listed.body["items"][0].value("state", ""), "awaiting_upload") << listed.body.dump();
        first_id = listed.body["items"][0].value("job_id", "");
        ASSERT_TRUE(other.exec("DROP TRIGGER fail_queueing"));
    }

    auto retried = submit();
    ASSERT_EQ(retried.status / 100, 2) << retried.body.dump();
    EXPECT_EQ(retried.body.value("job_id", ""), first_id) << retried.body.dump();
    EXPECT_EQ(retried.body.value("state", ""), "queued") << retried.body.dump();
    auto engine = c.start_engine("engineA");
    EXPECT_TRUE(c.wait_state(first_id, "completed", 60s)) << c.job(first_id).dump();
    EXPECT_TRUE(c.download_result(first_id, c.dir() / "out.mkv"));
    EXPECT_EQ(c.job(first_id).value(nlohmann::json::json_pointer("/source/sha256"), ""), *sha256_file(clip))
        << c.job(first_id).dump();

    auto replayed = submit();  // once done, the same key answers the same job
    ASSERT_EQ(replayed.status / 100, 2) << replayed.body.dump();
    EXPECT_EQ(replayed.body.value("job_id", ""), first_id);
    EXPECT_EQ(replayed.body.value("state", ""), "completed") << replayed.body.dump();
    auto listed = call(user, "GET", "/api/v1/jobs");
    EXPECT_EQ(listed.body["items"].size(), 1u) << listed.body.dump();
    engine.reset();
}
