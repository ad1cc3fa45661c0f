#include "common/byte_range.hpp"

#include <charconv>
#include <string_view>

namespace distconv {

namespace {

std::optional<uint64_t> digits(std::string_view text) {
    if (text.empty() || text.size() > 19) return std::nullopt;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
    return v;
}

Error unsatisfiable(std::string message) {
    return Error(ErrorCode::RangeNotSatisfiable, std::move(message), {{"field", "Range"}});
}

}  // namespace

Result<std::optional<ByteRange>> parse_byte_range(const std::string& header, uint64_t size) {
    if (header.empty()) return std::optional<ByteRange>{};
    constexpr std::string_view k_unit = "bytes=";
    std::string_view spec(header);
    if (spec.substr(0, k_unit.size()) != k_unit)
        return unsatisfiable("only one byte range 'bytes=first-last' is supported");
    spec.remove_prefix(k_unit.size());
    auto dash = spec.find('-');
    if (dash == std::string_view::npos || spec.find(',') != std::string_view::npos)
        return unsatisfiable("only one byte range 'bytes=first-last' is supported");
    auto a_text = spec.substr(0, dash), b_text = spec.substr(dash + 1);
    auto a = digits(a_text), b = digits(b_text);
    if ((!a_text.empty() && !a) || (!b_text.empty() && !b) || (a_text.empty() && b_text.empty()))
        return unsatisfiable("only one byte range 'bytes=first-last' is supported");
    ByteRange r;
    if (a_text.empty()) {  // suffix: the last b bytes
        if (*b == 0 || size == 0) return unsatisfiable("empty suffix range");
        r.first = *b >= size ? 0 : size - *b;
        r.last = size - 1;
    } else {
        if (*a >= size)
            return unsatisfiable("the range starts beyond the end (" + std::to_string(size) + " bytes)");
        r.first = *a;
        r.last = (!b || *b >= size) ? size - 1 : *b;
        if (r.last < r.first) return unsatisfiable("the range ends before it starts");
    }
    return std::optional<ByteRange>(r);
}

}  // namespace distconv
