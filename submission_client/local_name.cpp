#include "submission_client/local_name.hpp"

namespace distconv::client {
namespace {

// An extension longer than this is not worth keeping at the cost of the name before it.
constexpr std::size_t k_max_kept_extension = 16;

bool is_utf8_continuation(char c) {
    return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// The first `n` bytes of `s`, moved back (at most 3 bytes, the tail of one code point) so a
// multi-byte UTF-8 sequence is not cut in half.
std::string_view utf8_prefix(std::string_view s, std::size_t n) {
    if (n >= s.size()) return s;
    std::size_t cut = n;
    while (cut > 0 && n - cut < 3 && is_utf8_continuation(s[cut])) --cut;
    return s.substr(0, is_utf8_continuation(s[cut]) ? n : cut);
}

std::string reduce(std::string_view name) {
    auto sep = name.find_last_of("/\\");
    if (sep != std::string_view::npos) name.remove_prefix(sep + 1);
    std::string out;
    for (char c : name) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) continue;  // NUL, newlines, escapes: nothing a file name needs
        out.push_back(c);
    }
    // Leading dots go after the control bytes, so ".\n." cannot survive as "..".
    out.erase(0, out.find_first_not_of('.'));
    if (out.size() <= k_max_local_name_bytes) return out;
    std::string_view all = out;
    auto dot = all.rfind('.');
    if (dot != std::string_view::npos && all.size() - dot <= k_max_kept_extension) {
        std::string_view ext = all.substr(dot);
        return std::string(utf8_prefix(all.substr(0, dot), k_max_local_name_bytes - ext.size())) +
               std::string(ext);
    }
    return std::string(utf8_prefix(all, k_max_local_name_bytes));
}

}  // namespace

std::string safe_local_name(std::string_view server_name, std::string_view fallback) {
    if (auto name = reduce(server_name); !name.empty()) return name;
    if (auto name = reduce(fallback); !name.empty()) return name;
    return "download.out";
}

}  // namespace distconv::client
