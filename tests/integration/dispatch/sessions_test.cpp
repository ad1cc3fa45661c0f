// The dashboard's sign-in sessions and its page: the cookie's flags, CSRF on state-changing requests,
// revocation and expiry ending a session, engine keys refused, role checks kept, the page's headers,
// and --ui off.

#include "dispatch_server/service/sessions.hpp"
#include "tests/integration/dispatch/server_fixture.hpp"

#include <gtest/gtest.h>

#include <atomic>

namespace distconv::itest {
namespace {

using dispatch::Role;

// A client with no key: it authenticates with the session cookie it is given, if any.
struct Browser {
    http::Client client;
    std::string cookie;
    std::string csrf;

    explicit Browser(int port) : client(make_client(port, "")) {}
    http::Response send(const std::string& method, const std::string& path, const std::string& body = "",
                        bool with_csrf = true) {
        http::HeaderList headers;
        if (!cookie.empty()) headers.emplace_back("Cookie", "distconv_session=" + cookie);
        if (with_csrf && !csrf.empty()) headers.emplace_back("X-CSRF-Token", csrf);
        return call(client, method, path, body, body.empty() ? "" : "application/json", headers);
    }
    http::Response sign_in(const std::string& key) {
        auto r = send("POST", "/sessions", json{{"key", key}}.dump());
        auto set_cookie = r.header("Set-Cookie").value_or("");
        auto at = set_cookie.find("distconv_session=");
        if (r.status == 201 && at != std::string::npos) {
            auto value = set_cookie.substr(at + 17);
            cookie = value.substr(0, value.find(';'));
            csrf = body_json(r).value("csrf_token", "");
        }
        return r;
    }
};

TEST(SessionsTest, SignInSetsAStrictHttpOnlyCookieAndTheSessionActsAsItsKey) {
    test::TempDir dir;
    InProcessServer server(dir / "data");
    std::string admin = server.key("root", Role::Admin);
    Browser b(server.port());

    auto r = b.sign_in(admin);
    ASSERT_EQ(r.status, 201) << r.body;
    auto set_cookie = r.header("Set-Cookie").value_or("");
    EXPECT_NE(set_cookie.find("; HttpOnly"), std::string::npos) << set_cookie;
    EXPECT_NE(set_cookie.find("; SameSite=Strict"), std::string::npos) << set_cookie;
    EXPECT_NE(set_cookie.find("; Path=/"), std::string::npos) << set_cookie;
    EXPECT_EQ(set_cookie.find("Secure"), std::string::npos) << "plain HTTP: " << set_cookie;
    EXPECT_EQ(r.body.find(admin), std::string::npos) << "the key is never sent back";
    auto info = body_json(r);
    EXPECT_EQ(info["role"], "admin");
    EXPECT_EQ(info["name"], "root");
    EXPECT_FALSE(b.csrf.empty());

    EXPECT_EQ(b.send("GET", "/jobs?all=true").status, 200);
    EXPECT_EQ(b.send("GET", "/keys").status, 200);
    auto current = b.send("GET", "/sessions/current");
    ASSERT_EQ(current.status, 200);
    EXPECT_EQ(body_json(current)["csrf_token"], b.csrf) << "a reloaded page gets its token back";

    // Behind a TLS proxy the cookie is Secure.
    Browser proxied(server.port());
    auto pr = call(proxied.client, "POST", "/sessions", json{{"key", admin}}.dump(), "application/json",
                   {{"X-Forwarded-Proto", "https"}});
    EXPECT_NE(pr.header("Set-Cookie").value_or("").find("; Secure"), std::string::npos);

    // Sign-out ends the session: the cookie no longer authenticates.
    EXPECT_EQ(b.send("DELETE", "/sessions/current").status, 204);
    EXPECT_EQ(b.send("GET", "/jobs").status, 401);
    EXPECT_EQ(b.send("GET", "/sessions/current").status, 401);
}

TEST(SessionsTest, StateChangingRequestsNeedTheCsrfToken) {
    test::TempDir dir;
    InProcessServer server(dir / "data");
    std::string admin = server.key("root", Role::Admin);
    Browser b(server.port());
    ASSERT_EQ(b.sign_in(admin).status, 201);

    auto refused = b.send("POST", "/keys", json{{"name", "by-forgery"}, {"role", "admin"}}.dump(), false);
    EXPECT_EQ(refused.status, 403) << refused.body;
    EXPECT_EQ(error_code(refused), "FORBIDDEN");
    std::string real_csrf = b.csrf;
    b.csrf = "not-the-token";
    EXPECT_EQ(b.send("POST", "/keys", json{{"name", "by-forgery"}, {"role", "admin"}}.dump()).status, 403);
    EXPECT_EQ(b.send("DELETE", "/sessions/current").status, 403) << "no forced sign-out either";
    b.csrf = real_csrf;
    auto keys = body_json(b.send("GET", "/keys"));
    for (const auto& k : keys["items"]) EXPECT_NE(k["name"], "by-forgery") << "nothing was created";

    auto made = b.send("POST", "/keys", json{{"name", "made-here"}, {"role", "user"}}.dump());
    EXPECT_EQ(made.status, 201) << made.body;
    // A GET needs no token (the stream and the download links of the page are plain GETs).
    EXPECT_EQ(b.send("GET", "/jobs", "", false).status, 200);
}

TEST(SessionsTest, RevokingTheKeyEndsItsSessionsAndRolesStillApply) {
    test::TempDir dir;
    InProcessServer server(dir / "data");
    std::string admin = server.key("root", Role::Admin);
    std::string user = server.key("alice", Role::User);
    std::string engine = server.key("engine-1", Role::Engine);
    Browser a(server.port()), u(server.port()), e(server.port());
    ASSERT_EQ(a.sign_in(admin).status, 201);
    ASSERT_EQ(u.sign_in(user).status, 201);

    // A user's session is a user: All Jobs and the admin endpoints answer 403.
    EXPECT_EQ(u.send("GET", "/jobs").status, 200);
    EXPECT_EQ(u.send("GET", "/jobs?all=true").status, 403);
    EXPECT_EQ(u.send("GET", "/keys").status, 403);
    EXPECT_EQ(u.send("POST", "/keys", json{{"name", "x"}, {"role", "admin"}}.dump()).status, 403);

    // Engine keys and nonsense cannot sign in.
    auto engine_in = e.sign_in(engine);
    EXPECT_EQ(engine_in.status, 403) << engine_in.body;
    EXPECT_TRUE(e.cookie.empty());
    EXPECT_EQ(e.sign_in("dcv_not-a-key").status, 401);
    EXPECT_EQ(e.send("POST", "/sessions", "{\"key\": 5}").status, 400);
    EXPECT_EQ(e.send("POST", "/sessions", "not json").status, 400);
    e.cookie = "dcs_forged";
    EXPECT_EQ(e.send("GET", "/jobs").status, 401);

    // Revoking alice's key ends her session at its next request.
    auto keys = body_json(a.send("GET", "/keys"));
    std::string alice_id;
    for (const auto& k : keys["items"])
        if (k["name"] == "alice") alice_id = k["key_id"];
    ASSERT_FALSE(alice_id.empty());
    EXPECT_EQ(a.send("DELETE", "/keys/" + alice_id).status, 200);
    auto after = u.send("GET", "/jobs");
    EXPECT_EQ(after.status, 401) << after.body;
    EXPECT_NE(after.body.find("revoked"), std::string::npos) << after.body;
}

class FakeClock : public Clock {
  public:
    SystemTime now() const override { return from_unix_ms(m_ms.load()); }
    void advance(std::chrono::milliseconds d) { m_ms += d.count(); }

  private:
    std::atomic<int64_t> m_ms{1'800'000'000'000};
};

TEST(SessionsTest, SessionsEndAtTheirIdleAndAbsoluteExpiry) {
    test::TempDir dir;
    InProcessServer server(dir / "data");
    std::string admin = server.key("root", Role::Admin);
    FakeClock clock;
    dispatch::SessionSettings settings;
    settings.idle = std::chrono::minutes(30);
    settings.absolute = std::chrono::hours(2);
    dispatch::SessionService sessions(server.server().auth(), clock, settings);

    auto idle = sessions.open(admin);
    ASSERT_TRUE(idle.ok());
    clock.advance(std::chrono::minutes(29));
    EXPECT_TRUE(sessions.resume(idle->token).ok()) << "used within the idle time";
    clock.advance(std::chrono::minutes(29));
    EXPECT_TRUE(sessions.resume(idle->token).ok()) << "each use starts the idle time again";
    clock.advance(std::chrono::minutes(31));
    auto gone = sessions.resume(idle->token);
    ASSERT_FALSE(gone.ok());
    EXPECT_EQ(gone.error().code, ErrorCode::Unauthenticated);

    auto busy = sessions.open(admin);
    ASSERT_TRUE(busy.ok());
    for (int i = 0; i < 7; ++i) {  // used every 20 minutes, but 2 h after sign-in it ends regardless
        clock.advance(std::chrono::minutes(20));
        EXPECT_EQ(sessions.resume(busy->token).ok(), i < 5) << "after " << (i + 1) * 20 << " min";
    }
    EXPECT_EQ(sessions.size(), 0u) << "ended sessions are forgotten";
    auto wrong = sessions.resume("dcs_" + std::string(43, 'A'));
    EXPECT_FALSE(wrong.ok());
}

TEST(SessionsTest, ThePageIsServedWithAStrictPolicyAndUiOffRemovesIt) {
    test::TempDir dir;
    {
        InProcessServer server(dir / "on");
        Browser b(server.port());
        http::ClientOptions o = client_options(server.port(), "");
        o.base_url = "http://127.0.0.1:" + std::to_string(server.port());
        http::Client root(o);
        auto page = call(root, "GET", "/");
        ASSERT_EQ(page.status, 200) << page.body;
        EXPECT_EQ(page.header("Content-Type").value_or("").rfind("text/html", 0), 0u);
        auto csp = page.header("Content-Security-Policy").value_or("");
        EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
        EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
        EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
        EXPECT_EQ(page.header("X-Frame-Options").value_or(""), "DENY");
        EXPECT_EQ(page.header("X-Content-Type-Options").value_or(""), "nosniff");
        EXPECT_EQ(page.body.find("<script>"), std::string::npos) << "no inline script";
        auto etag = page.header("ETag").value_or("");
        ASSERT_FALSE(etag.empty());
        EXPECT_EQ(call(root, "GET", "/", "", "", {{"If-None-Match", etag}}).status, 304);
        auto script = call(root, "GET", "/ui/app.js");
        EXPECT_EQ(script.status, 200);
        EXPECT_EQ(script.header("Content-Type").value_or("").rfind("text/javascript", 0), 0u);
        EXPECT_EQ(call(root, "GET", "/ui/missing.js").status, 404);
        EXPECT_EQ(call(root, "GET", "/ui/..%2Fconfig.cpp").status, 404);
    }
    InProcessServer off(dir / "off", [](dispatch::DispatchConfig& c) { c.ui = "off"; });
    std::string admin = off.key("root", Role::Admin);
    http::ClientOptions o = client_options(off.port(), "");
    o.base_url = "http://127.0.0.1:" + std::to_string(off.port());
    http::Client root(o);
    EXPECT_EQ(call(root, "GET", "/").status, 404);
    EXPECT_EQ(call(root, "GET", "/ui/app.js").status, 404);
    Browser b(off.port());
    EXPECT_EQ(b.sign_in(admin).status, 404) << "no sessions without the dashboard";
    EXPECT_EQ(call(root, "GET", "/healthz").status, 200);
}

}  // namespace
}  // namespace distconv::itest
