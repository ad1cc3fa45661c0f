#pragma once
// The fixture of the dashboard's browser tests: the real distconv-dispatch (the Cluster's user key
// plus an admin key), the engines a test starts, and one headless Chromium. The browser's profile,
// chromedriver's log and a screenshot of every page visited go into the cluster's temp dir, which is
// kept when the test fails (with a last screenshot and the page's source).

#include "tests/integration/browser/webdriver.hpp"
#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

namespace distconv::browser {

class DashboardTest : public ::testing::Test {
  protected:
    void SetUp() override;
    void TearDown() override;

    // How the dispatch server is started, and the CA that signed its certificate when it serves TLS
    // (empty: plain HTTP). A fixture for other setups overrides them.
    virtual e2e::DispatchTimings dispatch_options() { return {}; }
    virtual std::string tls_ca_file() { return ""; }
    // The server's base URL as the browser opens it (https:// under TLS).
    const std::string& url() const { return m_url; }

    e2e::Cluster& cluster() { return *m_cluster; }
    WebDriver& wd() { return *m_wd; }
    const std::filesystem::path& dir() const { return m_cluster->dir().path(); }
    const std::string& admin_key() const { return m_admin_key; }
    const std::string& user_key() const { return m_cluster->user_key(); }

    // Starts an engine named `name` (its work dir is cluster().work_dir(name)) and waits until it
    // has registered; returns its engine id.
    std::string start_engine(const std::string& name, const e2e::EngineOptions& options = {});
    void stop_engine(const std::string& name) { m_engines.erase(name); }  // SIGKILL, as a crash

    // Opens / , signs in with `key` through form#signin and waits for the overview.
    void sign_in(const std::string& key);
    // Sets location.hash and waits until the section with id `section` is displayed; screenshots it.
    void go(const std::string& hash, const std::string& section);
    // Writes dir()/NN-<name>.png.
    void shot(const std::string& name);

    // The browser's distconv_session cookie value (empty when there is none).
    std::string session_cookie();
    // A request to /api/v1`path` sending `headers` (a Cookie or an Authorization), no retries.
    http::Response api(const std::string& method, const std::string& path, const http::HeaderList& headers,
                       const std::string& body = "", const std::string& content_type = "application/json");
    // The same with the browser's session cookie and, when `csrf`, its X-CSRF-Token.
    http::Response as_session(const std::string& method, const std::string& path, bool csrf,
                              const std::string& body = "");
    static http::HeaderList bearer(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }

    // The Submit page's item for a chosen file, and a wait until its upload is done: the id of the
    // job it became (empty, with a failure, when it never says "uploaded").
    static std::string upload_item(const std::string& file_name) {
        return "ul#uploads li[data-file-name=\"" + file_name + "\"]";
    }
    std::string wait_uploaded(const std::string& file_name,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30));

    // The row of a job in table#jobs-table, and a wait until its data-state is `state`.
    static std::string row(const std::string& job_id) { return "tr[data-job-id=\"" + job_id + "\"]"; }
    bool wait_row_state(const std::string& job_id, const std::string& state,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Clicks the job's row in the list shown and waits for its detail panel.
    void open_job(const std::string& job_id);

  private:
    std::unique_ptr<e2e::Cluster> m_cluster;
    std::map<std::string, std::unique_ptr<e2e::Daemon>> m_engines;
    std::unique_ptr<WebDriver> m_wd;
    std::unique_ptr<http::Client> m_api;
    std::string m_admin_key;
    std::string m_url;
    int m_shots = 0;
};

}  // namespace distconv::browser
