#include "protocol/admin.hpp"

#include "protocol/json_fields.hpp"

#include <algorithm>

namespace distconv::protocol {
namespace {

using nlohmann::json;

Result<media::JobOptions> parse_options(const json& j, const std::string& prefix) {
    auto r = media::parse_job_options(j);
    if (!r.ok()) return with_field_prefix(std::move(r).error(), prefix);
    return r;
}

}  // namespace

Preset preset_from(const media::Preset& preset) {
    return Preset{preset.name, preset.description, preset.options};
}

bool is_valid_key_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '@' || c == '-';
    });
}

Result<Preset> parse_preset(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    Preset out;
    r.required("name", out.name);
    r.defaulted("description", out.description);
    r.required_object("options", out.options, parse_options);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const Preset& v) {
    return json{{"name", v.name}, {"description", v.description}, {"options", media::to_json(v.options)}};
}

Result<Pool> parse_pool(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    Pool out;
    r.required("name", out.name);
    r.optional("path", out.path);
    r.optional("capacity_bytes", out.capacity_bytes);
    r.required("used_bytes", out.used_bytes);
    r.required("reserved_bytes", out.reserved_bytes);
    r.required("free_bytes", out.free_bytes);
    r.required("writable", out.writable);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const Pool& v) {
    json out{{"name", v.name},
             {"capacity_bytes", nullable(v.capacity_bytes)},
             {"used_bytes", v.used_bytes},
             {"reserved_bytes", v.reserved_bytes},
             {"free_bytes", v.free_bytes},
             {"writable", v.writable}};
    if (v.path) out["path"] = *v.path;  // admins only: absent, not null, for users
    return out;
}

Result<CreateKeyRequest> parse_create_key_request(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, true);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    CreateKeyRequest out;
    r.required("name", out.name);
    r.check(is_valid_key_name(out.name), "name", "must be 1 to 64 of A-Z a-z 0-9 . _ @ -");
    r.required("role", out.role);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const CreateKeyRequest& v) {
    return json{{"name", v.name}, {"role", to_string(v.role)}};
}

Result<ApiKeyInfo> parse_api_key_info(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    ApiKeyInfo out;
    r.required("key_id", out.key_id);
    r.required("name", out.name);
    r.required("role", out.role);
    r.defaulted("prefix", out.prefix);
    r.required("created_at", out.created_at);
    r.optional("last_used_at", out.last_used_at);
    r.defaulted("revoked", out.revoked);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const ApiKeyInfo& v) {
    return json{{"key_id", v.key_id},
                {"name", v.name},
                {"role", to_string(v.role)},
                {"prefix", v.prefix},
                {"created_at", timestamp_json(v.created_at)},
                {"last_used_at", timestamp_json(v.last_used_at)},
                {"revoked", v.revoked}};
}

Result<CreatedKey> parse_created_key(const json& j, const std::string& prefix) {
    auto info = parse_api_key_info(j, prefix);
    if (!info.ok()) return std::move(info).error();
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    CreatedKey out{std::move(info).value(), {}};
    opened->required("key", out.key);
    DISTCONV_TRY(opened->finish());
    return out;
}

json to_json(const CreatedKey& v) {
    json out = to_json(v.info);
    out["key"] = v.key;
    return out;
}

Result<ReadinessCheck> parse_readiness_check(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    ReadinessCheck out;
    r.required("name", out.name);
    r.required("ok", out.ok);
    r.defaulted("message", out.message);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const ReadinessCheck& v) {
    return json{{"name", v.name}, {"ok", v.ok}, {"message", v.message}};
}

Result<Readiness> parse_readiness(const json& j, const std::string& prefix) {
    auto opened = open_object(j, prefix, false);
    if (!opened.ok()) return std::move(opened).error();
    auto& r = *opened;
    Readiness out;
    r.required("ready", out.ready);
    r.object_array("checks", out.checks, parse_readiness_check, true);
    DISTCONV_TRY(r.finish());
    return out;
}

json to_json(const Readiness& v) {
    auto checks = json::array();
    for (const auto& c : v.checks) checks.push_back(to_json(c));
    return json{{"ready", v.ready}, {"checks", std::move(checks)}};
}

}  // namespace distconv::protocol
