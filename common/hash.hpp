#pragma once
// SHA-256 (streaming), HMAC-SHA256, hex encoding, constant-time comparison and secure random bytes.

#include "common/error.hpp"

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace distconv {

std::string to_hex(std::string_view bytes);

// Incremental SHA-256: update() with chunks as they stream past, then hex_digest() once.
class Sha256 {
  public:
    Sha256();
    ~Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(const void* data, size_t size);
    void update(std::string_view data) { update(data.data(), data.size()); }
    std::array<unsigned char, 32> digest();  // finishes the hash; the object must not be updated afterwards
    std::string hex_digest();

  private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

std::string sha256_hex(std::string_view data);
// Hashes a file in chunks (never loads it whole).
Result<std::string> sha256_file(const std::filesystem::path& path);

std::string hmac_sha256_hex(std::string_view key, std::string_view message);

// Compares two strings in time independent of where they differ (for secrets and digests).
bool constant_time_equal(std::string_view a, std::string_view b);

// Cryptographically secure random bytes (OpenSSL RAND_bytes); throws if the RNG fails.
std::string random_bytes(size_t count);
// URL-safe base64 (no padding) of `count` random bytes: for API keys and tokens.
std::string random_token(size_t count);

bool is_sha256_hex(std::string_view s);

}  // namespace distconv
