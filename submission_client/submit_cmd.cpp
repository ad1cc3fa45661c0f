#include "submission_client/submit_cmd.hpp"

#include "submission_client/follow.hpp"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>

namespace distconv::client {

namespace stdfs = std::filesystem;
using nlohmann::json;

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

}  // namespace distconv::client
