#include "protocol/json_fields.hpp"

#include <algorithm>
#include <limits>

namespace distconv::protocol {
namespace {

Error type_error(const std::string& field, std::string_view what) {
    return Error::invalid(field, field + " must be " + std::string(what));
}

template <typename E, typename Parse>
std::optional<Error> read_enum(const nlohmann::json& v, const std::string& field, E& out, Parse parse,
                               std::string_view choices) {
    if (!v.is_string()) return type_error(field, "a string");
    auto parsed = parse(v.get_ref<const std::string&>());
    if (!parsed) return Error::invalid(field, field + " must be one of " + std::string(choices));
    out = *parsed;
    return std::nullopt;
}

}  // namespace

Error with_field_prefix(Error error, const std::string& prefix) {
    if (error.details.is_object() && error.details.contains("field") && error.details["field"].is_string()) {
        const auto inner = error.details["field"].get<std::string>();
        error.details["field"] = prefix + inner;
        // Messages that start with the inner field name get the full path too.
        if (!inner.empty() && error.message.rfind(inner, 0) == 0) error.message = prefix + error.message;
    }
    return error;
}

std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, std::string& out) {
    if (!v.is_string()) return type_error(field, "a string");
    out = v.get<std::string>();
    return std::nullopt;
}

std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, bool& out) {
    if (!v.is_boolean()) return type_error(field, "true or false");
    out = v.get<bool>();
    return std::nullopt;
}

std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, std::int64_t& out) {
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return Error::invalid(field, field + " is too large");
        out = static_cast<std::int64_t>(u);
        return std::nullopt;
    }
    if (!v.is_number_integer()) return type_error(field, "an integer");
    out = v.get<std::int64_t>();
    return std::nullopt;
}

std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, int& out) {
    std::int64_t wide = 0;
    if (auto e = read_value(v, field, wide)) return e;
    if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max())
        return Error::invalid(field, field + " is out of range");
    out = static_cast<int>(wide);
    return std::nullopt;
}

std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, double& out) {
    if (!v.is_number()) return type_error(field, "a number");
    out = v.get<double>();
    return std::nullopt;
}

std::optional<Error> read_value(const nlohmann::json& v, const std::string& field,
                                std::vector<std::string>& out) {
    if (!v.is_array()) return type_error(field, "an array of strings");
    out.clear();
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string()) return type_error(field + "[" + std::to_string(i) + "]", "a string");
        out.push_back(v[i].get<std::string>());
    }
    return std::nullopt;
}

std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, Timestamp& out) {
    if (!v.is_string()) return type_error(field, "an RFC 3339 timestamp string");
    auto t = parse_timestamp(v.get_ref<const std::string&>());
    if (!t) return type_error(field, "an RFC 3339 timestamp like 2026-02-20T12:00:00Z");
    out = *t;
    return std::nullopt;
}

std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, JobState& out) {
    return read_enum(v, field, out, parse_job_state,
                     "awaiting_upload, queued, assigned, running, canceling, completed, failed, canceled");
}
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, ErrorClass& out) {
    return read_enum(v, field, out, parse_error_class, "permanent, transient");
}
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, TransferMode& out) {
    return read_enum(v, field, out, parse_transfer_mode, "file, stream");
}
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, EngineState& out) {
    return read_enum(v, field, out, parse_engine_state, "idle, busy, draining, offline");
}
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, ProgressPhase& out) {
    return read_enum(v, field, out, parse_progress_phase, "downloading, transcoding, uploading");
}
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, Role& out) {
    return read_enum(v, field, out, parse_role, "admin, user, engine");
}

FieldReader::FieldReader(const nlohmann::json& object, std::string prefix, bool strict)
    : m_object(object), m_prefix(std::move(prefix)), m_strict(strict) {}

const nlohmann::json* FieldReader::get(std::string_view key) {
    m_known.emplace_back(key);
    auto it = m_object.find(key);
    return it == m_object.end() ? nullptr : &*it;
}

void FieldReader::check(bool condition, std::string_view key, const std::string& message) {
    if (ok() && !condition) fail(Error::invalid(field(key), field(key) + " " + message));
}

void FieldReader::fail(Error error) {
    if (!m_error) m_error = std::move(error);
}

Status FieldReader::finish() const {
    if (m_error) return *m_error;
    if (m_strict) {
        for (const auto& [key, value] : m_object.items()) {
            (void)value;
            if (std::find(m_known.begin(), m_known.end(), key) == m_known.end())
                return Error::invalid(field(key), field(key) + " is not a known field");
        }
    }
    return {};
}

Result<FieldReader> open_object(const nlohmann::json& j, const std::string& prefix, bool strict) {
    if (!j.is_object()) {
        const std::string name = prefix.empty() ? std::string("body") : prefix.substr(0, prefix.size() - 1);
        return Error::invalid(name, name + " must be a JSON object");
    }
    return FieldReader(j, prefix, strict);
}

}  // namespace distconv::protocol
