#include "transcoding_engine/engine_api.hpp"

#include "common/hash.hpp"

#include <atomic>
#include <cctype>

namespace distconv::engine {
namespace {

std::string fencing(const protocol::Assignment& a) {
    return std::to_string(a.fencing_token);
}

// The headers of a byte transfer: the fencing token, and the assignment's credential instead of
// the engine key when the server issued one.
http::HeaderList transfer_headers(const protocol::Assignment& a) {
    http::HeaderList h{{std::string(protocol::k_fencing_token_header), fencing(a)}};
    if (!a.credential.empty()) h.emplace_back("Authorization", "Bearer " + a.credential);
    return h;
}

std::string assignment_path(const protocol::Assignment& a, const char* what) {
    return "/assignments/" + path_segment(a.assignment_id) + "/" + what;
}

}  // namespace

std::string path_segment(const std::string& id) {
    std::string out;
    for (unsigned char c : id) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out += '%' + to_hex(std::string(1, static_cast<char>(c)));
        }
    }
    return out;
}

HttpEngineApi::HttpEngineApi(const HttpEngineApiOptions& options) : m_server(options.server) {
    http::ClientOptions co;
    co.base_url = options.server + std::string(protocol::k_api_prefix);
    co.api_key = options.api_key;
    co.ca_file = options.ca_file;
    co.user_agent = "distconv-engine/0.1";
    m_client = std::make_unique<http::Client>(co);
}

Result<nlohmann::json> HttpEngineApi::post(const std::string& path, const nlohmann::json& body, bool retry) {
    http::Request req;
    req.method = "POST";
    req.path_or_url = path;
    req.body = body.dump();
    req.content_type = "application/json";
    req.retry = retry;
    req.timeout = std::chrono::seconds(60);
    auto r = http::expect_success(m_client->request(req));
    if (!r) return r.error();
    return r->json();
}

Result<protocol::EngineRegistrationReply> HttpEngineApi::register_engine(
    const protocol::EngineRegistration& reg) {
    auto j = post("/engines", protocol::to_json(reg), false);
    if (!j) return j.error();
    return protocol::parse_engine_registration_reply(*j);
}

Result<protocol::HeartbeatReply> HttpEngineApi::heartbeat(const std::string& engine_id,
                                                          const protocol::Heartbeat& hb) {
    // A heartbeat is cheap to repeat and the next one comes soon anyway: no retries here.
    auto j = post("/engines/" + path_segment(engine_id) + "/heartbeat", protocol::to_json(hb), false);
    if (!j) return j.error();
    return protocol::parse_heartbeat_reply(*j);
}

Result<std::optional<protocol::Assignment>> HttpEngineApi::claim(const std::string& engine_id,
                                                                 const protocol::ClaimRequest& request,
                                                                 const std::function<bool()>& abort) {
    http::Request req;
    req.method = "POST";
    req.path_or_url = "/engines/" + path_segment(engine_id) + "/claim";
    req.body = protocol::to_json(request).dump();
    req.content_type = "application/json";
    req.retry = false;  // a retried claim could take a second job the first answer already named
    req.timeout = std::chrono::seconds(request.wait_seconds + 15);
    if (abort) req.progress = [&abort](uint64_t, uint64_t) { return !abort(); };
    auto r = http::expect_success(m_client->request(req));
    if (!r) return r.error();
    if (r->status == 204) return std::optional<protocol::Assignment>();
    auto j = r->json();
    if (!j) return j.error();
    auto a = protocol::parse_assignment(*j);
    if (!a) return a.error();
    return std::optional<protocol::Assignment>(std::move(*a));
}

Result<protocol::ProgressReply> HttpEngineApi::progress(const std::string& assignment_id,
                                                        const protocol::ProgressReport& report) {
    auto j =
        post("/assignments/" + path_segment(assignment_id) + "/progress", protocol::to_json(report), true);
    if (!j) return j.error();
    return protocol::parse_progress_reply(*j);
}

std::string HttpEngineApi::source_url(const protocol::Assignment& a) const {
    // Always the configured server (check_assignment refused any other URL the claim named).
    return m_server + std::string(protocol::k_api_prefix) + assignment_path(a, "source");
}

Result<std::string> HttpEngineApi::read_source_range(const protocol::Assignment& a, uint64_t offset,
                                                     uint64_t length) {
    if (length == 0) return std::string();
    http::Request req;
    req.method = "GET";
    req.path_or_url = assignment_path(a, "source");
    req.headers = transfer_headers(a);
    req.headers.emplace_back("Range",
                             "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1));
    req.timeout = std::chrono::seconds(120);
    auto r = http::expect_success(m_client->request(req));
    if (!r) return r.error();
    if (r->status != 206 || r->body.size() > length)
        return Error(ErrorCode::Unavailable, "the server answered a source range request with HTTP " +
                                                 std::to_string(r->status) + " and " +
                                                 std::to_string(r->body.size()) + " bytes");
    return std::move(r->body);
}

Status HttpEngineApi::download_source(const protocol::Assignment& a, const std::filesystem::path& dest,
                                      const http::ProgressFn& progress) {
    http::DownloadOptions opts;
    opts.resume = true;
    opts.headers = transfer_headers(a);
    opts.progress = progress;
    auto r = m_client->download_to_file(source_url(a), dest, opts);
    if (!r) return r.error();
    return {};
}

Status HttpEngineApi::upload_output_file(const protocol::Assignment& a, const std::filesystem::path& file,
                                         const http::ProgressFn& progress) {
    const std::string path = assignment_path(a, "output");
    std::error_code ec;
    const uint64_t total = std::filesystem::file_size(file, ec);
    if (ec) return Error(ErrorCode::Internal, "output " + file.string() + ": " + ec.message());
    // Ask what the server already has (an earlier attempt of this same assignment may have been cut),
    // then send the rest. When the server holds more than we were told (the HTTP client retried a cut
    // PUT from the same offset after part of it had arrived), it answers 409 CONFLICT: ask again.
    Error last(ErrorCode::Internal, "output upload not attempted");
    for (int round = 0; round < 3; ++round) {
        uint64_t offset = 0;
        http::Request head;
        head.method = "HEAD";
        head.path_or_url = path;
        head.headers = transfer_headers(a);
        auto h = m_client->request(head);
        if (h && h->status == 409) return Error(ErrorCode::LeaseLost, "lease lost for " + a.assignment_id);
        if (h && h->success())
            if (auto v = h->header(protocol::k_upload_offset_header)) {
                try {
                    offset = std::stoull(*v);
                } catch (...) {
                    offset = 0;
                }
            }
        if (offset > total) offset = 0;
        http::Upload up;
        up.method = "PUT";
        up.path_or_url = path;
        up.headers = transfer_headers(a);
        if (offset > 0 && total > 0)
            up.headers.emplace_back("Content-Range", "bytes " + std::to_string(offset) + "-" +
                                                         std::to_string(total - 1) + "/" +
                                                         std::to_string(total));
        up.progress = progress;
        if (offset == total && total > 0) return {};
        auto r = http::expect_success(m_client->upload_file(up, file, offset));
        if (r) return {};
        if (r.error().code != ErrorCode::Conflict) return r.error();
        last = r.error();
    }
    return last;
}

Status HttpEngineApi::upload_output_stream(const protocol::Assignment& a, http::BodyReader reader) {
    http::Upload up;
    up.method = "PUT";
    up.path_or_url = assignment_path(a, "output");
    up.headers = transfer_headers(a);
    auto r = http::expect_success(m_client->upload_callback(up, std::move(reader)));
    if (!r) return r.error();
    return {};
}

Result<protocol::AssignmentAck> HttpEngineApi::complete(const std::string& assignment_id,
                                                        const protocol::CompleteRequest& request) {
    // Idempotent for the same token (see the spec), so retrying is safe.
    auto j =
        post("/assignments/" + path_segment(assignment_id) + "/complete", protocol::to_json(request), true);
    if (!j) return j.error();
    return protocol::parse_assignment_ack(*j);
}

Result<protocol::AssignmentAck> HttpEngineApi::fail(const std::string& assignment_id,
                                                    const protocol::FailRequest& request) {
    auto j = post("/assignments/" + path_segment(assignment_id) + "/fail", protocol::to_json(request), true);
    if (!j) return j.error();
    return protocol::parse_assignment_ack(*j);
}

}  // namespace distconv::engine
