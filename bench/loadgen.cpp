// distconv-loadgen: the measuring side of scripts/bench.sh. Every mode prints one JSON object on stdout.
//
//   noop-server   a cpp-httplib server with the dispatch server's thread and timeout settings whose every
//                 route answers a tiny JSON body: the HTTP library's ceiling.
//   sqlite        single-row write transactions per second on a WAL database in --dir (the dispatch
//                 store's pragmas): the database's commit ceiling on that disk.
//   hammer        --conns closed-loop connections POSTing --body to --url (or to each line of
//                 --urls-file in turn) for --seconds: request rate and latency.
//   sim           --engines simulated engines (register, heartbeat, long-poll claim, progress, a tiny
//                 output, complete; the transcode is a no-op) and --submitters users submitting tiny jobs,
//                 all through the real REST API on one libcurl multi loop.
//   latency       dispatch latency: an idle engine long-polls a claim; a failed job is put back in the
//                 queue (POST /jobs/{id}/retry) and the time until the engine holds it is recorded.
//
// sim also reports, over its measured window, the connections it opened and how long their connects
// took, the kernel's TCP counters (listen-queue overflows and drops, opens, retransmits: client and
// server share 127.0.0.1, so these are the whole conversation), and with --server-pid the server's
// resident set before the engines registered and at the end (per engine, when --submitters is 0: idle).
#include <curl/curl.h>
#include <httplib.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

double ms_between(TimePoint a, TimePoint b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// --- arguments ---------------------------------------------------------------------------------------

struct Args {
    std::map<std::string, std::string> values;
    std::string get(const std::string& key, const std::string& fallback = "") const {
        auto it = values.find(key);
        return it == values.end() ? fallback : it->second;
    }
    long num(const std::string& key, long fallback) const {
        auto it = values.find(key);
        return it == values.end() ? fallback : std::stol(it->second);
    }
    double real(const std::string& key, double fallback) const {
        auto it = values.find(key);
        return it == values.end() ? fallback : std::stod(it->second);
    }
};

Args parse_args(int argc, char** argv, int first) {
    Args a;
    for (int i = first; i < argc; ++i) {
        std::string k = argv[i];
        if (k.rfind("--", 0) != 0) throw std::runtime_error("unexpected argument: " + k);
        if (i + 1 >= argc) throw std::runtime_error(k + " needs a value");
        a.values[k.substr(2)] = argv[++i];
    }
    return a;
}

// --- latency statistics ------------------------------------------------------------------------------

struct Stats {
    std::vector<double> ms;
    uint64_t count = 0;  // successes, timed or not
    uint64_t errors = 0;
    std::map<std::string, uint64_t> error_kinds;
    void error(const std::string& kind) {
        ++errors;
        ++error_kinds[kind];
    }
    static double pct(std::vector<double>& v, double p) {
        if (v.empty()) return 0.0;
        size_t idx = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
        std::nth_element(v.begin(), v.begin() + static_cast<long>(idx), v.end());
        return v[idx];
    }
    json to_json(double seconds) {
        json j{{"count", count},
               {"rate", seconds > 0 ? static_cast<double>(count) / seconds : 0.0},
               {"p50_ms", pct(ms, 50)},
               {"p99_ms", pct(ms, 99)},
               {"max_ms", ms.empty() ? 0.0 : *std::max_element(ms.begin(), ms.end())},
               {"errors", errors}};
        if (!error_kinds.empty()) j["error_kinds"] = error_kinds;
        return j;
    }
};

// --- kernel TCP counters and resident sets ------------------------------------------------------------

// The named fields of /proc/net/netstat (TcpExt: ...) and /proc/net/snmp (Tcp: ...): each file holds
// pairs of lines, a header line of names and a line of values with the same prefix.
std::map<std::string, long long> kernel_tcp_counters() {
    std::map<std::string, long long> out;
    for (const char* path : {"/proc/net/netstat", "/proc/net/snmp"}) {
        std::ifstream in(path);
        if (!in) throw std::runtime_error(std::string("cannot read ") + path);
        std::string names, values;
        while (std::getline(in, names) && std::getline(in, values)) {
            std::istringstream n(names), v(values);
            std::string prefix, vprefix, name, value;
            n >> prefix;
            v >> vprefix;
            if (prefix != vprefix || (prefix != "TcpExt:" && prefix != "Tcp:")) continue;
            while (n >> name && v >> value)
                out[prefix.substr(0, prefix.size() - 1) + "." + name] = std::stoll(value);
        }
    }
    return out;
}

json kernel_tcp_delta(const std::map<std::string, long long>& before,
                      const std::map<std::string, long long>& after) {
    auto delta = [&](const std::string& key) {
        auto a = after.find(key), b = before.find(key);
        if (a == after.end() || b == before.end()) throw std::runtime_error("no kernel counter " + key);
        return a->second - b->second;
    };
    return json{{"listen_overflows", delta("TcpExt.ListenOverflows")},
                {"listen_drops", delta("TcpExt.ListenDrops")},
                {"active_opens", delta("Tcp.ActiveOpens")},
                {"passive_opens", delta("Tcp.PassiveOpens")},
                {"retransmitted_segments", delta("Tcp.RetransSegs")}};
}

// VmRSS of a process in KiB.
long long resident_kib(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
    throw std::runtime_error("cannot read the resident set of process " + std::to_string(pid));
}

std::string sha256_hex(const std::string& data) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned char c : digest) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

// --- noop-server -------------------------------------------------------------------------------------

int run_noop_server(const Args& args) {
    // The dispatch server's thread settings (dispatch_server/api/http_api.cpp): a thread pool of
    // --threads, TCP_NODELAY, 60 s read/write timeouts. Keep-alive 5 s (the server's is 15 s): the
    // hammer's closed-loop connections are never idle, so it does not change the ceiling.
    httplib::Server server;
    auto threads = static_cast<size_t>(args.num("threads", 64));
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server.set_tcp_nodelay(true);
    server.set_read_timeout(std::chrono::seconds(60));
    server.set_write_timeout(std::chrono::seconds(60));
    server.set_keep_alive_timeout(5);
    auto answer = [](const httplib::Request&, httplib::Response& res) {
        res.set_content(R"({"cancel":[],"drain":false,"rerun_benchmark":false})", "application/json");
    };
    server.Post(R"(/.*)", answer);
    server.Get(R"(/.*)", answer);
    int port = server.bind_to_any_port(args.get("host", "127.0.0.1"));
    if (port <= 0) {
        std::cerr << "noop-server: cannot bind\n";
        return 1;
    }
    std::cout << "listening on 127.0.0.1:" << port << std::endl;
    // Serves until SIGTERM or SIGINT (blocked here, so only the watcher receives them).
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread watcher([&] {
        int sig = 0;
        sigwait(&set, &sig);
        server.stop();
    });
    server.listen_after_bind();
    watcher.join();
    return 0;
}

// --- sqlite ------------------------------------------------------------------------------------------

int run_sqlite(const Args& args) {
    std::filesystem::path dir = args.get("dir", ".");
    auto path = dir / "commit-probe.db";
    for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + s);
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
        std::cerr << "sqlite: cannot open " << path << "\n";
        return 1;
    }
    auto exec = [&](const char* sql) {
        char* err = nullptr;
        if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
            std::string msg = err ? err : "?";
            sqlite3_free(err);
            throw std::runtime_error(msg);
        }
    };
    // The dispatch store's settings (dispatch_server/store/store.cpp).
    exec("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = NORMAL");
    exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, s TEXT)");
    exec("INSERT INTO t (id, v, s) VALUES (1, 0, '')");
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "UPDATE t SET v = v + 1, s = ? WHERE id = 1", -1, &st, nullptr);
    double seconds = args.real("seconds", 2.0);
    std::string payload(200, 'x');
    auto start = SteadyClock::now();
    uint64_t n = 0;
    while (ms_between(start, SteadyClock::now()) < seconds * 1000.0) {
        exec("BEGIN IMMEDIATE");
        sqlite3_bind_text(st, 1, payload.data(), static_cast<int>(payload.size()), SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
        exec("COMMIT");
        ++n;
    }
    double elapsed = ms_between(start, SteadyClock::now()) / 1000.0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + s);
    std::cout << json{{"commits", n},
                      {"seconds", elapsed},
                      {"commits_per_s", static_cast<double>(n) / elapsed}}
                     .dump()
              << std::endl;
    return 0;
}

// --- a libcurl multi event loop ----------------------------------------------------------------------

struct Reply {
    long status = 0;  // 0: transport error
    std::string body;
    std::string error;
    double ms = 0;
    long new_connections = 0;  // connections this request opened (0: it reused a kept-alive one)
    double connect_ms = 0;     // how long opening it took (SYN to established), when it opened one
};

struct Request {
    std::string method = "POST";
    std::string url;
    std::string body;
    std::string content_type = "application/json";
    std::vector<std::string> headers;
    curl_mime* (*mime)(CURL*, void*) = nullptr;  // multipart bodies
    void* mime_arg = nullptr;
    long timeout_ms = 0;
};

class Loop {
  public:
    Loop() {
        m_multi = curl_multi_init();
        curl_multi_setopt(m_multi, CURLMOPT_MAXCONNECTS, 20000L);
    }
    ~Loop() {
        for (auto& [easy, c] : m_calls) {
            curl_multi_remove_handle(m_multi, easy);
            cleanup(*c);
            curl_easy_cleanup(easy);
        }
        for (auto* easy : m_idle) curl_easy_cleanup(easy);
        curl_multi_cleanup(m_multi);
    }

    void send(const Request& r, std::function<void(const Reply&)> done) {
        CURL* easy;
        if (!m_idle.empty()) {
            easy = m_idle.back();
            m_idle.pop_back();
            curl_easy_reset(easy);
        } else {
            easy = curl_easy_init();
        }
        auto call = std::make_unique<Call>();
        call->done = std::move(done);
        call->start = SteadyClock::now();
        curl_easy_setopt(easy, CURLOPT_URL, r.url.c_str());
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Loop::on_write);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, &call->reply.body);
        if (r.timeout_ms > 0) curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, r.timeout_ms);
        for (const auto& h : r.headers) call->headers = curl_slist_append(call->headers, h.c_str());
        call->headers = curl_slist_append(call->headers, "Expect:");
        if (r.mime) {
            call->mime = r.mime(easy, r.mime_arg);
            curl_easy_setopt(easy, CURLOPT_MIMEPOST, call->mime);
        } else if (r.method == "POST" || r.method == "PUT") {
            if (!r.content_type.empty())
                call->headers = curl_slist_append(call->headers, ("Content-Type: " + r.content_type).c_str());
            curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.body.size()));
            curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, r.body.c_str());
            if (r.method == "PUT") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "PUT");
        } else if (r.method != "GET") {
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
        }
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, call->headers);
        curl_multi_add_handle(m_multi, easy);
        m_calls[easy] = std::move(call);
    }

    void at(TimePoint when, std::function<void()> fn) { m_timers.emplace(when, std::move(fn)); }

    // Runs until `until` or until nothing is left to do.
    void run(TimePoint until) {
        while (SteadyClock::now() < until && (!m_calls.empty() || !m_timers.empty())) {
            while (!m_timers.empty() && m_timers.begin()->first <= SteadyClock::now()) {
                auto fn = std::move(m_timers.begin()->second);
                m_timers.erase(m_timers.begin());
                fn();
            }
            int running = 0;
            curl_multi_perform(m_multi, &running);
            int left = 0;
            while (CURLMsg* msg = curl_multi_info_read(m_multi, &left)) {
                if (msg->msg != CURLMSG_DONE) continue;
                CURL* easy = msg->easy_handle;
                CURLcode code = msg->data.result;
                curl_multi_remove_handle(m_multi, easy);
                auto it = m_calls.find(easy);
                auto call = std::move(it->second);
                m_calls.erase(it);
                call->reply.ms = ms_between(call->start, SteadyClock::now());
                curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &call->reply.new_connections);
                curl_off_t connect_us = 0;
                curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect_us);
                call->reply.connect_ms = static_cast<double>(connect_us) / 1000.0;
                if (code == CURLE_OK) {
                    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &call->reply.status);
                } else {
                    call->reply.status = 0;
                    call->reply.error =
                        curl_easy_strerror(code);  // without the varying details, so errors group
                }
                cleanup(*call);
                m_idle.push_back(easy);
                call->done(call->reply);
            }
            int wait_ms = 100;
            if (!m_timers.empty()) {
                auto d = std::chrono::duration_cast<std::chrono::milliseconds>(m_timers.begin()->first -
                                                                               SteadyClock::now());
                wait_ms = static_cast<int>(std::clamp<long>(d.count(), 0, 100));
            }
            curl_multi_poll(m_multi, nullptr, 0, wait_ms, nullptr);
        }
    }

    size_t in_flight() const { return m_calls.size(); }

  private:
    struct Call {
        std::function<void(const Reply&)> done;
        Reply reply;
        TimePoint start;
        curl_slist* headers = nullptr;
        curl_mime* mime = nullptr;
    };
    static size_t on_write(char* data, size_t size, size_t n, void* user) {
        static_cast<std::string*>(user)->append(data, size * n);
        return size * n;
    }
    static void cleanup(Call& c) {
        curl_slist_free_all(c.headers);
        c.headers = nullptr;
        if (c.mime) curl_mime_free(c.mime);
        c.mime = nullptr;
    }
    CURLM* m_multi;
    std::map<CURL*, std::unique_ptr<Call>> m_calls;
    std::vector<CURL*> m_idle;
    std::multimap<TimePoint, std::function<void()>> m_timers;
};

std::vector<std::string> read_lines(const std::string& path) {
    std::vector<std::string> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(line);
    return out;
}

// --- hammer ------------------------------------------------------------------------------------------

int run_hammer(const Args& args) {
    std::vector<std::string> urls;
    if (!args.get("urls-file").empty()) urls = read_lines(args.get("urls-file"));
    if (!args.get("url").empty()) urls.push_back(args.get("url"));
    if (urls.empty()) throw std::runtime_error("hammer needs --url or --urls-file");
    Request base;
    base.body = args.get("body", "{}");
    if (!args.get("key").empty()) base.headers.push_back("Authorization: Bearer " + args.get("key"));
    long conns = args.num("conns", 16);
    double warmup = args.real("warmup", 1.0), seconds = args.real("seconds", 5.0);
    Loop loop;
    Stats stats;
    size_t next_url = 0;
    auto start = SteadyClock::now();
    auto measure_from =
        start + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(warmup));
    auto end = measure_from +
               std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(seconds));
    std::function<void()> fire = [&] {
        if (SteadyClock::now() >= end) return;
        Request r = base;
        r.url = urls[next_url++ % urls.size()];
        loop.send(r, [&](const Reply& rep) {
            if (SteadyClock::now() >= measure_from && SteadyClock::now() < end) {
                if (rep.status >= 200 && rep.status < 300) {
                    stats.ms.push_back(rep.ms);
                    ++stats.count;
                } else
                    stats.error(rep.status ? std::to_string(rep.status) : rep.error);
            }
            fire();
        });
    };
    for (long i = 0; i < conns; ++i) fire();
    loop.run(end + std::chrono::seconds(30));
    json out = stats.to_json(seconds);
    out["conns"] = conns;
    std::cout << out.dump() << std::endl;
    return 0;
}

// --- sim ---------------------------------------------------------------------------------------------

struct MimeSource {
    std::string path;
    std::string job_json;
};

curl_mime* make_submit_mime(CURL* easy, void* arg) {
    auto* src = static_cast<MimeSource*>(arg);
    curl_mime* mime = curl_mime_init(easy);
    curl_mimepart* part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    curl_mime_filedata(part, src->path.c_str());
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "job");
    curl_mime_data(part, src->job_json.c_str(), CURL_ZERO_TERMINATED);
    curl_mime_type(part, "application/json");
    return mime;
}

json registration_body(int i) {
    return json{{"hostname", "sim-" + std::to_string(i)},
                {"version", "bench"},
                {"slots", 1},
                {"capabilities",
                 {{"ffmpeg_version", "5.1"},
                  {"encoders", {"libx264", "aac", "libx265", "libopus", "libvpx-vp9"}},
                  {"decoders", {"h264", "aac"}},
                  {"hwaccels", json::array()}}},
                {"free_disk_bytes", 1000000000000LL}};
}

class Sim {
  public:
    explicit Sim(const Args& args)
        : m_server(args.get("server")),
          m_engine_key(args.get("engine-key")),
          m_user_key(args.get("user-key")),
          m_engines(static_cast<int>(args.num("engines", 10))),
          m_submitters(static_cast<int>(args.num("submitters", 2))),
          m_claim_wait(static_cast<int>(args.num("claim-wait", 30))),
          m_hb_ms(args.num("heartbeat-ms", 0)),
          m_max_outstanding(args.num("max-outstanding", 0)),
          m_warmup(args.real("warmup", 2.0)),
          m_seconds(args.real("seconds", 10.0)),
          m_output(args.get("output-bytes", "64") == "0"
                       ? ""
                       : std::string(static_cast<size_t>(args.num("output-bytes", 64)), 'o')),
          m_output_sha(sha256_hex(m_output)),
          m_server_pid(args.num("server-pid", 0)) {
        m_source.path = args.get("source");
        m_source.job_json = R"({"preset":"h264-web","output_filename":"out.mp4","max_attempts":1})";
        if (m_max_outstanding <= 0) m_max_outstanding = std::max(4, m_engines);
        m_engine.resize(static_cast<size_t>(m_engines));
    }

    int run() {
        const long long rss_before = m_server_pid > 0 ? resident_kib(m_server_pid) : 0;
        // Registration first (16 at a time), then the clock starts.
        size_t next = 0;
        int registered = 0, transport_retries = 0;
        std::function<void(size_t)> reg_one;
        std::function<void()> reg = [&] {
            if (next < m_engine.size()) reg_one(next++);
        };
        reg_one = [&](size_t i) {
            Request r = engine_request("/engines", registration_body(static_cast<int>(i)).dump());
            m_loop.send(r, [&, i](const Reply& rep) {
                if (rep.status == 0 && ++transport_retries <= 50)
                    return reg_one(i);  // refused or reset: again
                if (rep.status != 201)
                    throw std::runtime_error("register: " + std::to_string(rep.status) + " " + rep.body +
                                             rep.error);
                auto j = json::parse(rep.body);
                m_engine[i].id = j.at("engine_id").get<std::string>();
                if (m_hb_ms <= 0) m_hb_ms = j.at("heartbeat_interval_seconds").get<long>() * 1000;
                ++registered;
                reg();
            });
        };
        for (int i = 0; i < 16; ++i) reg();
        m_loop.run(SteadyClock::now() + std::chrono::seconds(120));
        if (registered != m_engines) throw std::runtime_error("not every engine registered");

        auto start = SteadyClock::now();
        m_measure_from = start + dur(m_warmup);
        m_end = m_measure_from + dur(m_seconds);
        std::mt19937 rng(42);
        for (size_t i = 0; i < m_engine.size(); ++i) {
            // Heartbeats spread over the interval, as engines started at different times would send them.
            auto offset = std::chrono::milliseconds(std::uniform_int_distribution<long>(0, m_hb_ms - 1)(rng));
            m_loop.at(start + offset, [this, i] { heartbeat(i); });
            claim(i);
        }
        for (int u = 0; u < m_submitters; ++u) submit();
        std::map<std::string, long long> tcp_before;
        m_loop.at(m_measure_from, [&] { tcp_before = kernel_tcp_counters(); });
        m_loop.run(m_end);
        const auto tcp_after = kernel_tcp_counters();
        if (tcp_before.empty()) throw std::runtime_error("the measured window never started");

        json out;
        out["engines"] = m_engines;
        out["seconds"] = m_seconds;
        out["heartbeat_interval_ms"] = m_hb_ms;
        out["claim_wait_seconds"] = m_claim_wait;
        json ops;
        Stats all, engines;  // every request; the engines' own (all but the users' submits)
        uint64_t errors = 0;
        for (auto& [name, st] : m_stats) {
            ops[name] = st.to_json(m_seconds);
            all.ms.insert(all.ms.end(), st.ms.begin(), st.ms.end());
            if (name != "submit") engines.ms.insert(engines.ms.end(), st.ms.begin(), st.ms.end());
            all.count += st.count;
            errors += st.errors;
        }
        out["ops"] = ops;
        out["lifecycles"] = m_lifecycles;
        out["lifecycles_per_s"] = static_cast<double>(m_lifecycles) / m_seconds;
        out["heartbeats_per_s"] = m_stats["heartbeat"].to_json(m_seconds)["rate"];
        out["requests_per_s"] = static_cast<double>(all.count) / m_seconds;
        out["p50_ms"] = Stats::pct(all.ms, 50);
        out["p99_ms"] = Stats::pct(all.ms, 99);
        out["engine_p50_ms"] = Stats::pct(engines.ms, 50);
        out["engine_p99_ms"] = Stats::pct(engines.ms, 99);
        out["errors"] = errors;
        out["kernel"] = kernel_tcp_delta(tcp_before, tcp_after);
        out["connections"] =
            json{{"opened", m_opened},
                 {"opened_per_s", static_cast<double>(m_opened) / m_seconds},
                 {"connect_p50_ms", Stats::pct(m_connect_ms, 50)},
                 {"connect_p99_ms", Stats::pct(m_connect_ms, 99)},
                 {"connect_max_ms",
                  m_connect_ms.empty() ? 0.0 : *std::max_element(m_connect_ms.begin(), m_connect_ms.end())}};
        if (m_server_pid > 0) {
            const long long rss_after = resident_kib(m_server_pid);
            out["server_rss_kib"] = json{{"before_engines", rss_before}, {"end", rss_after}};
            if (m_submitters == 0 && m_engines > 0)
                out["server_rss_kib_per_idle_engine"] =
                    static_cast<double>(rss_after - rss_before) / static_cast<double>(m_engines);
        }
        std::cout << out.dump() << std::endl;
        return 0;
    }

  private:
    struct EngineState {
        std::string id;
        std::string assignment_id;
        int64_t token = 0;
    };

    static SteadyClock::duration dur(double s) {
        return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
    }
    bool measuring() const {
        auto now = SteadyClock::now();
        return now >= m_measure_from && now < m_end;
    }
    bool over() const { return SteadyClock::now() >= m_end; }

    Request engine_request(const std::string& path, std::string body) {
        Request r;
        r.url = m_server + "/api/v1" + path;
        r.body = std::move(body);
        r.headers.push_back("Authorization: Bearer " + m_engine_key);
        return r;
    }

    // Records the answer; true when it was the expected status.
    bool record(const std::string& op, const Reply& rep, std::initializer_list<long> ok, bool timed = true) {
        bool good = std::find(ok.begin(), ok.end(), rep.status) != ok.end();
        if (!measuring()) return good;
        count_connection(rep);
        auto& st = m_stats[op];
        if (!good) {
            st.error(rep.status ? std::to_string(rep.status) + " " + rep.body.substr(0, 120) : rep.error);
            return false;
        }
        ++st.count;
        if (timed) st.ms.push_back(rep.ms);
        return true;
    }

    void count_connection(const Reply& rep) {
        if (rep.new_connections <= 0) return;
        m_opened += static_cast<uint64_t>(rep.new_connections);
        m_connect_ms.push_back(rep.connect_ms);
    }

    void heartbeat(size_t i) {
        if (over()) return;
        auto& e = m_engine[i];
        json body{{"state", e.assignment_id.empty() ? "idle" : "busy"},
                  {"free_disk_bytes", 1000000000000LL},
                  {"running_assignments",
                   e.assignment_id.empty() ? json::array() : json::array({e.assignment_id})}};
        auto due = SteadyClock::now() + std::chrono::milliseconds(m_hb_ms);
        m_loop.send(engine_request("/engines/" + e.id + "/heartbeat", body.dump()),
                    [this, i, due](const Reply& rep) {
                        record("heartbeat", rep, {200});
                        m_loop.at(due, [this, i] { heartbeat(i); });
                    });
    }

    void claim(size_t i) {
        if (over()) return;
        auto& e = m_engine[i];
        json body{{"free_slots", 1}, {"wait_seconds", m_claim_wait}, {"free_disk_bytes", 1000000000000LL}};
        Request r = engine_request("/engines/" + e.id + "/claim", body.dump());
        r.timeout_ms = (m_claim_wait + 15) * 1000L;
        m_loop.send(r, [this, i](const Reply& rep) {
            if (rep.status == 204) {
                if (measuring()) {
                    ++m_empty_claims;
                    count_connection(rep);
                }
                return claim(i);
            }
            // Counted, not timed: a long-poll answered with work lasted as long as the engine waited for it.
            if (!record("claim", rep, {200}, false)) {
                m_loop.at(SteadyClock::now() + std::chrono::milliseconds(200), [this, i] { claim(i); });
                return;
            }
            auto j = json::parse(rep.body);
            auto& eng = m_engine[i];
            eng.assignment_id = j.at("assignment_id").get<std::string>();
            eng.token = j.at("fencing_token").get<int64_t>();
            progress(i);
        });
    }

    void progress(size_t i) {
        auto& e = m_engine[i];
        json body{{"fencing_token", e.token}, {"percent", 50.0}, {"fps", 30.0}, {"speed", 1.0}};
        m_loop.send(engine_request("/assignments/" + e.assignment_id + "/progress", body.dump()),
                    [this, i](const Reply& rep) {
                        if (!record("progress", rep, {200})) return abandon(i);
                        output(i);
                    });
    }

    void output(size_t i) {
        auto& e = m_engine[i];
        Request r = engine_request("/assignments/" + e.assignment_id + "/output", m_output);
        r.method = "PUT";
        r.content_type = "application/octet-stream";
        r.headers.push_back("X-Fencing-Token: " + std::to_string(e.token));
        m_loop.send(r, [this, i](const Reply& rep) {
            if (!record("output", rep, {200})) return abandon(i);
            complete(i);
        });
    }

    void complete(size_t i) {
        auto& e = m_engine[i];
        json body{{"fencing_token", e.token},
                  {"output_size", m_output.size()},
                  {"output_sha256", m_output_sha},
                  {"duration_seconds", 0.1}};
        m_loop.send(engine_request("/assignments/" + e.assignment_id + "/complete", body.dump()),
                    [this, i](const Reply& rep) {
                        bool ok = record("complete", rep, {200});
                        m_engine[i].assignment_id.clear();
                        if (ok && measuring()) ++m_lifecycles;
                        --m_outstanding;
                        kick_submitters();
                        claim(i);
                    });
    }

    void abandon(size_t i) {
        m_engine[i].assignment_id.clear();
        --m_outstanding;
        kick_submitters();
        claim(i);
    }

    void kick_submitters() {
        while (m_parked_submitters > 0 && m_outstanding < m_max_outstanding) {
            --m_parked_submitters;
            submit();
        }
    }

    void submit() {
        if (over()) return;
        if (m_outstanding >= m_max_outstanding) {
            ++m_parked_submitters;  // resumes when an engine completes a job
            return;
        }
        ++m_outstanding;
        Request r;
        r.url = m_server + "/api/v1/jobs";
        r.headers.push_back("Authorization: Bearer " + m_user_key);
        r.mime = make_submit_mime;
        r.mime_arg = &m_source;
        m_loop.send(r, [this](const Reply& rep) {
            if (!record("submit", rep, {202})) --m_outstanding;
            submit();
        });
    }

    std::string m_server, m_engine_key, m_user_key;
    int m_engines, m_submitters, m_claim_wait;
    long m_hb_ms;
    long m_max_outstanding;
    double m_warmup, m_seconds;
    std::string m_output, m_output_sha;
    long m_server_pid;
    uint64_t m_opened = 0;
    std::vector<double> m_connect_ms;
    MimeSource m_source;
    std::vector<EngineState> m_engine;
    Loop m_loop;
    std::map<std::string, Stats> m_stats;
    TimePoint m_measure_from, m_end;
    uint64_t m_lifecycles = 0, m_empty_claims = 0;
    long m_outstanding = 0;
    int m_parked_submitters = 0;
};

// --- latency -----------------------------------------------------------------------------------------

// A blocking request on its own easy handle (one per thread).
Reply blocking(CURL* easy, const std::string& method, const std::string& url, const std::string& key,
               const std::string& body, MimeSource* mime_src = nullptr, long timeout_ms = 60000) {
    Reply rep;
    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(
        easy, CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* u) {
            static_cast<std::string*>(u)->append(d, s * n);
            return s * n;
        });
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &rep.body);
    curl_slist* headers = curl_slist_append(nullptr, ("Authorization: Bearer " + key).c_str());
    headers = curl_slist_append(headers, "Expect:");
    curl_mime* mime = nullptr;
    if (mime_src) {
        mime = make_submit_mime(easy, mime_src);
        curl_easy_setopt(easy, CURLOPT_MIMEPOST, mime);
    } else if (method == "POST") {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
        curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body.c_str());
    } else if (method != "GET") {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    auto t0 = SteadyClock::now();
    CURLcode code = curl_easy_perform(easy);
    rep.ms = ms_between(t0, SteadyClock::now());
    if (code == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &rep.status);
    else
        rep.error = curl_easy_strerror(code);
    curl_slist_free_all(headers);
    if (mime) curl_mime_free(mime);
    return rep;
}

int run_latency(const Args& args) {
    std::string api = args.get("server") + "/api/v1";
    std::string ekey = args.get("engine-key"), ukey = args.get("user-key");
    int samples = static_cast<int>(args.num("samples", 50));
    CURL* user = curl_easy_init();
    CURL* eng = curl_easy_init();
    auto must = [](const Reply& r, long status, const char* what) {
        if (r.status != status)
            throw std::runtime_error(std::string(what) + ": " + std::to_string(r.status) + " " + r.body +
                                     r.error);
        return json::parse(r.body.empty() ? "{}" : r.body);
    };
    auto reg =
        must(blocking(eng, "POST", api + "/engines", ekey, registration_body(0).dump()), 201, "register");
    std::string engine_id = reg.at("engine_id");
    // One job, submitted and canceled while no engine claims, then failed and re-queued in turn.
    MimeSource src{args.get("source"),
                   R"({"preset":"h264-web","output_filename":"out.mp4","max_attempts":1})"};
    auto job = must(blocking(user, "POST", api + "/jobs", ukey, "", &src), 202, "submit");
    std::string job_id = job.at("job_id");
    must(blocking(user, "DELETE", api + "/jobs/" + job_id, ukey, ""), 202, "cancel");

    std::mutex m;
    std::condition_variable cv;
    bool polling = false, received = false, quit = false;
    TimePoint got;
    std::string error;
    std::thread engine([&] {
        json claim{{"free_slots", 1}, {"wait_seconds", 30}, {"free_disk_bytes", 1000000000000LL}};
        while (true) {
            {
                std::lock_guard lock(m);
                if (quit) return;
                polling = true;
            }
            cv.notify_all();
            auto rep = blocking(eng, "POST", api + "/engines/" + engine_id + "/claim", ekey, claim.dump(),
                                nullptr, 45000);
            auto now = SteadyClock::now();
            if (rep.status == 204) continue;
            std::unique_lock lock(m);
            if (rep.status != 200) {
                error = "claim: " + std::to_string(rep.status) + " " + rep.body + rep.error;
                received = true;
                cv.notify_all();
                return;
            }
            auto a = json::parse(rep.body);
            lock.unlock();
            json fail{
                {"fencing_token", a.at("fencing_token")}, {"error_class", "permanent"}, {"message", "bench"}};
            auto f = blocking(eng, "POST",
                              api + "/assignments/" + a.at("assignment_id").get<std::string>() + "/fail",
                              ekey, fail.dump());
            lock.lock();
            if (f.status != 200) error = "fail: " + std::to_string(f.status) + " " + f.body;
            got = now;
            received = true;
            polling = false;
            cv.notify_all();
            if (!error.empty()) return;
        }
    });
    Stats lat, retry_rtt;  // ms only
    std::mt19937 rng(7);
    for (int i = 0; i < samples && error.empty(); ++i) {
        {
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return polling || !error.empty(); });
        }
        // Let the claim reach the server and park in its long-poll (an idle engine).
        std::this_thread::sleep_for(
            std::chrono::milliseconds(std::uniform_int_distribution<int>(30, 60)(rng)));
        {
            std::lock_guard lock(m);
            received = false;
        }
        auto t0 = SteadyClock::now();
        auto rep = blocking(user, "POST", api + "/jobs/" + job_id + "/retry", ukey, "{}");
        if (rep.status != 200 && rep.status != 202) {
            error = "retry: " + std::to_string(rep.status) + " " + rep.body;
            break;
        }
        retry_rtt.ms.push_back(rep.ms);
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return received; })) {
            error = "the engine did not receive the job within 10 s";
            break;
        }
        lat.ms.push_back(ms_between(t0, got));
        ++lat.count;
    }
    {
        std::lock_guard lock(m);
        quit = true;
    }
    // The engine thread may be parked in a claim: it returns within the long-poll's wait.
    blocking(user, "DELETE", api + "/jobs/" + job_id, ukey, "");
    engine.detach();
    if (!error.empty()) {
        std::cerr << "latency: " << error << "\n";
        return 1;
    }
    json out = lat.to_json(0);
    out.erase("rate");
    out["retry_request_p50_ms"] = Stats::pct(retry_rtt.ms, 50);
    std::cout << out.dump() << std::endl;
    std::cout.flush();
    std::_Exit(0);  // the engine thread may still be parked in its claim
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: distconv-loadgen noop-server|sqlite|hammer|sim|latency [--option value]...\n";
        return 2;
    }
    std::string mode = argv[1];
    try {
        Args args = parse_args(argc, argv, 2);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (mode == "noop-server") return run_noop_server(args);
        if (mode == "sqlite") return run_sqlite(args);
        if (mode == "hammer") return run_hammer(args);
        if (mode == "sim") return Sim(args).run();
        if (mode == "latency") return run_latency(args);
        std::cerr << "unknown mode " << mode << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "distconv-loadgen " << mode << ": " << e.what() << "\n";
        return 1;
    }
}
