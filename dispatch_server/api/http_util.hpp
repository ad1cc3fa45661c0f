#pragma once
// HTTP helpers shared by the API's route files (the only files that include httplib.h): the error
// envelope, JSON answers, Range and Content-Range parsing, file streaming, a route table that knows
// which methods a path allows (for 405), and authentication with a role check.

#include "common/byte_range.hpp"
#include "common/error.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace distconv::dispatch {
class AuthService;
struct Principal;
}  // namespace distconv::dispatch

namespace distconv::dispatch::http_util {

constexpr size_t k_max_json_body = 1 << 20;  // JSON bodies (and the multipart `job` part) up to 1 MiB
inline const std::string k_json = "application/json";
inline const std::string k_id = "([0-9A-Za-z]{1,64})";  // a path segment holding an id

void send_json(httplib::Response& res, int status, const nlohmann::json& body);
void send_error(httplib::Response& res, const Error& error);
// For answers sent before the request body was read (streaming routes): the unread bytes would be
// parsed as the next request on a kept-alive connection, so this connection ends after the answer.
void close_after_answer(const httplib::Request& req, httplib::Response& res);
Error error_for_status(int status);
std::optional<uint64_t> parse_u64(const std::string& s);

// A JSON request body (or the multipart `job` part): INVALID_ARGUMENT naming `field` when it is not
// valid JSON or nests deeper than k_max_json_depth (deep documents would exhaust the stack when
// copied or compared, which is recursive).
constexpr int k_max_json_depth = 64;
Result<nlohmann::json> parse_json_body(std::string_view text, const std::string& field = "body");

struct ContentRange {
    uint64_t first = 0, last = 0;
    std::optional<uint64_t> total;
};
// "bytes S-E/T" or "bytes S-E/*" (resumable uploads); none when empty.
Result<std::optional<ContentRange>> parse_content_range(const std::string& header);

std::string content_type_for(const std::string& filename);
std::string content_disposition(const std::string& filename);
// Answers GET of a stored file: 200 with all of it, or 206 with the one range a `Range` header asks
// (416 with `Content-Range: bytes */size` when it cannot be served), streamed without loading it.
// With `etag`, an `If-Range` naming another version gets all of it.
struct StoredFile {
    std::filesystem::path path;
    uint64_t size = 0;
    std::string content_type = "application/octet-stream";
    std::string etag;  // quoted, or empty
};
void send_file(const httplib::Request& req, httplib::Response& res, const StoredFile& file);

// Facts about the request being served on this thread: httplib runs the pre-routing handler, the
// route's handler, a content provider and the logger on the worker thread that read the request.
struct RequestTrace {
    std::string request_id;
    std::string route = "unmatched";  // the route's pattern with "{id}" for id segments
    std::chrono::steady_clock::time_point start{};
    uint64_t bytes_received = 0;  // streamed request bodies (uploads)
    uint64_t bytes_sent = 0;      // streamed response bodies (file downloads)
};
RequestTrace& current_request();
// "X-Request-Id" when it is 1-128 characters of [A-Za-z0-9._:-], else a new random id.
std::string request_id_for(const std::string& header_value);

// Records the route name for metrics and logs, and counts streamed upload bytes.
class Router {
  public:
    explicit Router(httplib::Server& server) : m_server(server) {}
    void add(const std::string& method, const std::string& pattern, httplib::Server::Handler handler);
    void add_streaming(const std::string& method, const std::string& pattern,
                       httplib::Server::HandlerWithContentReader handler);
    std::vector<std::string> methods_for(const std::string& path) const;
    bool is_streaming(const std::string& method, const std::string& path) const;

  private:
    struct Route {
        std::string method;
        std::regex pattern;
    };
    static std::string display_name(const std::string& pattern);
    httplib::Server& m_server;
    std::vector<Route> m_routes;
    std::vector<Route> m_streaming;
};

// The dashboard's session cookie and the header that proves a state-changing request comes from the
// dashboard's own page (the CSRF token of the session).
inline const std::string k_session_cookie = "distconv_session";
inline const std::string k_csrf_header = "X-CSRF-Token";
// The value of one cookie of the request's Cookie header(s), if it is there.
std::optional<std::string> cookie_value(const httplib::Request& req, const std::string& name);

// Authenticates the caller and applies `check` (require_user, require_admin, require_engine); sends
// the error and returns nullopt when either fails. Without an Authorization header, a dashboard
// session cookie authenticates too; then any method but GET and HEAD needs the session's CSRF token
// in X-CSRF-Token (FORBIDDEN otherwise).
std::optional<Principal> authorize(AuthService& auth, const httplib::Request& req, httplib::Response& res,
                                   Status (*check)(const Principal&));

}  // namespace distconv::dispatch::http_util
