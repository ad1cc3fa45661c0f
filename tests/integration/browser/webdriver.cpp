#include "tests/integration/browser/webdriver.hpp"

#include <fstream>
#include <regex>
#include <thread>

#include <signal.h>
#include <unistd.h>

namespace distconv::browser {

using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

// The key W3C WebDriver names element references with.
constexpr const char* k_element_key = "element-6066-11e4-a52e-4f735466cecf";

// A remote command can wait for a page load; the server's answers are fast otherwise.
constexpr auto k_command_timeout = 60s;

const std::string k_base64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string shorten(const std::string& s, size_t max = 600) {
    return s.size() <= max ? s : s.substr(0, max) + "...";
}

}  // namespace

std::optional<std::string> browser_missing() {
    for (const char* program : {k_chromium, k_chromedriver})
        if (access(program, X_OK) != 0)
            return std::string(program) +
                   " is missing: install the test packages (scripts/install-deps.sh --test: chromium, "
                   "chromium-driver)";
    return std::nullopt;
}

std::string base64_encode(const std::string& bytes) {
    std::string out;
    uint32_t bits = 0;
    int count = 0;
    for (unsigned char c : bytes) {
        bits = (bits << 8) | c;
        count += 8;
        while (count >= 6) {
            count -= 6;
            out.push_back(k_base64[(bits >> count) & 0x3f]);
        }
    }
    if (count > 0) out.push_back(k_base64[(bits << (6 - count)) & 0x3f]);
    while (out.size() % 4) out.push_back('=');
    return out;
}

std::string base64_decode(const std::string& text) {
    std::string out;
    uint32_t bits = 0;
    int count = 0;
    for (char c : text) {
        if (c == '=') break;
        auto at = k_base64.find(c);
        if (at == std::string::npos) continue;  // line breaks and the like
        bits = (bits << 6) | static_cast<uint32_t>(at);
        count += 6;
        if (count >= 8) {
            count -= 8;
            out.push_back(static_cast<char>((bits >> count) & 0xff));
        }
    }
    return out;
}

WebDriver::WebDriver(const std::filesystem::path& work_dir, int width, int height, bool accept_insecure_certs)
    : m_log(work_dir / "chromedriver.log") {
    // Port 0: chromedriver picks a free port and names it in its log (no race for a guessed port).
    m_driver = std::make_unique<e2e::Daemon>(std::vector<std::string>{k_chromedriver, "--port=0"}, m_log);
    static const std::regex k_started(R"(started successfully on port (\d+))");
    std::smatch m;
    std::string log;
    if (!test::wait_until(
            [&] {
                log = test::read_file(m_log);
                return std::regex_search(log, m, k_started);
            },
            15s))
        throw WebDriverError("transport", "chromedriver did not start: " + shorten(log));

    http::ClientOptions o;
    o.base_url = "http://127.0.0.1:" + m[1].str();
    o.request_timeout = k_command_timeout;
    o.retry.max_attempts = 1;
    m_client = std::make_unique<http::Client>(o);

    if (!test::wait_until(
            [&] {
                auto r = m_client->get("/status");
                if (!r || r->status != 200) return false;
                auto j = json::parse(r->body, nullptr, false);
                return j.is_object() && j["value"].value("ready", false);
            },
            15s))
        throw WebDriverError("transport", "chromedriver at " + o.base_url + " never became ready");

    const auto profile = work_dir / "chromium-profile";
    std::filesystem::create_directories(profile);
    // --remote-debugging-pipe: chromedriver talks DevTools to Chromium over inherited pipes instead
    // of a TCP port. With a port it connects its WebSocket to ws://localhost:<port>/devtools/...,
    // which needs "localhost" to resolve; a plain debootstrap system has no /etc/hosts, so it does
    // not, and POST /session fails with the misleading "unable to connect to renderer". The pipe
    // needs no name lookup and opens no debugging port other local users could reach.
    json caps = {{"capabilities",
                  {{"alwaysMatch",
                    {{"browserName", "chrome"},
                     {"pageLoadStrategy", "normal"},
                     {"acceptInsecureCerts", accept_insecure_certs},
                     {"goog:loggingPrefs", {{"browser", "ALL"}}},
                     {"unhandledPromptBehavior", "ignore"},
                     {"goog:chromeOptions",
                      {{"binary", k_chromium},
                       {"args",
                        {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
                         "--window-size=" + std::to_string(width) + "," + std::to_string(height),
                         "--user-data-dir=" + profile.string()}}}}}}}}};
    auto value = command("POST", "/session", caps);
    m_session = value.value("sessionId", "");
    if (m_session.empty())
        throw WebDriverError("session", "POST /session answered no sessionId: " + value.dump());
}

WebDriver::~WebDriver() {
    close();
}

void WebDriver::close() {
    if (!m_driver) return;
    // Chromium is chromedriver's child: remember it in case the session cannot be deleted.
    const auto browsers = e2e::children_of(m_driver->pid());
    if (!m_session.empty() && m_client) {
        try {
            command("DELETE", "/session/" + m_session);
        } catch (const WebDriverError&) {
            // Killed below.
        }
        m_session.clear();
    }
    for (pid_t pid : browsers) kill(pid, SIGKILL);
    m_driver.reset();  // SIGKILL and reap chromedriver
}

json WebDriver::command(const std::string& method, const std::string& path, const std::optional<json>& body) {
    http::Request req;
    req.method = method;
    req.path_or_url = path;
    req.retry = false;
    if (body) {
        req.body = body->dump();
        req.content_type = "application/json";
    } else if (method == "POST") {
        req.body = "{}";
        req.content_type = "application/json";
    }
    const std::string name = method + " " + path;
    auto r = m_client->request(req);
    if (!r) throw WebDriverError("transport", "WebDriver " + name + ": no answer: " + r.error().to_string());
    auto j = json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j.contains("value"))
        throw WebDriverError("transport", "WebDriver " + name + ": HTTP " + std::to_string(r->status) +
                                              " with no JSON value: " + shorten(r->body));
    const auto& value = j["value"];
    if (r->status != 200 || (value.is_object() && value.contains("error"))) {
        std::string error = value.is_object() ? value.value("error", "unknown error") : "unknown error";
        std::string message = value.is_object() ? value.value("message", "") : value.dump();
        throw WebDriverError(error, "WebDriver " + name + (body ? " " + shorten(body->dump(), 300) : "") +
                                        ": HTTP " + std::to_string(r->status) + " " + error + ": " +
                                        shorten(message));
    }
    return value;
}

json WebDriver::session_command(const std::string& method, const std::string& path,
                                const std::optional<json>& body) {
    return command(method, "/session/" + m_session + path, body);
}

std::string WebDriver::element_path(const Element& element, const std::string& what) const {
    return "/element/" + element.id + what;
}

void WebDriver::navigate(const std::string& url) {
    session_command("POST", "/url", json{{"url", url}});
}
std::string WebDriver::current_url() {
    return session_command("GET", "/url").get<std::string>();
}
std::string WebDriver::title() {
    return session_command("GET", "/title").get<std::string>();
}
std::string WebDriver::page_source() {
    return session_command("GET", "/source").get<std::string>();
}
void WebDriver::set_window_size(int width, int height) {
    session_command("POST", "/window/rect", json{{"width", width}, {"height", height}});
}

json WebDriver::execute_cdp(const std::string& cmd, const json& params) {
    return session_command("POST", "/goog/cdp/execute", json{{"cmd", cmd}, {"params", params}});
}

Element WebDriver::find(const std::string& css) {
    auto v = session_command("POST", "/element", json{{"using", "css selector"}, {"value", css}});
    return Element{v.at(k_element_key).get<std::string>()};
}

std::vector<Element> WebDriver::find_all(const std::string& css) {
    auto v = session_command("POST", "/elements", json{{"using", "css selector"}, {"value", css}});
    std::vector<Element> out;
    for (const auto& e : v) out.push_back(Element{e.at(k_element_key).get<std::string>()});
    return out;
}

Element WebDriver::wait_for(const std::string& css, std::chrono::milliseconds timeout) {
    std::optional<Element> found;
    wait_until(
        [&] {
            for (const auto& e : find_all(css))
                if (displayed(e)) {
                    found = e;
                    return true;
                }
            return false;
        },
        timeout);
    if (!found)
        throw WebDriverError("timeout", "no displayed element matches '" + css + "' after " +
                                            std::to_string(timeout.count()) + " ms (page " + current_url() +
                                            ")");
    return *found;
}

bool WebDriver::wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout) {
    return test::wait_until(
        [&] {
            try {
                return predicate();
            } catch (const WebDriverError& e) {
                if (e.error() == "transport" || e.error() == "invalid session id") throw;
                return false;  // re-rendered under us, not there yet: poll again
            }
        },
        timeout);
}

void WebDriver::click(const Element& element) {
    session_command("POST", element_path(element, "/click"));
}
void WebDriver::send_keys(const Element& element, const std::string& text) {
    session_command("POST", element_path(element, "/value"), json{{"text", text}});
}
void WebDriver::clear(const Element& element) {
    session_command("POST", element_path(element, "/clear"));
}
std::string WebDriver::text(const Element& element) {
    return session_command("GET", element_path(element, "/text")).get<std::string>();
}
std::optional<std::string> WebDriver::attribute(const Element& element, const std::string& name) {
    auto v = session_command("GET", element_path(element, "/attribute/" + name));
    if (v.is_null()) return std::nullopt;
    return v.is_string() ? v.get<std::string>() : v.dump();
}
bool WebDriver::displayed(const Element& element) {
    return session_command("GET", element_path(element, "/displayed")).get<bool>();
}

void WebDriver::click(const std::string& css, std::chrono::milliseconds timeout) {
    std::optional<WebDriverError> last;
    bool clicked = test::wait_until(
        [&] {
            try {
                click(wait_for(css, timeout));
                return true;
            } catch (const WebDriverError& e) {
                // A stale reference or a toast on top: the page moved between find and click.
                if (e.error() != "stale element reference" && e.error() != "element click intercepted" &&
                    e.error() != "element not interactable")
                    throw;
                last = e;
                return false;
            }
        },
        timeout);
    if (!clicked && last) throw *last;
}

std::string WebDriver::text(const std::string& css) {
    std::string out;
    if (!wait_until(
            [&] {
                out = text(find(css));
                return true;
            },
            5s))
        throw WebDriverError("no such element",
                             "text of '" + css + "': no element (page " + current_url() + ")");
    return out;
}

json WebDriver::execute_script(const std::string& script, const json& args) {
    return session_command("POST", "/execute/sync", json{{"script", script}, {"args", args}});
}
json WebDriver::execute_async_script(const std::string& script, const json& args) {
    return session_command("POST", "/execute/async", json{{"script", script}, {"args", args}});
}

json WebDriver::get_cookies() {
    return session_command("GET", "/cookie");
}

std::optional<json> WebDriver::cookie(const std::string& name) {
    for (const auto& c : get_cookies())
        if (c.value("name", "") == name) return c;
    return std::nullopt;
}

void WebDriver::screenshot(const std::filesystem::path& png) {
    auto data = base64_decode(session_command("GET", "/screenshot").get<std::string>());
    test::write_file(png, data);
}

json WebDriver::browser_log() {
    return session_command("POST", "/se/log", json{{"type", "browser"}});
}

std::optional<std::string> WebDriver::alert_text() {
    try {
        return session_command("GET", "/alert/text").get<std::string>();
    } catch (const WebDriverError& e) {
        if (e.error() == "no such alert") return std::nullopt;
        throw;
    }
}

}  // namespace distconv::browser
