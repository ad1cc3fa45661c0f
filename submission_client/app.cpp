#include "submission_client/app.hpp"

#include "common/config.hpp"
#include "common/hash.hpp"
#include "common/http/client.hpp"
#include "common/media/options.hpp"
#include "protocol/protocol.hpp"
#include "submission_client/core.hpp"
#include "submission_client/library.hpp"
#include "submission_client/library_state.hpp"
#include "submission_client/local_name.hpp"
#include "submission_client/sse_stream.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

namespace distconv::client {
namespace {

namespace stdfs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_sigint(int) {
    g_interrupted = 1;
}

bool interrupted() {
    return g_interrupted != 0;
}

// Sleeps up to `d`, waking early on Ctrl-C.
void nap(std::chrono::milliseconds d) {
    auto until = Clock::now() + d;
    while (!interrupted() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// ------------------------------------------------------------------------------------------------
// Options

struct GlobalOptions {
    std::string server = "http://127.0.0.1:8080";
    std::string key;
    bool json = false;
    std::string ca_cert;
    bool allow_insecure = false;
    std::uint64_t limit_upload = 0;  // bytes per second; 0 = as fast as the link goes
};

struct SubmitOptions {
    std::vector<std::string> files;
    std::string output;
    std::string output_dir;
    TranscodeFlags flags;
    bool wait = false;
    bool detach = false;
    bool force = false;
};

struct ListOptions {
    std::string state;
    bool all = false;
    int limit = protocol::k_default_list_limit;
};

struct DownloadCommandOptions {
    std::string job_id;
    std::string output;
    bool force = false;
};

// Exit early with a code after printing what went wrong.
struct Failure {
    int code;
};

// ------------------------------------------------------------------------------------------------
// A single status line on stderr, redrawn in place on a terminal.

class StatusLine {
  public:
    explicit StatusLine(bool enabled) : m_enabled(enabled) {}
    ~StatusLine() { finish(); }
    void update(const std::string& text, bool force = false) {
        if (!m_enabled) return;
        auto now = Clock::now();
        if (!force && m_drawn && now - m_last < std::chrono::milliseconds(100)) return;
        m_last = now;
        m_drawn = true;
        std::cerr << "\r" << text << "\x1b[K" << std::flush;
    }
    void finish() {
        if (m_enabled && m_drawn) std::cerr << "\n" << std::flush;
        m_drawn = false;
    }

  private:
    bool m_enabled;
    bool m_drawn = false;
    Clock::time_point m_last{};
};

// ------------------------------------------------------------------------------------------------
// The session: the HTTP client and how to talk to the user.

class Session {
  public:
    explicit Session(const GlobalOptions& g) : m_g(g) {
        http::ClientOptions o;
        o.base_url = api_base_url(g.server);
        o.api_key = g.key;
        o.ca_file = g.ca_cert;
        o.retry.max_attempts = 3;
        o.max_send_bytes_per_second = g.limit_upload;
        m_client = std::make_unique<http::Client>(o);
        m_tty_err = ::isatty(STDERR_FILENO) == 1;
        m_tty_out = ::isatty(STDOUT_FILENO) == 1;
    }

    const GlobalOptions& g() const { return m_g; }
    http::Client& http() { return *m_client; }
    bool bars() const { return m_tty_err && m_tty_out; }  // no bars when either stream is piped
    bool json_mode() const { return m_g.json; }

    // A 2xx answer's JSON, or throws Failure after printing the server's error.
    json call(const std::string& method, const std::string& path,
              const std::optional<json>& body = std::nullopt) {
        auto r = m_client->call_json(method, path, body);
        if (!r) fail(r.error());
        return *r;
    }

    [[noreturn]] void fail(const Error& e) const {
        std::cerr << error_line(e) << "\n";
        if (e.code == ErrorCode::Unauthenticated && m_g.key.empty())
            std::cerr << "distconv: hint: pass --key or set DISTCONV_API_KEY\n";
        throw Failure{exit_code_for(e)};
    }

    void print_json(const json& j) const { std::cout << j.dump(2) << "\n"; }

  private:
    GlobalOptions m_g;
    std::unique_ptr<http::Client> m_client;
    bool m_tty_err = false;
    bool m_tty_out = false;
};

template <typename T>
T decode(Session& s, Result<T> r) {
    if (!r) {
        Error e = std::move(r).error();
        e.message = "unexpected answer from the server: " + e.message;
        e.code = ErrorCode::Internal;
        s.fail(e);
    }
    return std::move(r).value();
}

std::string opt_str(const std::optional<std::string>& s, const std::string& fallback = "-") {
    return s ? *s : fallback;
}

std::string ts(protocol::Timestamp t) {
    return protocol::format_timestamp(t);
}

std::string ts(const std::optional<protocol::Timestamp>& t) {
    return t ? protocol::format_timestamp(*t) : "-";
}

// ------------------------------------------------------------------------------------------------
// Following jobs

void apply_status(JobView& v, const protocol::JobStatus& st) {
    v.state = std::string(protocol::to_string(st.state));
    v.percent = st.progress_percent;
    v.fps = st.fps;
    v.speed = st.speed;
    v.eta_seconds = st.eta_seconds;
    v.queue_position = st.queue_position;
    v.message = st.message.value_or("");
}

JobView make_view(const std::string& id, const std::string& label, const std::string& state) {
    JobView v;
    v.job_id = id;
    v.label = label;
    v.state = state;
    return v;
}

bool is_terminal_name(const std::string& state) {
    auto s = protocol::parse_job_state(state);
    return s && protocol::is_terminal(*s);
}

Result<protocol::JobStatus> fetch_status(Session& s, const std::string& id) {
    auto r = s.http().call_json("GET", "/jobs/" + id + "/status");
    if (!r) return r.error();
    return protocol::parse_job_status(*r);
}

// Prints a plain line whenever the state changes (when bars are off).
class PlainReporter {
  public:
    void report(const JobView& v) {
        auto& last = m_last[v.job_id];
        if (last == v.state) return;
        last = v.state;
        std::cerr << format_job_line(v, false) << "\n" << std::flush;
    }

  private:
    std::map<std::string, std::string> m_last;
};

// Follows one job to a terminal state: the events stream first, polling /status every second
// when the stream fails or ends early. Returns with the view unfinished when interrupted.
Result<JobView> follow_one(Session& s, JobView view) {
    StatusLine line(s.bars());
    PlainReporter plain;
    auto show = [&](bool force = false) {
        if (s.bars())
            line.update(format_job_line(view, true), force);
        else
            plain.report(view);
    };
    show(true);
    bool done = false;
    SseHandler handler = [&](const SseEvent& ev) {
        auto j = json::parse(ev.data, nullptr, false);
        if (j.is_discarded()) return true;
        if (ev.event == protocol::k_state_event) {
            auto st = protocol::parse_state_event(j);
            if (!st) return true;
            view.state = std::string(protocol::to_string(st->state));
            view.percent = st->progress_percent;
            view.message = st->message.value_or("");
            if (st->state != protocol::JobState::Running)
                view.fps = view.speed = view.eta_seconds = std::nullopt;
            if (protocol::is_terminal(st->state)) done = true;
            show(true);
        } else if (ev.event == protocol::k_progress_event) {
            auto p = protocol::parse_progress_event(j);
            if (!p) return true;
            view.percent = p->progress_percent;
            view.fps = p->fps;
            view.speed = p->speed;
            view.eta_seconds = p->eta_seconds;
            show();
        }
        return !done;
    };
    auto streamed = read_sse(s.http().options(), s.http().url_for("/jobs/" + view.job_id + "/events"),
                             handler, [] { return interrupted(); });
    if (!streamed &&
        (streamed.error().code == ErrorCode::Unauthenticated ||
         streamed.error().code == ErrorCode::Forbidden || streamed.error().code == ErrorCode::JobNotFound))
        return streamed.error();
    while (!done && !interrupted()) {
        auto st = fetch_status(s, view.job_id);
        if (!st) {
            if (st.error().code != ErrorCode::Unavailable) return st.error();
        } else {
            apply_status(view, *st);
            show(true);
            if (protocol::is_terminal(st->state)) break;
        }
        nap(std::chrono::seconds(1));
    }
    if (!interrupted()) {
        // The terminal state's details (failure message) come from the status object.
        if (auto st = fetch_status(s, view.job_id)) {
            int percent = view.percent;
            apply_status(view, *st);
            if (st->state != protocol::JobState::Completed) view.percent = percent;
        }
    }
    line.finish();
    if (!s.bars() && !interrupted()) plain.report(view);
    return view;
}

// Follows several jobs by polling, one line each (redrawn together on a terminal).
void follow_many(Session& s, std::vector<JobView>& views) {
    PlainReporter plain;
    bool drawn = false;
    auto draw = [&] {
        if (!s.bars()) {
            for (const auto& v : views) plain.report(v);
            return;
        }
        if (drawn) std::cerr << "\x1b[" << views.size() << "A";
        for (const auto& v : views) std::cerr << "\r" << format_job_line(v, true) << "\x1b[K\n";
        std::cerr << std::flush;
        drawn = true;
    };
    while (!interrupted()) {
        bool all_done = true;
        for (auto& v : views) {
            if (is_terminal_name(v.state)) continue;
            auto st = fetch_status(s, v.job_id);
            if (!st) {
                if (st.error().code != ErrorCode::Unavailable) s.fail(st.error());
                all_done = false;
                continue;
            }
            apply_status(v, *st);
            if (!is_terminal_name(v.state)) all_done = false;
        }
        draw();
        if (all_done) break;
        nap(std::chrono::seconds(1));
    }
}

// ------------------------------------------------------------------------------------------------
// Download

struct Downloaded {
    uint64_t size = 0;
    uint64_t resumed_from = 0;
    std::string sha256;
};

// Downloads a completed job's result to `out` (resuming out.part) and checks its SHA-256.
Result<Downloaded> download_result(Session& s, const std::string& job_id, const stdfs::path& out,
                                   const std::string& label) {
    auto job_json = s.http().call_json("GET", "/jobs/" + job_id);
    if (!job_json) return job_json.error();
    auto job = protocol::parse_job_resource(*job_json);
    if (!job) return job.error();
    if (job->state != protocol::JobState::Completed)
        return Error(ErrorCode::JobNotReady, "job " + job_id + " is " +
                                                 std::string(protocol::to_string(job->state)) +
                                                 "; there is no result to download");
    http::DownloadOptions opts;
    if (job->output.sha256) opts.headers.emplace_back("If-Range", "\"" + *job->output.sha256 + "\"");
    StatusLine line(s.bars());
    auto started = Clock::now();
    uint64_t base = 0;
    bool first = true;
    // Rate over what moved in this run, not the bytes already on disk.
    opts.progress = [&](uint64_t done, uint64_t total) {
        if (first) {
            base = done;
            first = false;
        }
        if (interrupted()) return false;
        double elapsed = seconds_since(started);
        uint64_t moved = done - std::min(done, base);
        std::string text = "download " + label + "  " +
                           format_transfer_line(moved, total > base ? total - base : 0, elapsed);
        if (base > 0) text += "  (resumed at " + format_bytes(base) + ")";
        line.update(text);
        return true;
    };
    std::error_code ec;
    if (!out.parent_path().empty()) stdfs::create_directories(out.parent_path(), ec);
    auto r = s.http().download_to_file("/jobs/" + job_id + "/result", out, opts);
    line.finish();
    if (!r) return r.error();
    const std::string& sha = r->sha256;  // hashed while it was written: no second read
    std::string expected = job->output.sha256.value_or("");
    if (auto etag = r->headers.get("ETag")) {
        std::string e = *etag;
        if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
        if (is_sha256_hex(e)) expected = e;
    }
    if (!expected.empty() && expected != sha) {
        stdfs::remove(out, ec);
        return Error(ErrorCode::Internal, "the downloaded file's SHA-256 (" + sha +
                                              ") does not match the server's (" + expected + "); removed " +
                                              out.string());
    }
    return Downloaded{r->size, r->resumed_from, sha};
}

// ------------------------------------------------------------------------------------------------
// submit

struct Planned {
    stdfs::path input;
    stdfs::path output;
    std::string container;
    std::string job_id;
    std::string state;
    std::string error;  // when this file failed
    int exit = 0;
};

// Submits p.input resumably: a JSON submit declaring the source's size and SHA-256, then
// PUT /jobs/{id}/source from the offset the server holds (HEAD), again from the new offset after a
// dropped connection. With an idempotency key a rerun (after a crash) gets the same job back and
// continues its upload where the server stopped; *resumed_from says where this one started.
Result<protocol::JobResource> upload_one(Session& s, const Planned& p, const TranscodeFlags& flags,
                                         const std::string& idempotency_key = "",
                                         uint64_t* resumed_from = nullptr) {
    auto job = build_job_json(flags, p.container, p.output.filename().string());
    if (!job) return job.error();
    std::error_code ec;
    const uint64_t size = stdfs::file_size(p.input, ec);
    if (ec) return Error::invalid("file", "cannot read " + p.input.string() + ": " + ec.message());
    const std::string label = p.input.filename().string();
    StatusLine line(s.bars());
    line.update("hashing " + label);
    auto sha = sha256_file(p.input);
    if (!sha) return sha.error();
    (*job)["source"] = json{{"size", size}, {"sha256", *sha}, {"filename", label}};

    http::Request submit;
    submit.method = "POST";
    submit.path_or_url = "/jobs";
    submit.body = job->dump();
    submit.content_type = "application/json";
    if (!idempotency_key.empty()) {
        submit.headers.emplace_back(std::string(protocol::k_idempotency_key_header), idempotency_key);
        submit.retry = true;  // the key makes a repeated POST the same job
    }
    auto created = s.http().request(submit);
    if (!created) return created.error();
    if (auto e = created->api_error()) return *e;
    auto body = created->json();
    if (!body) return body.error();
    auto resource = protocol::parse_job_resource(*body);
    if (!resource) return resource.error();
    const std::string source = "/jobs/" + resource->job_id + "/source";

    auto started = Clock::now();
    for (int attempt = 0; resource->state == protocol::JobState::AwaitingUpload; ++attempt) {
        if (interrupted()) return Error(ErrorCode::Unavailable, "interrupted");
        http::Request head;
        head.method = "HEAD";
        head.path_or_url = source;
        auto at = s.http().request(head);
        if (!at) return at.error();
        if (auto e = at->api_error()) return *e;
        uint64_t offset = 0;
        if (auto h = at->header(protocol::k_upload_offset_header))
            offset = std::strtoull(h->c_str(), nullptr, 10);
        if (offset > size) offset = 0;
        if (resumed_from && attempt == 0) *resumed_from = offset;
        http::Upload up;
        up.method = "PUT";
        up.path_or_url = source;
        up.retry = false;  // a failed PUT is continued from the server's offset, not resent whole
        if (offset > 0)
            up.headers.emplace_back("Content-Range", "bytes " + std::to_string(offset) + "-" +
                                                         std::to_string(size - 1) + "/" +
                                                         std::to_string(size));
        up.progress = [&](uint64_t done, uint64_t) {
            if (interrupted()) return false;
            std::string text =
                "upload " + label + "  " + format_transfer_line(offset + done, size, seconds_since(started));
            if (offset > 0) text += "  (resumed at " + format_bytes(offset) + ")";
            line.update(text);
            return true;
        };
        auto put = s.http().upload_file(up, p.input, offset);
        if (put && !put->api_error()) break;
        Error e = put ? *put->api_error() : put.error();
        // A dropped connection or a busy server: continue from what it holds. Anything else is final.
        const bool again = e.code == ErrorCode::Unavailable || e.code == ErrorCode::Conflict;
        if (!again || attempt >= 5 || interrupted()) return e;
        nap(std::chrono::milliseconds(500 * (attempt + 1)));
    }
    line.update("upload " + label + "  " + format_transfer_line(size, size, seconds_since(started)), true);
    line.finish();
    auto now = s.http().call_json("GET", "/jobs/" + resource->job_id);
    if (!now) return now.error();
    return protocol::parse_job_resource(*now);
}

int run_submit(Session& s, SubmitOptions& o) {
    if (o.files.size() > 1 && !o.output.empty())
        s.fail(Error::invalid("output", "-o/--output names one file: with several inputs use --output-dir"));
    std::optional<stdfs::path> explicit_out;
    if (!o.output.empty()) explicit_out = stdfs::path(o.output);
    std::optional<stdfs::path> out_dir;
    if (!o.output_dir.empty()) {
        out_dir = stdfs::path(o.output_dir);
        std::error_code ec;
        if (!stdfs::is_directory(*out_dir, ec))
            s.fail(Error::invalid("output-dir", o.output_dir + " is not a directory"));
    }
    auto container = resolve_container(o.flags, explicit_out);
    if (!container) s.fail(container.error());

    std::vector<Planned> plan;
    std::set<std::string> outputs;
    for (const auto& f : o.files) {
        Planned p;
        p.input = f;
        p.container = *container;
        p.output = explicit_out ? *explicit_out : derive_output_path(p.input, *container, out_dir);
        std::error_code ec;
        if (!o.detach && stdfs::exists(p.output, ec) && !o.force)
            s.fail(
                Error::invalid("output", p.output.string() + " already exists (use --force to overwrite)"));
        if (!outputs.insert(stdfs::absolute(p.output, ec).lexically_normal().string()).second)
            s.fail(Error::invalid("output", "two inputs would both be written to " + p.output.string()));
        plan.push_back(p);
    }

    std::signal(SIGINT, on_sigint);
    int worst = k_exit_ok;
    auto note_exit = [&](int code) {
        if (code == k_exit_interrupted || worst == k_exit_interrupted)
            worst = k_exit_interrupted;
        else
            worst = std::max(worst, code);
    };

    for (auto& p : plan) {
        if (interrupted()) break;
        auto job = upload_one(s, p, o.flags);
        if (interrupted()) {
            note_exit(k_exit_interrupted);
            break;
        }
        if (!job) {
            // One file refused: the others still go (a batch is not all-or-nothing).
            std::cerr << error_line(job.error()) << " (" << p.input.string() << ")\n";
            p.error = job.error().to_string();
            p.state = "error";
            p.exit = exit_code_for(job.error());
            note_exit(p.exit);
            if (p.exit == k_exit_unreachable) break;
            continue;
        }
        p.job_id = job->job_id;
        p.state = std::string(protocol::to_string(job->state));
        if (!s.json_mode()) std::cout << p.input.string() << " -> " << p.job_id << "\n" << std::flush;
    }

    auto cancel_open = [&] {
        for (auto& p : plan) {
            if (p.job_id.empty() || is_terminal_name(p.state)) continue;
            auto r = s.http().call_json("DELETE", "/jobs/" + p.job_id);
            if (r) {
                auto c = protocol::parse_cancel_reply(*r);
                if (c) p.state = std::string(protocol::to_string(c->state));
                std::cerr << "distconv: canceled " << p.job_id << " (" << p.state << ")\n";
            } else {
                std::cerr << error_line(r.error()) << "\n";
            }
        }
    };

    auto emit_json = [&] {
        if (!s.json_mode()) return;
        json jobs = json::array();
        for (const auto& p : plan) {
            json j{{"job_id", p.job_id.empty() ? json(nullptr) : json(p.job_id)},
                   {"input", p.input.string()},
                   {"output", p.output.string()},
                   {"state", p.state}};
            if (!p.error.empty()) j["error"] = p.error;
            jobs.push_back(j);
        }
        s.print_json(json{{"jobs", jobs}});
    };

    if (interrupted()) {
        cancel_open();
        emit_json();
        return k_exit_interrupted;
    }
    if (o.detach) {
        emit_json();
        return worst;
    }

    // Follow.
    std::vector<JobView> views;
    for (const auto& p : plan)
        if (!p.job_id.empty()) views.push_back(make_view(p.job_id, p.input.filename().string(), p.state));
    if (views.size() == 1) {
        auto v = follow_one(s, views.front());
        if (!v) s.fail(v.error());
        views.front() = *v;
    } else if (!views.empty()) {
        follow_many(s, views);
    }
    if (interrupted()) {
        for (auto& p : plan)
            for (const auto& v : views)
                if (v.job_id == p.job_id) p.state = v.state;
        cancel_open();
        emit_json();
        return k_exit_interrupted;
    }

    for (auto& p : plan) {
        if (p.job_id.empty()) continue;
        for (const auto& v : views)
            if (v.job_id == p.job_id) {
                p.state = v.state;
                if (v.state != "completed") p.error = v.message;
            }
        if (p.state != "completed") {
            std::cerr << "distconv: job " << p.job_id << " (" << p.input.string() << ") " << p.state
                      << (p.error.empty() ? "" : ": " + p.error) << "\n";
            note_exit(k_exit_job_failed);
            continue;
        }
        auto d = download_result(s, p.job_id, p.output, p.output.filename().string());
        if (interrupted()) {
            note_exit(k_exit_interrupted);
            break;
        }
        if (!d) {
            std::cerr << error_line(d.error()) << "\n";
            p.error = d.error().to_string();
            note_exit(exit_code_for(d.error()) == k_exit_usage ? k_exit_job_failed
                                                               : exit_code_for(d.error()));
            continue;
        }
        if (!s.json_mode())
            std::cout << p.output.string() << "  " << format_bytes(d->size) << "  sha256 " << d->sha256
                      << " ok\n";
    }
    emit_json();
    return worst;
}

// ------------------------------------------------------------------------------------------------
// library: plan, run, status

struct LibraryOptions {
    std::vector<std::string> dirs;
    TranscodeFlags flags;
    std::string rules_file;
    std::optional<double> settle_seconds;
    std::string output_dir;
    bool replace = false;
    std::string trash;
    bool delete_originals = false;
    bool allow_bigger = false;
    int max_in_flight = 0;  // 0: the online engines' slots
    std::string state_file;
    std::string ffprobe = "ffprobe";
};

struct LibraryItem {
    library::Found file;
    Result<media::ProbeInfo> probe = Error(ErrorCode::Internal, "not probed");
    library::Decision decision;
    nlohmann::json job;  // the job part (options + output_filename)
    media::JobOptions resolved;
    std::string container;
    // run
    std::string sha256, key, job_id, state, reason, output;
    uint64_t output_size = 0;
    std::optional<uint64_t> upload_resumed_from;  // where this run's upload started (0: from the start)
};

// Walks, probes (in parallel) and decides every file under the roots.
std::vector<LibraryItem> make_library_plan(Session& s, const LibraryOptions& o) {
    library::Rules rules;
    if (!o.rules_file.empty()) {
        std::ifstream in(o.rules_file);
        if (!in) s.fail(Error::invalid("rules", "cannot read " + o.rules_file));
        auto j = json::parse(in, nullptr, false);
        if (j.is_discarded()) s.fail(Error::invalid("rules", o.rules_file + " is not JSON"));
        auto r = library::parse_rules(j);
        if (!r) s.fail(r.error());
        rules = *r;
    }
    if (o.settle_seconds) rules.settle_seconds = *o.settle_seconds;
    auto container = resolve_container(o.flags, std::nullopt);
    if (!container) s.fail(container.error());
    std::vector<stdfs::path> roots(o.dirs.begin(), o.dirs.end());
    auto found = library::walk(roots);
    if (!found) s.fail(found.error());
    std::vector<LibraryItem> items(found->size());
    for (size_t i = 0; i < items.size(); ++i) items[i].file = (*found)[i];
    std::atomic<size_t> next{0};
    auto worker = [&] {
        for (size_t i; (i = next++) < items.size();)
            items[i].probe = library::probe_file(o.ffprobe, items[i].file.path);
    };
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < std::max(2u, std::min(8u, std::thread::hardware_concurrency())); ++t)
        pool.emplace_back(worker);
    for (auto& t : pool) t.join();
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         stdfs::file_time_type::clock::now().time_since_epoch())
                         .count();
    for (auto& it : items) {
        it.container = *container;
        auto name = stdfs::path(it.file.relative).filename();
        name.replace_extension("." + media::container_extension(*container));
        auto job = build_job_json(o.flags, *container, name.string());
        if (!job) s.fail(job.error());
        it.job = *job;
        json options = *job;
        options.erase("priority");
        auto resolved = media::parse_and_resolve(options);
        if (!resolved) s.fail(resolved.error());
        it.resolved = *resolved;
        const double age = static_cast<double>(now - it.file.mtime_ns) / 1e9;
        it.decision = library::decide(it.probe, it.resolved, rules, it.file, age);
    }
    return items;
}

json library_item_json(const LibraryItem& it) {
    json j{{"path", it.file.path.string()},
           {"relative", it.file.relative},
           {"size", it.file.size},
           {"verdict", library::to_string(it.decision.verdict)},
           {"reason", it.decision.reason}};
    if (it.decision.estimated_output_bytes) j["estimated_output_bytes"] = *it.decision.estimated_output_bytes;
    if (!it.state.empty()) j["state"] = it.state;
    if (!it.job_id.empty()) j["job_id"] = it.job_id;
    if (!it.output.empty()) j["output"] = it.output;
    if (it.output_size) j["output_size"] = it.output_size;
    if (!it.reason.empty()) j["result"] = it.reason;
    if (it.upload_resumed_from) j["upload_resumed_from"] = *it.upload_resumed_from;
    return j;
}

int run_library_plan(Session& s, const LibraryOptions& o) {
    auto items = make_library_plan(s, o);
    uint64_t in = 0;
    double out = 0;
    std::map<std::string, int> counts;
    json files = json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& it : items) {
        counts[std::string(library::to_string(it.decision.verdict))]++;
        if (it.decision.verdict == library::Verdict::Transcode) {
            in += it.file.size;
            out += it.decision.estimated_output_bytes.value_or(static_cast<double>(it.file.size));
        }
        files.push_back(library_item_json(it));
        rows.push_back({std::string(library::to_string(it.decision.verdict)), format_bytes(it.file.size),
                        it.file.relative, it.decision.reason});
    }
    const double saving = static_cast<double>(in) - out;
    if (s.json_mode()) {
        s.print_json(json{{"files", files},
                          {"totals",
                           {{"files", items.size()},
                            {"transcode", counts["transcode"]},
                            {"skip", counts["skip"]},
                            {"unreadable", counts["unreadable"]},
                            {"bytes_in", in},
                            {"estimated_bytes_out", static_cast<uint64_t>(std::max(0.0, out))},
                            {"estimated_saving_bytes", static_cast<int64_t>(saving)}}}});
        return k_exit_ok;
    }
    std::cout << render_table({"VERDICT", "SIZE", "FILE", "WHY"}, rows);
    std::cout << items.size() << " files: " << counts["transcode"] << " to transcode (" << format_bytes(in)
              << " -> about " << format_bytes(static_cast<uint64_t>(std::max(0.0, out))) << ", saving about "
              << format_bytes(static_cast<uint64_t>(std::max(0.0, saving))) << "), " << counts["skip"]
              << " to skip, " << counts["unreadable"] << " unreadable\n";
    return k_exit_ok;
}

int online_slots(Session& s) {
    auto r = s.http().call_json("GET", "/engines");
    if (!r) return 1;
    int slots = 0;
    for (const auto& e : r->value("items", json::array()))
        if (e.value("state", "") != "offline" && !e.value("drain_requested", false))
            slots += e.value("slots", 1);
    return std::max(1, slots);
}

// One pass over the library. `watching`: a pass of `library watch`, which says nothing when the
// pass did nothing.
int run_library_run(Session& s, LibraryOptions& o, bool watching = false) {
    if (o.output_dir.empty() == !o.replace)
        s.fail(Error::invalid("output-dir", "give exactly one of --output-dir MIRROR and --replace"));
    if (!o.replace && (!o.trash.empty() || o.delete_originals))
        s.fail(Error::invalid("trash", "--trash and --delete-originals go with --replace"));
    auto items = make_library_plan(s, o);
    auto db = library::StateDb::open(o.state_file.empty() ? library::default_state_file()
                                                          : stdfs::path(o.state_file));
    if (!db) s.fail(db.error());
    std::signal(SIGINT, on_sigint);
    const int window = o.max_in_flight > 0 ? o.max_in_flight : online_slots(s);

    std::vector<LibraryItem*> todo, in_flight;
    int already = 0;
    for (auto& it : items) {
        if (it.decision.verdict != library::Verdict::Transcode) continue;
        auto rec = (*db)->get(it.file.path.string());
        if (!rec) s.fail(rec.error());
        if (*rec && (*rec)->size == it.file.size && (*rec)->mtime_ns == it.file.mtime_ns) {
            const auto& r = **rec;
            it.sha256 = r.sha256;
            it.key = library::idempotency_key(r.sha256, it.job);
            if (r.options_key == it.key &&
                (r.state == "done" || r.state == "bigger" || r.state == "failed")) {
                it.state = r.state;
                it.job_id = r.job_id;
                it.reason = r.reason;
                it.output = r.output;
                it.output_size = r.output_size;
                if (r.state == "done" || r.state == "bigger") ++already;
                continue;
            }
            if (r.options_key == it.key && r.state == "submitted" && !r.job_id.empty()) {
                it.job_id = r.job_id;
                it.state = "submitted";
                in_flight.push_back(&it);
                continue;
            }
        }
        todo.push_back(&it);
    }

    int failed_now = 0;
    auto record = [&](LibraryItem& it) {
        if (it.state == "failed" || it.state == "bigger") ++failed_now;
        library::FileRecord r;
        r.path = it.file.path.string();
        r.size = it.file.size;
        r.mtime_ns = it.file.mtime_ns;
        r.sha256 = it.sha256;
        r.options_key = it.key;
        r.job_id = it.job_id;
        r.state = it.state;
        r.output = it.output;
        r.reason = it.reason;
        r.output_size = it.output_size;
        if (auto st = (*db)->put(r); !st) s.fail(st.error());
    };
    auto destination = [&](const LibraryItem& it) {
        return o.replace ? library::replace_path(it.file.path, it.container)
                         : library::mirror_path(o.output_dir, it.file.relative, it.container);
    };
    int transcoded_now = 0;
    const size_t total =
        static_cast<size_t>(std::count_if(items.begin(), items.end(), [](const LibraryItem& it) {
            return it.decision.verdict == library::Verdict::Transcode;
        }));
    // A finished job: download next to its destination, check it against its plan, place it.
    auto finish = [&](LibraryItem& it) {
        const auto dest = destination(it);
        const auto temp = library::temporary_path(dest);
        std::error_code ec;
        stdfs::create_directories(temp.parent_path(), ec);
        auto d = download_result(s, it.job_id, temp, it.file.relative);
        if (!d) {
            if (interrupted()) return;
            it.state = "failed";
            it.reason = "download: " + d.error().message;
        } else if (auto v = library::verify_result(o.ffprobe, temp, *it.probe, it.resolved); !v) {
            it.state = "failed";
            it.reason = v.error().message;
            stdfs::remove(temp, ec);
        } else if (d->size > it.file.size && !o.allow_bigger) {
            it.state = "bigger";
            it.reason = "the result (" + format_bytes(d->size) + ") is bigger than the source (" +
                        format_bytes(it.file.size) + "): not placed (--allow-bigger places it)";
            stdfs::remove(temp, ec);
        } else {
            std::optional<stdfs::path> original, trash;
            if (o.replace) {
                original = it.file.path;
                trash = o.trash.empty() ? stdfs::path(library::default_trash(it.file.root))
                                        : stdfs::path(o.trash);
            }
            if (auto st = library::place(temp, dest, original, trash, it.file.relative, o.delete_originals);
                !st) {
                it.state = "failed";
                it.reason = st.error().message;
            } else {
                ++transcoded_now;
                it.state = "done";
                it.output = dest.string();
                it.output_size = d->size;
                it.reason.clear();
            }
        }
        record(it);
    };

    StatusLine line(s.bars());
    size_t next = 0;
    auto counts = [&] {
        int done = 0, failed = 0;
        uint64_t before = 0, after = 0;
        for (const auto& it : items) {
            if (it.state == "done") {
                ++done;
                before += it.file.size;
                after += it.output_size;
            }
            if (it.state == "failed" || it.state == "bigger") ++failed;
        }
        return std::make_tuple(done, failed, before, after);
    };
    while (!interrupted() && (next < todo.size() || !in_flight.empty())) {
        while (!interrupted() && next < todo.size() && static_cast<int>(in_flight.size()) < window) {
            auto& it = *todo[next++];
            auto sha = sha256_file(it.file.path);
            if (!sha) {
                it.state = "failed";
                it.reason = sha.error().message;
                continue;
            }
            it.sha256 = *sha;
            it.key = library::idempotency_key(it.sha256, it.job);
            Planned p;
            p.input = it.file.path;
            p.output = stdfs::path(it.job.value("output_filename", "out"));
            p.container = it.container;
            uint64_t resumed = 0;
            auto job = upload_one(s, p, o.flags, it.key, &resumed);
            it.upload_resumed_from = resumed;
            if (interrupted()) break;
            if (!job) {
                if (exit_code_for(job.error()) == k_exit_unreachable) s.fail(job.error());
                it.state = "failed";
                it.reason = "submit: " + job.error().message;
                record(it);
                continue;
            }
            it.job_id = job->job_id;
            it.state = "submitted";
            record(it);
            in_flight.push_back(&it);
        }
        bool changed = false;
        for (auto i = in_flight.begin(); i != in_flight.end() && !interrupted();) {
            auto& it = **i;
            auto st = fetch_status(s, it.job_id);
            if (!st && st.error().code == ErrorCode::JobNotFound) {
                // The server no longer has it (its database was reset): submit again.
                it.state.clear();
                it.job_id.clear();
                todo.push_back(&it);
                i = in_flight.erase(i);
                continue;
            }
            if (!st) {
                if (exit_code_for(st.error()) == k_exit_unreachable) break;  // the server restarts: wait
                ++i;
                continue;
            }
            if (st->state == protocol::JobState::Completed) {
                finish(it);
            } else if (st->state == protocol::JobState::Failed || st->state == protocol::JobState::Canceled) {
                auto job = s.http().call_json("GET", "/jobs/" + it.job_id);
                it.state = "failed";
                it.reason = job && (*job).contains("failure_reason") && (*job)["failure_reason"].is_string()
                                ? (*job)["failure_reason"].get<std::string>()
                                : std::string(protocol::to_string(st->state));
                record(it);
            } else {
                ++i;
                continue;
            }
            changed = true;
            i = in_flight.erase(i);
        }
        auto [done, failed, before, after] = counts();
        line.update("library " + std::to_string(done) + "/" + std::to_string(total) + " done, " +
                    std::to_string(in_flight.size()) + " in flight, " + std::to_string(failed) + " failed, " +
                    format_bytes(before) + " -> " + format_bytes(after));
        if (!changed) nap(std::chrono::milliseconds(300));
    }
    line.finish();

    auto [done, failed, before, after] = counts();
    int skipped = 0, unreadable = 0;
    json files = json::array();
    for (const auto& it : items) {
        if (it.decision.verdict == library::Verdict::Skip) ++skipped;
        if (it.decision.verdict == library::Verdict::Unreadable) ++unreadable;
        files.push_back(library_item_json(it));
    }
    (void)done;
    const bool nothing = transcoded_now == 0 && failed == 0 && in_flight.empty() && next == todo.size();
    if (watching && transcoded_now == 0 && failed_now == 0)
        return interrupted() ? k_exit_interrupted : k_exit_ok;
    if (s.json_mode()) {
        s.print_json(json{{"files", files},
                          {"totals",
                           {{"transcoded", transcoded_now},
                            {"already_done", already},
                            {"skipped", skipped},
                            {"unreadable", unreadable},
                            {"failed", failed},
                            {"bytes_before", before},
                            {"bytes_after", after},
                            {"saved_bytes", static_cast<int64_t>(before) - static_cast<int64_t>(after)}}}});
    } else {
        for (const auto& it : items)
            if (it.state == "failed" || it.state == "bigger")
                std::cout << it.state << "  " << it.file.relative << ": " << it.reason << "\n";
        if (nothing && already > 0)
            std::cout << "nothing to do: " << already << " files were transcoded by an earlier run\n";
        std::cout << "transcoded " << transcoded_now << ", already done " << already << ", skipped "
                  << skipped << ", unreadable " << unreadable << ", failed " << failed << "; "
                  << format_bytes(before) << " -> " << format_bytes(after) << ", saved "
                  << format_bytes(before > after ? before - after : 0) << "\n";
    }
    if (interrupted()) {
        std::cerr << "distconv: interrupted; `distconv library run` again resumes where this one stopped\n";
        return k_exit_interrupted;
    }
    return failed > 0 ? k_exit_job_failed : k_exit_ok;
}

// Watches the library's directories (inotify; a rescan every --interval as the fallback, and for
// whatever inotify missed) and runs a pass after changes have settled, until Ctrl-C.
int run_library_watch(Session& s, LibraryOptions& o, double interval_seconds) {
    std::signal(SIGINT, on_sigint);
    std::signal(SIGTERM, on_sigint);
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    auto add_watches = [&] {
        if (fd < 0) return;
        for (const auto& d : o.dirs) {
            std::error_code ec;
            ::inotify_add_watch(fd, d.c_str(), IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY);
            for (auto it = stdfs::recursive_directory_iterator(d, ec);
                 !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec))
                if (it->is_directory(ec) && !it->is_symlink(ec))
                    ::inotify_add_watch(fd, it->path().c_str(),
                                        IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY);
        }
    };
    if (fd < 0)
        std::cerr << "distconv: inotify is not available; rescanning every " << interval_seconds << " s\n";
    if (!s.json_mode())
        std::cerr << "distconv: watching " << o.dirs.size() << " directories (Ctrl-C stops)\n";
    const double settle = o.settle_seconds.value_or(5);
    while (!interrupted()) {
        add_watches();  // new directories too; a directory watched twice keeps one watch
        int rc = k_exit_ok;
        try {
            rc = run_library_run(s, o, true);
        } catch (const Failure& f) {
            rc = f.code;  // printed already; a watch keeps going unless it was a usage error
            if (rc == k_exit_usage) return rc;
        }
        if (rc == k_exit_interrupted || interrupted()) break;
        if (rc == k_exit_unreachable) std::cerr << "distconv: the server cannot be reached; trying again\n";
        // Wait for a change or the interval; after a change, until nothing moved for the settle time
        // (a file still being copied is planned as "still being written" anyway).
        auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(interval_seconds * 1000));
        bool changed = false;
        while (!interrupted() && Clock::now() < until) {
            pollfd p{fd, POLLIN, 0};
            if (fd >= 0 && ::poll(&p, 1, 200) > 0) {
                char buf[16384];
                while (::read(fd, buf, sizeof buf) > 0) {
                }
                changed = true;
                until = std::min(until, Clock::now() + std::chrono::milliseconds(
                                                           static_cast<int64_t>(settle * 1000) + 200));
            } else if (fd < 0) {
                nap(std::chrono::milliseconds(200));
            }
        }
        (void)changed;
    }
    if (fd >= 0) ::close(fd);
    return k_exit_interrupted;
}

int run_library_status(Session& s, const LibraryOptions& o) {
    auto db = library::StateDb::open(o.state_file.empty() ? library::default_state_file()
                                                          : stdfs::path(o.state_file));
    if (!db) s.fail(db.error());
    json files = json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& d : o.dirs) {
        std::error_code ec;
        auto root = stdfs::canonical(d, ec);
        if (ec) s.fail(Error::invalid("dir", d + " is not a directory that can be read"));
        auto recs = (*db)->under(root.string());
        if (!recs) s.fail(recs.error());
        for (const auto& r : *recs) {
            files.push_back(json{{"path", r.path},
                                 {"state", r.state},
                                 {"job_id", r.job_id},
                                 {"output", r.output},
                                 {"size", r.size},
                                 {"output_size", r.output_size},
                                 {"reason", r.reason}});
            rows.push_back(
                {r.state, r.job_id, stdfs::path(r.path).lexically_relative(root).string(), r.reason});
        }
    }
    if (s.json_mode())
        s.print_json(json{{"files", files}});
    else
        std::cout << render_table({"STATE", "JOB", "FILE", "WHY"}, rows);
    return k_exit_ok;
}

// ------------------------------------------------------------------------------------------------
// Other commands

int run_status(Session& s, const std::string& id) {
    json j = s.call("GET", "/jobs/" + id + "/status");
    if (s.json_mode()) {
        s.print_json(j);
    } else {
        auto st = decode(s, protocol::parse_job_status(j));
        std::cout << "job       " << st.job_id << "\n"
                  << "state     " << protocol::to_string(st.state) << "\n"
                  << "progress  " << st.progress_percent << "%\n";
        if (st.queue_position) std::cout << "queue     position " << *st.queue_position << "\n";
        if (st.fps) std::cout << "fps       " << *st.fps << "\n";
        if (st.speed) std::cout << "speed     " << *st.speed << "x\n";
        if (st.eta_seconds) std::cout << "eta       " << format_duration(*st.eta_seconds) << "\n";
        if (st.message) std::cout << "message   " << *st.message << "\n";
        std::cout << "created   " << ts(st.created_at) << "\n"
                  << "started   " << ts(st.started_at) << "\n"
                  << "finished  " << ts(st.finished_at) << "\n";
        // What the output gets of each source stream, and the command that makes it.
        json job = s.call("GET", "/jobs/" + id);
        auto text = [&](const char* key) {
            auto it = job.find(key);
            return it != job.end() && it->is_string() ? it->get<std::string>() : std::string();
        };
        if (auto code = text("failure_code"); !code.empty()) {
            auto reason = text("failure_reason");
            std::cout << "failure   " << code << (reason.empty() ? "" : ": " + reason) << "\n";
        }
        auto streams = job.find("streams");
        auto lines = format_stream_plan(streams != job.end() ? *streams : json());
        if (!lines.empty()) {
            std::cout << "streams\n";
            for (const auto& l : lines) std::cout << "  " << l << "\n";
        }
        if (auto cmd = text("ffmpeg_command"); !cmd.empty()) std::cout << "command   " << cmd << "\n";
    }
    return k_exit_ok;
}

int run_list(Session& s, const ListOptions& o) {
    std::string path = "/jobs?limit=" + std::to_string(o.limit);
    if (!o.state.empty()) path += "&state=" + o.state;
    if (o.all) path += "&all=true";
    json j = s.call("GET", path);
    if (s.json_mode()) {
        s.print_json(j);
        return k_exit_ok;
    }
    auto list = decode(s, protocol::parse_job_list(j));
    std::vector<std::vector<std::string>> rows;
    for (const auto& it : list.items) {
        std::vector<std::string> row{it.job_id, std::string(protocol::to_string(it.state)),
                                     std::to_string(it.progress_percent) + "%", it.output_filename,
                                     ts(it.created_at)};
        if (o.all) row.insert(row.begin() + 1, it.owner);
        rows.push_back(row);
    }
    std::vector<std::string> headers{"ID", "STATE", "PROGRESS", "OUTPUT", "CREATED"};
    if (o.all) headers.insert(headers.begin() + 1, "OWNER");
    std::cout << render_table(headers, rows);
    if (list.total > static_cast<int64_t>(list.items.size()))
        std::cout << "(" << list.items.size() << " of " << list.total << " jobs; use --limit to see more)\n";
    return k_exit_ok;
}

int run_watch(Session& s, const std::vector<std::string>& ids) {
    std::signal(SIGINT, on_sigint);
    std::vector<JobView> views;
    for (const auto& id : ids) {
        auto st = fetch_status(s, id);
        if (!st) s.fail(st.error());
        JobView v = make_view(id, id, "");
        apply_status(v, *st);
        views.push_back(v);
    }
    if (views.size() == 1) {
        auto v = follow_one(s, views.front());
        if (!v) s.fail(v.error());
        views.front() = *v;
    } else {
        follow_many(s, views);
    }
    if (interrupted()) return k_exit_interrupted;
    if (s.json_mode()) {
        json items = json::array();
        for (const auto& v : views)
            items.push_back({{"job_id", v.job_id}, {"state", v.state}, {"message", v.message}});
        s.print_json(json{{"items", items}});
    }
    for (const auto& v : views)
        if (v.state != "completed") return k_exit_job_failed;
    return k_exit_ok;
}

int run_cancel(Session& s, const std::vector<std::string>& ids) {
    json answers = json::array();
    for (const auto& id : ids) {
        json j = s.call("DELETE", "/jobs/" + id);
        answers.push_back(j);
        if (!s.json_mode()) {
            auto c = decode(s, protocol::parse_cancel_reply(j));
            std::cout << c.job_id << "  " << protocol::to_string(c.state) << "\n";
        }
    }
    if (s.json_mode()) s.print_json(answers.size() == 1 ? answers[0] : json{{"items", answers}});
    return k_exit_ok;
}

int run_retry(Session& s, const std::string& id) {
    json j = s.call("POST", "/jobs/" + id + "/retry");
    if (s.json_mode()) {
        s.print_json(j);
    } else {
        auto job = decode(s, protocol::parse_job_resource(j));
        std::cout << job.job_id << "  " << protocol::to_string(job.state) << "\n";
    }
    return k_exit_ok;
}

int run_download(Session& s, const DownloadCommandOptions& o) {
    std::signal(SIGINT, on_sigint);
    stdfs::path out = o.output;  // the user's -o is used as given
    if (out.empty()) {
        json j = s.call("GET", "/jobs/" + o.job_id);
        auto job = decode(s, protocol::parse_job_resource(j));
        out = safe_local_name(job.output.filename, o.job_id + ".out");
    }
    std::error_code ec;
    if (stdfs::exists(out, ec) && !o.force)
        s.fail(Error::invalid("output", out.string() + " already exists (use --force to overwrite)"));
    auto d = download_result(s, o.job_id, out, out.filename().string());
    if (interrupted()) {
        std::cerr << "distconv: interrupted; run the same command again to resume from " << out.string()
                  << ".part\n";
        return k_exit_interrupted;
    }
    if (!d) s.fail(d.error());
    if (s.json_mode())
        s.print_json(json{{"job_id", o.job_id},
                          {"output", out.string()},
                          {"size", d->size},
                          {"sha256", d->sha256},
                          {"resumed_from", d->resumed_from}});
    else
        std::cout << out.string() << "  " << format_bytes(d->size) << "  sha256 " << d->sha256 << " ok"
                  << (d->resumed_from ? "  (resumed at " + format_bytes(d->resumed_from) + ")" : "") << "\n";
    return k_exit_ok;
}

int run_engines(Session& s) {
    json j = s.call("GET", "/engines");
    if (s.json_mode()) {
        s.print_json(j);
        return k_exit_ok;
    }
    auto items = decode(
        s, protocol::parse_items<protocol::EngineInfo>(
               j, [](const json& x, const std::string& p) { return protocol::parse_engine_info(x, p); }));
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : items) {
        char score[32] = "-";
        if (e.benchmark_score) std::snprintf(score, sizeof score, "%.1f", *e.benchmark_score);
        rows.push_back({e.engine_id, e.hostname, std::string(protocol::to_string(e.state)),
                        std::to_string(e.running_assignments.size()) + "/" + std::to_string(e.slots), score,
                        format_bytes(static_cast<uint64_t>(std::max<int64_t>(e.free_disk_bytes, 0))),
                        ts(e.last_seen_at)});
    }
    std::cout << render_table({"ID", "HOST", "STATE", "SLOTS", "SCORE", "FREE DISK", "LAST SEEN"}, rows);
    return k_exit_ok;
}

int run_pools(Session& s) {
    json j = s.call("GET", "/pools");
    if (s.json_mode()) {
        s.print_json(j);
        return k_exit_ok;
    }
    auto items = decode(s, protocol::parse_items<protocol::Pool>(j, [](const json& x, const std::string& p) {
                            return protocol::parse_pool(x, p);
                        }));
    auto b = [](int64_t v) { return format_bytes(static_cast<uint64_t>(std::max<int64_t>(v, 0))); };
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : items)
        rows.push_back({p.name, b(p.used_bytes), b(p.reserved_bytes), b(p.free_bytes),
                        p.capacity_bytes ? b(*p.capacity_bytes) : "-", p.writable ? "yes" : "no",
                        opt_str(p.path, "")});
    std::cout << render_table({"NAME", "USED", "RESERVED", "FREE", "CAPACITY", "WRITABLE", "PATH"}, rows);
    return k_exit_ok;
}

int run_presets(Session& s) {
    json j = s.call("GET", "/presets");
    if (s.json_mode()) {
        s.print_json(j);
        return k_exit_ok;
    }
    auto items =
        decode(s, protocol::parse_items<protocol::Preset>(
                      j, [](const json& x, const std::string& p) { return protocol::parse_preset(x, p); }));
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : items)
        rows.push_back({p.name, opt_str(p.options.container), opt_str(p.options.video.codec),
                        opt_str(p.options.audio.codec), p.description});
    std::cout << render_table({"NAME", "CONTAINER", "VIDEO", "AUDIO", "DESCRIPTION"}, rows);
    return k_exit_ok;
}

int run_keys_create(Session& s, const std::string& name, const std::string& role) {
    json j = s.call("POST", "/keys", json{{"name", name}, {"role", role}});
    if (s.json_mode()) {
        s.print_json(j);
        return k_exit_ok;
    }
    auto k = decode(s, protocol::parse_created_key(j));
    // The secret alone on stdout (for $(...)); what it is on stderr.
    std::cerr << "created key " << k.info.key_id << " (" << k.info.name << ", "
              << protocol::to_string(k.info.role) << "); it is shown only this once\n";
    std::cout << k.key << "\n";
    return k_exit_ok;
}

int run_keys_list(Session& s, bool all) {
    json j = s.call("GET", all ? "/keys?all=true" : "/keys");
    if (s.json_mode()) {
        s.print_json(j);
        return k_exit_ok;
    }
    auto items = decode(
        s, protocol::parse_items<protocol::ApiKeyInfo>(
               j, [](const json& x, const std::string& p) { return protocol::parse_api_key_info(x, p); }));
    std::vector<std::vector<std::string>> rows;
    for (const auto& k : items)
        rows.push_back({k.key_id, k.name, std::string(protocol::to_string(k.role)), k.prefix + "…",
                        ts(k.created_at), ts(k.last_used_at), k.revoked ? "yes" : "no"});
    std::cout << render_table({"ID", "NAME", "ROLE", "PREFIX", "CREATED", "LAST USED", "REVOKED"}, rows);
    return k_exit_ok;
}

int run_keys_revoke(Session& s, const std::string& id) {
    json j = s.call("DELETE", "/keys/" + id);
    if (s.json_mode()) {
        s.print_json(j);
    } else {
        auto k = decode(s, protocol::parse_api_key_info(j));
        std::cout << "revoked " << k.key_id << " (" << k.name << ")\n";
    }
    return k_exit_ok;
}

// ------------------------------------------------------------------------------------------------
// Interactive menu (no subcommand on a terminal)

std::string ask(const std::string& prompt) {
    std::cout << prompt << std::flush;
    std::string line;
    if (!std::getline(std::cin, line)) return "q";
    auto b = line.find_first_not_of(" \t");
    auto e = line.find_last_not_of(" \t\r");
    return b == std::string::npos ? "" : line.substr(b, e - b + 1);
}

int run_menu(const GlobalOptions& g) {
    std::cout << "distconv "
              << " — server " << g.server << "\n";
    int last = k_exit_ok;
    for (;;) {
        g_interrupted = 0;
        std::cout << "\n  1  submit a file\n  2  my jobs\n  3  all jobs (admin)\n  4  engines\n  5  download "
                     "a result\n"
                     "  q  quit\n";
        std::string choice = ask("> ");
        if (choice == "q" || choice == "quit") return last;
        try {
            Session s(g);
            if (choice == "1") {
                SubmitOptions o;
                std::string file = ask("file to transcode: ");
                if (file.empty()) continue;
                std::error_code ec;
                if (!stdfs::is_regular_file(file, ec)) {
                    std::cout << "no such file: " << file << "\n";
                    continue;
                }
                o.files = {file};
                std::string preset = ask("preset (Enter for the default, h264-web): ");
                if (!preset.empty()) o.flags.preset = preset;
                std::string out = ask("output file (Enter to put it next to the input): ");
                if (!out.empty()) o.output = out;
                last = run_submit(s, o);
            } else if (choice == "2") {
                last = run_list(s, ListOptions{});
            } else if (choice == "3") {
                ListOptions o;
                o.all = true;
                last = run_list(s, o);
            } else if (choice == "4") {
                last = run_engines(s);
            } else if (choice == "5") {
                DownloadCommandOptions o;
                o.job_id = ask("job id: ");
                if (o.job_id.empty()) continue;
                o.output = ask("save as (Enter for the job's output name): ");
                last = run_download(s, o);
            } else if (!choice.empty()) {
                std::cout << "choose 1-5 or q\n";
            }
        } catch (const Failure& f) {
            last = f.code;
        }
    }
}

}  // namespace

// ------------------------------------------------------------------------------------------------

int client_main(int argc, char** argv) {
    CLI::App app{"distconv: submit videos to a distconv dispatch server and fetch the results", "distconv"};
    app.fallthrough();  // global flags may also come after the subcommand
    app.require_subcommand(0, 1);
    app.footer(
        "Examples:\n"
        "  distconv submit clip.mov                      # upload, wait, download clip.mp4\n"
        "  distconv submit *.mkv --preset h264-web --output-dir out/ --detach\n"
        "  distconv list --state running\n"
        "\n"
        "Server and key: --server/--key, DISTCONV_SERVER/DISTCONV_API_KEY, or "
        "~/.config/distconv/client.ini.\n"
        "Exit codes: 0 ok, 1 job failed or canceled, 2 usage, 3 server unreachable or key refused, 130 "
        "interrupted.");

    GlobalOptions g;
    app.add_option("--server", g.server, "Dispatch server URL")
        ->envname("DISTCONV_SERVER")
        ->capture_default_str();
    app.add_option("--key", g.key, "API key (sent as a Bearer token)")->envname("DISTCONV_API_KEY");
    app.add_flag("--json", g.json, "Print one JSON document on stdout instead of tables");
    app.add_option("--ca-cert", g.ca_cert, "CA bundle to verify the server's TLS certificate")
        ->check(CLI::ExistingFile);
    app.add_option("--limit-upload", g.limit_upload, "Cap uploads at this many bytes per second (e.g. 20MB)")
        ->transform(CLI::AsSizeValue(false));
    app.add_flag("--allow-insecure", g.allow_insecure,
                 "Allow sending the key over plain http to a non-loopback host");

    // submit
    SubmitOptions submit;
    auto* sub = app.add_subcommand("submit", "Upload media files, transcode them and download the results");
    sub->add_option("files", submit.files, "Input media files")->required()->check(CLI::ExistingFile);
    auto* out_opt = sub->add_option("-o,--output", submit.output, "Output file (one input only)");
    sub->add_option("--output-dir", submit.output_dir,
                    "Directory for the outputs (default: next to each input)")
        ->excludes(out_opt);
    auto* preset_opt = sub->add_option("--preset", "Named preset (see `distconv presets`)");
    auto* vcodec_opt = sub->add_option(
        "--video-codec", "Video codec: libx264, libx265, libvpx-vp9, libaom-av1, copy, none ...");
    auto* crf_opt =
        sub->add_option("--crf", "Constant rate factor (quality; lower is better)")->check(CLI::Range(0, 63));
    auto* bitrate_opt = sub->add_option("--bitrate", "Video bitrate, e.g. 3M or 800k");
    auto* scale_opt = sub->add_option("--scale", "Scale to W:H, e.g. 1280:720 or -2:720");
    auto* fps_opt = sub->add_option("--fps", "Frame rate, e.g. 30 or 30000/1001");
    auto* acodec_opt =
        sub->add_option("--audio-codec", "Audio codec: aac, libopus, libmp3lame, flac, copy, none ...");
    auto* abitrate_opt = sub->add_option("--audio-bitrate", "Audio bitrate, e.g. 128k");
    auto* container_opt =
        sub->add_option("--container", "Output container: mp4, mkv, webm, mov, ts, m4a, mp3, ogg, flac");
    auto* prio_opt =
        sub->add_option("--priority", "Priority -100..100 (higher runs first)")->check(CLI::Range(-100, 100));
    auto* wait_flag =
        sub->add_flag("--wait", submit.wait, "Wait for the jobs and download the results (the default)");
    sub->add_flag("--detach", submit.detach, "Print the job ids and exit without waiting")
        ->excludes(wait_flag);
    sub->add_flag("--force", submit.force, "Overwrite existing output files");
    sub->footer(
        "Examples:\n"
        "  distconv submit clip.mov                         # -> clip.mp4 next to it\n"
        "  distconv submit clip.mov -o small.mkv --video-codec libx265 --crf 28 --scale -2:720\n"
        "  distconv submit a.mov b.mov c.mov --output-dir out/ --detach --json");

    // library
    LibraryOptions lib;
    auto* library_cmd = app.add_subcommand("library", "Normalize a media library: plan, run, status");
    library_cmd->require_subcommand(1);
    library_cmd->footer(
        "Examples:\n  distconv library plan ~/Videos --preset h265-archive\n"
        "  distconv library run ~/Videos --preset h265-archive --output-dir /mnt/new\n"
        "  distconv library status ~/Videos");
    auto add_selection = [&](CLI::App* c) {
        c->add_option("dirs", lib.dirs, "Library directories")->required()->check(CLI::ExistingDirectory);
        c->add_option("--preset", lib.flags.preset, "Named preset (see `distconv presets`)");
        c->add_option("--video-codec", lib.flags.video_codec,
                      "Video codec: libx264, libx265, libsvtav1, ...");
        c->add_option("--crf", lib.flags.crf, "Constant rate factor")->check(CLI::Range(0, 63));
        c->add_option("--audio-codec", lib.flags.audio_codec, "Audio codec: aac, libopus, flac, copy, ...");
        c->add_option("--container", lib.flags.container, "Output container: mkv, mp4, webm, ...");
        c->add_option("--rules", lib.rules_file, "JSON rules for what is already fine")
            ->check(CLI::ExistingFile);
        c->add_option("--settle", lib.settle_seconds,
                      "Seconds a file must be unchanged before it is taken (default 5)");
        c->add_option("--ffprobe", lib.ffprobe, "ffprobe program")->capture_default_str();
    };
    auto* lplan = library_cmd->add_subcommand("plan", "Probe every media file and say what a run would do");
    add_selection(lplan);
    lplan->footer("Example:\n  distconv library plan ~/Videos --preset h265-archive");
    auto* lrun =
        library_cmd->add_subcommand("run", "Transcode what the plan says, resumably, and place the results");
    add_selection(lrun);
    auto* lout = lrun->add_option("--output-dir", lib.output_dir, "Mirror the tree here with the results");
    lrun->add_flag("--replace", lib.replace, "Put each result in place of its original (moved to --trash)")
        ->excludes(lout);
    lrun->add_option("--trash", lib.trash,
                     "Where --replace moves originals (default <root>/.distconv-trash)");
    lrun->add_flag("--delete-originals", lib.delete_originals, "With --replace: delete originals instead");
    lrun->add_flag("--allow-bigger", lib.allow_bigger,
                   "Place a result even when it is bigger than its source");
    lrun->add_option("--max-in-flight", lib.max_in_flight,
                     "Jobs on the server at once (default: online slots)")
        ->check(CLI::Range(1, 1000));
    lrun->add_option("--state", lib.state_file, "The state database (default $XDG_STATE_HOME/distconv/)");
    lrun->footer(
        "Examples:\n  distconv library run ~/Videos --preset h265-archive --output-dir /mnt/new\n"
        "  distconv library run ~/Videos --preset h265-archive --replace --trash /mnt/old");
    double watch_interval = 30;
    auto* lwatch = library_cmd->add_subcommand(
        "watch", "Keep running: new or changed files are planned and run once they stop changing");
    add_selection(lwatch);
    auto* wout = lwatch->add_option("--output-dir", lib.output_dir, "Mirror the tree here with the results");
    lwatch->add_flag("--replace", lib.replace, "Put each result in place of its original (moved to --trash)")
        ->excludes(wout);
    lwatch->add_option("--trash", lib.trash,
                       "Where --replace moves originals (default <root>/.distconv-trash)");
    lwatch->add_flag("--allow-bigger", lib.allow_bigger,
                     "Place a result even when it is bigger than its source");
    lwatch
        ->add_option("--max-in-flight", lib.max_in_flight,
                     "Jobs on the server at once (default: online slots)")
        ->check(CLI::Range(1, 1000));
    lwatch->add_option("--state", lib.state_file, "The state database (default $XDG_STATE_HOME/distconv/)");
    lwatch->add_option("--interval", watch_interval, "Seconds between rescans (inotify wakes it sooner)")
        ->check(CLI::Range(0.2, 86400.0));
    lwatch->footer("Example:\n  distconv library watch ~/Videos --preset h265-archive --output-dir /mnt/new");
    auto* lstatus = library_cmd->add_subcommand("status", "What the state database says of a library");
    lstatus->add_option("dirs", lib.dirs, "Library directories")->required()->check(CLI::ExistingDirectory);
    lstatus->add_option("--state", lib.state_file, "The state database (default $XDG_STATE_HOME/distconv/)");
    lstatus->footer("Example:\n  distconv library status ~/Videos");

    std::string id_arg;
    auto* status_cmd = app.add_subcommand("status", "Show a job's state and progress");
    status_cmd->add_option("id", id_arg, "Job id")->required();
    status_cmd->footer("Example:\n  distconv status 01J9Z3K6Q8M1V7T2W4X5Y6Z7A8");

    ListOptions list;
    auto* list_cmd = app.add_subcommand("list", "List your jobs, newest first");
    list_cmd
        ->add_option("--state", list.state,
                     "Only jobs in this state (queued, running, completed, failed ...)")
        ->check(CLI::IsMember({"awaiting_upload", "queued", "assigned", "running", "canceling", "completed",
                               "failed", "canceled"}));
    list_cmd->add_flag("--all", list.all, "Everyone's jobs (admin key)");
    list_cmd->add_option("--limit", list.limit, "At most this many jobs (1-500)")
        ->check(CLI::Range(1, protocol::k_max_list_limit))
        ->capture_default_str();
    list_cmd->footer("Examples:\n  distconv list\n  distconv list --state failed --limit 10 --json");

    std::vector<std::string> ids;
    auto* watch_cmd = app.add_subcommand("watch", "Follow jobs until they finish (without downloading)");
    watch_cmd->add_option("ids", ids, "Job ids")->required();
    watch_cmd->footer("Example:\n  distconv watch 01J9Z3K6Q8M1V7T2W4X5Y6Z7A8");

    auto* cancel_cmd = app.add_subcommand("cancel", "Cancel jobs");
    cancel_cmd->add_option("ids", ids, "Job ids")->required();
    cancel_cmd->footer("Example:\n  distconv cancel 01J9Z3K6Q8M1V7T2W4X5Y6Z7A8");

    auto* retry_cmd = app.add_subcommand("retry", "Queue a failed or canceled job again");
    retry_cmd->add_option("id", id_arg, "Job id")->required();
    retry_cmd->footer("Example:\n  distconv retry 01J9Z3K6Q8M1V7T2W4X5Y6Z7A8");

    DownloadCommandOptions download;
    auto* download_cmd =
        app.add_subcommand("download", "Download a completed job's result (resumes an interrupted one)");
    download_cmd->add_option("id", download.job_id, "Job id")->required();
    download_cmd->add_option("-o,--output", download.output,
                             "Output file (default: the job's output name here)");
    download_cmd->add_flag("--force", download.force, "Overwrite an existing file");
    download_cmd->footer("Example:\n  distconv download 01J9Z3K6Q8M1V7T2W4X5Y6Z7A8 -o result.mp4");

    auto* engines_cmd = app.add_subcommand("engines", "List the transcoding engines");
    engines_cmd->footer("Example:\n  distconv engines --json");
    auto* pools_cmd = app.add_subcommand("pools", "List the storage pools and their free space");
    pools_cmd->footer("Example:\n  distconv pools");
    auto* presets_cmd = app.add_subcommand("presets", "List the named presets");
    presets_cmd->footer("Example:\n  distconv presets");

    auto* keys_cmd = app.add_subcommand("keys", "Manage API keys (admin key)");
    keys_cmd->require_subcommand(1);
    keys_cmd->footer(
        "Examples:\n  distconv keys create --name alice --role user\n  distconv keys list\n"
        "  distconv keys revoke alice");
    std::string key_name, key_role = "user";
    bool keys_all = false;
    auto* kcreate = keys_cmd->add_subcommand("create", "Create a key; prints the secret once");
    kcreate->add_option("--name", key_name, "Key name ([A-Za-z0-9._@-], 1-64)")->required();
    kcreate->add_option("--role", key_role, "Role")
        ->check(CLI::IsMember({"admin", "user", "engine"}))
        ->capture_default_str();
    kcreate->footer("Example:\n  distconv keys create --name alice --role user");
    auto* klist = keys_cmd->add_subcommand("list", "List keys (never their secrets)");
    klist->add_flag("--all", keys_all, "Include revoked keys");
    klist->footer("Example:\n  distconv keys list --json");
    auto* krevoke = keys_cmd->add_subcommand("revoke", "Revoke a key by id or name");
    krevoke->add_option("id", id_arg, "Key id or name")->required();
    krevoke->footer("Example:\n  distconv keys revoke alice");

    std::string home = std::getenv("HOME") ? std::getenv("HOME") : "";
    config::SourceSettings sources;
    if (!home.empty()) sources.default_files = {home + "/.config/distconv/client.ini"};
    config::add_sources(app, sources);

    auto parsed = config::parse(app, argc, argv, std::cout);
    if (!parsed) {
        std::cerr << error_line(parsed.error()) << "\nRun with --help for more information.\n";
        return k_exit_usage;
    }
    if (*parsed == config::Outcome::ExitSuccess) return k_exit_ok;

    if (auto st = check_key_transport(g.server, !g.key.empty(), g.allow_insecure); !st) {
        std::cerr << error_line(st.error()) << "\n";
        return k_exit_usage;
    }

    auto set_flags = [&] {
        auto str = [](CLI::Option* o) -> std::optional<std::string> {
            if (o->count() == 0) return std::nullopt;
            return o->as<std::string>();
        };
        submit.flags.preset = str(preset_opt);
        submit.flags.video_codec = str(vcodec_opt);
        if (crf_opt->count()) submit.flags.crf = crf_opt->as<int>();
        submit.flags.bitrate = str(bitrate_opt);
        submit.flags.scale = str(scale_opt);
        submit.flags.fps = str(fps_opt);
        submit.flags.audio_codec = str(acodec_opt);
        submit.flags.audio_bitrate = str(abitrate_opt);
        submit.flags.container = str(container_opt);
        if (prio_opt->count()) submit.flags.priority = prio_opt->as<int>();
    };

    try {
        if (app.get_subcommands().empty()) {
            if (::isatty(STDIN_FILENO) == 1) return run_menu(g);
            std::cerr << app.help()
                      << "distconv: a subcommand is required (stdin is not a terminal, so no menu)\n";
            return k_exit_usage;
        }
        Session s(g);
        if (sub->parsed()) {
            set_flags();
            return run_submit(s, submit);
        }
        if (status_cmd->parsed()) return run_status(s, id_arg);
        if (lplan->parsed()) return run_library_plan(s, lib);
        if (lrun->parsed()) return run_library_run(s, lib);
        if (lstatus->parsed()) return run_library_status(s, lib);
        if (lwatch->parsed()) return run_library_watch(s, lib, watch_interval);
        if (list_cmd->parsed()) return run_list(s, list);
        if (watch_cmd->parsed()) return run_watch(s, ids);
        if (cancel_cmd->parsed()) return run_cancel(s, ids);
        if (retry_cmd->parsed()) return run_retry(s, id_arg);
        if (download_cmd->parsed()) return run_download(s, download);
        if (engines_cmd->parsed()) return run_engines(s);
        if (pools_cmd->parsed()) return run_pools(s);
        if (presets_cmd->parsed()) return run_presets(s);
        if (kcreate->parsed()) return run_keys_create(s, key_name, key_role);
        if (klist->parsed()) return run_keys_list(s, keys_all);
        if (krevoke->parsed()) return run_keys_revoke(s, id_arg);
    } catch (const Failure& f) {
        return f.code;
    }
    std::cerr << app.help();
    return k_exit_usage;
}

}  // namespace distconv::client
