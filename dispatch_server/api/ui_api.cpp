#include "dispatch_server/api/ui_api.hpp"

#include "common/hash.hpp"
#include "dispatch_server/api/embedded_files.hpp"
#include "dispatch_server/api/encode.hpp"
#include "dispatch_server/service/sessions.hpp"
#include "protocol/json_fields.hpp"

namespace distconv::dispatch {

using namespace http_util;

namespace {

const ui::EmbeddedFile* find_file(std::string_view name) {
    for (const auto& f : ui::embedded_files())
        if (f.name == name) return &f;
    return nullptr;
}

void send_embedded(const httplib::Request& req, httplib::Response& res, std::string_view name) {
    const auto* file = find_file(name);
    if (!file) return send_error(res, Error(ErrorCode::NotFound, "no such file of the dashboard"));
    set_ui_security_headers(res);
    // Small files, revalidated on each load: a new server version is seen at once.
    res.set_header("Cache-Control", "no-cache");
    res.set_header("ETag", std::string(file->etag));
    if (req.get_header_value("If-None-Match") == file->etag) {
        res.status = 304;
        return;
    }
    res.status = 200;
    res.set_content(file->body.data(), file->body.size(), std::string(file->content_type).c_str());
}

nlohmann::json session_json(const BrowserSession& s, const SessionSettings& settings) {
    return {{"key_id", s.who.key_id},
            {"name", s.who.name},
            {"role", std::string(protocol::to_string(s.who.role))},
            {"csrf_token", s.csrf_token},
            {"expires_at", protocol::format_timestamp(to_timestamp(s.expires_at_ms))},
            {"idle_timeout_seconds", settings.idle.count() / 1000}};
}

std::string cookie(const httplib::Request& req, bool secure, const std::string& value, int64_t max_age_s) {
    secure = secure || req.get_header_value("X-Forwarded-Proto") == "https";
    return k_session_cookie + "=" + value + "; Path=/; Max-Age=" + std::to_string(max_age_s) +
           "; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "");
}

}  // namespace

void set_ui_security_headers(httplib::Response& res) {
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                   "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
                   "frame-ancestors 'none'");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
}

void install_ui_routes(Router& router, SessionService& sessions, bool secure_cookies) {
    router.add("GET", "/", [](const httplib::Request& req, httplib::Response& res) {
        send_embedded(req, res, "index.html");
    });
    router.add("GET", "/ui/([A-Za-z0-9_-]{1,64}\\.[a-z]{2,4})",
               [](const httplib::Request& req, httplib::Response& res) {
                   send_embedded(req, res, req.matches[1].str());
               });

    router.add("POST", "/api/v1/sessions",
               [&sessions, secure_cookies](const httplib::Request& req, httplib::Response& res) {
                   auto json = parse_json_body(req.body);
                   if (!json) return send_error(res, json.error());
                   if (!json->is_object() || !json->contains("key") || !(*json)["key"].is_string())
                       return send_error(res, Error::invalid("key", "send {\"key\": \"<API key>\"}"));
                   auto opened = sessions.open((*json)["key"].get<std::string>());
                   if (!opened) return send_error(res, opened.error());
                   res.set_header("Set-Cookie", cookie(req, secure_cookies, opened->token,
                                                       sessions.settings().absolute.count() / 1000));
                   res.set_header("Cache-Control", "no-store");
                   send_json(res, 201, session_json(opened->session, sessions.settings()));
               });
    router.add("GET", "/api/v1/sessions/current",
               [&sessions](const httplib::Request& req, httplib::Response& res) {
                   auto token = cookie_value(req, k_session_cookie);
                   if (!token) return send_error(res, Error(ErrorCode::Unauthenticated, "not signed in"));
                   auto session = sessions.resume(*token);
                   if (!session) return send_error(res, session.error());
                   res.set_header("Cache-Control", "no-store");
                   send_json(res, 200, session_json(*session, sessions.settings()));
               });
    router.add("DELETE", "/api/v1/sessions/current",
               [&sessions, secure_cookies](const httplib::Request& req, httplib::Response& res) {
                   auto token = cookie_value(req, k_session_cookie);
                   if (token) {
                       auto session = sessions.resume(*token);
                       if (session) {
                           if (!constant_time_equal(req.get_header_value(k_csrf_header.c_str()),
                                                    session->csrf_token))
                               return send_error(res, Error(ErrorCode::Forbidden,
                                                            "signing out needs the session's CSRF token in " +
                                                                k_csrf_header));
                           sessions.close(*token);
                       }
                   }
                   res.set_header("Set-Cookie", cookie(req, secure_cookies, "", 0));
                   res.status = 204;
               });
}

}  // namespace distconv::dispatch
