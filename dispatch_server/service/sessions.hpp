#pragma once
// Browser sessions for the dashboard: an API key is exchanged once for a random session token that
// travels in an HttpOnly cookie, so the page never holds the key. A session ends at its idle or
// absolute expiry, on sign-out, or as soon as its key is revoked (the key is re-checked on every
// request). Each session carries a CSRF token that state-changing requests must echo in a header.
// Sessions live in memory: a restarted server signs everyone out, which is the safe direction.

#include "common/error.hpp"
#include "common/time.hpp"
#include "dispatch_server/service/auth.hpp"

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace distconv::dispatch {

struct SessionSettings {
    std::chrono::milliseconds idle{std::chrono::minutes(30)};
    std::chrono::milliseconds absolute{std::chrono::hours(12)};
    size_t max_sessions = 10000;  // beyond it the least recently used session is ended
};

struct BrowserSession {
    Principal who;
    std::string csrf_token;
    int64_t created_at_ms = 0;
    int64_t last_seen_ms = 0;
    int64_t expires_at_ms = 0;  // the absolute expiry
};

class SessionService {
  public:
    SessionService(AuthService& auth, const Clock& clock, SessionSettings settings = {})
        : m_auth(auth), m_clock(clock), m_settings(settings) {}

    struct Opened {
        std::string token;  // the cookie's value, shown once
        BrowserSession session;
    };
    // Signs in with an API key: UNAUTHENTICATED for a key that is not valid, FORBIDDEN for engine keys
    // and assignment credentials (the dashboard is for people).
    Result<Opened> open(std::string_view api_key);
    // The session a cookie names, refreshed (idle expiry starts again): UNAUTHENTICATED when it is
    // unknown, expired, or its key was revoked (the session is then ended).
    Result<BrowserSession> resume(std::string_view token);
    void close(std::string_view token);
    size_t size() const;
    const SessionSettings& settings() const { return m_settings; }

  private:
    struct Entry {
        std::string key_hash;
        BrowserSession session;
    };
    bool expired(const Entry& e, int64_t now) const;
    void evict_locked(int64_t now);

    AuthService& m_auth;
    const Clock& m_clock;
    SessionSettings m_settings;
    mutable std::mutex m_mutex;
    std::unordered_map<std::string, Entry> m_sessions;  // by SHA-256 of the token
};

}  // namespace distconv::dispatch
