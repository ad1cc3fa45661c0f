// Auth, table-driven: every user endpoint with no key, a bad key, another user's key, an engine key
// and an admin key; the admin-only key endpoints with a user key and an admin key.

#include "tests/integration/dispatch/server_fixture.hpp"

#include <gtest/gtest.h>

namespace distconv::itest {
namespace {

using dispatch::Role;

struct Endpoint {
    std::string method;
    std::string path;  // "{job}" is replaced by the row's job id
    std::string body;
    std::string content_type;
    bool job_scoped;            // another user's key → 404 (their job is not theirs to see)
    std::vector<long> allowed;  // what the admin key gets
};

TEST(AuthTest, EveryEndpointAnswersEachKindOfCaller) {
    ASSERT_FALSE(small_clip_bytes().empty());
    test::TempDir dir;
    InProcessServer server(dir / "data");
    std::string owner_key = server.key("owner", Role::User);
    std::string other_key = server.key("mallory", Role::User);
    std::string engine_key = server.key("engine-1", Role::Engine);
    std::string admin_key = server.key("root", Role::Admin);
    auto owner = server.client(owner_key);

    // Each row gets its own job so that an allowed call does not change what the next row sees.
    auto queued_job = [&] {
        return body_json(submit_multipart(owner, small_clip_bytes(), json::object()))["job_id"]
            .get<std::string>();
    };
    auto awaiting_job = [&] {
        return body_json(call(owner, "POST", "/jobs", json{{"source", {{"size", 100}}}}.dump(),
                              "application/json"))["job_id"]
            .get<std::string>();
    };
    auto canceled_job = [&] {
        auto id = queued_job();
        call(owner, "DELETE", "/jobs/" + id);
        return id;
    };

    std::string json_job = json{{"source", {{"size", 100}}}}.dump();
    std::vector<std::pair<Endpoint, std::string>> rows = {
        {{"GET", "/jobs", "", "", false, {200}}, ""},
        {{"POST", "/jobs", json_job, "application/json", false, {202}}, ""},
        {{"GET", "/jobs/{job}", "", "", true, {200}}, queued_job()},
        {{"HEAD", "/jobs/{job}", "", "", true, {200}}, queued_job()},
        {{"GET", "/jobs/{job}/status", "", "", true, {200}}, queued_job()},
        {{"GET", "/jobs/{job}/events", "", "", true, {200}}, canceled_job()},  // terminal: the stream ends
        {{"DELETE", "/jobs/{job}", "", "", true, {202}}, queued_job()},
        {{"POST", "/jobs/{job}/retry", "", "", true, {202}}, canceled_job()},
        {{"GET", "/jobs/{job}/source", "", "", true, {200}}, awaiting_job()},
        {{"HEAD", "/jobs/{job}/source", "", "", true, {200}}, awaiting_job()},
        {{"PUT", "/jobs/{job}/source", "0123456789", "application/octet-stream", true, {200}},
         awaiting_job()},
        {{"GET", "/jobs/{job}/result", "", "", true, {409}}, queued_job()},
        {{"HEAD", "/jobs/{job}/result", "", "", true, {409}}, queued_job()},
        {{"GET", "/presets", "", "", false, {200}}, ""},
        {{"GET", "/pools", "", "", false, {200}}, ""},
    };

    struct Caller {
        std::string name;
        std::string key;
    };
    int checked = 0;
    for (auto& [ep, job] : rows) {
        std::string path = ep.path;
        if (auto at = path.find("{job}"); at != std::string::npos) path.replace(at, 5, job);
        std::string what = ep.method + " " + path;
        auto expect = [&](const std::string& caller, const std::string& key, std::vector<long> statuses,
                          const std::string& code) {
            auto c = make_client(server.port(), key);
            auto r = call(c, ep.method, path, ep.body, ep.content_type);
            EXPECT_NE(std::find(statuses.begin(), statuses.end(), r.status), statuses.end())
                << what << " as " << caller << " answered " << r.status << " " << r.body;
            if (!code.empty() && ep.method != "HEAD") {
                EXPECT_EQ(error_code(r), code) << what << " as " << caller;
            }
            ++checked;
        };
        expect("no key", "", {401}, "UNAUTHENTICATED");
        expect("bad key", "dcv_not-a-real-key-0000000000000000000000000000", {401}, "UNAUTHENTICATED");
        expect("engine key", engine_key, {403}, "FORBIDDEN");
        if (ep.job_scoped) expect("another user", other_key, {404}, "JOB_NOT_FOUND");
        expect("admin", admin_key, ep.allowed, "");
    }
    // The owner can do what the admin did (spot checks on fresh jobs).
    EXPECT_EQ(call(owner, "GET", "/jobs/" + queued_job()).status, 200);
    EXPECT_EQ(call(owner, "POST", "/jobs/" + canceled_job() + "/retry").status, 202);
    // Another user's list does not show the owner's jobs; the admin's all=true does.
    auto other = server.client(other_key);
    EXPECT_EQ(body_json(call(other, "GET", "/jobs"))["total"], 0);
    auto admin = server.client(admin_key);
    EXPECT_GT(body_json(call(admin, "GET", "/jobs?all=true"))["total"], 10);
    auto not_admin_all = call(owner, "GET", "/jobs?all=true");
    EXPECT_EQ(not_admin_all.status, 403);
    EXPECT_GE(checked, 60);

    // Key management is for admins only.
    auto user = server.client(owner_key);
    auto engine = server.client(engine_key);
    auto none = server.client("");
    json new_key{{"name", "ci"}, {"role", "user"}};
    for (auto* c : {&user, &engine}) {
        EXPECT_EQ(call(*c, "GET", "/keys").status, 403);
        EXPECT_EQ(call(*c, "POST", "/keys", new_key.dump(), "application/json").status, 403);
        EXPECT_EQ(call(*c, "DELETE", "/keys/mallory").status, 403);
    }
    EXPECT_EQ(call(none, "GET", "/keys").status, 401);
    auto list = call(admin, "GET", "/keys");
    ASSERT_EQ(list.status, 200);
    const json keys =
        body_json(list);  // kept alive for the loop (a range-for over a temporary's member dangles)
    EXPECT_EQ(keys["items"].size(), 4u);
    for (const auto& k : keys["items"])
        EXPECT_FALSE(k.dump().find("dcv_") != std::string::npos && k.contains("key"));
    auto created = call(admin, "POST", "/keys", new_key.dump(), "application/json");
    ASSERT_EQ(created.status, 201) << created.body;
    std::string secret = body_json(created).value("key", "");
    ASSERT_FALSE(secret.empty()) << created.body;
    auto ci = server.client(secret);
    EXPECT_EQ(call(ci, "GET", "/jobs").status, 200);
    auto revoked = call(admin, "DELETE", "/keys/ci");
    EXPECT_EQ(revoked.status, 200) << revoked.body;
    auto after = call(ci, "GET", "/jobs");
    EXPECT_EQ(after.status, 401);
    EXPECT_EQ(error_code(after), "UNAUTHENTICATED");
}

}  // namespace
}  // namespace distconv::itest
