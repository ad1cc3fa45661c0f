#pragma once
// Small formatting helpers the commands share.

#include "protocol/protocol.hpp"

#include <optional>
#include <string>

namespace distconv::client {

inline std::string opt_str(const std::optional<std::string>& s, const std::string& fallback = "-") {
    return s ? *s : fallback;
}

inline std::string ts(protocol::Timestamp t) {
    return protocol::format_timestamp(t);
}

inline std::string ts(const std::optional<protocol::Timestamp>& t) {
    return t ? protocol::format_timestamp(*t) : "-";
}

}  // namespace distconv::client
