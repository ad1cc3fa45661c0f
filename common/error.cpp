#include "common/error.hpp"

#include <array>

namespace distconv {
namespace {

struct CodeInfo {
    ErrorCode code;
    std::string_view name;
    int status;
    bool retryable;
};

constexpr std::array<CodeInfo, 21> k_codes{{
    {ErrorCode::InvalidArgument, "INVALID_ARGUMENT", 400, false},
    {ErrorCode::Unauthenticated, "UNAUTHENTICATED", 401, false},
    {ErrorCode::Forbidden, "FORBIDDEN", 403, false},
    {ErrorCode::NotFound, "NOT_FOUND", 404, false},
    {ErrorCode::JobNotFound, "JOB_NOT_FOUND", 404, false},
    {ErrorCode::MethodNotAllowed, "METHOD_NOT_ALLOWED", 405, false},
    {ErrorCode::JobNotReady, "JOB_NOT_READY", 409, true},
    {ErrorCode::Conflict, "CONFLICT", 409, false},
    {ErrorCode::LeaseLost, "LEASE_LOST", 409, false},
    {ErrorCode::ResultGone, "RESULT_GONE", 410, false},
    {ErrorCode::PreconditionFailed, "PRECONDITION_FAILED", 412, false},
    {ErrorCode::FileTooLarge, "FILE_TOO_LARGE", 413, false},
    {ErrorCode::UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", 415, false},
    {ErrorCode::RangeNotSatisfiable, "RANGE_NOT_SATISFIABLE", 416, false},
    {ErrorCode::TranscodeFailed, "TRANSCODE_FAILED", 422, false},
    {ErrorCode::Unprocessable, "UNPROCESSABLE", 422, false},
    {ErrorCode::OutputMismatch, "OUTPUT_MISMATCH", 422, false},
    {ErrorCode::TooManyRequests, "TOO_MANY_REQUESTS", 429, true},
    {ErrorCode::Internal, "INTERNAL_ERROR", 500, true},
    {ErrorCode::Unavailable, "UNAVAILABLE", 503, true},
    {ErrorCode::InsufficientStorage, "INSUFFICIENT_STORAGE", 507, true},
}};

const CodeInfo& info(ErrorCode code) {
    for (const auto& c : k_codes)
        if (c.code == code) return c;
    return k_codes[18];  // INTERNAL_ERROR
}

}  // namespace

std::string_view error_code_name(ErrorCode code) {
    return info(code).name;
}
int http_status(ErrorCode code) {
    return info(code).status;
}
bool default_retryable(ErrorCode code) {
    return info(code).retryable;
}

std::optional<ErrorCode> error_code_from_name(std::string_view name) {
    for (const auto& c : k_codes)
        if (c.name == name) return c.code;
    return std::nullopt;
}

Error Error::invalid(std::string field, std::string msg) {
    return Error(ErrorCode::InvalidArgument, std::move(msg), nlohmann::json{{"field", std::move(field)}});
}

nlohmann::json Error::to_json() const {
    return nlohmann::json{{"error",
                           {{"code", std::string(error_code_name(code))},
                            {"message", message},
                            {"details", details.is_null() ? nlohmann::json::object() : details},
                            {"retryable", retryable}}}};
}

std::optional<Error> Error::from_json(const nlohmann::json& envelope) {
    if (!envelope.is_object() || !envelope.contains("error") || !envelope["error"].is_object())
        return std::nullopt;
    const auto& e = envelope["error"];
    if (!e.contains("code") || !e["code"].is_string()) return std::nullopt;
    auto code = error_code_from_name(e["code"].get<std::string>()).value_or(ErrorCode::Internal);
    Error out(code, e.value("message", std::string{}));
    if (e.contains("details") && e["details"].is_object()) out.details = e["details"];
    if (e.contains("retryable") && e["retryable"].is_boolean()) out.retryable = e["retryable"].get<bool>();
    return out;
}

std::string Error::to_string() const {
    return std::string(error_code_name(code)) + ": " + message;
}

}  // namespace distconv
