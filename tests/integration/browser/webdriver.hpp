#pragma once
// A small W3C WebDriver client for the browser tests: it starts Debian's chromedriver on a free
// 127.0.0.1 port, opens one headless Chromium session, and speaks the protocol's JSON over the
// project's libcurl client. The session is deleted and chromedriver killed on destruction, so a
// failing test leaves no browser behind.
//
// Every failed command throws WebDriverError naming the command and chromedriver's answer; gtest
// reports it as the test's failure and the destructor still runs.

#include "common/http/client.hpp"
#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace distconv::browser {

inline constexpr const char* k_chromium = "/usr/bin/chromium";
inline constexpr const char* k_chromedriver = "/usr/bin/chromedriver";

// Why the browser tests cannot run here (for GTEST_SKIP), or nullopt when they can.
std::optional<std::string> browser_missing();

class WebDriverError : public std::runtime_error {
  public:
    // `error` is the W3C error code ("no such element", "stale element reference", ...), or
    // "transport" when chromedriver gave no HTTP answer.
    WebDriverError(std::string error, const std::string& what)
        : std::runtime_error(what), m_error(std::move(error)) {}
    const std::string& error() const { return m_error; }

  private:
    std::string m_error;
};

// A web element reference as chromedriver hands it out.
struct Element {
    std::string id;
};

class WebDriver {
  public:
    // Chromium's profile and chromedriver's log go under `work_dir` (the test's temp dir).
    // `accept_insecure_certs`: a server certificate from a test CA the browser does not know is accepted.
    explicit WebDriver(const std::filesystem::path& work_dir, int width = 1280, int height = 900,
                       bool accept_insecure_certs = false);
    ~WebDriver();
    WebDriver(const WebDriver&) = delete;
    WebDriver& operator=(const WebDriver&) = delete;

    void navigate(const std::string& url);
    std::string current_url();
    std::string title();
    std::string page_source();
    void set_window_size(int width, int height);
    // A Chrome DevTools Protocol command through chromedriver (e.g. Emulation.setEmulatedMedia).
    nlohmann::json execute_cdp(const std::string& cmd,
                               const nlohmann::json& params = nlohmann::json::object());

    // Throws "no such element" when nothing matches.
    Element find(const std::string& css);
    std::vector<Element> find_all(const std::string& css);
    // Polls until an element matching `css` exists and is displayed; throws with the selector on timeout.
    Element wait_for(const std::string& css, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // Polls `predicate` until it is true; a WebDriverError inside it (a row re-rendered under us)
    // counts as false. Returns the last value.
    bool wait_until(const std::function<bool()>& predicate,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

    void click(const Element& element);
    void send_keys(const Element& element, const std::string& text);  // also a file path to input[type=file]
    void clear(const Element& element);
    std::string text(const Element& element);
    // The element's attribute (or property, as WebDriver defines it); nullopt when absent.
    std::optional<std::string> attribute(const Element& element, const std::string& name);
    bool displayed(const Element& element);

    // Find-and-act helpers that retry while the page re-renders the element (stale references).
    void click(const std::string& css, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    std::string text(const std::string& css);

    // Runs `script` as a function body with `args` (arguments[0], ...) and returns its value.
    nlohmann::json execute_script(const std::string& script,
                                  const nlohmann::json& args = nlohmann::json::array());
    // Like execute_script, but the script ends by calling arguments[arguments.length - 1](value).
    nlohmann::json execute_async_script(const std::string& script,
                                        const nlohmann::json& args = nlohmann::json::array());
    // Cookies visible to the current page, each {"name","value","httpOnly","sameSite","secure",...}.
    nlohmann::json get_cookies();
    std::optional<nlohmann::json> cookie(const std::string& name);
    void screenshot(const std::filesystem::path& png);
    // The browser console's entries since the last call, each {"level","message","timestamp"}
    // (CSP violations and uncaught errors land here).
    nlohmann::json browser_log();
    // The text of an open alert/confirm/prompt dialog, nullopt when none is open.
    std::optional<std::string> alert_text();

    const std::filesystem::path& log_path() const { return m_log; }
    pid_t driver_pid() const { return m_driver ? m_driver->pid() : -1; }

  private:
    nlohmann::json command(const std::string& method, const std::string& path,
                           const std::optional<nlohmann::json>& body = std::nullopt);
    nlohmann::json session_command(const std::string& method, const std::string& path,
                                   const std::optional<nlohmann::json>& body = std::nullopt);
    std::string element_path(const Element& element, const std::string& what) const;
    void close();

    std::filesystem::path m_log;
    std::unique_ptr<e2e::Daemon> m_driver;
    std::unique_ptr<http::Client> m_client;
    std::string m_session;
};

// Base64 both ways: chromedriver sends screenshots as base64, and a test hands a page file bytes so.
std::string base64_decode(const std::string& text);
std::string base64_encode(const std::string& bytes);

}  // namespace distconv::browser
