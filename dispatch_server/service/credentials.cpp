#include "dispatch_server/service/credentials.hpp"

#include "common/fs.hpp"
#include "common/hash.hpp"

#include <sys/stat.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

namespace distconv::dispatch {
namespace {

std::string signed_part(const CredentialClaims& c) {
    return std::string(AssignmentCredentials::k_prefix) + c.assignment_id + "." +
           std::to_string(c.fencing_token) + "." + std::to_string(c.expires_at_ms);
}

bool parse_i64(std::string_view s, std::int64_t& out) {
    if (s.empty() || s.size() > 19) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && out >= 0;
}

Error bad(const std::string& why) {
    return Error(ErrorCode::Unauthenticated, "the assignment credential " + why);
}

}  // namespace

AssignmentCredentials::AssignmentCredentials() : m_secret(random_bytes(32)) {}

Result<AssignmentCredentials> AssignmentCredentials::load_or_create(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        if (ec) return Error(ErrorCode::Internal, "cannot read " + path.string() + ": " + ec.message());
        std::string secret = to_hex(random_bytes(32)) + "\n";
        mode_t old = ::umask(077);
        auto st = fs::atomic_write(path, secret);
        ::umask(old);
        if (!st) return st.error();
    }
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    if (!in.good() && !in.eof()) return Error(ErrorCode::Internal, "cannot read " + path.string());
    std::string secret = text.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.size() < 32)
        return Error(ErrorCode::Internal,
                     path.string() +
                         " holds no usable secret (expected 64 hex digits); remove it to "
                         "make a new one");
    return AssignmentCredentials(secret);
}

std::string AssignmentCredentials::issue(const CredentialClaims& claims) const {
    std::string body = signed_part(claims);
    return body + "." + hmac_sha256_hex(m_secret, body);
}

Result<CredentialClaims> AssignmentCredentials::verify(std::string_view token, std::int64_t now_ms) const {
    if (token.size() > 200 || !looks_like(token)) return bad("is malformed");
    std::vector<std::string_view> parts;
    std::string_view rest = token.substr(k_prefix.size());
    for (size_t dot; (dot = rest.find('.')) != std::string_view::npos; rest.remove_prefix(dot + 1))
        parts.push_back(rest.substr(0, dot));
    parts.push_back(rest);
    if (parts.size() != 4) return bad("is malformed");
    CredentialClaims c;
    c.assignment_id = std::string(parts[0]);
    if (c.assignment_id.empty() || !parse_i64(parts[1], c.fencing_token) ||
        !parse_i64(parts[2], c.expires_at_ms))
        return bad("is malformed");
    if (!constant_time_equal(hmac_sha256_hex(m_secret, signed_part(c)), parts[3])) return bad("is not valid");
    if (c.expires_at_ms <= now_ms) return bad("has expired");
    return c;
}

}  // namespace distconv::dispatch
