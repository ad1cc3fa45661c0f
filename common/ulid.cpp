#include "common/ulid.hpp"

#include "common/hash.hpp"

#include <chrono>
#include <cstring>

namespace distconv {
namespace {

__extension__ using u128 = unsigned __int128;  // GCC/Clang extension; -Wpedantic needs the marker

constexpr char k_crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int crockford_value(char c) {
    for (int i = 0; i < 32; ++i)
        if (k_crockford[i] == c) return i;
    return -1;
}

std::string encode(uint64_t ms, const uint8_t random[10]) {
    // 48-bit time + 80-bit randomness = 128 bits = 26 base32 chars (the top 2 bits are zero).
    uint8_t bytes[16];
    for (int i = 0; i < 6; ++i) bytes[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
    std::memcpy(bytes + 6, random, 10);
    std::string out(26, '0');
    // Walk the 130-bit big-endian number 5 bits at a time from the least significant end.
    u128 v = 0;
    for (auto b : bytes) v = (v << 8) | b;
    for (int i = 25; i >= 0; --i) {
        out[static_cast<size_t>(i)] = k_crockford[static_cast<int>(v & 31)];
        v >>= 5;
    }
    return out;
}

uint64_t now_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

}  // namespace

std::string UlidGenerator::next() {
    return next_at(now_ms());
}

std::string UlidGenerator::next_at(uint64_t unix_ms) {
    std::lock_guard lock(m_mutex);
    if (unix_ms <= m_last_ms) {
        // Same (or earlier: clock stepped back) millisecond: keep the time and increment the randomness.
        unix_ms = m_last_ms;
        for (int i = 9; i >= 0; --i)
            if (++m_last_random[i] != 0) break;
    } else {
        std::string r = random_bytes(10);
        std::memcpy(m_last_random, r.data(), 10);
        m_last_random[0] &= 0x7f;  // leave room to increment without overflowing within one millisecond
        m_last_ms = unix_ms;
    }
    return encode(unix_ms, m_last_random);
}

std::string new_ulid() {
    static UlidGenerator generator;
    return generator.next();
}

bool is_ulid(std::string_view s) {
    if (s.size() != 26) return false;
    if (crockford_value(s[0]) > 7) return false;
    for (char c : s)
        if (crockford_value(c) < 0) return false;
    return true;
}

uint64_t ulid_timestamp_ms(std::string_view s) {
    if (!is_ulid(s)) return 0;
    u128 v = 0;
    for (char c : s) v = (v << 5) | static_cast<unsigned>(crockford_value(c));
    return static_cast<uint64_t>(v >> 80);
}

}  // namespace distconv
