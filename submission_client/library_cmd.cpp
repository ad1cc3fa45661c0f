#include "submission_client/library_cmd.hpp"

#include "common/hash.hpp"
#include "common/media/options.hpp"
#include "common/media/probe_file.hpp"
#include "submission_client/library.hpp"
#include "submission_client/library_state.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <thread>
#include <tuple>

namespace distconv::client {

namespace stdfs = std::filesystem;
using nlohmann::json;

namespace {

// ------------------------------------------------------------------------------------------------
// library: plan, run, status

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
    std::optional<uint64_t> upload_resumed_from;
    std::string
        server_state;  // the job's state last shown  // where this run's upload started (0: from the start)
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
            items[i].probe = media::probe_media_file(o.ffprobe, items[i].file.path);
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

}  // namespace

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

namespace {

int online_slots(Session& s) {
    auto r = s.api().engines();
    if (!r) return 1;
    int slots = 0;
    for (const auto& e : r->value("items", json::array()))
        if (e.value("state", "") != "offline" && !e.value("drain_requested", false))
            slots += e.value("slots", 1);
    return std::max(1, slots);
}

// The host name of the engine the job's latest attempt is on ("" when it has none): from the job's
// attempts, names looked up in the engine list once per engine not seen before.
std::string engine_of(Session& s, const std::string& job_id, std::map<std::string, std::string>& hosts) {
    auto job = s.api().job(job_id);
    if (!job) return "";
    const json attempts = job->value("attempts", json::array());
    if (!attempts.is_array() || attempts.empty() || !attempts.back().is_object()) return "";
    const std::string id = attempts.back().value("engine_id", "");
    if (id.empty()) return "";
    if (!hosts.count(id)) {
        if (auto list = s.api().engines())
            for (const auto& e : list->value("items", json::array()))
                if (e.is_object()) hosts[e.value("engine_id", "")] = e.value("hostname", "");
    }
    auto it = hosts.find(id);
    return it != hosts.end() && !it->second.empty() ? it->second : id;
}

}  // namespace

int run_library_run(Session& s, LibraryOptions& o, bool watching) {
    if (o.output_dir.empty() == !o.replace)
        s.fail(Error::invalid("output-dir", "give exactly one of --output-dir MIRROR and --replace"));
    if (!o.replace && (!o.trash.empty() || o.delete_originals))
        s.fail(Error::invalid("trash", "--trash and --delete-originals go with --replace"));
    auto items = make_library_plan(s, o);
    auto db = library::StateDb::open(o.state_file.empty() ? library::default_state_file()
                                                          : stdfs::path(o.state_file));
    if (!db) s.fail(db.error());
    install_interrupt_handler();
    const int window = o.max_in_flight > 0 ? o.max_in_flight : online_slots(s);

    std::vector<LibraryItem*> pending, in_flight;
    std::map<std::string, std::string> engine_hosts;  // engine id -> host name, for the per-file lines
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
        pending.push_back(&it);
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
    const auto run_started = Clock::now();
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
    while (!interrupted() && (next < pending.size() || !in_flight.empty())) {
        while (!interrupted() && next < pending.size() && static_cast<int>(in_flight.size()) < window) {
            auto& it = *pending[next++];
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
            p.sha256 = it.sha256;  // hashed once, for the key and the declared source
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
                pending.push_back(&it);
                i = in_flight.erase(i);
                continue;
            }
            if (!st) {
                if (exit_code_for(st.error()) == k_exit_unreachable) break;  // the server restarts: wait
                ++i;
                continue;
            }
            // One line per file whose state changed (the terminal's status line says the totals).
            if (std::string now(protocol::to_string(st->state)); now != it.server_state && !s.json_mode()) {
                it.server_state = now;
                std::string text = it.file.relative + ": " + now;
                if (st->progress_percent > 0) text += " " + std::to_string(st->progress_percent) + "%";
                if (st->fps) text += " fps " + std::to_string(static_cast<int>(*st->fps));
                if (st->eta_seconds) text += " ETA " + format_duration(*st->eta_seconds);
                if (st->state == protocol::JobState::Assigned || st->state == protocol::JobState::Running)
                    if (auto host = engine_of(s, it.job_id, engine_hosts); !host.empty())
                        text += " on " + host;
                line.finish();
                std::cerr << text << "\n" << std::flush;
            }
            if (st->state == protocol::JobState::Completed) {
                finish(it);
            } else if (st->state == protocol::JobState::Failed || st->state == protocol::JobState::Canceled) {
                auto job = s.api().job(it.job_id);
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
        const double elapsed = seconds_since(run_started);
        const int finished_now = transcoded_now + failed_now;
        const double eta =
            finished_now > 0
                ? elapsed / finished_now * static_cast<double>(pending.size() - next + in_flight.size())
                : -1;
        line.update(render_bar(total ? static_cast<double>(done) / static_cast<double>(total) : 0, 20) + " " +
                    std::to_string(done) + "/" + std::to_string(total) + " done, " +
                    std::to_string(in_flight.size()) + " in flight, " + std::to_string(failed) + " failed, " +
                    format_bytes(before) + " -> " + format_bytes(after) + "  ETA " + format_duration(eta));
        if (!changed) nap(std::chrono::milliseconds(300));
    }
    line.finish();

    auto [_, failed, before, after] = counts();
    int skipped = 0, unreadable = 0;
    json files = json::array();
    for (const auto& it : items) {
        if (it.decision.verdict == library::Verdict::Skip) ++skipped;
        if (it.decision.verdict == library::Verdict::Unreadable) ++unreadable;
        files.push_back(library_item_json(it));
    }
    const bool nothing = transcoded_now == 0 && failed == 0 && in_flight.empty() && next == pending.size();
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

int run_library_watch(Session& s, LibraryOptions& o, double interval_seconds) {
    install_interrupt_handler(true);
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
        while (!interrupted() && Clock::now() < until) {
            pollfd p{fd, POLLIN, 0};
            if (fd >= 0 && ::poll(&p, 1, 200) > 0) {
                char buf[16384];
                while (::read(fd, buf, sizeof buf) > 0) {
                }
                until = std::min(until, Clock::now() + std::chrono::milliseconds(
                                                           static_cast<int64_t>(settle * 1000) + 200));
            } else if (fd < 0) {
                nap(std::chrono::milliseconds(200));
            }
        }
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

}  // namespace distconv::client
