#pragma once
// The one place a name that came from the server becomes a local file name. The server is not
// trusted with the client's filesystem: `distconv download` must write into the current directory
// whatever output.filename says ("../planted.sh", "/etc/passwd", "a\nb"). A user-given -o path is
// not reduced: the user said where.

#include <cstddef>
#include <string>
#include <string_view>

namespace distconv::client {

// NAME_MAX is 255 bytes; the download is first written to "<name>.part", which must fit too.
inline constexpr std::size_t k_max_local_name_bytes = 255 - std::string_view(".part").size();

// Reduces `server_name` to a plain name in the current directory: its last path component (split
// on '/' and '\\'), without NUL or control bytes, without leading dots (so never ".", ".." or
// hidden), at most k_max_local_name_bytes (cut on a UTF-8 boundary, keeping a short extension).
// When nothing is left, `fallback` reduced the same way; when that is empty too, "download.out".
std::string safe_local_name(std::string_view server_name, std::string_view fallback);

}  // namespace distconv::client
