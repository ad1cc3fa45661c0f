#pragma once
// Deciding whether an ffmpeg failure is worth another attempt.

#include "protocol/types.hpp"

#include <optional>
#include <string_view>

namespace distconv::engine {

// permanent: ffmpeg rejected the options or could not decode the input (another engine would fail
// the same way). transient: killed by a signal, network and disk trouble, anything unrecognised.
// exit_code is nullopt when ffmpeg died by a signal.
protocol::ErrorClass classify_failure(std::optional<int> exit_code, std::string_view stderr_text);

}  // namespace distconv::engine
