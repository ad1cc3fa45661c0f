#include "tests/integration/browser/dashboard_support.hpp"

#include <cstdio>

namespace distconv::browser {

using namespace std::chrono_literals;
using json = nlohmann::json;

void DashboardTest::SetUp() {
    if (auto missing = browser_missing()) GTEST_SKIP() << *missing;
    m_cluster = std::make_unique<e2e::Cluster>(dispatch_options());
    const auto ca = tls_ca_file();
    m_url = m_cluster->url();
    if (!ca.empty()) m_url.replace(0, m_url.find(':'), "https");
    // The Cluster makes a user and an engine key; the admin pages need an admin one (the CLI writes
    // it into the running server's database).
    std::string out;
    ASSERT_EQ(test::run_command({e2e::dispatch_binary(), "keys", "create", "--data-dir",
                                 (dir() / "data").string(), "--role", "admin", "--name", "root"},
                                &out),
              0);
    m_admin_key = out.substr(0, out.find_first_of("\r\n"));
    ASSERT_FALSE(m_admin_key.empty());

    http::ClientOptions o;
    o.base_url = m_url + "/api/v1";
    o.ca_file = ca;
    o.request_timeout = 15s;
    o.retry.max_attempts = 1;
    m_api = std::make_unique<http::Client>(o);
    // The browser does not know the test's CA: it is told to accept the certificate.
    m_wd = std::make_unique<WebDriver>(dir(), 1280, 900, !ca.empty());
}

void DashboardTest::TearDown() {
    if (m_wd && HasFailure()) {
        // What the page looked like when it went wrong, next to the other screenshots.
        try {
            shot("failure");
            test::write_file(dir() / "failure-page.html", m_wd->page_source());
            std::fprintf(stderr, "[ browser ] page at failure: %s\n", m_wd->current_url().c_str());
        } catch (const std::exception& e) {
            std::fprintf(stderr, "[ browser ] no failure screenshot: %s\n", e.what());
        }
    }
    m_wd.reset();
    m_engines.clear();
    m_cluster.reset();
}

std::string DashboardTest::start_engine(const std::string& name, const e2e::EngineOptions& options) {
    m_engines[name] = m_cluster->start_engine(name, options);
    auto id = m_cluster->engine_id(name);
    EXPECT_FALSE(id.empty()) << name << " did not register: " << m_engines[name]->log();
    return id;
}

void DashboardTest::sign_in(const std::string& key) {
    wd().navigate(m_url + "/");
    auto input = wd().wait_for("form#signin input#signin-key");
    shot("signin");
    wd().send_keys(input, key);
    wd().click("button#signin-submit");
    wd().wait_for("section#page-overview", 15s);
    shot("overview");
}

void DashboardTest::go(const std::string& hash, const std::string& section) {
    wd().execute_script("location.hash = arguments[0];", {hash});
    wd().wait_for("section#" + section);
    shot(section);
}

void DashboardTest::shot(const std::string& name) {
    const auto n = std::to_string(++m_shots);
    m_wd->screenshot(dir() / (std::string(n.size() < 2 ? "0" : "") + n + "-" + name + ".png"));
}

std::string DashboardTest::session_cookie() {
    auto c = wd().cookie("distconv_session");
    return c ? c->value("value", "") : "";
}

http::Response DashboardTest::api(const std::string& method, const std::string& path,
                                  const http::HeaderList& headers, const std::string& body,
                                  const std::string& content_type) {
    http::Request req;
    req.method = method;
    req.path_or_url = path;
    req.headers = headers;
    req.body = body;
    if (!body.empty()) req.content_type = content_type;
    req.retry = false;
    auto r = m_api->request(req);
    if (!r) {
        ADD_FAILURE() << method << " " << path << ": " << r.error().to_string();
        return {};
    }
    return *r;
}

http::Response DashboardTest::as_session(const std::string& method, const std::string& path, bool csrf,
                                         const std::string& body) {
    http::HeaderList headers{{"Cookie", "distconv_session=" + session_cookie()}};
    if (csrf) {
        // The token the page holds in memory; a reload recovers it the same way.
        auto current = api("GET", "/sessions/current", headers);
        auto j = json::parse(current.body, nullptr, false);
        headers.emplace_back("X-CSRF-Token", j.is_object() ? j.value("csrf_token", "") : "");
    }
    return api(method, path, headers, body);
}

std::string DashboardTest::wait_uploaded(const std::string& file_name, std::chrono::milliseconds timeout) {
    const auto item = upload_item(file_name);
    std::string state;
    if (!wd().wait_until(
            [&] {
                state = wd().text(wd().find(item + " .upload-state"));
                return state == "uploaded";
            },
            timeout)) {
        ADD_FAILURE() << file_name << ": upload state '" << state << "'";
        return "";
    }
    auto id = wd().attribute(wd().find(item), "data-job-id").value_or("");
    EXPECT_FALSE(id.empty()) << file_name << ": an uploaded item names its job";
    return id;
}

bool DashboardTest::wait_row_state(const std::string& job_id, const std::string& state,
                                   std::chrono::milliseconds timeout) {
    return wd().wait_until([&] { return wd().attribute(wd().find(row(job_id)), "data-state") == state; },
                           timeout);
}

void DashboardTest::open_job(const std::string& job_id) {
    wd().click(row(job_id) + " td.job-name", 15s);
    wd().wait_for("section#job-detail[data-job-id=\"" + job_id + "\"]");
}

}  // namespace distconv::browser
