#include "dispatch_server/service/sessions.hpp"

#include "common/hash.hpp"

#include <algorithm>

namespace distconv::dispatch {

namespace {
constexpr std::string_view k_token_prefix = "dcs_";

Error signed_out(const std::string& why) {
    return Error(ErrorCode::Unauthenticated, why + ": sign in again");
}
}  // namespace

bool SessionService::expired(const Entry& e, int64_t now) const {
    return now >= e.session.expires_at_ms || now - e.session.last_seen_ms >= m_settings.idle.count();
}

void SessionService::evict_locked(int64_t now) {
    for (auto it = m_sessions.begin(); it != m_sessions.end();)
        it = expired(it->second, now) ? m_sessions.erase(it) : std::next(it);
    while (m_sessions.size() >= m_settings.max_sessions && !m_sessions.empty()) {
        auto oldest =
            std::min_element(m_sessions.begin(), m_sessions.end(), [](const auto& a, const auto& b) {
                return a.second.session.last_seen_ms < b.second.session.last_seen_ms;
            });
        m_sessions.erase(oldest);
    }
}

Result<SessionService::Opened> SessionService::open(std::string_view api_key) {
    if (api_key.empty()) return Error::invalid("key", "sign in with an API key");
    auto who = m_auth.authenticate("Bearer " + std::string(api_key));
    if (!who) return who.error();
    if (who->role == Role::Engine || who->scoped())
        return Error(ErrorCode::Forbidden, "engine keys cannot sign in to the dashboard");
    const int64_t now = m_clock.now_ms();
    Opened out;
    out.token = std::string(k_token_prefix) + random_token(32);
    out.session.who = *who;
    out.session.csrf_token = random_token(32);
    out.session.created_at_ms = now;
    out.session.last_seen_ms = now;
    out.session.expires_at_ms = now + m_settings.absolute.count();
    std::lock_guard lock(m_mutex);
    evict_locked(now);
    m_sessions[sha256_hex(out.token)] = Entry{sha256_hex(std::string(api_key)), out.session};
    return out;
}

Result<BrowserSession> SessionService::resume(std::string_view token) {
    if (token.size() > 200 || token.substr(0, k_token_prefix.size()) != k_token_prefix)
        return signed_out("the session cookie is not valid");
    const std::string id = sha256_hex(token);
    const int64_t now = m_clock.now_ms();
    std::string key_hash;
    {
        std::lock_guard lock(m_mutex);
        auto it = m_sessions.find(id);
        if (it == m_sessions.end()) return signed_out("the session has ended");
        if (expired(it->second, now)) {
            m_sessions.erase(it);
            return signed_out("the session has expired");
        }
        key_hash = it->second.key_hash;
    }
    // The key is checked again on every request: revoking it ends its sessions at once.
    auto who = m_auth.authenticate_hash(key_hash);
    std::lock_guard lock(m_mutex);
    auto it = m_sessions.find(id);
    if (it == m_sessions.end()) return signed_out("the session has ended");
    if (!who) {
        if (who.error().code != ErrorCode::Unauthenticated) return who.error();  // a store that cannot answer
        m_sessions.erase(it);
        return signed_out("the session's API key was revoked");
    }
    it->second.session.who = *who;
    it->second.session.last_seen_ms = now;
    return it->second.session;
}

void SessionService::close(std::string_view token) {
    std::lock_guard lock(m_mutex);
    m_sessions.erase(sha256_hex(token));
}

size_t SessionService::size() const {
    std::lock_guard lock(m_mutex);
    return m_sessions.size();
}

}  // namespace distconv::dispatch
