#include "tests/integration/docs_examples/live_dispatch.hpp"

#include "common/hash.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace distconv::docs {

namespace stdfs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

Finished run_bounded(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                     const stdfs::path& cwd, const stdfs::path& out, const stdfs::path& err,
                     std::chrono::milliseconds deadline) {
    auto start = std::chrono::steady_clock::now();
    // Everything the child needs is prepared before fork: it only calls async-signal-safe functions.
    std::vector<char*> args, envp;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    std::string cwd_s = cwd.string(), out_s = out.string(), err_s = err.string();
    Finished f;
    pid_t pid = ::fork();
    if (pid < 0) return f;
    if (pid == 0) {
        ::setpgid(0, 0);
        int in_fd = ::open("/dev/null", O_RDONLY);
        int out_fd = ::open(out_s.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err_fd = ::open(err_s.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in_fd < 0 || out_fd < 0 || err_fd < 0 || ::chdir(cwd_s.c_str()) != 0) ::_exit(126);
        ::dup2(in_fd, 0);
        ::dup2(out_fd, 1);
        ::dup2(err_fd, 2);
        ::execve(args[0], args.data(), envp.data());
        ::_exit(127);
    }
    ::setpgid(pid, pid);  // also here, so the group exists before any kill below
    int status = 0;
    bool exited = test::wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, deadline);
    if (!exited) {
        ::kill(-pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        f.timed_out = true;
    } else {
        ::kill(-pid, SIGKILL);  // whatever it left behind in its group (a background job)
    }
    f.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    f.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    return f;
}

std::string find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        auto candidate = stdfs::path(dir.empty() ? "." : dir) / name;
        if (::access(candidate.c_str(), X_OK) == 0) return stdfs::absolute(candidate).string();
    }
    return "";
}

namespace {

[[noreturn]] void fixture_failed(const std::string& what) {
    ADD_FAILURE() << "fixture: " << what;
    throw std::runtime_error(what);
}

// The JSON of a `want`ed answer (any 2xx when want is 0); anything else fails the fixture.
json expect(const Result<http::Response>& r, const std::string& what, long want = 0) {
    if (!r) fixture_failed(what + ": " + r.error().to_string());
    if (want ? r->status != want : !r->success())
        fixture_failed(what + ": HTTP " + std::to_string(r->status) + " " + r->body);
    if (r->body.empty()) return json();
    auto j = json::parse(r->body, nullptr, false);
    if (j.is_discarded()) fixture_failed(what + ": not JSON: " + r->body);
    return j;
}

std::string make_key(const stdfs::path& data, const std::string& role) {
    std::string out;
    int rc = test::run_command({e2e::dispatch_binary(), "keys", "create", "--data-dir", data.string(),
                                "--role", role, "--name", "docs-" + role},
                               &out);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    if (rc != 0 || out.empty())
        fixture_failed("keys create --role " + role + " exited with " + std::to_string(rc));
    return out;
}

}  // namespace

LiveDispatch::LiveDispatch(const stdfs::path& dir, const std::string& name, const stdfs::path& certs)
    : m_dir(dir / name), m_certs(certs) {
    auto data = m_dir / "data";
    stdfs::create_directories(data);
    m_user_key = make_key(data, "user");
    m_admin_key = make_key(data, "admin");
    m_engine_key = make_key(data, "engine");
    std::vector<std::string> argv{e2e::dispatch_binary(), "serve",       "--listen",    "127.0.0.1:0",
                                  "--data-dir",           data.string(), "--log-level", "info"};
    if (tls())
        argv.insert(argv.end(), {"--tls-cert", (certs / "server.crt").string(), "--tls-key",
                                 (certs / "server.key").string()});
    m_daemon = std::make_unique<e2e::Daemon>(argv, m_dir / "dispatch.log");
    static const std::regex k_listening(R"(listening on 127\.0\.0\.1:(\d+))");
    std::smatch m;
    std::string text;
    bool up = test::wait_until(
        [&] {
            text = m_daemon->log();
            return std::regex_search(text, m, k_listening);
        },
        20s);
    if (!up) fixture_failed(name + ": distconv-dispatch did not start: " + text);
    m_port = std::stoi(m[1].str());
    m_user = std::make_unique<http::Client>(options(m_user_key));
    m_admin = std::make_unique<http::Client>(options(m_admin_key));
    m_engine = std::make_unique<http::Client>(options(m_engine_key));
}

LiveDispatch::~LiveDispatch() {
    m_user.reset();
    m_admin.reset();
    m_engine.reset();
    if (m_daemon) m_daemon->signal_and_wait(SIGTERM);
}

http::ClientOptions LiveDispatch::options(const std::string& key) const {
    http::ClientOptions o;
    o.base_url = std::string(tls() ? "https" : "http") + "://127.0.0.1:" + std::to_string(m_port) + "/api/v1";
    o.api_key = key;
    if (tls()) o.ca_file = (m_certs / "ca.crt").string();
    o.request_timeout = 30s;
    o.retry.max_attempts = 1;
    return o;
}

json LiveDispatch::job(const std::string& id) {
    return expect(m_admin->get("/jobs/" + id), "GET /jobs/" + id);
}

std::string LiveDispatch::state(const std::string& id) {
    return job(id).value("state", "");
}

std::string LiveDispatch::submit(const stdfs::path& media) {
    auto j = expect(m_user->request(e2e::multipart_submit(media, json{{"preset", "h264-web"}})),
                    "multipart submit", 202);
    if (j.value("state", "") != "queued") fixture_failed("a submitted job is " + j.dump());
    return j["job_id"].get<std::string>();
}

std::string LiveDispatch::declare(uint64_t size, const std::string& sha256, const std::string& filename) {
    json body{{"preset", "h264-web"},
              {"source", {{"size", size}, {"sha256", sha256}, {"filename", filename}}}};
    auto j = expect(m_user->post_json("/jobs", body), "declared submit", 202);
    if (j.value("state", "") != "awaiting_upload") fixture_failed("a declared job is " + j.dump());
    return j["job_id"].get<std::string>();
}

void LiveDispatch::upload_source(const std::string& id, const std::string& bytes, uint64_t offset,
                                 uint64_t total) {
    http::Request r;
    r.method = "PUT";
    r.path_or_url = "/jobs/" + id + "/source";
    r.body = bytes;
    r.content_type = "application/octet-stream";
    r.headers = {{"Content-Range", "bytes " + std::to_string(offset) + "-" +
                                       std::to_string(offset + bytes.size() - 1) + "/" +
                                       std::to_string(total)}};
    expect(m_user->request(r), "PUT /jobs/" + id + "/source");
}

void LiveDispatch::cancel(const std::string& id) {
    expect(m_user->del("/jobs/" + id), "DELETE /jobs/" + id, 202);
}

std::string LiveDispatch::engine_id() {
    if (!m_engine_id.empty()) return m_engine_id;
    json registration{{"hostname", "docs-fake-engine"},
                      {"version", "0.1.0"},
                      {"slots", 1},
                      {"capabilities",
                       {{"ffmpeg_version", "5.1"},
                        {"encoders", {"libx264", "aac"}},
                        {"decoders", {"h264", "aac"}},
                        {"hwaccels", json::array()}}},
                      {"free_disk_bytes", int64_t{1} << 40}};
    auto j = expect(m_engine->post_json("/engines", registration), "POST /engines", 201);
    m_engine_id = j["engine_id"].get<std::string>();
    return m_engine_id;
}

json LiveDispatch::engine_info(const std::string& id) {
    auto list = expect(m_admin->get("/engines"), "GET /engines");
    for (const auto& e : list["items"])
        if (e.value("engine_id", "") == id) return e;
    fixture_failed("GET /engines lacks engine " + id);
}

json LiveDispatch::heartbeat() {
    json beat{
        {"state", "idle"}, {"free_disk_bytes", int64_t{1} << 40}, {"running_assignments", json::array()}};
    return expect(m_engine->post_json("/engines/" + engine_id() + "/heartbeat", beat), "heartbeat", 200);
}

void LiveDispatch::set_drain(const std::string& engine, bool drain) {
    http::Request r;
    r.method = "POST";
    r.path_or_url = "/engines/" + engine + (drain ? "/drain" : "/undrain");
    r.retry = false;
    expect(m_admin->request(r), r.method + " " + r.path_or_url, 200);
}

LiveDispatch::Assignment LiveDispatch::claim(const std::string& job) {
    auto queued = expect(m_admin->get("/jobs?all=true&state=queued&limit=200"), "GET /jobs?state=queued");
    for (const auto& item : queued["items"])
        if (item.value("job_id", "") != job) cancel(item["job_id"].get<std::string>());
    std::string engine = engine_id();
    Assignment a;
    bool got = test::wait_until(
        [&] {
            heartbeat();  // a silent engine goes offline and is handed nothing
            json body{{"free_slots", 1}, {"wait_seconds", 1}, {"free_disk_bytes", int64_t{1} << 40}};
            http::Request r;
            r.method = "POST";
            r.path_or_url = "/engines/" + engine + "/claim";
            r.body = body.dump();
            r.content_type = "application/json";
            r.retry = false;
            auto answer = m_engine->request(r);
            if (answer && answer->status == 204) return false;
            auto j = expect(answer, "claim", 200);
            if (j.value("job_id", "") != job)
                fixture_failed("the fake engine was handed " + j.dump() + ", not " + job);
            a.id = j["assignment_id"].get<std::string>();
            a.fencing_token = j["fencing_token"].get<int64_t>();
            return true;
        },
        15s);
    if (!got) fixture_failed("no engine claim handed out job " + job);
    return a;
}

std::string LiveDispatch::completed_job(const stdfs::path& media, const std::string& output) {
    std::string id = submit(media);
    auto a = claim(id);
    http::Request put;
    put.method = "PUT";
    put.path_or_url = "/assignments/" + a.id + "/output";
    put.body = output;
    put.content_type = "application/octet-stream";
    put.headers = {{"X-Fencing-Token", std::to_string(a.fencing_token)}};
    expect(m_engine->request(put), "PUT output");
    json done{{"fencing_token", a.fencing_token},
              {"output_size", output.size()},
              {"output_sha256", sha256_hex(output)}};
    expect(m_engine->post_json("/assignments/" + a.id + "/complete", done), "complete");
    if (state(id) != "completed") fixture_failed("job " + id + " did not complete");
    return id;
}

std::string LiveDispatch::failed_job(const stdfs::path& media, const std::string& stderr_tail) {
    std::string id = submit(media);
    auto a = claim(id);
    json fail{{"fencing_token", a.fencing_token},
              {"exit_code", 1},
              {"stderr_tail", stderr_tail},
              {"error_class", "permanent"},
              {"message", "ffmpeg exited with 1"}};
    expect(m_engine->post_json("/assignments/" + a.id + "/fail", fail), "fail");
    if (state(id) != "failed") fixture_failed("job " + id + " did not fail");
    return id;
}

std::pair<std::string, std::string> LiveDispatch::create_user_key(const std::string& name) {
    auto j = expect(m_admin->post_json("/keys", json{{"name", name}, {"role", "user"}}), "POST /keys", 201);
    return {j["key_id"].get<std::string>(), j["key"].get<std::string>()};
}

bool LiveDispatch::key_works(const std::string& key) {
    http::Client c(options(key));
    auto r = c.get("/jobs?limit=1");
    return r && r->status == 200;
}

}  // namespace distconv::docs
