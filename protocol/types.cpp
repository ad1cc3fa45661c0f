#include "protocol/types.hpp"

#include "common/hash.hpp"
#include "common/time.hpp"

#include <array>
#include <cstdio>
#include <utility>

namespace distconv::protocol {
namespace {

template <typename E, std::size_t N>
std::optional<E> lookup(const std::array<std::pair<E, std::string_view>, N>& table, std::string_view text) {
    for (const auto& [value, name] : table)
        if (name == text) return value;
    return std::nullopt;
}

template <typename E, std::size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table, E value) {
    for (const auto& [v, name] : table)
        if (v == value) return name;
    return "unknown";
}

constexpr std::array<std::pair<ErrorClass, std::string_view>, 4> k_error_classes{{
    {ErrorClass::Permanent, "permanent"},
    {ErrorClass::Transient, "transient"},
    {ErrorClass::SourceCorrupt, "source_corrupt"},
    {ErrorClass::OutputMismatch, "output_mismatch"},
}};
constexpr std::array<std::pair<TransferMode, std::string_view>, 2> k_transfer_modes{{
    {TransferMode::File, "file"},
    {TransferMode::Stream, "stream"},
}};
constexpr std::array<std::pair<EngineState, std::string_view>, 4> k_engine_states{{
    {EngineState::Idle, "idle"},
    {EngineState::Busy, "busy"},
    {EngineState::Draining, "draining"},
    {EngineState::Offline, "offline"},
}};
constexpr std::array<std::pair<AttemptState, std::string_view>, 6> k_attempt_states{{
    {AttemptState::Active, "active"},
    {AttemptState::Completed, "completed"},
    {AttemptState::Failed, "failed"},
    {AttemptState::Canceled, "canceled"},
    {AttemptState::Lost, "lost"},
    {AttemptState::Undelivered, "undelivered"},
}};
constexpr std::array<std::pair<ProgressPhase, std::string_view>, 3> k_phases{{
    {ProgressPhase::Downloading, "downloading"},
    {ProgressPhase::Transcoding, "transcoding"},
    {ProgressPhase::Uploading, "uploading"},
}};
constexpr std::array<std::pair<Role, std::string_view>, 3> k_roles{{
    {Role::Admin, "admin"},
    {Role::User, "user"},
    {Role::Engine, "engine"},
}};

bool digits(std::string_view s, std::size_t pos, std::size_t count, int& out) {
    if (pos + count > s.size()) return false;
    out = 0;
    for (std::size_t i = pos; i < pos + count; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        out = out * 10 + (s[i] - '0');
    }
    return true;
}

}  // namespace

std::string_view to_string(ErrorClass c) {
    return name_of(k_error_classes, c);
}
std::optional<ErrorClass> parse_error_class(std::string_view text) {
    return lookup(k_error_classes, text);
}
std::string_view to_string(TransferMode m) {
    return name_of(k_transfer_modes, m);
}
std::optional<TransferMode> parse_transfer_mode(std::string_view text) {
    return lookup(k_transfer_modes, text);
}
std::string_view to_string(EngineState s) {
    return name_of(k_engine_states, s);
}
std::optional<EngineState> parse_engine_state(std::string_view text) {
    return lookup(k_engine_states, text);
}
std::string_view to_string(AttemptState s) {
    return name_of(k_attempt_states, s);
}
std::optional<AttemptState> parse_attempt_state(std::string_view text) {
    return lookup(k_attempt_states, text);
}
std::string_view to_string(ProgressPhase p) {
    return name_of(k_phases, p);
}
std::optional<ProgressPhase> parse_progress_phase(std::string_view text) {
    return lookup(k_phases, text);
}
std::string_view to_string(Role r) {
    return name_of(k_roles, r);
}
std::optional<Role> parse_role(std::string_view text) {
    return lookup(k_roles, text);
}

bool is_sha256_hex(std::string_view text) {
    return distconv::is_sha256_hex(text);
}

std::string format_timestamp(Timestamp t) {
    return format_rfc3339_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

std::optional<Timestamp> parse_timestamp(std::string_view s) {
    using namespace std::chrono;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
        !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, h) || s[13] != ':' ||
        !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec))
        return std::nullopt;
    std::size_t pos = 19;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        const std::size_t start = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
        if (pos == start) return std::nullopt;
    }
    int offset_minutes = 0;
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
        ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        int oh = 0, om = 0;
        if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
            !digits(s, pos + 4, 2, om) || oh > 23 || om > 59)
            return std::nullopt;
        offset_minutes = (s[pos] == '-' ? -1 : 1) * (oh * 60 + om);
        pos += 6;
    } else {
        return std::nullopt;
    }
    if (pos != s.size()) return std::nullopt;
    const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    // A leap second (":60") is folded into the next second rather than rejected.
    if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
    return sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} - minutes{offset_minutes};
}

}  // namespace distconv::protocol
