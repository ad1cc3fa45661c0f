#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace distconv::e2e {

using namespace std::chrono_literals;

std::string dispatch_binary() {
    return std::string(DISTCONV_BINARY_DIR) + "/dispatch_server/distconv-dispatch";
}
std::string engine_binary() {
    return std::string(DISTCONV_BINARY_DIR) + "/transcoding_engine/distconv-engine";
}

Daemon::Daemon(const std::vector<std::string>& argv, const std::filesystem::path& log) : m_log(log) {
    m_pid = fork();
    if (m_pid == 0) {
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
    }
}

Daemon::~Daemon() {
    if (m_pid > 0) {
        kill(m_pid, SIGCONT);  // a stopped process still dies by SIGKILL, but be explicit
        kill(m_pid, SIGKILL);
        wait_exit();
    }
}

void Daemon::signal(int sig) const {
    if (m_pid > 0) kill(m_pid, sig);
}

int Daemon::signal_and_wait(int sig) {
    signal(sig);
    return wait_exit();
}

int Daemon::wait_exit() {
    if (m_pid <= 0) return -1;
    int status = 0;
    waitpid(m_pid, &status, 0);
    m_pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

namespace {

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

std::string create_key(const std::string& data, const std::string& role) {
    std::string out;
    test::run_command(
        {dispatch_binary(), "keys", "create", "--data-dir", data, "--role", role, "--name", role}, &out);
    return trim(out);
}

nlohmann::json parse(const Result<http::Response>& r) {
    if (!r) return nlohmann::json();
    return nlohmann::json::parse(r->body, nullptr, false);
}

}  // namespace

Cluster::Cluster(DispatchTimings t) {
    auto data = (m_dir / "data").string();
    m_user_key = create_key(data, "user");
    m_engine_key = create_key(data, "engine");
    EXPECT_FALSE(m_user_key.empty());
    EXPECT_FALSE(m_engine_key.empty());
    std::vector<std::string> argv{dispatch_binary(),
                                  "serve",
                                  "--listen",
                                  "127.0.0.1:0",
                                  "--data-dir",
                                  data,
                                  "--lease-timeout",
                                  t.lease_timeout,
                                  "--heartbeat-interval",
                                  t.heartbeat_interval,
                                  "--engine-offline-after",
                                  t.engine_offline_after,
                                  "--retry-backoff",
                                  t.retry_backoff,
                                  "--retry-backoff-max",
                                  t.retry_backoff_max};
    argv.insert(argv.end(), t.extra_args.begin(), t.extra_args.end());
    m_dispatch_argv = argv;
    m_dispatch = std::make_unique<Daemon>(argv, m_dir / "dispatch.log");
    static const std::regex k_listening(R"(listening on 127\.0\.0\.1:(\d+))");
    std::smatch m;
    std::string log;
    EXPECT_TRUE(test::wait_until(
        [&] {
            log = m_dispatch->log();
            return std::regex_search(log, m, k_listening);
        },
        10s))
        << log;
    m_url = "http://127.0.0.1:" + (m.size() > 1 ? m[1].str() : std::string("0"));
    http::ClientOptions o;
    o.base_url = m_url + "/api/v1";
    o.api_key = m_user_key;
    o.request_timeout = 10s;
    o.retry.max_attempts = 1;
    m_client = std::make_unique<http::Client>(o);
    o.api_key = m_engine_key;
    m_engine_client = std::make_unique<http::Client>(o);
}

void Cluster::restart_dispatch(int sig) {
    m_dispatch->signal_and_wait(sig);
    auto argv = m_dispatch_argv;
    const std::string port = m_url.substr(m_url.rfind(':') + 1);
    for (auto& a : argv)
        if (a == "127.0.0.1:0") a = "127.0.0.1:" + port;
    const auto log = m_dir / ("dispatch-" + std::to_string(++m_restarts) + ".log");
    m_dispatch = std::make_unique<Daemon>(argv, log);
    EXPECT_TRUE(
        test::wait_until([&] { return m_dispatch->log().find("listening on") != std::string::npos; }, 10s))
        << m_dispatch->log();
}

Cluster::~Cluster() {
    // Engines belong to the test and are gone by now; stop the server before the TempDir goes.
    m_dispatch.reset();
}

std::unique_ptr<Daemon> Cluster::start_engine(const std::string& name, const EngineOptions& e) {
    std::vector<std::string> argv = {engine_binary(),
                                     "--server",
                                     m_url,
                                     "--key",
                                     m_engine_key,
                                     "--work-dir",
                                     work_dir(name).string(),
                                     "--hostname",
                                     name,
                                     "--slots",
                                     std::to_string(e.slots),
                                     "--benchmark",
                                     "off",
                                     "--heartbeat-interval",
                                     e.heartbeat_interval,
                                     "--claim-wait",
                                     e.claim_wait,
                                     "--drain-timeout",
                                     "5s"};
    if (e.reserve_disk) argv.insert(argv.end(), {"--reserve-disk", *e.reserve_disk});
    for (const auto& tag : e.tags) argv.insert(argv.end(), {"--tag", tag});
    argv.insert(argv.end(), e.extra_args.begin(), e.extra_args.end());
    return std::make_unique<Daemon>(argv, m_dir / (name + ".log"));
}

http::Request multipart_submit(const std::filesystem::path& source, const nlohmann::json& job) {
    const std::string boundary = "----distconv-e2e-boundary-7f3a9c";
    std::string body;
    body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"job\"\r\n";
    body += "Content-Type: application/json\r\n\r\n" + job.dump() + "\r\n";
    body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" +
            source.filename().string() + "\"\r\nContent-Type: application/octet-stream\r\n\r\n";
    body += test::read_file(source) + "\r\n--" + boundary + "--\r\n";
    http::Request req;
    req.method = "POST";
    req.path_or_url = "/jobs";
    req.body = std::move(body);
    req.content_type = "multipart/form-data; boundary=" + boundary;
    return req;
}

std::string Cluster::submit(const std::filesystem::path& source, const nlohmann::json& job,
                            std::string* answer) {
    auto req = multipart_submit(source, job);
    auto r = m_client->request(req);
    if (answer) *answer = r ? std::to_string(r->status) + " " + r->body : r.error().to_string();
    auto j = parse(r);
    if (!r || !r->success() || !j.is_object() || !j.contains("job_id")) return "";
    return j["job_id"].get<std::string>();
}

nlohmann::json Cluster::job(const std::string& id) {
    return parse(m_client->get("/jobs/" + id));
}
nlohmann::json Cluster::status(const std::string& id) {
    return parse(m_client->get("/jobs/" + id + "/status"));
}

nlohmann::json Cluster::engines() {
    auto j = parse(m_client->get("/engines"));
    if (j.is_object() && j.contains("items")) return j["items"];
    return j;
}

namespace {
http::Response response_or_error(Result<http::Response> r) {
    if (!r) {
        http::Response failed;
        failed.body = r.error().to_string();
        return failed;
    }
    return *r;
}
}  // namespace

http::Response Cluster::cancel(const std::string& id) {
    return response_or_error(m_client->del("/jobs/" + id));
}

http::Response Cluster::engine_post(const std::string& path, const nlohmann::json& body) {
    return response_or_error(m_engine_client->post_json(path, body));
}

bool Cluster::download_result(const std::string& id, const std::filesystem::path& dest) {
    return static_cast<bool>(m_client->download_to_file("/jobs/" + id + "/result", dest));
}

bool Cluster::wait_job(const std::string& id, const std::function<bool(const nlohmann::json&)>& pred,
                       std::chrono::milliseconds timeout, nlohmann::json* last) {
    nlohmann::json j;
    bool ok = test::wait_until(
        [&] {
            j = job(id);
            return j.is_object() && pred(j);
        },
        timeout);
    if (last) *last = j;
    return ok;
}

bool Cluster::wait_state(const std::string& id, const std::string& state, std::chrono::milliseconds timeout,
                         nlohmann::json* last) {
    return wait_job(
        id, [&](const nlohmann::json& j) { return j.value("state", "") == state; }, timeout, last);
}

std::string Cluster::engine_id(const std::string& name) {
    std::string id;
    test::wait_until(
        [&] {
            for (const auto& e : engines())
                if (e.is_object() && e.value("hostname", "") == name) id = e.value("engine_id", "");
            return !id.empty();
        },
        10s);
    return id;
}

std::vector<pid_t> ffmpeg_pids_mentioning(const std::string& needle) {
    std::vector<pid_t> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        const auto name = entry.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        std::string cmdline = test::read_file(entry.path() / "cmdline");
        if (cmdline.empty()) continue;  // a zombie or a kernel thread
        std::string argv0 = cmdline.substr(0, cmdline.find('\0'));
        if (std::filesystem::path(argv0).filename() != "ffmpeg") continue;
        if (cmdline.find(needle) != std::string::npos) out.push_back(static_cast<pid_t>(std::stoi(name)));
    }
    return out;
}

std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        std::istringstream ids(test::read_file(t.path() / "children"));
        for (pid_t child = 0; ids >> child;) out.push_back(child);
    }
    return out;
}

std::optional<Probe> ffprobe(const std::filesystem::path& file) {
    std::string out;
    if (test::run_command({"ffprobe", "-v", "error", "-show_entries",
                           "stream=codec_name:format=duration,format_name", "-of", "json", file.string()},
                          &out) != 0)
        return std::nullopt;
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    Probe p;
    for (const auto& s : j.value("streams", nlohmann::json::array()))
        p.codecs.push_back(s.value("codec_name", ""));
    if (j.contains("format")) {
        p.format = j["format"].value("format_name", "");
        if (j["format"].contains("duration"))
            p.duration = std::stod(j["format"]["duration"].get<std::string>());
    }
    return p;
}

std::optional<double> video_duration(const std::filesystem::path& file) {
    // Last packet's pts + its duration, minus the first pts: independent of container duration fields.
    std::string out;
    if (test::run_command({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "packet=pts_time,duration_time", "-of", "csv=p=0", file.string()},
                          &out) != 0)
        return std::nullopt;
    std::istringstream lines(out);
    std::optional<double> first, end;
    for (std::string line; std::getline(lines, line);) {
        auto comma = line.find(',');
        if (comma == std::string::npos) continue;
        try {
            double pts = std::stod(line.substr(0, comma));
            double dur = std::stod(line.substr(comma + 1));
            if (!first || pts < *first) first = pts;
            if (!end || pts + dur > *end) end = pts + dur;
        } catch (...) {
            continue;  // N/A fields
        }
    }
    if (!first || !end) return std::nullopt;
    return *end - *first;
}

bool moov_before_mdat(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    uint64_t offset = 0;
    for (int i = 0; i < 64 && in; ++i) {
        unsigned char h[16];
        in.seekg(static_cast<std::streamoff>(offset));
        if (!in.read(reinterpret_cast<char*>(h), 8)) return false;
        uint64_t size = (uint64_t(h[0]) << 24) | (uint64_t(h[1]) << 16) | (uint64_t(h[2]) << 8) | h[3];
        std::string type(reinterpret_cast<char*>(h + 4), 4);
        if (size == 1) {
            if (!in.read(reinterpret_cast<char*>(h + 8), 8)) return false;
            size = 0;
            for (int b = 8; b < 16; ++b) size = (size << 8) | h[b];
        }
        if (type == "moov") return true;
        if (type == "mdat") return false;
        if (size < 8) return false;
        offset += size;
    }
    return false;
}

}  // namespace distconv::e2e
