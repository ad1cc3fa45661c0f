#include "submission_client/app.hpp"

#include "common/config.hpp"
#include "common/hash.hpp"
#include "common/http/client.hpp"
#include "common/media/options.hpp"
#include "protocol/protocol.hpp"
#include "submission_client/core.hpp"
#include "submission_client/library_cmd.hpp"
#include "submission_client/local_name.hpp"
#include "submission_client/session.hpp"
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

// ------------------------------------------------------------------------------------------------
// Options

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
    auto streamed =
        read_sse(s.http().options(), s.api().events_url(view.job_id), handler, [] { return interrupted(); });
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
// submit

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

    install_interrupt_handler();
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
            auto r = s.api().cancel(p.job_id);
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
// Other commands

int run_status(Session& s, const std::string& id) {
    json j = s.must(s.api().status(id));
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
        json job = s.must(s.api().job(id));
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
    json j = s.must(s.api().list_jobs(o.limit, o.state, o.all));
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
    install_interrupt_handler();
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
        json j = s.must(s.api().cancel(id));
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
    json j = s.must(s.api().retry(id));
    if (s.json_mode()) {
        s.print_json(j);
    } else {
        auto job = decode(s, protocol::parse_job_resource(j));
        std::cout << job.job_id << "  " << protocol::to_string(job.state) << "\n";
    }
    return k_exit_ok;
}

int run_download(Session& s, const DownloadCommandOptions& o) {
    install_interrupt_handler();
    stdfs::path out = o.output;  // the user's -o is used as given
    if (out.empty()) {
        json j = s.must(s.api().job(o.job_id));
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
    json j = s.must(s.api().engines());
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
    json j = s.must(s.api().pools());
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
    json j = s.must(s.api().presets());
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
    json j = s.must(s.api().create_key(name, role));
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
    json j = s.must(s.api().list_keys(all));
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
    json j = s.must(s.api().revoke_key(id));
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
        clear_interrupted();  // a Ctrl-C ends the command it came in, not the menu
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
    // Where results go, and how many jobs at once: the same for run and watch.
    auto add_placement = [&](CLI::App* c) {
        auto* out = c->add_option("--output-dir", lib.output_dir, "Mirror the tree here with the results");
        c->add_flag("--replace", lib.replace, "Put each result in place of its original (moved to --trash)")
            ->excludes(out);
        c->add_option("--trash", lib.trash,
                      "Where --replace moves originals (default <root>/.distconv-trash)");
        c->add_flag("--delete-originals", lib.delete_originals, "With --replace: delete originals instead");
        c->add_flag("--allow-bigger", lib.allow_bigger,
                    "Place a result even when it is bigger than its source");
        c->add_option("--max-in-flight", lib.max_in_flight,
                      "Jobs on the server at once (default: online slots)")
            ->check(CLI::Range(1, 1000));
        c->add_option("--state", lib.state_file, "The state database (default $XDG_STATE_HOME/distconv/)");
    };
    auto* lrun =
        library_cmd->add_subcommand("run", "Transcode what the plan says, resumably, and place the results");
    add_selection(lrun);
    add_placement(lrun);
    lrun->footer(
        "Examples:\n  distconv library run ~/Videos --preset h265-archive --output-dir /mnt/new\n"
        "  distconv library run ~/Videos --preset h265-archive --replace --trash /mnt/old");
    double watch_interval = 30;
    auto* lwatch = library_cmd->add_subcommand(
        "watch", "Keep running: new or changed files are planned and run once they stop changing");
    add_selection(lwatch);
    add_placement(lwatch);
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
