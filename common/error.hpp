#pragma once
// Error and Result<T>: how modules report expected failures to each other.
// Exceptions are reserved for programming errors and fatal start-up problems.

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace distconv {

// The error codes of the v1 API (see protocol/openapi.yaml). Each maps to one HTTP status.
enum class ErrorCode {
    InvalidArgument,       // 400
    Unauthenticated,       // 401
    Forbidden,             // 403
    NotFound,              // 404
    JobNotFound,           // 404
    MethodNotAllowed,      // 405
    JobNotReady,           // 409
    Conflict,              // 409
    LeaseLost,             // 409
    ResultGone,            // 410
    PreconditionFailed,    // 412
    FileTooLarge,          // 413
    UnsupportedMediaType,  // 415
    RangeNotSatisfiable,   // 416
    TranscodeFailed,       // 422
    Unprocessable,         // 422: the source cannot be transcoded as asked (a selection that matches nothing)
    OutputMismatch,        // 422: an output that does not match its stream plan
    TooManyRequests,       // 429
    Internal,              // 500
    Unavailable,           // 503 (also: a peer could not be reached)
    InsufficientStorage,   // 507
};

std::string_view error_code_name(ErrorCode code);  // "INVALID_ARGUMENT", ...
std::optional<ErrorCode> error_code_from_name(std::string_view name);
int http_status(ErrorCode code);
bool default_retryable(ErrorCode code);

struct Error {
    ErrorCode code = ErrorCode::Internal;
    std::string message;
    nlohmann::json details = nlohmann::json::object();
    bool retryable = false;

    Error() = default;
    Error(ErrorCode c, std::string msg, nlohmann::json det = nlohmann::json::object())
        : code(c), message(std::move(msg)), details(std::move(det)), retryable(default_retryable(c)) {}

    // An INVALID_ARGUMENT naming the offending field in details.field.
    static Error invalid(std::string field, std::string msg);

    // {"error":{"code":..,"message":..,"details":..,"retryable":..}}: the one error envelope.
    nlohmann::json to_json() const;
    static std::optional<Error> from_json(const nlohmann::json& envelope);
    std::string to_string() const;  // "INVALID_ARGUMENT: message"
};

// A value or an Error. Small on purpose: ok(), value(), error(), and the TRY macro below.
template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : m_v(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit by design
    Result(Error error) : m_v(std::in_place_index<1>, std::move(error)) {}  // NOLINT

    bool ok() const { return m_v.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(m_v); }
    const T& value() const& { return std::get<0>(m_v); }
    T&& value() && { return std::get<0>(std::move(m_v)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const& { return std::get<1>(m_v); }
    Error&& error() && { return std::get<1>(std::move(m_v)); }

    template <typename U>
    T value_or(U&& fallback) const& {
        return ok() ? value() : static_cast<T>(std::forward<U>(fallback));
    }

  private:
    std::variant<T, Error> m_v;
};

template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Error error) : m_error(std::move(error)) {}  // NOLINT
    bool ok() const { return !m_error.has_value(); }
    explicit operator bool() const { return ok(); }
    const Error& error() const& { return *m_error; }
    Error&& error() && { return std::move(*m_error); }

  private:
    std::optional<Error> m_error;
};

using Status = Result<void>;

}  // namespace distconv

// Returns the error of a failed Result from the enclosing function.
#define DISTCONV_TRY(expr)                                                    \
    do {                                                                      \
        auto&& distconv_try_r_ = (expr);                                      \
        if (!distconv_try_r_.ok()) return std::move(distconv_try_r_).error(); \
    } while (0)
