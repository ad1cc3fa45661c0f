#pragma once
// Per-assignment credentials: what an engine uses to move one assignment's bytes instead of its
// long-lived key. A credential names the assignment, its fencing token and an expiry, signed with
// the server's secret (HMAC-SHA256):
//
//   dca1.<assignment id>.<fencing token>.<expiry, ms since the epoch>.<64 hex digits of MAC>
//
// It authorizes GET .../source and HEAD/PUT .../output of that assignment only, and only while the
// attempt still holds its job with that fencing token (checked against the store on every use), so a
// leaked credential is worth one job's bytes for minutes, never the engine's identity.

#include "common/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace distconv::dispatch {

struct CredentialClaims {
    std::string assignment_id{};
    std::int64_t fencing_token = 0;
    std::int64_t expires_at_ms = 0;
};

class AssignmentCredentials {
  public:
    static constexpr std::string_view k_prefix = "dca1.";

    // A random secret, for tests and servers without a data directory.
    AssignmentCredentials();
    explicit AssignmentCredentials(std::string secret) : m_secret(std::move(secret)) {}
    // The secret kept in `path` (0600, created on first use), so credentials survive a restart.
    static Result<AssignmentCredentials> load_or_create(const std::filesystem::path& path);

    std::string issue(const CredentialClaims& claims) const;
    // UNAUTHENTICATED for a malformed, forged or expired credential.
    Result<CredentialClaims> verify(std::string_view credential, std::int64_t now_ms) const;
    static bool looks_like(std::string_view token) { return token.substr(0, k_prefix.size()) == k_prefix; }

  private:
    std::string m_secret;
};

}  // namespace distconv::dispatch
