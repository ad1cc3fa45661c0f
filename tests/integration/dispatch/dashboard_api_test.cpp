// What the dashboard reads: list search, sorts and cursor paging; totals from the counters the
// database keeps (checked against a real count after every kind of change); the list-wide event
// stream; the overview; and the batch of queue positions a list page shows.

#include "tests/integration/dispatch/server_fixture.hpp"
#include "tests/support/sqlite_peer.hpp"

#include <gtest/gtest.h>

namespace distconv::itest {
namespace {

using dispatch::Role;

std::string submit_named(http::Client& c, const std::string& source_name) {
    auto r = call(c, "POST", "/jobs", json{{"source", {{"size", 100}, {"filename", source_name}}}}.dump(),
                  "application/json");
    EXPECT_EQ(r.status, 202) << r.body;
    return body_json(r).value("job_id", "");
}

std::vector<std::string> names_of(const json& page) {
    std::vector<std::string> out;
    for (const auto& item : page["items"]) out.push_back(item["output_filename"]);
    return out;
}

// Every page of GET /jobs?<query> (limit 2), following next_cursor.
std::vector<std::string> walk(http::Client& c, const std::string& query) {
    std::vector<std::string> out;
    std::string cursor;
    for (int guard = 0; guard < 50; ++guard) {
        auto r = call(c, "GET", "/jobs?limit=2&" + query + (cursor.empty() ? "" : "&cursor=" + cursor));
        EXPECT_EQ(r.status, 200) << r.body;
        auto page = body_json(r);
        for (auto& n : names_of(page)) out.push_back(n);
        if (!page.contains("next_cursor") || page["next_cursor"].is_null()) break;
        cursor = page["next_cursor"];
    }
    return out;
}

TEST(DashboardApiTest, ListsSearchSortAndPageByName) {
    test::TempDir dir;
    InProcessServer server(dir / "data");
    auto alice = server.client(server.key("alice", Role::User));
    auto bob = server.client(server.key("bob", Role::User));
    for (const char* n : {"Delta.mkv", "alpha.mkv", "Charlie 100%_x.mkv", "bravo.mkv", "ECHO.mkv"})
        submit_named(alice, n);
    submit_named(bob, "alpha-of-bob.mkv");

    EXPECT_EQ(walk(alice, "sort=name"), (std::vector<std::string>{"Charlie 100%_x.mp4", "Delta.mp4",
                                                                  "ECHO.mp4", "alpha.mp4", "bravo.mp4"}));
    EXPECT_EQ(walk(alice, "sort=-name"), (std::vector<std::string>{"bravo.mp4", "alpha.mp4", "ECHO.mp4",
                                                                   "Delta.mp4", "Charlie 100%_x.mp4"}));
    EXPECT_EQ(
        walk(alice, "sort=oldest"),
        (std::vector<std::string>{"Delta.mp4", "alpha.mp4", "Charlie 100%_x.mp4", "bravo.mp4", "ECHO.mp4"}));
    EXPECT_EQ(walk(alice, ""), (std::vector<std::string>{"ECHO.mp4", "bravo.mp4", "Charlie 100%_x.mp4",
                                                         "alpha.mp4", "Delta.mp4"}));

    // Search: case-insensitive, on the output name (what the list shows), LIKE's wildcards taken literally.
    auto found = body_json(call(alice, "GET", "/jobs?q=ALPHA"));
    EXPECT_EQ(names_of(found), std::vector<std::string>{"alpha.mp4"}) << "bob's job is not alice's";
    EXPECT_EQ(found["total"], 1);
    EXPECT_EQ(names_of(body_json(call(alice, "GET", "/jobs?q=100%25_"))),
              std::vector<std::string>{"Charlie 100%_x.mp4"});
    EXPECT_EQ(names_of(body_json(call(alice, "GET", "/jobs?q=%25"))),
              std::vector<std::string>{"Charlie 100%_x.mp4"})
        << "% is not a wildcard";
    EXPECT_EQ(names_of(body_json(call(alice, "GET", "/jobs?q=o_"))), std::vector<std::string>{})
        << "_ is not a wildcard";
    EXPECT_EQ(walk(alice, "q=a&sort=name"),
              (std::vector<std::string>{"Charlie 100%_x.mp4", "Delta.mp4", "alpha.mp4", "bravo.mp4"}));

    EXPECT_EQ(error_code(call(alice, "GET", "/jobs?sort=size")), "INVALID_ARGUMENT");
    EXPECT_EQ(error_code(call(alice, "GET", "/jobs?q=" + std::string(201, 'x'))), "INVALID_ARGUMENT");
    EXPECT_EQ(error_code(call(alice, "GET", "/jobs?engine=../x")), "INVALID_ARGUMENT");
    EXPECT_EQ(body_json(call(alice, "GET", "/jobs?engine=NOSUCHENGINE"))["total"], 0);
}

TEST(DashboardApiTest, TotalsFromTheCountersMatchARealCountAfterEveryKindOfChange) {
    test::TempDir dir;
    InProcessServer server(dir / "data");
    auto alice = server.client(server.key("alice", Role::User));
    auto bob = server.client(server.key("bob", Role::User));
    auto admin = server.client(server.key("root", Role::Admin));
    std::vector<std::string> ids;
    for (int i = 0; i < 4; ++i) ids.push_back(submit_named(alice, "a" + std::to_string(i) + ".mkv"));
    std::vector<std::string> bobs;
    for (int i = 0; i < 3; ++i) {
        auto r = submit_multipart(bob, small_clip_bytes(), json::object());
        ASSERT_EQ(r.status, 202) << r.body;
        bobs.push_back(body_json(r)["job_id"]);
    }
    EXPECT_EQ(call(alice, "DELETE", "/jobs/" + ids[0]).status, 202);
    EXPECT_EQ(call(bob, "DELETE", "/jobs/" + bobs[0]).status, 202);
    EXPECT_EQ(call(bob, "DELETE", "/jobs/" + bobs[1]).status, 202);
    EXPECT_EQ(call(bob, "POST", "/jobs/" + bobs[1] + "/retry").status, 202);

    test::SqlitePeer db(server.config().database_path());
    auto expect_counters_true = [&](const std::string& when) {
        EXPECT_EQ(
            db.value("SELECT group_concat(owner_key_id || ':' || state || '=' || n, ',') FROM"
                     " (SELECT owner_key_id, state, n FROM job_counts WHERE n > 0 ORDER BY 1, 2)"),
            db.value("SELECT group_concat(owner_key_id || ':' || state || '=' || n, ',') FROM"
                     " (SELECT owner_key_id, state, COUNT(*) AS n FROM jobs GROUP BY 1, 2 ORDER BY 1, 2)"))
            << when;
    };
    expect_counters_true("after submits, a cancel and a retry");
    auto mine = body_json(call(alice, "GET", "/jobs"));
    EXPECT_EQ(mine["total"], 4);
    EXPECT_EQ(body_json(call(alice, "GET", "/jobs?state=canceled"))["total"], 1);
    EXPECT_EQ(body_json(call(alice, "GET", "/jobs?state=canceled,awaiting_upload"))["total"], 4);
    EXPECT_EQ(body_json(call(admin, "GET", "/jobs?all=true"))["total"], 7);
    EXPECT_EQ(body_json(call(admin, "GET", "/jobs?all=true&state=queued"))["total"], 2)
        << "bob's job never canceled and the one retried";
    EXPECT_EQ(body_json(call(bob, "GET", "/jobs?state=canceled"))["total"], 1);

    // A job that leaves the database (retention) leaves its counter too.
    db.exec("DELETE FROM job_events WHERE job_id = '" + ids[0] + "'");
    db.exec("DELETE FROM jobs WHERE id = '" + ids[0] + "'");
    expect_counters_true("after a delete");
    EXPECT_EQ(body_json(call(alice, "GET", "/jobs"))["total"], 3);

    // Queue positions on a list page are the same as each job's own.
    auto queued = body_json(call(admin, "GET", "/jobs?all=true&state=queued"));
    ASSERT_EQ(queued["items"].size(), 2u);
    for (const auto& item : queued["items"]) {
        auto own = body_json(call(admin, "GET", "/jobs/" + item["job_id"].get<std::string>()));
        EXPECT_EQ(item["queue_position"], own["queue_position"]) << item.dump();
    }
}

TEST(DashboardApiTest, OneStreamCarriesEveryJobOfTheCallerAndTheOverviewCountsThem) {
    test::TempDir dir;
    // Streams end after a second, so the test reads one whole.
    InProcessServer server(dir / "data", [](dispatch::DispatchConfig& c) { c.event_stream_max = "1s"; });
    std::string alice_key = server.key("alice", Role::User);
    auto alice = server.client(alice_key);
    auto bob = server.client(server.key("bob", Role::User));
    auto admin = server.client(server.key("root", Role::Admin));
    std::string first = submit_named(alice, "one.mkv");
    std::string second = submit_named(alice, "two.mkv");
    std::string bobs = submit_named(bob, "bobs.mkv");
    call(alice, "DELETE", "/jobs/" + second);

    // From the start (Last-Event-ID: 0) the stream holds alice's jobs only, in order.
    http::ClientOptions o = client_options(server.port(), alice_key);
    http::Client streaming(o);
    http::Request r;
    r.method = "GET";
    r.path_or_url = "/events";
    r.headers = {{"Last-Event-ID", "0"}};
    r.retry = false;
    r.timeout = std::chrono::seconds(10);
    auto got = streaming.request(r);
    std::string text = got.ok() ? got->body : (got.error().message);
    EXPECT_NE(text.find(first), std::string::npos) << text;
    EXPECT_NE(text.find(second), std::string::npos) << text;
    EXPECT_EQ(text.find(bobs), std::string::npos) << "bob's job is not in alice's stream";
    EXPECT_NE(text.find("\"state\":\"canceled\""), std::string::npos) << text;
    EXPECT_LT(text.find(first), text.find("\"state\":\"canceled\"")) << text;

    EXPECT_EQ(call(alice, "GET", "/events?all=true").status, 403);
    EXPECT_EQ(call(alice, "GET", "/overview").status, 200);
    auto mine = body_json(call(alice, "GET", "/overview"));
    EXPECT_EQ(mine["jobs"]["awaiting_upload"], 1);
    EXPECT_EQ(mine["jobs"]["canceled"], 1);
    EXPECT_EQ(mine["throughput"].size(), 12u);
    auto farm = body_json(call(admin, "GET", "/overview"));
    EXPECT_EQ(farm["jobs"]["awaiting_upload"], 2) << "an admin sees the whole farm";
    EXPECT_TRUE(farm["failed_last_hour"].is_array());
    EXPECT_TRUE(farm["engines"].contains("online"));
}

}  // namespace
}  // namespace distconv::itest
