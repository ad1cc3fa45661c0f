#include "submission_client/follow.hpp"

#include "submission_client/sse_stream.hpp"

#include <iostream>
#include <map>

namespace distconv::client {

using nlohmann::json;

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

namespace {

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

}  // namespace

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

}  // namespace distconv::client
