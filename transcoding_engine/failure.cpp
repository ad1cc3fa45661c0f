#include "transcoding_engine/failure.hpp"

#include <array>

namespace distconv::engine {

protocol::ErrorClass classify_failure(std::optional<int> exit_code, std::string_view stderr_text) {
    if (!exit_code) return protocol::ErrorClass::Transient;
    // Trouble of this machine or the network wins over a permanent-looking line: a full disk makes
    // ffmpeg print "Invalid argument" too.
    static constexpr std::array<std::string_view, 12> k_transient = {"No space left on device",
                                                                     "Disk quota exceeded",
                                                                     "Connection refused",
                                                                     "Connection reset",
                                                                     "Connection timed out",
                                                                     "Network is unreachable",
                                                                     "Server returned 5",
                                                                     "Input/output error",
                                                                     "Cannot allocate memory",
                                                                     "Resource temporarily unavailable",
                                                                     "Broken pipe",
                                                                     "Too many open files"};
    for (auto pattern : k_transient)
        if (stderr_text.find(pattern) != std::string_view::npos) return protocol::ErrorClass::Transient;
    static constexpr std::array<std::string_view, 19> k_permanent = {
        "Invalid data found when processing input",
        "Unknown encoder",
        "Unknown decoder",
        "Invalid argument",
        "Error while opening encoder",
        "Error while opening decoder",
        "Unrecognized option",
        "Option not found",
        "Error splitting the argument list",
        "No such filter",
        "moov atom not found",
        "could not find codec parameters",
        "Could not find codec parameters",
        "does not contain any stream",
        "Error initializing output stream",
        "Invalid frame size",
        "Decoding requested, but no decoder found",
        "Cannot determine format of input stream",  // not one frame of the source could be decoded
        "Server returned 4",  // the source is gone or forbidden; a retry cannot fix that
    };
    for (auto pattern : k_permanent)
        if (stderr_text.find(pattern) != std::string_view::npos) return protocol::ErrorClass::Permanent;
    return protocol::ErrorClass::Transient;
}

}  // namespace distconv::engine
