#pragma once
// Wire types of the catalog and admin endpoints: presets, storage pools, API keys, readiness.
// List answers are {"items":[...]}: use items_to_json / parse_items from protocol/json_fields.hpp.

#include "common/error.hpp"
#include "common/media/options.hpp"
#include "protocol/types.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace distconv::protocol {

// GET /presets rows.
struct Preset {
    std::string name;
    std::string description;
    media::JobOptions options;
    bool operator==(const Preset&) const = default;
};
Preset preset_from(const media::Preset& preset);

// GET /pools rows. `path` is filled for admins only.
struct Pool {
    std::string name;
    std::optional<std::string> path;
    std::optional<std::int64_t> capacity_bytes;  // null: no cap beyond the file system
    std::int64_t used_bytes = 0;
    std::int64_t reserved_bytes = 0;
    std::int64_t free_bytes = 0;
    bool writable = true;
    bool operator==(const Pool&) const = default;
};

// POST /keys
struct CreateKeyRequest {
    std::string name;  // [A-Za-z0-9._@-]{1,64}
    Role role = Role::User;
    bool operator==(const CreateKeyRequest&) const = default;
};

// GET /keys rows (never the secret).
struct ApiKeyInfo {
    std::string key_id;
    std::string name;
    Role role = Role::User;
    std::string prefix;  // first characters of the secret, to recognise it
    Timestamp created_at{};
    std::optional<Timestamp> last_used_at;
    bool revoked = false;
    bool operator==(const ApiKeyInfo&) const = default;
};

// POST /keys answer: the info plus the secret, shown this once.
struct CreatedKey {
    ApiKeyInfo info;
    std::string key;
    bool operator==(const CreatedKey&) const = default;
};

// GET /readyz
struct ReadinessCheck {
    std::string name;
    bool ok = true;
    std::string message;
    bool operator==(const ReadinessCheck&) const = default;
};
struct Readiness {
    bool ready = true;
    std::vector<ReadinessCheck> checks;
    bool operator==(const Readiness&) const = default;
};

bool is_valid_key_name(std::string_view name);

Result<Preset> parse_preset(const nlohmann::json& j, const std::string& prefix = "");
Result<Pool> parse_pool(const nlohmann::json& j, const std::string& prefix = "");
Result<CreateKeyRequest> parse_create_key_request(const nlohmann::json& j, const std::string& prefix = "");
Result<ApiKeyInfo> parse_api_key_info(const nlohmann::json& j, const std::string& prefix = "");
Result<CreatedKey> parse_created_key(const nlohmann::json& j, const std::string& prefix = "");
Result<ReadinessCheck> parse_readiness_check(const nlohmann::json& j, const std::string& prefix = "");
Result<Readiness> parse_readiness(const nlohmann::json& j, const std::string& prefix = "");

nlohmann::json to_json(const Preset& v);
nlohmann::json to_json(const Pool& v);
nlohmann::json to_json(const CreateKeyRequest& v);
nlohmann::json to_json(const ApiKeyInfo& v);
nlohmann::json to_json(const CreatedKey& v);
nlohmann::json to_json(const ReadinessCheck& v);
nlohmann::json to_json(const Readiness& v);

}  // namespace distconv::protocol
