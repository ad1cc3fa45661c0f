#include "dispatch_server/api/http_api.hpp"

#include "common/fs.hpp"
#include "common/logging.hpp"
#include "common/media/options.hpp"
#include "common/time.hpp"
#include "dispatch_server/api/connection_gate.hpp"
#include "dispatch_server/api/dashboard_api.hpp"
#include "dispatch_server/api/encode.hpp"
#include "dispatch_server/api/engine_api.hpp"
#include "dispatch_server/api/http_util.hpp"
#include "dispatch_server/api/ui_api.hpp"
#include "dispatch_server/config.hpp"
#include "dispatch_server/metrics/metrics.hpp"
#include "dispatch_server/service/auth.hpp"
#include "dispatch_server/service/jobs.hpp"
#include "dispatch_server/service/notifier.hpp"
#include "protocol/admin.hpp"
#include "protocol/json_fields.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <regex>

namespace distconv::dispatch {

using namespace http_util;

struct HttpApi::Impl {
    ApiServices s;
    std::unique_ptr<httplib::Server> server_ptr;
    httplib::Server& server;
    LongRequestBudget budget;  // workers event streams and claim long-polls may hold
    Router router{server};
    std::atomic<bool> stopping{false};

    std::unique_ptr<httplib::Server> make_server(const DispatchConfig& config) {
        if (config.tls_cert.empty()) {
            // Plain HTTP: connections wait for their requests in the gate, not in a worker each.
            GateSettings g;
            g.workers = config.http_threads;
            g.header_timeout = std::chrono::milliseconds(config.header_timeout_ms);
            g.keep_alive_timeout = std::chrono::milliseconds(config.keep_alive_timeout_ms);
            g.body_timeout = std::max(std::chrono::milliseconds(30'000), 3 * g.header_timeout);
            g.max_connections = static_cast<size_t>(config.max_connections);
            g.is_streaming = [this](const std::string& method, const std::string& path) {
                return router.is_streaming(method, path);
            };
            return std::make_unique<GatedServer>(std::move(g));
        }
        // TLS: httplib's own server, a worker per connection (headers cannot be peeked under TLS).
        auto tls = std::make_unique<httplib::SSLServer>(config.tls_cert.c_str(), config.tls_key.c_str());
        auto threads = static_cast<size_t>(config.http_threads);
        tls->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
        // An idle connection holds a worker here: not for long.
        tls->set_keep_alive_timeout(2);
        return tls;
    }

    explicit Impl(ApiServices services)
        : s(services),
          server_ptr(make_server(services.config)),
          server(*server_ptr),
          budget(services.config.http_threads, services.config.http_reserve) {}

    // Every request gets an id (the client's X-Request-Id when sensible), echoed in the answer and
    // attached to every log line written while it is served, with the job or engine it names.
    void begin_request(const httplib::Request& req, httplib::Response& res) {
        auto& trace = current_request();
        trace = RequestTrace{};
        trace.start = std::chrono::steady_clock::now();
        trace.request_id = request_id_for(req.get_header_value("X-Request-Id"));
        res.set_header("X-Request-Id", trace.request_id);
        logging::clear_context();
        logging::set_context("request_id", trace.request_id);
        static const std::regex ids("^/api/v1/(jobs|engines|assignments)/([0-9A-Za-z]{1,64})(/.*)?$");
        std::smatch m;
        if (std::regex_match(req.path, m, ids)) {
            std::string kind = m[1];
            logging::set_context(kind == "jobs"      ? "job_id"
                                 : kind == "engines" ? "engine_id"
                                                     : "assignment_id",
                                 m[2]);
        }
    }

    void end_request(const httplib::Request& req, const httplib::Response& res) {
        auto& trace = current_request();
        if (trace.request_id.empty()) {  // refused before routing (a request httplib could not parse)
            trace.request_id = request_id_for("");
            trace.start = std::chrono::steady_clock::now();
        }
        double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - trace.start).count();
        uint64_t in = trace.bytes_received + req.body.size();
        uint64_t out = trace.bytes_sent + res.body.size();
        if (s.metrics) s.metrics->request_served(req.method, trace.route, res.status, seconds, in, out);
        auto level = res.status >= 500 ? spdlog::level::warn : spdlog::level::info;
        spdlog::log(level, "{} {} -> {} in {:.1f} ms ({} bytes in, {} out) from {}", req.method, req.path,
                    res.status, seconds * 1000.0, in, out, req.remote_addr);
        logging::clear_context();
        trace = RequestTrace{};
    }

    std::optional<Principal> user(const httplib::Request& req, httplib::Response& res) {
        return authorize(s.auth, req, res, require_user);
    }
    std::optional<Principal> admin(const httplib::Request& req, httplib::Response& res) {
        return authorize(s.auth, req, res, require_admin);
    }

    void send_job(httplib::Response& res, int status, const JobRecord& job) {
        auto view = s.jobs.view(job, true);
        if (!view) return send_error(res, view.error());
        res.set_header("ETag", job_etag(job));
        send_json(res, status,
                  protocol::to_json(
                      to_resource(job, view->owner_name, view->queue_position, view->attempts, view->tasks)));
    }

    Result<std::optional<std::string>> idempotency_key(const httplib::Request& req) {
        if (!req.has_header("Idempotency-Key")) return std::optional<std::string>{};
        std::string key = req.get_header_value("Idempotency-Key");
        bool ok = !key.empty() && key.size() <= 200;
        for (unsigned char c : key) ok = ok && c > 0x20 && c < 0x7f;
        if (!ok)
            return Error::invalid("Idempotency-Key",
                                  "Idempotency-Key must be 1-200 visible ASCII characters");
        return std::optional<std::string>(key);
    }

    // One Content-Length (a number; repeats must agree) or Transfer-Encoding, never both.
    static Status check_framing(const httplib::Request& req) {
        size_t lengths = req.get_header_value_count("Content-Length");
        for (size_t i = 0; i < lengths; ++i) {
            auto value = req.get_header_value("Content-Length", i);
            if (!parse_u64(value)) return Error::invalid("Content-Length", "Content-Length is not a number");
            if (value != req.get_header_value("Content-Length", 0))
                return Error::invalid("Content-Length",
                                      "the request has several different Content-Length headers");
        }
        if (lengths > 0 && req.has_header("Transfer-Encoding"))
            return Error::invalid("Content-Length",
                                  "send Content-Length or Transfer-Encoding: chunked, not both");
        return {};
    }

    // --- routes -----------------------------------------------------------------------------------
    void install() {
        server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
            begin_request(req, res);
            // Range is handled by our own handlers; httplib must not slice bodies (errors included).
            const_cast<httplib::Request&>(req).ranges.clear();
            if (stopping) {
                send_error(res, Error(ErrorCode::Unavailable, "the server is shutting down"));
                return httplib::Server::HandlerResponse::Handled;
            }
            // Framing that two parsers could read differently (request smuggling) is refused, on every route.
            if (auto framing = check_framing(req); !framing) {
                close_after_answer(req, res);
                send_error(res, framing.error());
                return httplib::Server::HandlerResponse::Handled;
            }
            // A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 6.3), but
            // httplib would read one until the client closes: `curl -X POST` with no data would hang until
            // the read timeout. Say so explicitly, so the body is read as empty at once.
            if ((req.method == "POST" || req.method == "PUT" || req.method == "DELETE" ||
                 req.method == "PATCH") &&
                !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding"))
                const_cast<httplib::Request&>(req).headers.emplace("Content-Length", "0");
            if (!router.is_streaming(req.method, req.path) &&
                (req.method == "POST" || req.method == "PUT" || req.method == "DELETE" ||
                 req.method == "PATCH")) {
                if (req.has_header("Content-Length")) {
                    auto len = parse_u64(req.get_header_value("Content-Length"));
                    if (*len > k_max_json_body) {
                        close_after_answer(req, res);  // the body is not read
                        send_error(res, Error(ErrorCode::FileTooLarge, "JSON bodies are limited to 1 MiB"));
                        return httplib::Server::HandlerResponse::Handled;
                    }
                } else if (req.has_header("Transfer-Encoding")) {
                    close_after_answer(req, res);
                    send_error(res,
                               Error::invalid("Content-Length",
                                              "send a Content-Length: chunked bodies are for uploads only"));
                    return httplib::Server::HandlerResponse::Handled;
                }
            }
            return httplib::Server::HandlerResponse::Unhandled;
        });
        server.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                             httplib::Response& res) {
            if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // already an envelope
            // A refused request's body may be unread: end the connection rather than parse it as a request.
            // So is a request httplib could not parse (bad request line, headers too large).
            if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding") ||
                res.status == 400 || res.status == 413 || res.status == 414 || res.status == 431)
                close_after_answer(req, res);
            if (res.status == 404 || res.status == 400) {
                auto allowed = router.methods_for(req.path);
                bool method_known = std::find(allowed.begin(), allowed.end(), req.method) != allowed.end() ||
                                    (req.method == "HEAD" &&
                                     std::find(allowed.begin(), allowed.end(), "GET") != allowed.end());
                if (!allowed.empty() && !method_known) {
                    std::string allow;
                    for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
                    if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end()) allow += ", HEAD";
                    res.set_header("Allow", allow);
                    send_error(res, Error(ErrorCode::MethodNotAllowed,
                                          req.method + " is not allowed here; use " + allow));
                    return httplib::Server::HandlerResponse::Handled;
                }
            }
            send_error(res, error_for_status(res.status));
            return httplib::Server::HandlerResponse::Handled;
        }));
        server.set_exception_handler(
            [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
                std::string what = "unknown";
                try {
                    std::rethrow_exception(ep);
                } catch (const std::exception& e) {
                    what = e.what();
                } catch (...) {
                }
                spdlog::error("unhandled exception in {} {}: {}", req.method, req.path, what);
                send_error(res, Error(ErrorCode::Internal, "internal error"));
            });
        server.set_logger(
            [this](const httplib::Request& req, const httplib::Response& res) { end_request(req, res); });

        if (s.engines) install_engine_routes(router, s.auth, *s.engines, budget, s.config.max_claims_per_key);
        if (s.sessions) install_ui_routes(router, *s.sessions, !s.config.tls_cert.empty());
        install_dashboard_routes(router, s.auth, s.jobs, s.engines, s.notifier, budget, s.config);
        router.add("GET", "/healthz", [](const httplib::Request&, httplib::Response& res) {
            send_json(res, 200, {{"status", "ok"}});
        });
        router.add("GET", "/readyz",
                   [this](const httplib::Request&, httplib::Response& res) { readyz(res); });
        router.add("GET", "/metrics",
                   [this](const httplib::Request&, httplib::Response& res) { metrics(res); });

        router.add_streaming("POST", "/api/v1/jobs",
                             [this](const httplib::Request& req, httplib::Response& res,
                                    const httplib::ContentReader& reader) {
                                 submit(req, res, reader);
                                 // Errors may come before the body was read (401, 507...): do not reuse the
                                 // connection.
                                 if (res.status >= 400) close_after_answer(req, res);
                             });
        router.add("GET", "/api/v1/jobs",
                   [this](const httplib::Request& req, httplib::Response& res) { list(req, res); });
        router.add("GET", "/api/v1/jobs/" + k_id,
                   [this](const httplib::Request& req, httplib::Response& res) {
                       get_job(req, res, req.matches[1]);
                   });
        router.add("DELETE", "/api/v1/jobs/" + k_id,
                   [this](const httplib::Request& req, httplib::Response& res) {
                       cancel(req, res, req.matches[1]);
                   });
        router.add("GET", "/api/v1/jobs/" + k_id + "/status",
                   [this](const httplib::Request& req, httplib::Response& res) {
                       status(req, res, req.matches[1]);
                   });
        router.add("GET", "/api/v1/jobs/" + k_id + "/events",
                   [this](const httplib::Request& req, httplib::Response& res) {
                       events(req, res, req.matches[1]);
                   });
        router.add(
            "POST", "/api/v1/jobs/" + k_id + "/retry",
            [this](const httplib::Request& req, httplib::Response& res) { retry(req, res, req.matches[1]); });
        router.add("GET", "/api/v1/jobs/" + k_id + "/source",
                   [this](const httplib::Request& req, httplib::Response& res) {
                       source_status(req, res, req.matches[1]);
                   });
        router.add_streaming("PUT", "/api/v1/jobs/" + k_id + "/source",
                             [this](const httplib::Request& req, httplib::Response& res,
                                    const httplib::ContentReader& reader) {
                                 upload_source(req, res, reader, req.matches[1]);
                                 if (res.status >= 400) close_after_answer(req, res);
                             });
        router.add("GET", "/api/v1/jobs/" + k_id + "/result",
                   [this](const httplib::Request& req, httplib::Response& res) {
                       result(req, res, req.matches[1]);
                   });
        router.add("GET", "/api/v1/presets", [this](const httplib::Request& req, httplib::Response& res) {
            if (!user(req, res)) return;
            std::vector<protocol::Preset> items;
            for (const auto& p : media::builtin_presets()) items.push_back(protocol::preset_from(p));
            send_json(res, 200, protocol::items_to_json(items));
        });
        router.add("GET", "/api/v1/pools",
                   [this](const httplib::Request& req, httplib::Response& res) { pools(req, res); });
        router.add("POST", "/api/v1/keys",
                   [this](const httplib::Request& req, httplib::Response& res) { create_key(req, res); });
        router.add("GET", "/api/v1/keys", [this](const httplib::Request& req, httplib::Response& res) {
            if (!admin(req, res)) return;
            auto keys = s.auth.list_keys(req.get_param_value("all") == "true");
            if (!keys) return send_error(res, keys.error());
            std::vector<protocol::ApiKeyInfo> items;
            for (const auto& k : *keys) items.push_back(AuthService::info(k));
            send_json(res, 200, protocol::items_to_json(items));
        });
        router.add("DELETE", "/api/v1/keys/" + k_id,
                   [this](const httplib::Request& req, httplib::Response& res) {
                       if (!admin(req, res)) return;
                       auto r = s.auth.revoke_key(req.matches[1]);
                       if (!r) return send_error(res, r.error());
                       send_json(res, 200, protocol::to_json(AuthService::info(*r)));
                   });
    }

    // Prometheus text format 0.0.4: gauges read from the store now, counters and histograms kept in memory.
    void metrics(httplib::Response& res) {
        auto g = s.jobs.gauges();
        if (!g) return send_error(res, g.error());  // a scrape that fails is a gap, never a wrong zero
        if (auto* gated = dynamic_cast<GatedServer*>(&server)) {
            auto c = gated->counters();
            g->connections = ConnectionGauges{static_cast<int64_t>(c.waiting),
                                              static_cast<int64_t>(c.serving),
                                              c.slow_headers_closed,
                                              c.slow_bodies_closed,
                                              c.refused_over_limit,
                                              static_cast<int64_t>(c.workers)};
        }
        static const Metrics empty;
        res.status = 200;
        res.set_content((s.metrics ? *s.metrics : empty).render(*g),
                        "text/plain; version=0.0.4; charset=utf-8");
    }

    void readyz(httplib::Response& res) {
        protocol::Readiness r;
        r.ready = !stopping;
        for (const auto& c : s.jobs.readiness()) {
            r.checks.push_back({c.name, c.ok, c.message});
            r.ready = r.ready && c.ok;
        }
        send_json(res, r.ready ? 200 : 503, protocol::to_json(r));
    }

    void submit(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
        auto who = user(req, res);
        if (!who) return;
        auto idem = idempotency_key(req);
        if (!idem) return send_error(res, idem.error());
        int64_t started_ms = to_unix_ms(std::chrono::system_clock::now());
        std::string content_type = req.get_header_value("Content-Type");
        Result<JobRecord> job = Error(ErrorCode::Internal, "unset");
        if (req.is_multipart_form_data()) {
            job = submit_multipart(req, reader, *who, *idem);
        } else if (content_type.rfind("application/json", 0) == 0) {
            std::string body;
            bool too_big = false;
            bool ok = reader([&](const char* data, size_t len) {
                if (body.size() + len > k_max_json_body) {
                    too_big = true;
                    return false;
                }
                body.append(data, len);
                return true;
            });
            if (too_big)
                return send_error(res, Error(ErrorCode::FileTooLarge, "JSON bodies are limited to 1 MiB"));
            if (!ok) return send_error(res, Error::invalid("body", "the request body was cut off"));
            auto json = parse_json_body(body);
            if (!json) return send_error(res, json.error());
            job = s.jobs.submit_json(*who, *json, *idem);
        } else {
            return send_error(res, Error(ErrorCode::UnsupportedMediaType,
                                         "send multipart/form-data (file + job) or application/json",
                                         {{"field", "Content-Type"}}));
        }
        if (!job) return send_error(res, job.error());
        res.set_header("Location", "/api/v1/jobs/" + job->id);
        // The same Idempotency-Key again answers the first job; mark replays so clients can tell.
        if (idem->has_value() && job->created_at < started_ms)
            res.set_header(std::string(protocol::k_idempotent_replayed_header), "true");
        send_job(res, 202, *job);
    }

    Result<JobRecord> submit_multipart(const httplib::Request& req, const httplib::ContentReader& reader,
                                       const Principal& who, const std::optional<std::string>& idem) {
        auto length = parse_u64(req.get_header_value("Content-Length"));
        if (!length)
            return Error::invalid("Content-Length",
                                  "a multipart submit needs a Content-Length (space is reserved first)");
        if (*length > s.config.max_upload_bytes + k_max_json_body)
            return Error(ErrorCode::FileTooLarge,
                         "the upload is larger than this server accepts (" +
                             std::to_string(s.config.max_upload_bytes) + " bytes)",
                         {{"max_bytes", s.config.max_upload_bytes}});
        auto target = s.jobs.reserve_multipart(who, *length);
        if (!target) return target.error();
        const auto& path = target->path;
        FileSink sink;
        std::string job_text, current, filename;
        bool have_file = false, have_job = false;
        std::optional<Error> problem;
        bool ok = reader(
            [&](const httplib::MultipartFormData& part) {
                current = part.name;
                if (part.name == "file") {
                    if (have_file) problem = Error::invalid("file", "send one 'file' part");
                    have_file = true;
                    filename = part.filename;
                    auto slash = filename.find_last_of("/\\");
                    if (slash != std::string::npos) filename = filename.substr(slash + 1);
                    if (filename.size() > 255 || filename.find('\0') != std::string::npos)
                        problem = Error::invalid("file", "the file name is too long or has NUL bytes");
                    if (!problem) {
                        if (auto st = sink.open(path, 0); !st) problem = st.error();
                    }
                } else if (part.name == "job") {
                    if (have_job) problem = Error::invalid("job", "send one 'job' part");
                    have_job = true;
                } else {
                    problem = Error::invalid(part.name.empty() ? "multipart" : part.name,
                                             "unknown form field '" + part.name + "': send 'file' and 'job'");
                }
                return !problem;
            },
            [&](const char* data, size_t len) {
                if (current == "file") {
                    if (sink.write(data, len)) return true;
                    problem = sink.error();
                    return false;
                }
                if (job_text.size() + len > k_max_json_body) {
                    problem = Error(ErrorCode::FileTooLarge, "the 'job' part is limited to 1 MiB",
                                    {{"field", "job"}});
                    return false;
                }
                job_text.append(data, len);
                return true;
            });
        auto finished = sink.finish();
        auto discard = [&](Error e) -> Result<JobRecord> {
            s.jobs.discard_multipart(*target);
            return e;
        };
        if (problem) return discard(*problem);
        if (!ok)
            return discard(Error::invalid("multipart", "the multipart body is malformed or was cut off"));
        if (!finished) return discard(finished.error());
        if (!have_job) return discard(Error::invalid("job", "the 'job' part (JSON options) is missing"));
        if (!have_file) return discard(Error::invalid("file", "the 'file' part (the media) is missing"));
        auto json = parse_json_body(job_text, "job");
        if (!json) return discard(json.error());
        return s.jobs.submit_multipart(who, *json, target->incoming, sink.position(), filename, idem,
                                       sink.sha256());
    }

    void list(const httplib::Request& req, httplib::Response& res) {
        auto who = user(req, res);
        if (!who) return;
        JobQuery q;
        // state=queued,running or state=queued&state=running
        for (size_t i = 0; i < req.get_param_value_count("state"); ++i) {
            std::string list = req.get_param_value("state", i);
            size_t start = 0;
            while (start <= list.size()) {
                size_t comma = list.find(',', start);
                std::string name =
                    list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                auto st = protocol::parse_job_state(name);
                if (!st) return send_error(res, Error::invalid("state", "unknown state '" + name + "'"));
                q.states.push_back(*st);
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
        }
        if (req.has_param("limit")) {
            auto limit = parse_u64(req.get_param_value("limit"));
            if (!limit || *limit < 1 || *limit > static_cast<uint64_t>(protocol::k_max_list_limit))
                return send_error(
                    res, Error::invalid("limit",
                                        "limit must be 1.." + std::to_string(protocol::k_max_list_limit)));
            q.limit = static_cast<int>(*limit);
        } else {
            q.limit = protocol::k_default_list_limit;
        }
        if (req.has_param("cursor")) {
            std::string cursor = req.get_param_value("cursor");
            static const std::regex k_cursor("^[0-9A-Z]{26}$");
            if (!std::regex_match(cursor, k_cursor))
                return send_error(res, Error::invalid("cursor", "the cursor is not valid"));
            q.cursor = cursor;
        }
        if (req.has_param("q")) {
            q.name_contains = req.get_param_value("q");
            if (q.name_contains.size() > 200)
                return send_error(res, Error::invalid("q", "q is at most 200 characters"));
        }
        if (req.has_param("sort")) {
            static const std::map<std::string, JobSort> k_sorts = {{"newest", JobSort::Newest},
                                                                   {"oldest", JobSort::Oldest},
                                                                   {"name", JobSort::Name},
                                                                   {"-name", JobSort::NameDesc}};
            auto it = k_sorts.find(req.get_param_value("sort"));
            if (it == k_sorts.end())
                return send_error(res, Error::invalid("sort", "sort is one of newest, oldest, name, -name"));
            q.sort = it->second;
        }
        if (req.has_param("engine")) {
            static const std::regex k_engine_id("^[0-9A-Za-z]{1,64}$");
            std::string engine = req.get_param_value("engine");
            if (!std::regex_match(engine, k_engine_id))
                return send_error(res, Error::invalid("engine", "engine is an engine id"));
            q.engine_id = engine;
        }
        bool all = req.get_param_value("all") == "true";
        if (all && !who->is_admin())
            return send_error(res, Error(ErrorCode::Forbidden, "all=true needs an admin key"));
        auto page = s.jobs.list(*who, q, all);
        if (!page) return send_error(res, page.error());
        auto views = s.jobs.views(page->items);
        if (!views) return send_error(res, views.error());
        protocol::JobList out;
        out.total = page->total;
        out.next_cursor = page->next_cursor;
        for (size_t i = 0; i < page->items.size(); ++i)
            out.items.push_back(
                to_summary(page->items[i], (*views)[i].owner_name, (*views)[i].queue_position));
        send_json(res, 200, protocol::to_json(out));
    }

    void get_job(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        auto who = user(req, res);
        if (!who) return;
        auto job = s.jobs.get(*who, id);
        if (!job) return send_error(res, job.error());
        std::string etag = job_etag(*job);
        if (req.get_header_value("If-None-Match") == etag) {
            res.status = 304;
            res.set_header("ETag", etag);
            return;
        }
        send_job(res, 200, *job);
    }

    void status(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        auto who = user(req, res);
        if (!who) return;
        auto job = s.jobs.get(*who, id);
        if (!job) return send_error(res, job.error());
        std::string etag = job_etag(*job);
        res.set_header("ETag", etag);
        if (req.get_header_value("If-None-Match") == etag) {
            res.status = 304;
            return;
        }
        auto position = s.jobs.queue_position(id);
        if (!position) return send_error(res, position.error());
        send_json(res, 200, protocol::to_json(to_status(*job, *position)));
    }

    void cancel(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        auto who = user(req, res);
        if (!who) return;
        auto job = s.jobs.cancel(*who, id);
        if (!job) return send_error(res, job.error());
        send_json(res, 202, protocol::to_json(protocol::CancelReply{job->id, job->state}));
    }

    void retry(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        auto who = user(req, res);
        if (!who) return;
        auto job = s.jobs.retry(*who, id);
        if (!job) return send_error(res, job.error());
        send_job(res, 202, *job);
    }

    void events(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        auto who = user(req, res);
        if (!who) return;
        auto job = s.jobs.get(*who, id);
        if (!job) return send_error(res, job.error());
        auto slot = budget.acquire("event streams", who->key_id, s.config.max_event_streams_per_key);
        if (!slot) {
            close_after_answer(req, res);  // a refused caller does not keep a worker with its connection
            return send_error(res, slot.error());
        }
        // A stream that ends (event-stream-max, a terminal state) ends its connection too: the
        // client's next stream is a new request anyway, and the gate holds no idle connection for it.
        close_after_answer(req, res);
        const auto ends_at =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(s.config.event_stream_max_ms);
        int64_t after = 0;
        if (req.has_header("Last-Event-ID"))
            after = static_cast<int64_t>(parse_u64(req.get_header_value("Last-Event-ID")).value_or(0));
        res.set_header("Cache-Control", "no-cache");
        res.set_header("X-Accel-Buffering", "no");
        auto last = std::make_shared<int64_t>(after);
        res.set_chunked_content_provider(
            "text/event-stream", [this, id, last, slot = *slot, ends_at](size_t, httplib::DataSink& sink) {
                while (true) {
                    uint64_t gen = s.notifier.generation();
                    // A read that fails ends the stream; the client resumes with Last-Event-ID.
                    auto current = s.jobs.current(id);
                    auto events = s.jobs.events(id, *last);
                    if (!current || !events) {
                        sink.done();
                        return true;
                    }
                    for (const auto& ev : *events) {
                        std::string msg = to_sse(ev, *current);
                        if (!sink.write(msg.data(), msg.size())) return false;
                        *last = ev.id;
                    }
                    // A stream ends when its job does, when the server stops, or at --event-stream-max (a job
                    // that never runs must not hold a worker for ever): the client resumes with
                    // Last-Event-ID.
                    if (protocol::is_terminal(current->state) || stopping || s.notifier.closed() ||
                        std::chrono::steady_clock::now() >= ends_at) {
                        sink.done();
                        return true;
                    }
                    auto wait = std::min<std::chrono::steady_clock::duration>(
                        std::chrono::seconds(5),
                        std::max<std::chrono::steady_clock::duration>(
                            ends_at - std::chrono::steady_clock::now(), std::chrono::milliseconds(1)));
                    if (s.notifier.wait_for_change(
                            gen, std::chrono::duration_cast<std::chrono::milliseconds>(wait)) == gen) {
                        static const std::string k_ping = ": keep-alive\n\n";
                        if (!sink.write(k_ping.data(), k_ping.size())) return false;
                    }
                }
            });
    }

    void source_status(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        auto who = user(req, res);
        if (!who) return;
        auto job = s.jobs.get(*who, id);
        if (!job) return send_error(res, job.error());
        auto offset = s.jobs.source_offset(*who, id);
        if (!offset) return send_error(res, offset.error());
        protocol::UploadStatus st;
        st.job_id = id;
        st.offset = static_cast<int64_t>(*offset);
        if (job->source_size) st.size = static_cast<int64_t>(*job->source_size);
        st.complete = job->state != JobState::AwaitingUpload;
        st.state = job->state;
        res.set_header(std::string(protocol::k_upload_offset_header), std::to_string(*offset));
        if (job->source_size)
            res.set_header(std::string(protocol::k_upload_length_header), std::to_string(*job->source_size));
        send_json(res, 200, protocol::to_json(st));
    }

    void upload_source(const httplib::Request& req, httplib::Response& res,
                       const httplib::ContentReader& reader, const std::string& id) {
        auto who = user(req, res);
        if (!who) return;
        // Every answer carries Upload-Offset (the spec), refusals too, so a client can resync.
        auto refuse = [&](const Error& e) {
            if (auto at = s.jobs.source_offset(*who, id))
                res.set_header(std::string(protocol::k_upload_offset_header), std::to_string(*at));
            send_error(res, e);
        };
        auto range = parse_content_range(req.get_header_value("Content-Range"));
        if (!range) return refuse(range.error());
        std::optional<uint64_t> length;
        if (req.has_header("Content-Length")) {
            length = parse_u64(req.get_header_value("Content-Length"));
            if (!length) return refuse(Error::invalid("Content-Length", "Content-Length is not a number"));
        }
        uint64_t start = *range ? (*range)->first : 0;
        if (*range && length && (*range)->last - (*range)->first + 1 != *length)
            return refuse(Error::invalid("Content-Range", "Content-Range does not match Content-Length"));
        auto plan =
            s.jobs.begin_source_upload(*who, id, start, length, *range ? (*range)->total : std::nullopt);
        if (!plan) return refuse(plan.error());
        FileSink sink;
        if (auto st = sink.open(plan->part_path, plan->offset); !st) {
            s.jobs.abandon_source_upload(id);
            return refuse(st.error());
        }
        sink.set_limit(plan->limit, Error(ErrorCode::FileTooLarge,
                                          "the upload is larger than the declared or allowed size (" +
                                              std::to_string(plan->limit) + " bytes)",
                                          {{"max_bytes", plan->limit}}));
        bool ok = reader([&](const char* data, size_t len) { return sink.write(data, len); });
        auto finished = sink.finish();
        bool complete_request = ok && !sink.error() && finished.ok();
        auto job = s.jobs.end_source_upload(id, sink.position(), complete_request, sink.sha256());
        res.set_header(std::string(protocol::k_upload_offset_header), std::to_string(sink.position()));
        if (auto outcome = upload_outcome(sink, ok, finished); !outcome)
            return send_error(res, outcome.error());
        if (!job) return send_error(res, job.error());
        protocol::UploadStatus st;
        st.job_id = id;
        st.offset = static_cast<int64_t>(sink.position());
        if (job->source_size) st.size = static_cast<int64_t>(*job->source_size);
        st.complete = job->state != JobState::AwaitingUpload;
        st.state = job->state;
        send_json(res, st.complete ? 201 : 200, protocol::to_json(st));
    }

    void result(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        auto who = user(req, res);
        if (!who) return;
        auto file = s.jobs.result(*who, id);
        if (!file) return send_error(res, file.error());
        std::string etag = "\"" + file->sha256 + "\"";
        res.set_header("ETag", etag);
        res.set_header("Accept-Ranges", "bytes");
        res.set_header("Content-Disposition", content_disposition(file->filename));
        if (req.get_header_value("If-None-Match") == etag) {
            res.status = 304;
            return;
        }
        send_file(req, res, StoredFile{file->path, file->size, content_type_for(file->filename), etag});
    }

    void pools(const httplib::Request& req, httplib::Response& res) {
        auto who = user(req, res);
        if (!who) return;
        auto usage = s.jobs.pool_usage();
        if (!usage) return send_error(res, usage.error());
        std::vector<protocol::Pool> items;
        for (const auto& u : *usage) {
            protocol::Pool out;
            out.name = u.name;
            if (who->is_admin()) out.path = u.root.string();
            if (u.cap_bytes) out.capacity_bytes = static_cast<int64_t>(*u.cap_bytes);
            out.reserved_bytes = static_cast<int64_t>(u.reserved_bytes);
            out.used_bytes = static_cast<int64_t>(u.used_bytes);
            out.free_bytes = static_cast<int64_t>(u.free_bytes);
            out.writable = u.writable;
            items.push_back(out);
        }
        send_json(res, 200, protocol::items_to_json(items));
    }

    void create_key(const httplib::Request& req, httplib::Response& res) {
        if (!admin(req, res)) return;
        auto json = parse_json_body(req.body);
        if (!json) return send_error(res, json.error());
        auto request = protocol::parse_create_key_request(*json);
        if (!request) return send_error(res, request.error());
        auto created = s.auth.create_key(request->name, request->role);
        if (!created) return send_error(res, created.error());
        protocol::CreatedKey out{AuthService::info(created->record), created->secret};
        send_json(res, 201, protocol::to_json(out));
    }
};

HttpApi::HttpApi(ApiServices services) : m_impl(std::make_unique<Impl>(services)) {
    m_impl->server.set_tcp_nodelay(true);
    m_impl->server.set_payload_max_length(
        static_cast<size_t>(services.config.max_upload_bytes + k_max_json_body));
    m_impl->server.set_read_timeout(std::chrono::seconds(60));
    m_impl->server.set_write_timeout(std::chrono::seconds(60));
    if (services.config.tls_cert.empty()) {
        // What the Keep-Alive header tells clients; the gate keeps these limits itself.
        m_impl->server.set_keep_alive_timeout(
            std::max<time_t>(1, services.config.keep_alive_timeout_ms / 1000));
        m_impl->server.set_keep_alive_max_count(1000000);
    }
    m_impl->install();
}

HttpApi::~HttpApi() {
    stop();
}

namespace {

// Debian's cpp-httplib 0.11 is a shared library that listens with a backlog of 5: a burst of new
// connections beyond it (a fleet of engines reconnecting, clients during a flood) waits for a SYN
// retransmit, a second or more. listen() again on the bound socket raises the backlog in place.
void raise_listen_backlog(int port) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
        const std::string name = entry.path().filename().string();
        char* end = nullptr;
        const long fd = std::strtol(name.c_str(), &end, 10);
        if (end == nullptr || *end != '\0' || fd < 0) continue;
        int accepting = 0;
        socklen_t len = sizeof accepting;
        if (::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 ||
            !accepting)
            continue;
        sockaddr_storage addr{};
        socklen_t alen = sizeof addr;
        if (::getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
        int bound = -1;
        if (addr.ss_family == AF_INET) bound = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
        if (addr.ss_family == AF_INET6) bound = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
        if (bound == port) ::listen(static_cast<int>(fd), SOMAXCONN);
    }
}

}  // namespace

Result<int> HttpApi::bind(const std::string& host, int port) {
    if (!m_impl->server.is_valid()) {
        const auto& c = m_impl->s.config;
        return Error(ErrorCode::InvalidArgument,
                     "cannot load the TLS certificate '" + c.tls_cert + "' and key '" + c.tls_key +
                         "': both must be PEM files, readable, and the key must belong to the certificate",
                     {{"field", "tls-cert"}});
    }
    int bound = port == 0 ? m_impl->server.bind_to_any_port(host)
                          : (m_impl->server.bind_to_port(host, port) ? port : -1);
    if (bound <= 0)
        return Error(ErrorCode::Unavailable, "cannot listen on " + host + ":" + std::to_string(port));
    raise_listen_backlog(bound);
    return bound;
}

void HttpApi::serve() {
    m_impl->server.listen_after_bind();
}

void HttpApi::stop() {
    m_impl->stopping = true;
    m_impl->s.notifier.close();
    m_impl->server.stop();
}

bool HttpApi::running() const {
    return m_impl->server.is_running();
}

}  // namespace distconv::dispatch
