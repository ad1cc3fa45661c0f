// The distconv-dispatch binary as a separate process: a restart (SIGTERM, start again on the same
// data dir) keeps every job, key and file and runs migrations once; keys revoke from the CLI; and
// check-config with a bad value.

#include "common/hash.hpp"
#include "tests/integration/dispatch/server_fixture.hpp"

#include <gtest/gtest.h>

namespace distconv::itest {
namespace {

std::string sqlite(const stdfs::path& db, const std::string& sql) {
    std::string out;
    EXPECT_EQ(test::run_command({"sqlite3", db.string(), sql}, &out), 0) << sql;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

TEST(LifecycleTest, RestartKeepsJobsKeysAndFilesAndMigratesOnce) {
    ASSERT_FALSE(small_clip_bytes().empty());
    test::TempDir dir;
    auto data = dir / "data";
    std::string key = cli_key(data, "alice", "user");
    std::string admin_key = cli_key(data, "root", "admin");
    auto db = data / "dispatch.db";
    std::string migrations =
        sqlite(db, "SELECT COUNT(*) || '/' || COUNT(DISTINCT version) FROM schema_version");
    std::string max_version = sqlite(db, "SELECT MAX(version) FROM schema_version");

    std::vector<std::string> ids;
    std::string jobs_before, sha_before;
    {
        ChildServer server(data);
        {
            auto c = server.client(key);
            auto r = submit_multipart(c, small_clip_bytes(), json::object(), "keep.mp4");
            ASSERT_EQ(r.status, 202) << r.body;
            ids.push_back(body_json(r)["job_id"]);
            // A half-uploaded source survives too.
            auto s = call(c, "POST", "/jobs", json{{"source", {{"size", small_clip_bytes().size()}}}}.dump(),
                          "application/json");
            ASSERT_EQ(s.status, 202);
            ids.push_back(body_json(s)["job_id"]);
            size_t half = small_clip_bytes().size() / 2;
            auto put = call(c, "PUT", "/jobs/" + ids[1] + "/source", small_clip_bytes().substr(0, half),
                            "application/octet-stream",
                            {{"Content-Range", "bytes 0-" + std::to_string(half - 1) + "/" +
                                                   std::to_string(small_clip_bytes().size())}});
            ASSERT_EQ(put.status, 200) << put.body;
            auto canceled = submit_multipart(c, small_clip_bytes(), json::object());
            ids.push_back(body_json(canceled)["job_id"]);
            ASSERT_EQ(call(c, "DELETE", "/jobs/" + ids[2]).status, 202);
            jobs_before = call(c, "GET", "/jobs").body;
        }  // the client (and its kept-alive connection) goes first: the server waits for idle connections
        auto t0 = std::chrono::steady_clock::now();
        EXPECT_EQ(server.stop(), 0) << "SIGTERM should stop the server cleanly";
        EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
    }
    auto source0 = data / "pool" / "jobs" / ids[0] / "source";
    ASSERT_TRUE(stdfs::exists(source0));
    sha_before = *sha256_file(source0);

    ChildServer again(data);
    {
        auto c = again.client(key);
        auto admin = again.client(admin_key);
        auto list = call(c, "GET", "/jobs");
        ASSERT_EQ(list.status, 200);
        auto before_j = json::parse(jobs_before), after_j = body_json(list);
        EXPECT_EQ(after_j["total"], 3);
        ASSERT_EQ(after_j["items"].size(), before_j["items"].size());
        for (size_t i = 0; i < before_j["items"].size(); ++i) {
            EXPECT_EQ(after_j["items"][i]["job_id"], before_j["items"][i]["job_id"]);
            EXPECT_EQ(after_j["items"][i]["state"], before_j["items"][i]["state"]);
        }
        EXPECT_EQ(body_json(call(c, "GET", "/jobs/" + ids[0]))["state"], "queued");
        EXPECT_EQ(*sha256_file(source0), sha_before);
        // The partial upload continues where it stopped.
        auto src = call(c, "GET", "/jobs/" + ids[1] + "/source");
        size_t half = small_clip_bytes().size() / 2;
        EXPECT_EQ(src.header("Upload-Offset").value_or(""), std::to_string(half));
        auto rest = call(c, "PUT", "/jobs/" + ids[1] + "/source", small_clip_bytes().substr(half),
                         "application/octet-stream",
                         {{"Content-Range", "bytes " + std::to_string(half) + "-" +
                                                std::to_string(small_clip_bytes().size() - 1) + "/" +
                                                std::to_string(small_clip_bytes().size())}});
        EXPECT_EQ(rest.status, 201) << rest.body;
        // Keys: both still work, and the list has both.
        auto keys = body_json(call(admin, "GET", "/keys"));
        EXPECT_EQ(keys["items"].size(), 2u);
    }
    EXPECT_EQ(again.stop(), 0);

    // Migrations ran once: the same rows after the second start, one per version.
    EXPECT_EQ(sqlite(db, "SELECT COUNT(*) || '/' || COUNT(DISTINCT version) FROM schema_version"),
              migrations);
    EXPECT_EQ(sqlite(db, "SELECT COUNT(*) FROM schema_version"), max_version);
    EXPECT_EQ(sqlite(db, "PRAGMA journal_mode"), "wal");
    EXPECT_EQ(sqlite(db, "PRAGMA integrity_check"), "ok");
}

TEST(LifecycleTest, KeysRevokeFromTheCliMakesTheKey401) {
    test::TempDir dir;
    auto data = dir / "data";
    std::string key = cli_key(data, "ci-bot", "user");
    ASSERT_EQ(key.rfind("dcv_", 0), 0u) << key;
    ChildServer server(data);
    {
        auto c = server.client(key);
        EXPECT_EQ(call(c, "GET", "/jobs").status, 200);
        std::string out, err;
        EXPECT_EQ(run_cli({"keys", "list", "--json", "--data-dir", data.string()}, &out, &err), 0) << err;
        EXPECT_NE(out.find("ci-bot"), std::string::npos);
        EXPECT_EQ(out.find(key), std::string::npos) << "the secret must never be listed";
        EXPECT_EQ(run_cli({"keys", "revoke", "ci-bot", "--data-dir", data.string()}, &out, &err), 0) << err;
        auto r = call(c, "GET", "/jobs");
        EXPECT_EQ(r.status, 401);
        EXPECT_EQ(error_code(r), "UNAUTHENTICATED");
        EXPECT_NE(run_cli({"keys", "revoke", "ci-bot", "--data-dir", data.string()}, &out, &err), 0);
    }
    EXPECT_EQ(server.stop(), 0);
}

TEST(LifecycleTest, CheckConfigRejectsBadValuesWithExit2) {
    test::TempDir dir;
    std::string out, err;
    auto data = (dir / "data").string();
    EXPECT_EQ(run_cli({"check-config", "--data-dir", data}, &out, &err), 0) << err;
    EXPECT_NE(out.find("configuration ok"), std::string::npos);
    struct Case {
        std::vector<std::string> args;
        std::string mentions;
    };
    for (const auto& bad : std::vector<Case>{{{"--max-upload", "lots"}, "max-upload"},
                                             {{"--output-retention", "soon"}, "output-retention"},
                                             {{"--listen", "nowhere"}, "listen"},
                                             {{"--pool", "BAD NAME=/tmp/x"}, "pool"},
                                             {{"--maintenance-interval", "1ms"}, "maintenance-interval"}}) {
        std::vector<std::string> args{"check-config", "--data-dir", data};
        args.insert(args.end(), bad.args.begin(), bad.args.end());
        EXPECT_EQ(run_cli(args, &out, &err), 2) << bad.args[0] << ": " << err;
        EXPECT_NE(err.find(bad.mentions), std::string::npos) << err;
    }
    // An INI file with a bad value too.
    auto ini = dir / "dispatch.ini";
    test::write_file(ini, "data-dir = " + data + "\nmax-upload = -3\n");
    EXPECT_EQ(run_cli({"check-config", "--config", ini.string()}, &out, &err), 2) << err;
    EXPECT_NE(err.find("max-upload"), std::string::npos) << err;
}

}  // namespace
}  // namespace distconv::itest
