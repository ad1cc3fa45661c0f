#pragma once
// FieldReader: strict, field-by-field decoding of a JSON object into a wire type. It keeps the
// first error as an INVALID_ARGUMENT naming the full field path ("attempts[0].engine_id"), so every
// parse function reports errors the same way. Also small helpers for writing nullable fields.

#include "common/error.hpp"
#include "protocol/job_state.hpp"
#include "protocol/types.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace distconv::protocol {

// Prefixes details.field (and the message) of an INVALID_ARGUMENT with `prefix` ("options.").
Error with_field_prefix(Error error, const std::string& prefix);

// Decodes one JSON value of a supported scalar type; the error names `field`.
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, std::string& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, bool& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, int& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, std::int64_t& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, double& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field,
                                std::vector<std::string>& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, Timestamp& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, JobState& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, ErrorClass& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, TransferMode& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, EngineState& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, ProgressPhase& out);
std::optional<Error> read_value(const nlohmann::json& v, const std::string& field, Role& out);

class FieldReader {
  public:
    // `strict`: keys the parse function never asked for are errors (additionalProperties: false).
    FieldReader(const nlohmann::json& object, std::string prefix, bool strict);

    bool ok() const { return !m_error.has_value(); }
    std::string field(std::string_view key) const { return m_prefix + std::string(key); }
    // The raw value, or nullptr when absent; marks the key as known.
    const nlohmann::json* get(std::string_view key);

    // Absent or null is an error.
    template <typename T>
    void required(std::string_view key, T& out) {
        const auto* v = get(key);
        if (!ok()) return;
        if (v == nullptr || v->is_null())
            return fail(Error::invalid(field(key), field(key) + " is required"));
        if (auto e = read_value(*v, field(key), out)) fail(std::move(*e));
    }
    // Absent or null leaves `out` as it is (its default).
    template <typename T>
    void defaulted(std::string_view key, T& out) {
        const auto* v = get(key);
        if (!ok() || v == nullptr || v->is_null()) return;
        if (auto e = read_value(*v, field(key), out)) fail(std::move(*e));
    }
    // Absent or null is nullopt.
    template <typename T>
    void optional(std::string_view key, std::optional<T>& out) {
        const auto* v = get(key);
        if (!ok()) return;
        if (v == nullptr || v->is_null()) {
            out.reset();
            return;
        }
        T value{};
        if (auto e = read_value(*v, field(key), value)) return fail(std::move(*e));
        out = std::move(value);
    }

    // Nested objects: parse(json, prefix) -> Result<T>, with prefix "key.".
    template <typename T, typename Parse>
    void required_object(std::string_view key, T& out, Parse parse) {
        const auto* v = get(key);
        if (!ok()) return;
        if (v == nullptr || v->is_null())
            return fail(Error::invalid(field(key), field(key) + " is required"));
        auto r = parse(*v, field(key) + ".");
        if (!r.ok()) return fail(std::move(r).error());
        out = std::move(r).value();
    }
    template <typename T, typename Parse>
    void optional_object(std::string_view key, std::optional<T>& out, Parse parse) {
        const auto* v = get(key);
        if (!ok()) return;
        if (v == nullptr || v->is_null()) {
            out.reset();
            return;
        }
        auto r = parse(*v, field(key) + ".");
        if (!r.ok()) return fail(std::move(r).error());
        out = std::move(r).value();
    }
    // Arrays of objects; absent or null is an empty array unless `required`.
    template <typename T, typename Parse>
    void object_array(std::string_view key, std::vector<T>& out, Parse parse, bool required = false) {
        const auto* v = get(key);
        if (!ok()) return;
        out.clear();
        if (v == nullptr || v->is_null()) {
            if (required) fail(Error::invalid(field(key), field(key) + " is required"));
            return;
        }
        if (!v->is_array()) return fail(Error::invalid(field(key), field(key) + " must be an array"));
        for (std::size_t i = 0; i < v->size(); ++i) {
            auto r = parse((*v)[i], field(key) + "[" + std::to_string(i) + "].");
            if (!r.ok()) return fail(std::move(r).error());
            out.push_back(std::move(r).value());
        }
    }

    // A value check after reading: records `message` for `key` when `condition` is false.
    void check(bool condition, std::string_view key, const std::string& message);
    void fail(Error error);

    // The first error, else (when strict) the first unknown key, else success.
    Status finish() const;

  private:
    const nlohmann::json& m_object;
    std::string m_prefix;
    bool m_strict;
    std::vector<std::string> m_known;
    std::optional<Error> m_error;
};

// Opens `j` as an object for reading, or the error "<prefix> must be an object".
Result<FieldReader> open_object(const nlohmann::json& j, const std::string& prefix, bool strict);

// Writing: nullable fields are written as JSON null.
inline nlohmann::json timestamp_json(Timestamp t) {
    return format_timestamp(t);
}
inline nlohmann::json timestamp_json(const std::optional<Timestamp>& t) {
    return t ? nlohmann::json(format_timestamp(*t)) : nlohmann::json(nullptr);
}
template <typename T>
nlohmann::json nullable(const std::optional<T>& v) {
    if (!v) return nullptr;
    if constexpr (std::is_enum_v<T>)
        return std::string(to_string(*v));
    else
        return nlohmann::json(*v);
}

// {"items": [to_json(x)...]} and its inverse, for the list answers (presets, pools, engines, keys).
template <typename T>
nlohmann::json items_to_json(const std::vector<T>& items) {
    auto arr = nlohmann::json::array();
    for (const auto& item : items) arr.push_back(to_json(item));
    return nlohmann::json{{"items", std::move(arr)}};
}
template <typename T, typename Parse>
Result<std::vector<T>> parse_items(const nlohmann::json& j, Parse parse) {
    auto reader = open_object(j, "", false);
    if (!reader.ok()) return std::move(reader).error();
    std::vector<T> out;
    reader->object_array("items", out, parse, true);
    DISTCONV_TRY(reader->finish());
    return out;
}

}  // namespace distconv::protocol
