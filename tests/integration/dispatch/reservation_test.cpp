// Reservations expire and are bounded, against the real distconv-dispatch binary: a JSON submit that
// declares a source and never uploads it fails with UPLOAD_ABANDONED after --upload-idle-timeout and
// frees its space for others; a PUT in progress is not abandoned; --user-quota bounds what one user's
// jobs reserve and store, with a structured 507, and never limits another user.

#include "tests/integration/dispatch/server_fixture.hpp"

#include <gtest/gtest.h>

namespace distconv::itest {
namespace {

using namespace std::chrono_literals;

json declared(uint64_t size) {
    return {{"source", {{"filename", "film.mkv"}, {"size", size}}}, {"output_filename", "film.mp4"}};
}

TEST(Reservations, AnUploadNobodySendsIsAbandonedAndFreesItsSpace) {
    test::TempDir dir;
    auto data = dir / "data";
    auto alice_key = cli_key(data, "alice", "user");
    auto bob_key = cli_key(data, "bob", "user");
    ChildServer server(data, {"--pool", "small=" + (dir / "small").string() + ":1MiB",
                              "--upload-idle-timeout", "1s", "--maintenance-interval", "100ms"});
    auto alice = server.client(alice_key);
    auto bob = server.client(bob_key);

    auto hog = call(alice, "POST", "/jobs", declared(1 << 20).dump(), "application/json");
    ASSERT_EQ(hog.status, 202) << hog.body;
    const std::string hog_id = body_json(hog)["job_id"];
    auto blocked = call(bob, "POST", "/jobs", declared(512 << 10).dump(), "application/json");
    EXPECT_EQ(blocked.status, 507) << blocked.body;
    EXPECT_EQ(error_code(blocked), "INSUFFICIENT_STORAGE");

    // No byte arrives: the job fails with UPLOAD_ABANDONED, and its space is free again.
    json last;
    ASSERT_TRUE(test::wait_until(
        [&] {
            last = body_json(call(alice, "GET", "/jobs/" + hog_id));
            return last.value("state", "") == "failed";
        },
        10s))
        << last.dump();
    EXPECT_EQ(last.value("failure_code", ""), "UPLOAD_ABANDONED") << last.dump();
    EXPECT_NE(last.value("failure_reason", "").find("no source bytes arrived"), std::string::npos)
        << last.dump();
    auto pools = body_json(call(bob, "GET", "/pools"))["items"];
    EXPECT_EQ(pools[0]["reserved_bytes"], 0) << pools.dump();
    EXPECT_EQ(call(bob, "POST", "/jobs", declared(512 << 10).dump(), "application/json").status, 202);
    // The abandoned job cannot take bytes any more.
    auto late =
        call(alice, "PUT", "/jobs/" + hog_id + "/source", std::string(100, 'x'), "application/octet-stream");
    EXPECT_EQ(late.status, 409) << late.body;
}

TEST(Reservations, AnUploadThatKeepsSendingIsNotAbandoned) {
    test::TempDir dir;
    auto data = dir / "data";
    auto key = cli_key(data, "alice", "user");
    ChildServer server(data, {"--upload-idle-timeout", "1s", "--maintenance-interval", "100ms"});
    auto c = server.client(key);
    const std::string clip = small_clip_bytes();
    auto created = call(c, "POST", "/jobs", declared(clip.size()).dump(), "application/json");
    ASSERT_EQ(created.status, 202) << created.body;
    const std::string id = body_json(created)["job_id"];
    // Resumable chunks, each well within the idle timeout, for longer than the timeout in total.
    const size_t chunk = clip.size() / 4 + 1;
    for (size_t at = 0; at < clip.size(); at += chunk) {
        size_t n = std::min(chunk, clip.size() - at);
        http::Request put;
        put.method = "PUT";
        put.path_or_url = "/jobs/" + id + "/source";
        put.body = clip.substr(at, n);
        put.content_type = "application/octet-stream";
        put.headers.emplace_back("Content-Range", "bytes " + std::to_string(at) + "-" +
                                                      std::to_string(at + n - 1) + "/" +
                                                      std::to_string(clip.size()));
        auto r = c.request(put);
        ASSERT_TRUE(r.ok()) << r.error().to_string();
        ASSERT_TRUE(r->status / 100 == 2) << r->status << " " << r->body;
        auto state = body_json(call(c, "GET", "/jobs/" + id)).value("state", "");
        ASSERT_NE(state, "failed") << "abandoned while bytes were arriving";
        std::this_thread::sleep_for(400ms);  // the pace of a slow uploader (the point of the test)
    }
    EXPECT_TRUE(test::wait_until(
        [&] { return body_json(call(c, "GET", "/jobs/" + id)).value("state", "") == "queued"; }, 10s));
}

TEST(Reservations, UserQuotaBoundsOneUsersReservedAndStoredBytes) {
    test::TempDir dir;
    auto data = dir / "data";
    auto alice_key = cli_key(data, "alice", "user");
    auto bob_key = cli_key(data, "bob", "user");
    auto admin_key = cli_key(data, "root", "admin");
    ChildServer server(data, {"--user-quota", "1MiB"});
    auto alice = server.client(alice_key);
    auto bob = server.client(bob_key);
    auto admin = server.client(admin_key);

    auto too_big = call(alice, "POST", "/jobs", declared(2 << 20).dump(), "application/json");
    EXPECT_EQ(too_big.status, 507) << too_big.body;
    auto err = body_json(too_big)["error"];
    EXPECT_EQ(err.value("code", ""), "INSUFFICIENT_STORAGE");
    EXPECT_EQ(err["details"].value("quota_bytes", 0), 1 << 20) << err.dump();
    EXPECT_EQ(err["details"].value("needed_bytes", 0), 2 << 20) << err.dump();

    EXPECT_EQ(call(alice, "POST", "/jobs", declared(600 << 10).dump(), "application/json").status, 202);
    auto second = call(alice, "POST", "/jobs", declared(600 << 10).dump(), "application/json");
    EXPECT_EQ(second.status, 507) << second.body;
    EXPECT_EQ(body_json(second)["error"]["details"].value("used_bytes", 0), 600 << 10);
    // A multipart upload counts too.
    EXPECT_EQ(submit_multipart(alice, std::string(500 << 10, 'x'), json::object()).status, 507);
    // Another user and an admin are not limited by alice's use.
    EXPECT_EQ(call(bob, "POST", "/jobs", declared(600 << 10).dump(), "application/json").status, 202);
    EXPECT_EQ(call(admin, "POST", "/jobs", declared(2 << 20).dump(), "application/json").status, 202);
}

}  // namespace
}  // namespace distconv::itest
