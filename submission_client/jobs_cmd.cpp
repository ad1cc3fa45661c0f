#include "submission_client/jobs_cmd.hpp"

#include "submission_client/command_util.hpp"
#include "submission_client/follow.hpp"
#include "submission_client/local_name.hpp"

#include <filesystem>
#include <iostream>

namespace distconv::client {

namespace stdfs = std::filesystem;
using nlohmann::json;

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

}  // namespace distconv::client
