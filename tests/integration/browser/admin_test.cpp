// The dashboard's admin actions in headless Chromium: drain an engine from the Engines page, create
// an API key on the Admin page (shown once, works against the API) and revoke it (the API refuses it).

#include "tests/integration/browser/dashboard_support.hpp"

using namespace distconv;
using namespace distconv::browser;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

std::string engine_state(e2e::Cluster& c, const std::string& id) {
    for (const auto& e : c.engines())
        if (e.value("engine_id", "") == id) return e.value("state", "");
    return "";
}

}  // namespace

TEST_F(DashboardTest, DrainAnEngineFromTheEnginesPage) {
    const auto engine_id = start_engine("engine1");
    ASSERT_FALSE(engine_id.empty());
    // A job the engine ran, for its detail's job list.
    ASSERT_TRUE(test::make_test_clip(dir() / "in.mp4", 1.0, 160, 120));
    std::string answer;
    const auto job_id = cluster().submit(dir() / "in.mp4", {{"output_filename", "ran-here.mp4"}}, &answer);
    ASSERT_FALSE(job_id.empty()) << answer;
    ASSERT_TRUE(cluster().wait_state(job_id, "completed", 30s));
    sign_in(admin_key());
    go("#/engines", "page-engines");
    const std::string engine_row = "table#engines-table tr[data-engine-id=\"" + engine_id + "\"]";
    wd().wait_for(engine_row, 15s);
    EXPECT_EQ(wd().text(engine_row + " td.engine-name"), "engine1");
    EXPECT_TRUE(wd().wait_until([&] { return wd().text(engine_row + " td.engine-state") == "idle"; }))
        << wd().text(engine_row + " td.engine-state");

    wd().click(engine_row + " td.engine-name");
    wd().wait_for("section#engine-detail[data-engine-id=\"" + engine_id + "\"]");
    const std::string ran = "table#engine-jobs tr[data-job-id=\"" + job_id + "\"]";
    wd().wait_for(ran, 10s);
    EXPECT_NE(wd().text(ran).find("ran-here.mp4"), std::string::npos) << wd().text(ran);
    EXPECT_EQ(wd().attribute(wd().find(ran), "data-state"), "completed");
    shot("engine-detail");
    wd().click("button#engine-drain");

    EXPECT_TRUE(test::wait_until([&] { return engine_state(cluster(), engine_id) == "draining"; }, 10s))
        << cluster().engines().dump();
    EXPECT_TRUE(wd().wait_until(
        [&] { return wd().attribute(wd().find(engine_row), "data-state") == "draining"; }, 15s))
        << wd().attribute(wd().find(engine_row), "data-state").value_or("?");
    EXPECT_EQ(wd().text(engine_row + " td.engine-state"), "draining");
    shot("engine-draining");
}

TEST_F(DashboardTest, CreateAKeyShownOnceThenRevokeIt) {
    sign_in(admin_key());
    go("#/admin", "page-admin");
    wd().send_keys(wd().find("form#key-create input#key-name"), "made-in-browser");
    wd().click("button#key-create-submit");
    std::string secret;
    ASSERT_TRUE(wd().wait_until([&] {
        secret = wd().text(wd().wait_for("#key-secret", 1s));
        return !secret.empty();
    })) << "no #key-secret after creating a key";
    shot("key-created");
    EXPECT_EQ(secret.rfind("dcv_", 0), 0u) << secret;

    // The new key works against the API as a user.
    auto mine = api("GET", "/jobs", bearer(secret));
    EXPECT_EQ(mine.status, 200) << mine.body;
    EXPECT_EQ(api("GET", "/keys", bearer(secret)).status, 403) << "a user key, as chosen in select#key-role";

    std::string key_id;
    auto keys = json::parse(api("GET", "/keys", bearer(admin_key())).body, nullptr, false);
    for (const auto& k : keys.value("items", json::array()))
        if (k.value("name", "") == "made-in-browser") key_id = k.value("key_id", "");
    ASSERT_FALSE(key_id.empty()) << keys.dump();
    const std::string key_row = "table#keys-table tr[data-key-id=\"" + key_id + "\"]";
    wd().wait_for(key_row);
    EXPECT_EQ(wd().page_source().find(secret), wd().page_source().rfind(secret))
        << "the secret is on the page once, in #key-secret";

    // Shown once: coming back to the page does not show it again.
    go("#/overview", "page-overview");
    go("#/admin", "page-admin");
    wd().wait_for(key_row);
    EXPECT_EQ(wd().page_source().find(secret), std::string::npos) << "the secret is shown again";

    wd().click(key_row + " button.key-revoke");
    auto refused = api("GET", "/jobs", bearer(secret));
    EXPECT_TRUE(test::wait_until(
        [&] {
            refused = api("GET", "/jobs", bearer(secret));
            return refused.status == 401;
        },
        10s))
        << refused.status << " " << refused.body;
    // The row shows the revoked key (or leaves the list of live keys).
    EXPECT_TRUE(wd().wait_until([&] {
        auto rows = wd().find_all(key_row);
        return rows.empty() || wd().find_all(key_row + " button.key-revoke:not([disabled])").empty();
    })) << "the revoked key still offers Revoke";
    shot("key-revoked");
}

TEST_F(DashboardTest, RevokingTheKeyOfASignedInUserSendsTheirPageBackToSignIn) {
    sign_in(user_key());
    go("#/jobs", "page-jobs");
    std::string user_key_id;
    auto keys = json::parse(api("GET", "/keys", bearer(admin_key())).body, nullptr, false);
    for (const auto& k : keys.value("items", json::array()))
        if (k.value("role", "") == "user") user_key_id = k.value("key_id", "");
    ASSERT_FALSE(user_key_id.empty()) << keys.dump();
    ASSERT_EQ(api("DELETE", "/keys/" + user_key_id, bearer(admin_key())).status, 200);

    // The page's next request answers 401: it shows the sign-in form with why.
    EXPECT_EQ(as_session("GET", "/jobs", false).status, 401);
    wd().execute_script("location.hash = '#/overview';");
    wd().wait_for("form#signin", 15s);
    EXPECT_FALSE(wd().text("#signin-error").empty()) << "no reason given";
    shot("session-ended");
}
