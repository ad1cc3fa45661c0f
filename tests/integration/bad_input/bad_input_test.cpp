// The bad-input corpus (tests/data/bad_input, format in its README.md) against the REAL
// distconv-dispatch binary: every case is sent on a raw socket exactly as written (so malformed
// requests stay malformed), its status and error code are checked, and /healthz must still answer
// after it. Around the whole run: nothing outside the storage pools changed (a sentinel tree, the data
// directory minus the database), and the jobs stored before the run are intact.

#include "common/hash.hpp"
#include "tests/integration/dispatch/server_fixture.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>

namespace distconv::itest {
namespace {

const stdfs::path k_corpus = stdfs::path(DISTCONV_TEST_DATA_DIR) / "bad_input";
using Vars = std::map<std::string, std::string>;

// --- one raw HTTP exchange ------------------------------------------------------------------------

struct Reply {
    int status = 0;  // 0: no answer (the server closed the connection, or timed_out)
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
    bool timed_out = false;
    std::string raw;  // everything received
};

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string dechunk(const std::string& in) {
    std::string out;
    size_t at = 0;
    while (at < in.size()) {
        size_t eol = in.find("\r\n", at);
        if (eol == std::string::npos) break;
        size_t n = std::strtoull(in.substr(at, eol - at).c_str(), nullptr, 16);
        if (n == 0) break;
        out += in.substr(eol + 2, n);
        at = eol + 2 + n + 2;
    }
    return out;
}

Reply parse_reply(const std::string& raw, bool timed_out) {
    Reply r;
    r.timed_out = timed_out;
    r.raw = raw;
    auto head_end = raw.find("\r\n\r\n");
    if (raw.rfind("HTTP/1.1 ", 0) != 0 || raw.size() < 12 || head_end == std::string::npos) return r;
    r.status = std::atoi(raw.substr(9, 3).c_str());
    std::istringstream head(raw.substr(0, head_end));
    std::string line;
    std::getline(head, line);
    while (std::getline(head, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        r.headers[lower(line.substr(0, colon))] = value;
    }
    r.body = raw.substr(head_end + 4);
    if (lower(r.headers["transfer-encoding"]) == "chunked") r.body = dechunk(r.body);
    return r;
}

// True when `raw` holds one whole answer (headers and the body its framing announces).
bool answer_complete(const std::string& raw, bool head_request) {
    auto head_end = raw.find("\r\n\r\n");
    if (head_end == std::string::npos) return false;
    if (head_request) return true;
    auto r = parse_reply(raw.substr(0, head_end + 4), false);
    if (r.status == 204 || r.status == 304) return true;
    if (lower(r.headers["transfer-encoding"]) == "chunked")
        return raw.size() >= head_end + 9 && raw.compare(raw.size() - 5, 5, "0\r\n\r\n") == 0;
    if (!r.headers.count("content-length")) return false;
    return raw.size() - head_end - 4 >= std::strtoull(r.headers["content-length"].c_str(), nullptr, 10);
}

// Sends `request` (reading whatever the server answers meanwhile, so an early refusal is not lost to a
// reset) and reads until one whole answer arrived (or, with `read_to_close`, until the server closes)
// or `timeout` passes. With `half_close` the client shuts its sending side after the request, so a
// body shorter than its Content-Length ends at once.
Reply exchange(int port, const std::string& request, std::chrono::milliseconds timeout,
               bool half_close = false, bool read_to_close = false) {
    const bool head_request = request.rfind("HEAD ", 0) == 0;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return {};
    }
    std::string received;
    size_t sent = 0;
    bool sending = true, closed = false;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!closed) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                          std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd, static_cast<short>(POLLIN | (sending ? POLLOUT : 0)), 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[16384];
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) {
                closed = true;
                break;
            }
            received.append(buf, static_cast<size_t>(n));
            if (!read_to_close && answer_complete(received, head_request)) {
                closed = true;
                break;
            }
        }
        if (sending && (p.revents & POLLOUT)) {
            ssize_t n = ::send(fd, request.data() + sent, std::min<size_t>(request.size() - sent, 65536),
                               MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) sent += static_cast<size_t>(n);
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) sending = false;
            if (sent == request.size()) {
                sending = false;
                if (half_close) ::shutdown(fd, SHUT_WR);
            }
        }
    }
    ::close(fd);
    return parse_reply(received, !closed);
}

// --- template variables ---------------------------------------------------------------------------------

std::string read_corpus_file(const std::string& relative) {
    auto path = k_corpus / relative;
    EXPECT_TRUE(stdfs::is_regular_file(path)) << "missing corpus file " << path;
    return test::read_file(path);
}

// {name} from `vars`, {repeat:TEXT:N}, {size_of:FILE}, {sha256_of:FILE}; anything else is left as is.
std::string expand(const std::string& in, const Vars& vars) {
    std::string out;
    size_t at = 0;
    while (at < in.size()) {
        size_t open = in.find('{', at);
        if (open == std::string::npos) break;
        out.append(in, at, open - at);
        size_t close = in.find('}', open + 1);
        if (close == std::string::npos || close - open > 300) {
            out.push_back('{');
            at = open + 1;
            continue;
        }
        std::string token = in.substr(open + 1, close - open - 1);
        std::optional<std::string> value;
        if (auto it = vars.find(token); it != vars.end()) {
            value = it->second;
        } else if (token.rfind("repeat:", 0) == 0 && token.rfind(':') > 6) {
            size_t last = token.rfind(':');
            std::string text = token.substr(7, last - 7);
            size_t n = std::strtoull(token.substr(last + 1).c_str(), nullptr, 10);
            std::string r;
            r.reserve(text.size() * n);
            for (size_t i = 0; i < n; ++i) r += text;
            value = r;
        } else if (token.rfind("size_of:", 0) == 0) {
            value = std::to_string(read_corpus_file(token.substr(8)).size());
        } else if (token.rfind("sha256_of:", 0) == 0) {
            value = sha256_hex(read_corpus_file(token.substr(10)));
        }
        if (value) {
            out += *value;
            at = close + 1;
        } else {
            out.push_back('{');
            at = open + 1;
        }
    }
    if (at < in.size()) out.append(in, at, std::string::npos);
    return out;
}

// bodies/ files are templates; media/ files are sent byte for byte.
std::string content_of_file(const std::string& relative, const Vars& vars) {
    std::string bytes = read_corpus_file(relative);
    return relative.rfind("bodies/", 0) == 0 ? expand(bytes, vars) : bytes;
}

// --- building a request from a case ---------------------------------------------------------------

struct Built {
    std::string wire;
    std::string description;
    bool half_close = false;
    bool read_to_close = false;
};

std::string content_from(const json& j, const std::string& prefix, const Vars& vars, bool* given) {
    *given = true;
    if (j.contains(prefix)) return expand(j[prefix].get<std::string>(), vars);
    if (j.contains(prefix + "_json")) return expand(j[prefix + "_json"].dump(), vars);
    if (j.contains(prefix + "_file")) return content_of_file(j[prefix + "_file"].get<std::string>(), vars);
    *given = false;
    return "";
}

Built build_request(const json& c, const Vars& vars, const std::map<std::string, std::string>& keys) {
    if (c.contains("raw"))
        return {content_of_file(c["raw"].get<std::string>(), vars), "raw", c.value("half_close", false),
                c.value("read_to_close", false)};
    std::string method = c.value("method", "GET");
    std::string path = expand(c.at("path").get<std::string>(), vars);
    std::vector<std::pair<std::string, std::string>> headers;
    if (c.contains("headers")) {
        const auto& h = c["headers"];
        if (h.is_object()) {
            for (const auto& [k, v] : h.items()) headers.emplace_back(k, expand(v.get<std::string>(), vars));
        } else {
            for (const auto& pair : h)
                headers.emplace_back(pair[0].get<std::string>(), expand(pair[1].get<std::string>(), vars));
        }
    }
    auto has_header = [&](const std::string& name) {
        return std::any_of(headers.begin(), headers.end(),
                           [&](const auto& p) { return lower(p.first) == lower(name); });
    };
    std::string auth = c.value("auth", "user");
    if (auth != "none" && !has_header("Authorization")) {
        auto it = keys.find(auth);
        EXPECT_NE(it, keys.end()) << "unknown auth '" << auth << "'";
        if (it != keys.end()) headers.emplace_back("Authorization", "Bearer " + it->second);
    }
    bool given = false;
    std::string body = content_from(c, "body", vars, &given);
    std::string content_type = c.value("content_type", given ? "application/json" : "");
    if (c.contains("multipart")) {
        const auto& m = c["multipart"];
        std::string boundary = m.value("boundary", k_boundary);
        body.clear();
        for (const auto& p : m["parts"]) {
            body += "--" + boundary + "\r\n";
            body += "Content-Disposition: form-data; name=\"" + expand(p.value("name", ""), vars) + "\"";
            if (p.contains("filename"))
                body += "; filename=\"" + expand(p["filename"].get<std::string>(), vars) + "\"";
            body += "\r\n";
            if (p.contains("content_type"))
                body += "Content-Type: " + p["content_type"].get<std::string>() + "\r\n";
            bool part_given = false;
            std::string content = content_from(p, "content", vars, &part_given);
            body += "\r\n" + content + "\r\n";
        }
        if (m.value("terminated", true)) body += "--" + boundary + "--\r\n";
        if (!c.contains("content_type")) content_type = "multipart/form-data; boundary=" + boundary;
        given = true;
    }
    std::string wire = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& [k, v] : headers) wire += k + ": " + v + "\r\n";
    if (!content_type.empty() && !has_header("Content-Type"))
        wire += "Content-Type: " + content_type + "\r\n";
    std::string length = c.value("content_length", "auto");
    if (length == "auto") {
        if ((given || method == "POST" || method == "PUT") && !has_header("Content-Length") &&
            !has_header("Transfer-Encoding"))
            wire += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    } else if (length != "none") {
        wire += "Content-Length: " + length + "\r\n";
    }
    if (!has_header("Connection")) wire += "Connection: close\r\n";
    wire += "\r\n" + body;
    return {wire, method + " " + path.substr(0, 120), c.value("half_close", false),
            c.value("read_to_close", false)};
}

// --- checks ---------------------------------------------------------------------------------------

json parse_body(const Reply& r) {
    auto j = json::parse(r.body, nullptr, false);
    return j.is_discarded() ? json() : j;
}

std::string pointer_get(const json& j, const std::string& pointer, json* out) {
    try {
        *out = j.at(json::json_pointer(pointer));
        return "";
    } catch (const std::exception& e) {
        return e.what();
    }
}

// Every regular file below `root` that is not in a pool, the database or the server log:
// relative path -> size, mtime and SHA-256 of the content.
std::map<std::string, std::string> outside_pools(const stdfs::path& root,
                                                 const std::vector<stdfs::path>& skip) {
    std::map<std::string, std::string> out;
    for (auto it = stdfs::recursive_directory_iterator(root); it != stdfs::recursive_directory_iterator();
         ++it) {
        const auto& p = it->path();
        bool skipped = std::any_of(skip.begin(), skip.end(), [&](const stdfs::path& s) {
            auto rel = p.lexically_relative(s);
            return !rel.empty() && *rel.begin() != "..";
        });
        if (skipped) {
            if (it->is_directory()) it.disable_recursion_pending();
            continue;
        }
        std::string name = p.filename().string();
        if (name.rfind("dispatch.db", 0) == 0 || name.rfind("server-", 0) == 0) continue;
        struct stat st {};
        ::lstat(p.c_str(), &st);
        std::string rel = p.lexically_relative(root).string();
        if (it->is_directory()) {
            out[rel + "/"] = "dir mode " + std::to_string(st.st_mode);
            continue;
        }
        out[rel] = std::to_string(st.st_size) + " bytes, mtime " + std::to_string(st.st_mtim.tv_sec) + "." +
                   std::to_string(st.st_mtim.tv_nsec) + ", mode " + std::to_string(st.st_mode) + ", sha256 " +
                   (S_ISREG(st.st_mode) ? sha256_hex(test::read_file(p)) : "-");
    }
    return out;
}

class BadInputRun {
  public:
    BadInputRun() {
        auto data = prepare();
        m_server = std::make_unique<ChildServer>(data, server_args());
        m_vars["port"] = std::to_string(m_server->port());
        m_vars["sentinel"] = (m_root / "sentinel").string();
        m_vars["data_dir"] = (m_root / "data").string();
        m_vars["pool_dir"] = (m_root / "pools" / "main").string();
    }

    int port() const { return m_server->port(); }
    pid_t pid() const { return m_server->pid(); }
    Vars& vars() { return m_vars; }
    const std::map<std::string, std::string>& keys() const { return m_keys; }
    const stdfs::path& root() const { return m_root; }

    Reply send(const json& c, const Vars& vars,
               std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        auto built = build_request(c, vars, m_keys);
        return exchange(port(), built.wire, timeout, built.half_close, built.read_to_close);
    }
    // A request written as a case (setup steps, fixtures); returns the parsed body.
    json must(const json& c, const Vars& vars, int status) {
        auto r = send(c, vars);
        EXPECT_EQ(r.status, status) << c.dump() << " -> " << r.body;
        return parse_body(r);
    }

    bool healthy() {
        auto r = exchange(port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          std::chrono::seconds(10));
        return r.status == 200 && r.body.find("\"ok\"") != std::string::npos;
    }
    bool alive() { return ::kill(pid(), 0) == 0 && ::waitpid(pid(), nullptr, WNOHANG) == 0; }

    void add_key(const std::string& role_name, const std::string& secret) { m_keys[role_name] = secret; }

  private:
    stdfs::path prepare() {
        m_root = m_dir.path();
        auto sentinel = m_root / "sentinel";
        stdfs::create_directories(sentinel / "nested" / "deeper");
        stdfs::create_directories(m_root / "pools" / "main");
        test::write_file(sentinel / "passwd", "root:x:0:0:root:/root:/bin/sh\n");
        test::write_file(sentinel / "victim.mp4", read_corpus_file("media/tiny.mp4"));
        test::write_file(sentinel / "nested" / "deeper" / "keep.txt", "keep me\n");
        auto data = m_root / "data";
        stdfs::create_directories(data);
        m_keys["user"] = cli_key(data, "alice", "user");
        m_keys["other_user"] = cli_key(data, "bob", "user");
        m_keys["admin"] = cli_key(data, "root", "admin");
        m_keys["engine"] = cli_key(data, "engine-1", "engine");
        m_keys["bogus"] = "dck_" + std::string(40, 'x');
        return data;
    }
    std::vector<std::string> server_args() const {
        return {"--pool",
                "main=" + (m_root / "pools" / "main").string() + ":1GiB",
                "--lease-timeout",
                "10m",
                "--heartbeat-interval",
                "5s",
                "--engine-offline-after",
                "10m",
                "--maintenance-interval",
                "10m"};
    }

    test::TempDir m_dir;
    stdfs::path m_root;
    std::map<std::string, std::string> m_keys;
    std::unique_ptr<ChildServer> m_server;
    Vars m_vars;
};

std::vector<json> load_cases(std::vector<std::string>* files) {
    std::vector<stdfs::path> paths;
    for (const auto& e : stdfs::directory_iterator(k_corpus / "cases"))
        if (e.path().extension() == ".json") paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
    std::vector<json> out;
    for (const auto& p : paths) {
        auto j = json::parse(test::read_file(p), nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << p << " is not valid JSON";
        if (!j.is_array()) continue;
        for (auto& c : j) {
            c["file"] = p.filename().string();
            out.push_back(c);
        }
        files->push_back(p.filename().string());
    }
    return out;
}

bool status_matches(const json& expected, int status) {
    if (expected.is_array())
        return std::any_of(expected.begin(), expected.end(),
                           [&](const json& s) { return s.get<int>() == status; });
    return expected.get<int>() == status;
}

// Polls the job (as its owner) until its state is `state`; returns the last resource seen.
json wait_for_state(BadInputRun& run, const std::string& job_id, const std::string& state,
                    const std::string& auth) {
    json last;
    test::wait_until(
        [&] {
            auto r =
                run.send(json{{"method", "GET"}, {"path", "/api/v1/jobs/" + job_id}, {"auth", auth}}, {});
            last = parse_body(r);
            return last.is_object() && last.value("state", "") == state;
        },
        std::chrono::seconds(15));
    return last;
}

TEST(BadInputCorpus, EveryCaseAnswersAsExpectedAndNothingOutsideThePoolsChanges) {
    auto started = std::chrono::steady_clock::now();
    std::vector<std::string> files;
    auto cases = load_cases(&files);
    ASSERT_GE(cases.size(), 60u) << "the corpus is smaller than expected";
    {
        std::set<std::string> names;
        for (const auto& c : cases)
            EXPECT_TRUE(names.insert(c.value("name", "")).second) << "duplicate case " << c["name"];
    }

    BadInputRun run;
    auto& vars = run.vars();
    for (const auto& [role, secret] : run.keys()) vars[role + "_key"] = secret;
    const std::string JSON_T = "application/json";

    // Fixtures: a revoked key; a job claimed by an engine (so assignment routes have a real target); a
    // queued job, a job awaiting its upload and another user's job, all checked intact at the end.
    auto created = run.must({{"method", "POST"},
                             {"path", "/api/v1/keys"},
                             {"auth", "admin"},
                             {"body_json", {{"name", "revoked-one"}, {"role", "user"}}}},
                            vars, 201);
    run.add_key("revoked", created.value("key", ""));
    run.must(
        {{"method", "DELETE"}, {"path", "/api/v1/keys/" + created.value("key_id", "")}, {"auth", "admin"}},
        vars, 200);

    auto submit_tiny = [&](const std::string& output, const std::string& auth) {
        json c = {
            {"method", "POST"},
            {"path", "/api/v1/jobs"},
            {"auth", auth},
            {"multipart",
             {{"parts", json::array({{{"name", "file"},
                                      {"filename", "tiny.mp4"},
                                      {"content_type", "video/mp4"},
                                      {"content_file", "media/tiny.mp4"}},
                                     {{"name", "job"}, {"content_json", {{"output_filename", output}}}}})}}}};
        return run.must(c, vars, 202).value("job_id", "");
    };
    vars["claimed_job"] = submit_tiny("claimed.mp4", "user");
    auto engine = run.must({{"method", "POST"},
                            {"path", "/api/v1/engines"},
                            {"auth", "engine"},
                            {"body_json",
                             {{"hostname", "corpus-engine"},
                              {"version", "1.0.0"},
                              {"slots", 1},
                              {"capabilities",
                               {{"ffmpeg_version", "5.1"},
                                {"encoders", {"libx264", "aac", "libx265", "libopus"}},
                                {"decoders", {"h264", "aac"}},
                                {"hwaccels", json::array()}}},
                              {"free_disk_bytes", 1000000000000LL}}}},
                           vars, 201);
    vars["engine_id"] = engine.value("engine_id", "");
    auto assignment = run.must({{"method", "POST"},
                                {"path", "/api/v1/engines/{engine_id}/claim"},
                                {"auth", "engine"},
                                {"body_json", {{"free_slots", 1}, {"wait_seconds", 0}}}},
                               vars, 200);
    vars["assignment_id"] = assignment.value("assignment_id", "");
    vars["fencing_token"] = std::to_string(assignment.value("fencing_token", 0LL));
    vars["queued_job"] = submit_tiny("kept.mp4", "user");
    vars["awaiting_job"] =
        run.must({{"method", "POST"},
                  {"path", "/api/v1/jobs"},
                  {"body_json", {{"source", {{"size", 1000}}}, {"output_filename", "waiting.mp4"}}}},
                 vars, 202)
            .value("job_id", "");
    vars["bob_job"] = run.must({{"method", "POST"},
                                {"path", "/api/v1/jobs"},
                                {"auth", "other_user"},
                                {"body_json", {{"source", {{"size", 10}}}}}},
                               vars, 202)
                          .value("job_id", "");
    for (const auto& name :
         {"claimed_job", "engine_id", "assignment_id", "queued_job", "awaiting_job", "bob_job"})
        ASSERT_FALSE(vars[name].empty()) << name;

    // The server really uses the pool the snapshot leaves out.
    auto pools = run.must({{"method", "GET"}, {"path", "/api/v1/pools"}, {"auth", "admin"}}, vars, 200);
    ASSERT_EQ(pools["items"].size(), 1u) << pools.dump();
    ASSERT_EQ(pools["items"][0].value("path", ""), vars["pool_dir"]) << pools.dump();
    ASSERT_TRUE(stdfs::exists(stdfs::path(vars["pool_dir"]) / "jobs" / vars["queued_job"] / "source"));

    const std::vector<std::string> kept_jobs = {vars["claimed_job"], vars["queued_job"], vars["awaiting_job"],
                                                vars["bob_job"]};
    auto jobs_snapshot = [&] {
        std::map<std::string, std::string> out;
        for (const auto& id : kept_jobs) {
            auto j =
                run.must({{"method", "GET"}, {"path", "/api/v1/jobs/" + id}, {"auth", "admin"}}, vars, 200);
            out[id] = j.dump(1);
            for (const char* kind : {"source", "output"}) {
                auto file = stdfs::path(vars["pool_dir"]) / "jobs" / id / kind;
                if (stdfs::exists(file)) out[id + "/" + kind] = sha256_hex(test::read_file(file));
            }
        }
        return out;
    };
    const std::vector<stdfs::path> skip = {run.root() / "pools"};
    auto outside_before = outside_pools(run.root(), skip);
    auto jobs_before = jobs_snapshot();
    ASSERT_TRUE(outside_before.count("sentinel/passwd"));

    int passed = 0;
    std::vector<std::pair<double, std::string>> slowest;
    for (const auto& c : cases) {
        const std::string name = c.value("name", "?");
        auto case_started = std::chrono::steady_clock::now();
        SCOPED_TRACE(c["file"].get<std::string>() + ": " + name);
        Vars case_vars = vars;
        bool setup_ok = true;
        for (const auto& step : c.value("setup", json::array())) {
            auto r = run.send(step, case_vars);
            auto want = step.value("expect_status", json::array({200, 201, 202}));
            if (!status_matches(want, r.status)) {
                ADD_FAILURE() << "setup step " << step.dump() << " answered " << r.status << " " << r.body;
                setup_ok = false;
                break;
            }
            auto body = parse_body(r);
            const json saves = step.value("save", json::object());
            for (const auto& [var, pointer] : saves.items()) {
                json v;
                auto err = pointer_get(body, pointer.get<std::string>(), &v);
                EXPECT_EQ(err, "") << "setup step has no " << pointer << ": " << r.body;
                case_vars[var] = v.is_string() ? v.get<std::string>() : v.dump();
            }
        }
        if (!setup_ok) continue;

        const json& expect = c.at("expect");
        auto r = run.send(c, case_vars, std::chrono::milliseconds(c.value("timeout_ms", 20000)));
        bool ok = true;
        auto fail = [&](const std::string& what) {
            ok = false;
            ADD_FAILURE() << what << "\n  answer: " << r.status << " " << r.body.substr(0, 400);
        };
        if (r.timed_out) fail("the server did not finish answering in time (a hang)");
        if (!status_matches(expect.at("status"), r.status))
            fail("status " + std::to_string(r.status) + ", expected " + expect.at("status").dump());
        if (std::getenv("DISTCONV_CORPUS_VERBOSE"))
            std::cout << "[ case    ] " << name << " -> " << r.status << " " << r.body.substr(0, 160) << "\n";
        auto body = parse_body(r);
        if (expect.contains("code")) {
            std::string code;
            if (body.is_object() && body.contains("error") && body["error"].is_object())
                code = body["error"].value("code", "");
            std::string want = expect["code"].is_null() ? "" : expect["code"].get<std::string>();
            if (code != want) fail("error code '" + code + "', expected '" + want + "'");
            if (!want.empty() && !(body["error"].contains("message") && body["error"]["message"].is_string()))
                fail("the error envelope has no message");
        }
        if (expect.contains("field")) {
            json field;
            pointer_get(body, "/error/details/field", &field);
            if (field != expect["field"])
                fail("details.field " + field.dump() + ", expected " + expect["field"].dump());
        }
        const json body_checks = expect.value("json", json::object());
        for (const auto& [pointer, want] : body_checks.items()) {
            json got;
            auto err = pointer_get(body, pointer, &got);
            if (!err.empty() || got != want)
                fail(pointer + " is " + got.dump() + ", expected " + want.dump());
        }
        for (const auto& text : expect.value("absent", json::array()))
            if (r.raw.find(expand(text.get<std::string>(), case_vars)) != std::string::npos)
                fail("the answer contains " + text.dump());
        if (expect.contains("job_state")) {
            std::string job = expand(expect.at("job").get<std::string>(), case_vars);
            auto last =
                wait_for_state(run, job, expect["job_state"].get<std::string>(), c.value("auth", "user"));
            if (last.value("state", "") != expect["job_state"].get<std::string>())
                fail("job " + job + " ended " + last.dump().substr(0, 300) + ", expected " +
                     expect["job_state"].dump());
            const json job_checks = expect.value("job_json", json::object());
            for (const auto& [pointer, want] : job_checks.items()) {
                json got;
                auto err = pointer_get(last, pointer, &got);
                if (!err.empty() || got != want)
                    fail("job " + pointer + " is " + got.dump() + ", expected " + want.dump());
            }
        }
        if (!run.alive()) {
            ADD_FAILURE() << "the server process died";
            break;
        }
        if (!run.healthy()) fail("/healthz stopped answering 200");
        if (ok) ++passed;
        slowest.emplace_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - case_started).count(), name);
    }
    std::sort(slowest.rbegin(), slowest.rend());
    for (size_t i = 0; i < std::min<size_t>(5, slowest.size()); ++i)
        std::cout << "[ slowest ] " << slowest[i].first << " s: " << slowest[i].second << "\n";

    EXPECT_TRUE(run.healthy());
    EXPECT_EQ(jobs_snapshot(), jobs_before) << "a job stored before the run changed";
    auto outside_after = outside_pools(run.root(), skip);
    for (const auto& [path, info] : outside_after) {
        auto it = outside_before.find(path);
        if (it == outside_before.end())
            ADD_FAILURE() << "new file outside the pools: " << path;
        else if (it->second != info)
            ADD_FAILURE() << "changed outside the pools: " << path << ": " << info;
    }
    for (const auto& [path, info] : outside_before)
        if (!outside_after.count(path)) ADD_FAILURE() << "removed outside the pools: " << path;

    auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << "[ corpus  ] " << passed << "/" << cases.size() << " cases as expected, from "
              << files.size() << " files, in " << seconds << " s\n";
    EXPECT_LT(seconds, 60.0);
}

}  // namespace
}  // namespace distconv::itest
