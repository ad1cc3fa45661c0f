#include "dispatch_server/service/auth.hpp"

#include "common/hash.hpp"
#include "common/time.hpp"

#include <regex>

namespace distconv::dispatch {

namespace {
constexpr std::string_view k_key_prefix = "dcv_";
}

Result<AuthService::CreatedKey> AuthService::create_key(const std::string& name, Role role) {
    static const std::regex k_name(R"(^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$)");
    if (!std::regex_match(name, k_name))
        return Error::invalid(
            "name", "a key name is 1-64 letters, digits, spaces or ._@- and starts with a letter or digit");
    std::string secret = std::string(k_key_prefix) + random_token(32);
    auto record = m_store.create_api_key(name, role, sha256_hex(secret), secret.substr(0, 10));
    if (!record) return record.error();
    return CreatedKey{*record, secret};
}

Result<Principal> AuthService::authenticate(std::string_view header) {
    constexpr std::string_view k_bearer = "Bearer ";
    if (header.empty())
        return Error(ErrorCode::Unauthenticated,
                     "an API key is required: send 'Authorization: Bearer <key>'");
    if (header.size() <= k_bearer.size() || header.substr(0, k_bearer.size()) != k_bearer)
        return Error(ErrorCode::Unauthenticated, "the Authorization header must be 'Bearer <key>'");
    std::string_view secret = header.substr(k_bearer.size());
    if (AssignmentCredentials::looks_like(secret)) {
        if (!m_credentials)
            return Error(ErrorCode::Unauthenticated, "assignment credentials are not accepted here");
        auto claims = m_credentials->verify(
            secret, m_clock ? m_clock->now_ms() : to_unix_ms(std::chrono::system_clock::now()));
        if (!claims) return claims.error();
        Principal p{"", "assignment " + claims->assignment_id, Role::Engine};
        p.assignment_scope = claims->assignment_id;
        p.scope_fencing_token = claims->fencing_token;
        return p;
    }
    if (secret.size() > 200 || secret.substr(0, k_key_prefix.size()) != k_key_prefix)
        return Error(ErrorCode::Unauthenticated, "the API key is not valid");
    return authenticate_hash(sha256_hex(secret));
}

Result<Principal> AuthService::authenticate_hash(const std::string& hash) {
    auto key = m_store.find_api_key_by_hash(hash);
    // A database that cannot answer is UNAVAILABLE (retry), never "your key is not valid".
    if (!key && key.error().code != ErrorCode::NotFound) return key.error();
    if (!key || !constant_time_equal(key->key_hash, hash) || key->revoked_at)
        return Error(ErrorCode::Unauthenticated, "the API key is not valid or was revoked");
    return Principal{key->id, key->name, key->role};
}

Result<std::vector<ApiKeyRecord>> AuthService::list_keys(bool include_revoked) {
    return m_store.list_api_keys(include_revoked);
}

Result<ApiKeyRecord> AuthService::revoke_key(const std::string& id_or_name) {
    return m_store.revoke_api_key(id_or_name);
}

protocol::ApiKeyInfo AuthService::info(const ApiKeyRecord& key) {
    protocol::ApiKeyInfo k;
    k.key_id = key.id;
    k.name = key.name;
    k.role = key.role;
    k.prefix = key.prefix;
    k.created_at = protocol::Timestamp(std::chrono::seconds(key.created_at / 1000));
    k.revoked = key.revoked_at.has_value();
    return k;
}

Status require_user(const Principal& p) {
    if (p.role == Role::Engine || p.scoped())
        return Error(ErrorCode::Forbidden, "engine keys may only use the engine endpoints");
    return {};
}

Status require_admin(const Principal& p) {
    if (p.role != Role::Admin || p.scoped()) return Error(ErrorCode::Forbidden, "this needs an admin key");
    return {};
}

Status require_engine(const Principal& p) {
    if (p.role == Role::User) return Error(ErrorCode::Forbidden, "this endpoint is for engine keys");
    if (p.scoped())
        return Error(ErrorCode::Forbidden, "an assignment credential only moves its assignment's bytes");
    return {};
}

Status require_transfer(const Principal& p) {
    if (p.role == Role::User) return Error(ErrorCode::Forbidden, "this endpoint is for engine keys");
    return {};
}

}  // namespace distconv::dispatch
