#pragma once
// ULIDs: 128-bit ids, 26 Crockford base32 characters, sortable by creation time.
// Ids made by one generator are strictly increasing, even within one millisecond.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace distconv {

class UlidGenerator {
  public:
    std::string next();
    // For tests: the id for a given time (ms since epoch) after the previous one.
    std::string next_at(uint64_t unix_ms);

  private:
    std::mutex m_mutex;
    uint64_t m_last_ms = 0;
    uint8_t m_last_random[10] = {};
};

// A process-wide generator.
std::string new_ulid();
bool is_ulid(std::string_view s);
// Milliseconds since the epoch encoded in a ULID (0 if it is not one).
uint64_t ulid_timestamp_ms(std::string_view s);

}  // namespace distconv
