// The dashboard's defences in headless Chromium: a hostile output name renders as text, a forged
// request from another origin (same site: 127.0.0.1 on another port, so the Strict cookie IS sent)
// is refused for want of the CSRF token, and a user session sees no All Jobs or Admin.

#include "tests/integration/browser/dashboard_support.hpp"

#include <httplib.h>

#include <thread>

using namespace distconv;
using namespace distconv::browser;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

// A page on another origin of the same site: http://127.0.0.1:<another port>/.
class OtherOrigin {
  public:
    OtherOrigin() {
        m_server.Get("/", [](const httplib::Request&, httplib::Response& res) {
            res.set_content("<!doctype html><title>elsewhere</title><p>another origin</p>", "text/html");
        });
        // stop() waits for every connection's worker, and Chromium keeps idle and preconnected ones:
        // one request per connection, and a worker gives an idle connection a second at most.
        m_server.set_keep_alive_max_count(1);
        m_server.set_keep_alive_timeout(1);
        m_server.set_read_timeout(0, 200'000);
        m_port = m_server.bind_to_any_port("127.0.0.1");
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        // The socket listens from bind_to_any_port on: a connection before the accept loop just waits.
    }
    ~OtherOrigin() {
        m_server.stop();
        m_thread.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/"; }

  private:
    httplib::Server m_server;
    int m_port = 0;
    std::thread m_thread;
};

std::string job_state(e2e::Cluster& c, const std::string& id) {
    return c.job(id).value("state", "");
}

}  // namespace

TEST_F(DashboardTest, AHostileOutputNameRendersAsText) {
    const std::string name = "<img src=x onerror=alert(1)>.mp4";
    ASSERT_TRUE(test::make_test_clip(dir() / "in.mp4", 1.0, 160, 120));
    std::string answer;
    const auto id =
        cluster().submit(dir() / "in.mp4", {{"preset", "h264-web"}, {"output_filename", name}}, &answer);
    ASSERT_FALSE(id.empty()) << answer;
    auto job = cluster().job(id);
    ASSERT_EQ(job["output"].value("filename", ""), name)
        << "the server kept the name as given: " << job.dump();

    sign_in(user_key());
    go("#/jobs", "page-jobs");
    wd().wait_for(row(id), 15s);
    EXPECT_EQ(wd().text(row(id) + " td.job-name"), name);
    EXPECT_EQ(wd().execute_script("return document.querySelectorAll('#jobs-table img').length;"), 0);
    open_job(id);
    EXPECT_TRUE(wd().wait_until([&] {
        return wd().text("#job-detail-title").find(name) != std::string::npos;
    })) << wd().text("#job-detail-title");
    shot("hostile-name");
    EXPECT_EQ(wd().execute_script("return document.querySelectorAll('#job-detail img').length;"), 0);
    EXPECT_EQ(wd().execute_script("return document.querySelectorAll('img[src=\"x\"]').length;"), 0);
    EXPECT_EQ(wd().alert_text(), std::nullopt) << "the name ran as markup";

    go("#/overview", "page-overview");
    EXPECT_EQ(wd().execute_script("return document.querySelectorAll('img[src=\"x\"]').length;"), 0);
    EXPECT_EQ(wd().alert_text(), std::nullopt);
}

TEST_F(DashboardTest, AForgedRequestFromAnotherOriginIsRefused) {
    ASSERT_TRUE(test::make_test_clip(dir() / "in.mp4", 1.0, 160, 120));
    std::string answer;
    // No engine: one job stays queued (for a forged cancel), the other is canceled (for a forged retry).
    const auto queued = cluster().submit(dir() / "in.mp4", {{"output_filename", "queued.mp4"}}, &answer);
    ASSERT_FALSE(queued.empty()) << answer;
    const auto canceled = cluster().submit(dir() / "in.mp4", {{"output_filename", "canceled.mp4"}}, &answer);
    ASSERT_FALSE(canceled.empty()) << answer;
    ASSERT_TRUE(cluster().cancel(canceled).success());
    ASSERT_TRUE(cluster().wait_state(canceled, "canceled", 10s));
    ASSERT_TRUE(cluster().wait_state(queued, "queued", 10s));

    sign_in(user_key());
    OtherOrigin other;
    wd().navigate(other.url());
    wd().wait_for("p");
    shot("other-origin");
    // What a hostile page can send: a "simple" POST that needs no preflight (text/plain body), and a
    // DELETE, both with the cookie. Each promise settles once the browser is done with the request.
    auto results = wd().execute_async_script(R"(
        const [api, queued, canceled, done] = arguments;
        const opts = {credentials: 'include', mode: 'no-cors'};
        Promise.allSettled([
            fetch(`${api}/jobs/${canceled}/retry`, {...opts, method: 'POST', headers: {'Content-Type': 'text/plain'},
                                                    body: '{}'}),
            fetch(`${api}/jobs/${queued}`, {credentials: 'include', method: 'DELETE'}),
        ]).then((r) => done(r.map((x) => x.status + ':' + (x.value ? x.value.type : String(x.reason)))));
    )",
                                             {url() + "/api/v1", queued, canceled});
    RecordProperty("forged_requests", results.dump());
    EXPECT_EQ(job_state(cluster(), canceled), "canceled")
        << "the forged retry went through: " << results.dump();
    EXPECT_EQ(job_state(cluster(), queued), "queued") << "the forged cancel went through: " << results.dump();

    // The same from outside a browser: the session cookie without its X-CSRF-Token is refused ...
    wd().navigate(url() + "/#/jobs");
    wd().wait_for("section#page-jobs", 15s);
    auto retry = as_session("POST", "/jobs/" + canceled + "/retry", false);
    EXPECT_EQ(retry.status, 403) << retry.body;
    auto cancel = as_session("DELETE", "/jobs/" + queued, false);
    EXPECT_EQ(cancel.status, 403) << cancel.body;
    EXPECT_EQ(job_state(cluster(), canceled), "canceled");
    EXPECT_EQ(job_state(cluster(), queued), "queued");
    // ... and accepted with it: it was the token that was missing, not the session.
    auto with_token = as_session("POST", "/jobs/" + canceled + "/retry", true);
    EXPECT_TRUE(with_token.success()) << with_token.status << " " << with_token.body;
    EXPECT_NE(job_state(cluster(), canceled), "canceled");
}

TEST_F(DashboardTest, AUserSessionSeesNoAllJobsNorAdmin) {
    sign_in(user_key());
    EXPECT_NE(wd().text("#whoami").find("user"), std::string::npos) << wd().text("#whoami");
    EXPECT_TRUE(wd().displayed(wd().find("a#nav-my-jobs")));
    for (const char* admin_only : {"a#nav-all-jobs", "a#nav-admin"}) {
        auto found = wd().find_all(admin_only);
        EXPECT_TRUE(found.empty() || !wd().displayed(found[0])) << admin_only << " is visible to a user";
    }
    // Typing the admin routes does not show their pages.
    for (const char* hash : {"#/admin", "#/all-jobs"}) {
        wd().execute_script("location.hash = arguments[0];", {hash});
        EXPECT_TRUE(wd().wait_until([&] { return wd().displayed(wd().find("section#page-overview")); }))
            << hash << " did not fall back to the overview";
        EXPECT_FALSE(wd().displayed(wd().find("section#page-admin"))) << hash;
        EXPECT_NE(wd().text("#jobs-title"), "All Jobs") << hash;
        shot(std::string("user-") + (hash + 2));
    }
    // And the server refuses the session what the page hides.
    auto all = as_session("GET", "/jobs?all=true", false);
    EXPECT_EQ(all.status, 403) << all.body;
    auto keys = as_session("GET", "/keys", false);
    EXPECT_EQ(keys.status, 403) << keys.body;
    auto make_key = as_session("POST", "/keys", true, json{{"name", "escalated"}, {"role", "admin"}}.dump());
    EXPECT_EQ(make_key.status, 403) << make_key.body;
    EXPECT_EQ(as_session("GET", "/jobs", false).status, 200) << "the session itself works";
}

// The dispatch server serving HTTPS with a certificate of scripts/gen-certs.sh's test CA.
class TlsDashboardTest : public DashboardTest {
  protected:
    e2e::DispatchTimings dispatch_options() override {
        const auto& certs = m_certs.path();
        EXPECT_EQ(test::run_command({"/bin/bash", std::string(DISTCONV_SOURCE_DIR) + "/scripts/gen-certs.sh",
                                     certs.string()}),
                  0);
        e2e::DispatchTimings t;
        t.extra_args = {"--tls-cert", (certs / "server.crt").string(), "--tls-key",
                        (certs / "server.key").string()};
        return t;
    }
    std::string tls_ca_file() override { return (m_certs.path() / "ca.crt").string(); }

  private:
    test::TempDir m_certs;
};

TEST_F(TlsDashboardTest, UnderTlsTheSessionCookieIsAlsoSecure) {
    ASSERT_EQ(url().rfind("https://", 0), 0u) << url();
    sign_in(admin_key());
    auto cookie = wd().cookie("distconv_session");
    ASSERT_TRUE(cookie) << wd().get_cookies().dump();
    EXPECT_EQ(cookie->value("secure", false), true) << cookie->dump();
    EXPECT_EQ(cookie->value("httpOnly", false), true) << cookie->dump();
    EXPECT_EQ(cookie->value("sameSite", ""), "Strict") << cookie->dump();
    auto current = as_session("GET", "/sessions/current", false);
    EXPECT_EQ(current.status, 200) << current.body;
}

TEST_F(DashboardTest, EveryPageRunsUnderItsStrictCspWithoutAViolation) {
    start_engine("engine1");
    sign_in(admin_key());
    for (const auto& [hash, section] :
         std::vector<std::pair<std::string, std::string>>{{"#/jobs", "page-jobs"},
                                                          {"#/all-jobs", "page-jobs"},
                                                          {"#/submit", "page-submit"},
                                                          {"#/engines", "page-engines"},
                                                          {"#/admin", "page-admin"},
                                                          {"#/overview", "page-overview"}})
        go(hash, section);
    std::string violations;
    for (const auto& entry : wd().browser_log()) {
        const auto message = entry.value("message", "");
        // Not an error: the page asks whether it is signed in before the sign-in form shows.
        if (message.find("/api/v1/sessions/current - Failed to load resource: the server responded with a "
                         "status of 401") != std::string::npos)
            continue;
        if (message.find("Content Security Policy") != std::string::npos ||
            entry.value("level", "") == "SEVERE")
            violations += message + "\n";
    }
    EXPECT_EQ(violations, "") << "the dashboard breaks its own policy or throws";

    // The policy is in force: a script injected inline does not run, and the browser says why.
    auto ran = wd().execute_script(R"(
        const s = document.createElement('script');
        s.textContent = 'window.injectedRan = true;';
        document.body.append(s);
        return window.injectedRan === true;
    )");
    EXPECT_EQ(ran, false);
    EXPECT_NE(wd().browser_log().dump().find("Content Security Policy"), std::string::npos);
}
