#include "dispatch_server/api/http_util.hpp"

#include "common/hash.hpp"
#include "dispatch_server/api/connection_gate.hpp"
#include "dispatch_server/service/auth.hpp"
#include "dispatch_server/service/sessions.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <regex>

namespace distconv::dispatch::http_util {

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
    res.status = status;
    res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), k_json);
}

void send_error(httplib::Response& res, const Error& error) {
    send_json(res, http_status(error.code), error.to_json());
    if (error.code == ErrorCode::Unauthenticated) res.set_header("WWW-Authenticate", "Bearer");
}

void close_after_answer(const httplib::Request& req, httplib::Response& res) {
    // httplib decides from the request's Connection header whether to keep the connection.
    auto& headers = const_cast<httplib::Request&>(req).headers;
    headers.erase("Connection");
    headers.emplace("Connection", "close");
    res.set_header("Connection", "close");
    connection::close_after_answer();
}

Error error_for_status(int status) {
    switch (status) {
        case 400:
            return Error(ErrorCode::InvalidArgument, "the request is malformed");
        case 404:
            return Error(ErrorCode::NotFound, "no such endpoint");
        case 413:
            return Error(ErrorCode::FileTooLarge, "the request body is too large");
        case 414:
            return Error(ErrorCode::InvalidArgument, "the request URI is too long");
        case 416:
            return Error(ErrorCode::RangeNotSatisfiable, "the requested range is not satisfiable");
        case 431:
            return Error(ErrorCode::InvalidArgument, "the request headers are too large");
        case 500:
            return Error(ErrorCode::Internal, "internal error");
        case 503:
            return Error(ErrorCode::Unavailable, "the server is shutting down");
        default:
            return Error(status >= 500 ? ErrorCode::Internal : ErrorCode::InvalidArgument,
                         "HTTP " + std::to_string(status));
    }
}

std::optional<uint64_t> parse_u64(const std::string& s) {
    if (s.empty() || s.size() > 19) return std::nullopt;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return v;
}

Result<nlohmann::json> parse_json_body(std::string_view text, const std::string& field) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > k_max_json_depth)
                return Error::invalid(field, (field == "body" ? "the body" : "the '" + field + "' part") +
                                                 " is nested more than " + std::to_string(k_max_json_depth) +
                                                 " levels deep");
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    auto json = nlohmann::json::parse(text, nullptr, false);
    if (json.is_discarded())
        return Error::invalid(
            field, (field == "body" ? "the body" : "the '" + field + "' part") + " is not valid JSON");
    return json;
}

Result<std::optional<ContentRange>> parse_content_range(const std::string& header) {
    if (header.empty()) return std::optional<ContentRange>{};
    static const std::regex k_re(R"(^bytes (\d+)-(\d+)/(\d+|\*)$)");
    std::smatch m;
    if (!std::regex_match(header, m, k_re))
        return Error::invalid("Content-Range",
                              "Content-Range must be 'bytes first-last/total' or 'bytes first-last/*'");
    ContentRange r;
    auto a = parse_u64(m[1]), b = parse_u64(m[2]);
    if (!a || !b || *b < *a)
        return Error::invalid("Content-Range", "Content-Range has an empty or reversed range");
    r.first = *a;
    r.last = *b;
    if (m[3] != "*") {
        r.total = parse_u64(m[3]);
        if (!r.total || *r.total <= r.last)
            return Error::invalid("Content-Range", "Content-Range total is too small");
    }
    return std::optional<ContentRange>(r);
}

std::string content_type_for(const std::string& filename) {
    auto dot = filename.rfind('.');
    std::string ext = dot == std::string::npos ? "" : filename.substr(dot + 1);
    static const std::map<std::string, std::string> k_types{
        {"mp4", "video/mp4"},   {"mov", "video/quicktime"}, {"mkv", "video/x-matroska"},
        {"webm", "video/webm"}, {"ts", "video/mp2t"},       {"m4a", "audio/mp4"},
        {"mp3", "audio/mpeg"},  {"ogg", "audio/ogg"},       {"flac", "audio/flac"}};
    auto it = k_types.find(ext);
    return it == k_types.end() ? "application/octet-stream" : it->second;
}

std::string content_disposition(const std::string& filename) {
    std::string ascii, encoded;
    static const char* k_hex = "0123456789ABCDEF";
    for (unsigned char c : filename) {
        ascii.push_back((c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '_' : static_cast<char>(c));
        if (isalnum(c) || c == '.' || c == '-' || c == '_') {
            encoded.push_back(static_cast<char>(c));
        } else {
            encoded.push_back('%');
            encoded.push_back(k_hex[c >> 4]);
            encoded.push_back(k_hex[c & 15]);
        }
    }
    return "attachment; filename=\"" + ascii + "\"; filename*=UTF-8''" + encoded;
}

namespace {
// Streams [first, first+length) of a file to the client without loading it.
void send_file_range(httplib::Response& res, const std::filesystem::path& path, uint64_t first,
                     uint64_t length, const std::string& content_type) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        send_error(res, Error(ErrorCode::ResultGone, "the file is no longer stored"));
        return;
    }
    auto holder = std::make_shared<int>(fd);
    res.set_content_provider(
        static_cast<size_t>(length), content_type,
        [holder, first](size_t offset, size_t len, httplib::DataSink& sink) {
            std::vector<char> buf(std::min<size_t>(len, 1 << 20));
            ssize_t n = ::pread(*holder, buf.data(), buf.size(), static_cast<off_t>(first + offset));
            if (n <= 0) return false;
            current_request().bytes_sent += static_cast<uint64_t>(n);
            return sink.write(buf.data(), static_cast<size_t>(n));
        },
        [holder](bool) { ::close(*holder); });
}
}  // namespace

void send_file(const httplib::Request& req, httplib::Response& res, const StoredFile& file) {
    auto range = parse_byte_range(req.get_header_value("Range"), file.size);
    // If-Range with another ETag means the client's partial copy is stale: send it all.
    if (!file.etag.empty() && req.has_header("If-Range") && req.get_header_value("If-Range") != file.etag)
        range = std::optional<ByteRange>{};
    if (!range) {
        res.set_header("Content-Range", "bytes */" + std::to_string(file.size));
        return send_error(res, range.error());
    }
    if (!*range) {
        res.status = 200;
        return send_file_range(res, file.path, 0, file.size, file.content_type);
    }
    const auto& r = **range;
    res.status = 206;
    res.set_header("Content-Range", "bytes " + std::to_string(r.first) + "-" + std::to_string(r.last) + "/" +
                                        std::to_string(file.size));
    send_file_range(res, file.path, r.first, r.last - r.first + 1, file.content_type);
}

RequestTrace& current_request() {
    thread_local RequestTrace trace;
    return trace;
}

std::string request_id_for(const std::string& value) {
    bool ok = !value.empty() && value.size() <= 128;
    for (unsigned char c : value)
        ok = ok && (std::isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-');
    return ok ? value : random_token(12);
}

std::string Router::display_name(const std::string& pattern) {
    std::string out = pattern;
    for (size_t at = out.find(k_id); at != std::string::npos; at = out.find(k_id, at))
        out.replace(at, k_id.size(), "{id}");
    return out;
}

void Router::add(const std::string& method, const std::string& pattern, httplib::Server::Handler h) {
    m_routes.push_back({method, std::regex(pattern)});
    auto handler = [name = display_name(pattern), h = std::move(h)](const httplib::Request& req,
                                                                    httplib::Response& res) {
        current_request().route = name;
        h(req, res);
    };
    if (method == "GET")
        m_server.Get(pattern, std::move(handler));
    else if (method == "POST")
        m_server.Post(pattern, std::move(handler));
    else if (method == "PUT")
        m_server.Put(pattern, std::move(handler));
    else if (method == "DELETE")
        m_server.Delete(pattern, std::move(handler));
}

void Router::add_streaming(const std::string& method, const std::string& pattern,
                           httplib::Server::HandlerWithContentReader h) {
    m_routes.push_back({method, std::regex(pattern)});
    auto handler = [name = display_name(pattern), h = std::move(h)](const httplib::Request& req,
                                                                    httplib::Response& res,
                                                                    const httplib::ContentReader& reader) {
        auto& trace = current_request();
        trace.route = name;
        auto counting = [&trace](httplib::ContentReceiver receiver) {
            return [&trace, receiver = std::move(receiver)](const char* data, size_t len) {
                trace.bytes_received += len;
                return receiver(data, len);
            };
        };
        httplib::ContentReader counted(
            [&](httplib::ContentReceiver receiver) { return reader(counting(std::move(receiver))); },
            [&](httplib::MultipartContentHeader header, httplib::ContentReceiver receiver) {
                return reader(std::move(header), counting(std::move(receiver)));
            });
        h(req, res, counted);
    };
    m_streaming.push_back({method, std::regex(pattern)});
    if (method == "POST")
        m_server.Post(pattern, std::move(handler));
    else if (method == "PUT")
        m_server.Put(pattern, std::move(handler));
}

std::vector<std::string> Router::methods_for(const std::string& path) const {
    std::vector<std::string> out;
    for (const auto& r : m_routes)
        if (std::regex_match(path, r.pattern)) out.push_back(r.method);
    return out;
}

bool Router::is_streaming(const std::string& method, const std::string& path) const {
    for (const auto& r : m_streaming)
        if (r.method == method && std::regex_match(path, r.pattern)) return true;
    return false;
}

std::optional<std::string> cookie_value(const httplib::Request& req, const std::string& name) {
    const size_t count = req.get_header_value_count("Cookie");
    for (size_t i = 0; i < count; ++i) {
        const std::string value = req.get_header_value("Cookie", i);
        std::string_view header = value;
        while (!header.empty()) {
            size_t end = header.find(';');
            std::string_view pair = header.substr(0, end);
            header = end == std::string_view::npos ? std::string_view{} : header.substr(end + 1);
            while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
            size_t eq = pair.find('=');
            if (eq != std::string_view::npos && pair.substr(0, eq) == name)
                return std::string(pair.substr(eq + 1));
        }
    }
    return std::nullopt;
}

namespace {

Result<Principal> session_caller(AuthService& auth, const httplib::Request& req) {
    auto token = auth.sessions() ? cookie_value(req, k_session_cookie) : std::nullopt;
    if (!token) return auth.authenticate("");  // the usual "an API key is required"
    auto session = auth.sessions()->resume(*token);
    if (!session) return session.error();
    if (req.method != "GET" && req.method != "HEAD" &&
        !constant_time_equal(req.get_header_value(k_csrf_header.c_str()), session->csrf_token))
        return Error(
            ErrorCode::Forbidden,
            "a request signed in with the session cookie must carry its CSRF token in " + k_csrf_header);
    return session->who;
}

}  // namespace

std::optional<Principal> authorize(AuthService& auth, const httplib::Request& req, httplib::Response& res,
                                   Status (*check)(const Principal&)) {
    auto who = req.has_header("Authorization") ? auth.authenticate(req.get_header_value("Authorization"))
                                               : session_caller(auth, req);
    if (!who) {
        send_error(res, who.error());
        return std::nullopt;
    }
    if (check) {
        if (auto st = check(*who); !st) {
            send_error(res, st.error());
            return std::nullopt;
        }
    }
    return *who;
}

}  // namespace distconv::dispatch::http_util
