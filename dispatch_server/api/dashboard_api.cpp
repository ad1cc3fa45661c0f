#include "dispatch_server/api/dashboard_api.hpp"

#include "dispatch_server/api/encode.hpp"
#include "dispatch_server/config.hpp"
#include "dispatch_server/service/auth.hpp"
#include "dispatch_server/service/engines.hpp"
#include "dispatch_server/service/jobs.hpp"
#include "dispatch_server/service/notifier.hpp"
#include "protocol/json_fields.hpp"

namespace distconv::dispatch {

using namespace http_util;

namespace {

void event_feed(const httplib::Request& req, httplib::Response& res, AuthService& auth, JobService& jobs,
                ChangeNotifier& notifier, LongRequestBudget& budget, const DispatchConfig& config) {
    auto who = authorize(auth, req, res, require_user);
    if (!who) return;
    const bool all = req.get_param_value("all") == "true";
    if (all && !who->is_admin())
        return send_error(res, Error(ErrorCode::Forbidden, "all=true needs an admin key"));
    // Without Last-Event-ID the stream starts now: the page has just read the list it shows.
    int64_t after = 0;
    if (req.has_header("Last-Event-ID")) {
        after = static_cast<int64_t>(parse_u64(req.get_header_value("Last-Event-ID")).value_or(0));
    } else {
        auto last = jobs.last_event_id();
        if (!last) return send_error(res, last.error());
        after = *last;
    }
    auto slot = budget.acquire("event streams", who->key_id, config.max_event_streams_per_key);
    if (!slot) {
        close_after_answer(req, res);
        return send_error(res, slot.error());
    }
    close_after_answer(req, res);  // an ended stream ends its connection (as a job's stream does)
    const auto ends_at =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(config.event_stream_max_ms);
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto last = std::make_shared<int64_t>(after);
    res.set_chunked_content_provider(
        "text/event-stream",
        [&jobs, &notifier, who = *who, all, last, slot = *slot, ends_at](size_t, httplib::DataSink& sink) {
            while (true) {
                uint64_t gen = notifier.generation();
                auto events = jobs.feed(who, all, *last);
                if (!events) {  // a read that fails ends the stream; the client resumes with Last-Event-ID
                    sink.done();
                    return true;
                }
                for (const auto& f : *events) {
                    JobRecord job;  // what an event's answer shows of its job
                    job.id = f.event.job_id;
                    job.progress_percent = f.job_progress_percent;
                    std::string msg = to_sse(f.event, job);
                    if (!sink.write(msg.data(), msg.size())) return false;
                    *last = f.event.id;
                }
                if (!events->empty()) continue;  // there may be more right away
                if (notifier.closed() || std::chrono::steady_clock::now() >= ends_at) {
                    sink.done();
                    return true;
                }
                auto wait = std::min<std::chrono::steady_clock::duration>(
                    std::chrono::seconds(5),
                    std::max<std::chrono::steady_clock::duration>(ends_at - std::chrono::steady_clock::now(),
                                                                  std::chrono::milliseconds(1)));
                if (notifier.wait_for_change(
                        gen, std::chrono::duration_cast<std::chrono::milliseconds>(wait)) == gen) {
                    static const std::string k_ping = ": keep-alive\n\n";
                    if (!sink.write(k_ping.data(), k_ping.size())) return false;
                }
            }
        });
}

void overview(const httplib::Request& req, httplib::Response& res, AuthService& auth, JobService& jobs,
              EngineService* engines) {
    auto who = authorize(auth, req, res, require_user);
    if (!who) return;
    auto o = jobs.overview(*who);
    if (!o) return send_error(res, o.error());
    nlohmann::json counts = nlohmann::json::object();
    for (auto state : protocol::k_all_job_states) {
        auto it = o->counts.find(state);
        counts[std::string(protocol::to_string(state))] = it == o->counts.end() ? 0 : it->second;
    }
    nlohmann::json throughput = nlohmann::json::array();
    for (size_t i = 0; i < o->throughput.completed.size(); ++i)
        throughput.push_back({{"at", protocol::format_timestamp(
                                         to_timestamp(o->since_ms + static_cast<int64_t>(i) * o->bucket_ms))},
                              {"completed", o->throughput.completed[i]},
                              {"failed", o->throughput.failed[i]}});
    auto views = jobs.views(o->failed);
    if (!views) return send_error(res, views.error());
    nlohmann::json failed = nlohmann::json::array();
    for (size_t i = 0; i < o->failed.size(); ++i)
        failed.push_back(protocol::to_json(to_summary(o->failed[i], (*views)[i].owner_name, std::nullopt)));
    nlohmann::json engine_counts = {{"online", 0}, {"draining", 0}, {"offline", 0}};
    nlohmann::json offline = nlohmann::json::array();
    if (engines) {
        auto list = engines->list_engines();
        if (!list) return send_error(res, list.error());
        for (const auto& e : *list) {
            if (e.state == EngineState::Offline) {
                engine_counts["offline"] = engine_counts["offline"].get<int>() + 1;
                if (offline.size() < 20) offline.push_back(protocol::to_json(e));
            } else if (e.state == EngineState::Draining) {
                engine_counts["draining"] = engine_counts["draining"].get<int>() + 1;
            } else {
                engine_counts["online"] = engine_counts["online"].get<int>() + 1;
            }
        }
    }
    send_json(res, 200,
              {{"jobs", counts},
               {"engines", engine_counts},
               {"throughput", throughput},
               {"failed_last_hour", failed},
               {"offline_engines", offline}});
}

}  // namespace

void install_dashboard_routes(Router& router, AuthService& auth, JobService& jobs, EngineService* engines,
                              ChangeNotifier& notifier, LongRequestBudget& budget,
                              const DispatchConfig& config) {
    router.add(
        "GET", "/api/v1/events",
        [&auth, &jobs, &notifier, &budget, &config](const httplib::Request& req, httplib::Response& res) {
            event_feed(req, res, auth, jobs, notifier, budget, config);
        });
    router.add("GET", "/api/v1/overview",
               [&auth, &jobs, engines](const httplib::Request& req, httplib::Response& res) {
                   overview(req, res, auth, jobs, engines);
               });
}

}  // namespace distconv::dispatch
