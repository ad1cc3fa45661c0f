#include "dispatch_server/api/engine_api.hpp"

#include "dispatch_server/api/connection_gate.hpp"
#include "dispatch_server/service/auth.hpp"
#include "dispatch_server/service/engines.hpp"
#include "dispatch_server/service/jobs.hpp"
#include "protocol/json_fields.hpp"

#include <spdlog/spdlog.h>

namespace distconv::dispatch {

using namespace http_util;

namespace {

template <typename T>
Result<T> parse_body(const httplib::Request& req,
                     Result<T> (*parse)(const nlohmann::json&, const std::string&)) {
    auto json = parse_json_body(req.body);
    if (!json) return json.error();
    return parse(*json, "");
}

Result<std::optional<int64_t>> fencing_header(const httplib::Request& req, bool required) {
    const std::string name(protocol::k_fencing_token_header);
    if (!req.has_header(name)) {
        if (required) return Error::invalid(name, name + " is required");
        return std::optional<int64_t>{};
    }
    auto v = parse_u64(req.get_header_value(name));
    if (!v || *v > static_cast<uint64_t>(INT64_MAX))
        return Error::invalid(name, name + " must be a positive integer");
    return std::optional<int64_t>(static_cast<int64_t>(*v));
}

std::string base_url_of(const httplib::Request& req) {
    std::string host = req.get_header_value("Host");
    if (host.empty()) host = req.local_addr + ":" + std::to_string(req.local_port);
    return std::string(req.ssl ? "https" : "http") + "://" + host;
}

}  // namespace

void install_engine_routes(Router& router, AuthService& auth, EngineService& engines,
                           LongRequestBudget& budget, int max_claims_per_key) {
    router.add("GET", "/api/v1/engines", [&](const httplib::Request& req, httplib::Response& res) {
        if (!authorize(auth, req, res, require_user)) return;
        auto list = engines.list_engines();
        if (!list) return send_error(res, list.error());
        send_json(res, 200, protocol::items_to_json(*list));
    });
    router.add("POST", "/api/v1/engines", [&](const httplib::Request& req, httplib::Response& res) {
        auto who = authorize(auth, req, res, require_engine);
        if (!who) return;
        auto body = parse_body(req, protocol::parse_engine_registration);
        if (!body) return send_error(res, body.error());
        auto reply = engines.register_engine(*who, *body);
        if (!reply) return send_error(res, reply.error());
        send_json(res, 201, protocol::to_json(*reply));
    });
    router.add("POST", "/api/v1/engines/" + k_id + "/heartbeat",
               [&](const httplib::Request& req, httplib::Response& res) {
                   auto who = authorize(auth, req, res, require_engine);
                   if (!who) return;
                   auto body = parse_body(req, protocol::parse_heartbeat);
                   if (!body) return send_error(res, body.error());
                   auto reply = engines.heartbeat(*who, req.matches[1], *body);
                   if (!reply) return send_error(res, reply.error());
                   send_json(res, 200, protocol::to_json(*reply));
               });
    router.add(
        "POST", "/api/v1/engines/" + k_id + "/claim",
        [&, max_claims_per_key](const httplib::Request& req, httplib::Response& res) {
            auto who = authorize(auth, req, res, require_engine);
            if (!who) return;
            auto body = parse_body(req, protocol::parse_claim_request);
            if (!body) return send_error(res, body.error());
            // A long-poll holds this worker until work comes or it times out: bounded per key and overall.
            auto slot = budget.acquire("claim long-polls", who->key_id, max_claims_per_key);
            if (!slot) {
                close_after_answer(req, res);  // a refused caller does not keep a worker with its connection
                return send_error(res, slot.error());
            }
            // An engine that goes away while its claim waits takes no job; one whose answer cannot be
            // delivered gives the job back at once instead of holding it until the lease ends.
            auto assignment = engines.claim(*who, req.matches[1], *body, base_url_of(req),
                                            [] { return connection::peer_gone(); });
            if (!assignment) return send_error(res, assignment.error());
            if (*assignment && connection::peer_gone()) {
                if (auto st = engines.hand_back((*assignment)->assignment_id, (*assignment)->fencing_token);
                    !st)
                    spdlog::warn("could not hand back assignment {}: {}", (*assignment)->assignment_id,
                                 st.error().message);
                *assignment = std::nullopt;
            }
            if (!*assignment) {
                res.status = 204;
                return;
            }
            connection::on_unanswered(
                [&engines, id = (*assignment)->assignment_id, token = (*assignment)->fencing_token] {
                    if (auto st = engines.hand_back(id, token); !st)
                        spdlog::warn("could not hand back assignment {}: {}", id, st.error().message);
                });
            send_json(res, 200, protocol::to_json(**assignment));
        });
    for (const char* action : {"drain", "undrain"}) {
        bool drain = std::string(action) == "drain";
        router.add("POST", "/api/v1/engines/" + k_id + "/" + action,
                   [&, drain](const httplib::Request& req, httplib::Response& res) {
                       if (!authorize(auth, req, res, require_admin)) return;
                       auto info = engines.set_drain(req.matches[1], drain);
                       if (!info) return send_error(res, info.error());
                       send_json(res, 200, protocol::to_json(*info));
                   });
    }
    router.add("POST", "/api/v1/engines/" + k_id + "/benchmark",
               [&](const httplib::Request& req, httplib::Response& res) {
                   if (!authorize(auth, req, res, require_admin)) return;
                   auto info = engines.request_benchmark(req.matches[1]);
                   if (!info) return send_error(res, info.error());
                   send_json(res, 202, protocol::to_json(*info));
               });
    router.add("POST", "/api/v1/assignments/" + k_id + "/progress",
               [&](const httplib::Request& req, httplib::Response& res) {
                   auto who = authorize(auth, req, res, require_engine);
                   if (!who) return;
                   auto body = parse_body(req, protocol::parse_progress_report);
                   if (!body) return send_error(res, body.error());
                   auto reply = engines.progress(*who, req.matches[1], *body);
                   if (!reply) return send_error(res, reply.error());
                   send_json(res, 200, protocol::to_json(*reply));
               });
    // The byte transfers also take the assignment's own credential (credentials.hpp).
    router.add("GET", "/api/v1/assignments/" + k_id + "/source",
               [&](const httplib::Request& req, httplib::Response& res) {
                   auto who = authorize(auth, req, res, require_transfer);
                   if (!who) return;
                   auto token = fencing_header(req, false);
                   if (!token) return send_error(res, token.error());
                   auto file = engines.source(*who, req.matches[1], *token);
                   if (!file) return send_error(res, file.error());
                   res.set_header("Accept-Ranges", "bytes");
                   if (!file->sha256.empty()) res.set_header("ETag", "\"" + file->sha256 + "\"");
                   send_file(req, res,
                             StoredFile{file->path, file->size, "application/octet-stream",
                                        file->sha256.empty() ? "" : "\"" + file->sha256 + "\""});
               });
    // HEAD on the output: httplib routes HEAD to GET handlers, so GET answers the stored offset too.
    router.add("GET", "/api/v1/assignments/" + k_id + "/output",
               [&](const httplib::Request& req, httplib::Response& res) {
                   auto who = authorize(auth, req, res, require_transfer);
                   if (!who) return;
                   auto token = fencing_header(req, true);
                   if (!token) return send_error(res, token.error());
                   auto offset = engines.output_offset(*who, req.matches[1], **token);
                   if (!offset) return send_error(res, offset.error());
                   res.set_header(std::string(protocol::k_upload_offset_header), std::to_string(*offset));
                   send_json(res, 200,
                             protocol::to_json(protocol::OutputUploadStatus{req.matches[1],
                                                                            static_cast<int64_t>(*offset)}));
               });
    router.add_streaming(
        "PUT", "/api/v1/assignments/" + k_id + "/output",
        [&](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
            // A refused or cut upload's body may be unread: end the connection rather than parse it as a
            // request.
            struct CloseOnError {
                const httplib::Request& req;
                httplib::Response& res;
                ~CloseOnError() {
                    if (res.status >= 400) close_after_answer(req, res);
                }
            } close_on_error{req, res};
            auto who = authorize(auth, req, res, require_transfer);
            if (!who) return;
            std::string aid = req.matches[1];
            auto token = fencing_header(req, true);
            if (!token) return send_error(res, token.error());
            auto range = parse_content_range(req.get_header_value("Content-Range"));
            if (!range) return send_error(res, range.error());
            uint64_t start = *range ? (*range)->first : 0;
            auto plan = engines.begin_output_upload(*who, aid, **token, start);
            if (!plan) return send_error(res, plan.error());
            FileSink sink;
            if (auto st = sink.open(plan->part_path, plan->offset); !st) return send_error(res, st.error());
            sink.set_limit(plan->limit,
                           Error(ErrorCode::FileTooLarge, "the output is larger than this server accepts"));
            bool ok = reader([&](const char* data, size_t len) { return sink.write(data, len); });
            auto finished = sink.finish();
            res.set_header(std::string(protocol::k_upload_offset_header), std::to_string(sink.position()));
            if (auto outcome = upload_outcome(sink, ok, finished); !outcome)
                return send_error(res, outcome.error());
            send_json(
                res, 200,
                protocol::to_json(protocol::OutputUploadStatus{aid, static_cast<int64_t>(sink.position())}));
        });
    router.add("POST", "/api/v1/assignments/" + k_id + "/complete",
               [&](const httplib::Request& req, httplib::Response& res) {
                   auto who = authorize(auth, req, res, require_engine);
                   if (!who) return;
                   auto body = parse_body(req, protocol::parse_complete_request);
                   if (!body) return send_error(res, body.error());
                   auto ack = engines.complete(*who, req.matches[1], *body);
                   if (!ack) return send_error(res, ack.error());
                   send_json(res, 200, protocol::to_json(*ack));
               });
    router.add("POST", "/api/v1/assignments/" + k_id + "/fail",
               [&](const httplib::Request& req, httplib::Response& res) {
                   auto who = authorize(auth, req, res, require_engine);
                   if (!who) return;
                   auto body = parse_body(req, protocol::parse_fail_request);
                   if (!body) return send_error(res, body.error());
                   auto ack = engines.fail(*who, req.matches[1], *body);
                   if (!ack) return send_error(res, ack.error());
                   send_json(res, 200, protocol::to_json(*ack));
               });
}

}  // namespace distconv::dispatch
