#pragma once
// API keys: random secrets shown once ("dcv_" + 43 URL-safe characters), stored as SHA-256, with a
// role. authenticate() turns an Authorization header into the caller (a Principal).

#include "common/error.hpp"
#include "common/time.hpp"
#include "dispatch_server/service/credentials.hpp"
#include "dispatch_server/store/store.hpp"
#include "protocol/admin.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace distconv::dispatch {

class SessionService;

struct Principal {
    std::string key_id;
    std::string name;
    Role role = Role::User;
    // Set for an assignment credential (credentials.hpp): the caller may move that one assignment's
    // bytes while its attempt holds the job with this fencing token, and do nothing else.
    std::string assignment_scope{};
    std::int64_t scope_fencing_token = 0;
    bool is_admin() const { return role == Role::Admin; }
    bool scoped() const { return !assignment_scope.empty(); }
};

class AuthService {
  public:
    // `credentials`: verifies assignment credentials ("dca1." tokens); without it they are refused.
    // `clock`: what credential expiry is measured against (the one that issues them).
    explicit AuthService(Store& store, const AssignmentCredentials* credentials = nullptr,
                         const Clock* clock = nullptr)
        : m_store(store), m_credentials(credentials), m_clock(clock) {}

    struct CreatedKey {
        ApiKeyRecord record;
        std::string secret;  // shown once, never stored
    };
    Result<CreatedKey> create_key(const std::string& name, Role role);
    // "Bearer <key>" → the caller; UNAUTHENTICATED for a missing, malformed, unknown or revoked key,
    // or an assignment credential that is forged or expired.
    Result<Principal> authenticate(std::string_view authorization_header);
    // The caller whose key has this SHA-256 (a browser session re-checks its key on each request).
    Result<Principal> authenticate_hash(const std::string& key_hash);

    // The dashboard's sessions, when the UI is on: requests may then authenticate with the cookie.
    void set_sessions(SessionService* sessions) { m_sessions = sessions; }
    SessionService* sessions() const { return m_sessions; }

    Result<std::vector<ApiKeyRecord>> list_keys(bool include_revoked);
    Result<ApiKeyRecord> revoke_key(const std::string& id_or_name);  // NOT_FOUND when none is active
    // The one shape of a key in answers: GET /keys and `distconv-dispatch keys list --json`.
    static protocol::ApiKeyInfo info(const ApiKeyRecord& key);

  private:
    Store& m_store;
    const AssignmentCredentials* m_credentials;
    const Clock* m_clock;
    SessionService* m_sessions = nullptr;
};

// Role checks used by the API: FORBIDDEN with a message naming what the role may not do.
Status require_user(const Principal& p);  // admin or user (engine keys may not use user endpoints)
Status require_admin(const Principal& p);
Status require_engine(const Principal& p);  // engine or admin (not an assignment credential)
// An assignment's byte transfers: engine or admin keys, or that assignment's credential (the
// service checks the scope against the assignment).
Status require_transfer(const Principal& p);

}  // namespace distconv::dispatch
