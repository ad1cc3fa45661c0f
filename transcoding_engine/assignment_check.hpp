#pragma once
// What the engine checks of every assignment before it acts on it. The dispatch server is trusted
// to hand out work, not to run commands: a fake or compromised server (or a man in the middle of a
// plain-http connection) must not be able to make the engine delete, read or write files outside
// its work dir, run another program, or send its bytes and credentials elsewhere.
//
// - ids are ULIDs (they name directories and URL path segments);
// - the source URL is the configured server's own source endpoint for this assignment;
// - the source format is an allowed demuxer (media/input_policy.hpp);
// - the ffmpeg argv is exactly what this engine builds from the job options (same common/media
//   code as the server), so options are validated again here and nothing else can be added;
// - the credential is a plain token (it goes into an HTTP header).

#include "common/error.hpp"
#include "protocol/engines.hpp"

#include <string>

namespace distconv::engine {

// `server`: the engine's configured dispatch server ("https://host:port", no /api/v1).
// INVALID_ARGUMENT naming the field and the reason when the assignment must not run.
Status check_assignment(const protocol::Assignment& a, const std::string& server);

// `text` safe for a log line or a message: control characters escaped, at most 64 characters shown
// (an assignment's fields are untrusted until checked).
std::string printable(const std::string& text);

// The origin ("scheme://host:port", port made explicit, host lower-cased) of an http(s) URL; empty
// when it is not one.
std::string url_origin(const std::string& url);

}  // namespace distconv::engine
