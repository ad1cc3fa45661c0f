#pragma once
// The one parser of an HTTP Range header, for every server in the project (the dispatch server's
// downloads, the engine's stream-mode relay).

#include "common/error.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace distconv {

struct ByteRange {
    uint64_t first = 0, last = 0;  // inclusive
};

// One range "bytes=a-b", "bytes=a-" or "bytes=-n" against a resource of `size` bytes: none when the
// header is empty; RANGE_NOT_SATISFIABLE (416, details.field "Range") for several ranges, other units,
// or a range outside the resource.
Result<std::optional<ByteRange>> parse_byte_range(const std::string& header, uint64_t size);

}  // namespace distconv
