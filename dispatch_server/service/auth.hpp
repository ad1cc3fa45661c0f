#pragma once
// API keys: random secrets shown once ("dcv_" + 43 URL-safe characters), stored as SHA-256, with a
// role. authenticate() turns an Authorization header into the caller (a Principal).

#include "common/error.hpp"
#include "dispatch_server/store/store.hpp"

#include <string>
#include <string_view>

namespace distconv::dispatch {

struct Principal {
    std::string key_id;
    std::string name;
    Role role = Role::User;
    bool is_admin() const { return role == Role::Admin; }
};

class AuthService {
public:
    explicit AuthService(Store& store) : m_store(store) {}

    struct CreatedKey {
        ApiKeyRecord record;
        std::string secret;  // shown once, never stored
    };
    Result<CreatedKey> create_key(const std::string& name, Role role);
    // "Bearer <key>" → the caller; UNAUTHENTICATED for a missing, malformed, unknown or revoked key.
    Result<Principal> authenticate(std::string_view authorization_header);

    static nlohmann::json to_json(const ApiKeyRecord& key);

private:
    Store& m_store;
};

// Role checks used by the API: FORBIDDEN with a message naming what the role may not do.
Status require_user(const Principal& p);    // admin or user (engine keys may not use user endpoints)
Status require_admin(const Principal& p);
Status require_engine(const Principal& p);  // engine or admin

}  // namespace distconv::dispatch
