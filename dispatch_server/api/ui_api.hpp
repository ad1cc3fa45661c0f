#pragma once
// The web dashboard: its page and assets at / and /ui/ (compiled into the binary), and the sign-in
// sessions that let the page use the API without holding the key (/api/v1/sessions).

#include "dispatch_server/api/http_util.hpp"

namespace distconv::dispatch {

class SessionService;

// `secure_cookies`: the server speaks TLS, so the session cookie is marked Secure. Behind a TLS proxy
// that says `X-Forwarded-Proto: https` it is marked Secure too.
void install_ui_routes(http_util::Router& router, SessionService& sessions, bool secure_cookies);

// The headers every page and asset of the dashboard carries: a strict Content-Security-Policy (no
// inline script or style, nothing from another origin), no framing, no sniffing, no referrer.
void set_ui_security_headers(httplib::Response& res);

}  // namespace distconv::dispatch
