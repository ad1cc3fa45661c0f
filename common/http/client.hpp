#pragma once
// An HTTP client over libcurl for talking to the dispatch server and fetching sources: timeouts,
// retries with exponential backoff and jitter, streaming uploads (file or callback) and streaming
// downloads that resume with Range. libcurl stays out of this header.
//
// Contract: request()/upload_*() return a Response for ANY HTTP status (callers decide with
// api_error() or expect_success()); an Error means no usable HTTP answer (connection refused,
// timeout, cut connection, aborted by the caller). call_json() and download_to_file() turn
// non-2xx answers into the API Error. Error messages carry redacted URLs, never the API key.

#include "common/error.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace distconv::http {

struct RetryPolicy {
    int max_attempts = 4;  // total attempts, including the first
    std::chrono::milliseconds initial_backoff{200};
    std::chrono::milliseconds max_backoff{10'000};
    double multiplier = 2.0;
    double jitter = 0.2;  // +-20% of the delay
};

// The delay before retry number `attempt` (1 = after the first failure): initial * multiplier^(attempt-1),
// spread by +-jitter using random01 in [0,1], and never above max_backoff.
std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt, double random01);

// "https://user:pw@host/p?token=abc" -> "https://host/p?token=REDACTED": safe for logs and errors.
std::string redact_url(std::string_view url);

// Parses "bytes 100-199/1000" or "bytes */1000" into the start (nullopt for '*') and the total
// (nullopt for '*'). Returns nullopt when the header is malformed.
struct ContentRange {
    std::optional<uint64_t> start;
    std::optional<uint64_t> total;
};
std::optional<ContentRange> parse_content_range(std::string_view value);

// The Error for a non-2xx answer that has no {"error":{...}} envelope: "HTTP 502 from <url>".
Error error_from_status(long status, std::string_view redacted_url);

// Response headers in arrival order, looked up case-insensitively.
class Headers {
  public:
    void add(std::string name, std::string value) { m_items.emplace_back(std::move(name), std::move(value)); }
    std::optional<std::string> get(std::string_view name) const;  // the first with that name
    const std::vector<std::pair<std::string, std::string>>& items() const { return m_items; }
    void clear() { m_items.clear(); }

  private:
    std::vector<std::pair<std::string, std::string>> m_items;
};

struct Response {
    long status = 0;
    Headers headers;
    std::string body;
    std::string url;  // redacted

    bool success() const { return status >= 200 && status < 300; }
    std::optional<std::string> header(std::string_view name) const { return headers.get(name); }
    Result<nlohmann::json> json() const;  // the body as JSON (an empty body is null)
    // nullopt for 2xx; otherwise the server's error envelope, or one made from the status.
    std::optional<Error> api_error() const;
};

// Turns a non-2xx Response into its API Error; passes errors and 2xx responses through.
Result<Response> expect_success(Result<Response> response);

// Called with bytes done and the total (0 when unknown); return false to abort the transfer.
using ProgressFn = std::function<bool(uint64_t done, uint64_t total)>;

// Fills buf with up to `size` bytes and returns how many; 0 means end of body, k_read_abort aborts.
using BodyReader = std::function<size_t(char* buf, size_t size)>;
inline constexpr size_t k_read_abort = static_cast<size_t>(-1);

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct ClientOptions {
    std::string base_url;  // "http://127.0.0.1:8080/api/v1"; paths starting with '/' are appended to it
    std::string api_key;   // sent as "Authorization: Bearer <key>" when set
    std::string ca_file;   // extra CA bundle for TLS (CURLOPT_CAINFO)
    bool verify_tls = true;
    bool follow_redirects = false;
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds request_timeout{0};  // whole transfer; 0 = none (large files)
    std::chrono::seconds low_speed_time{60};       // abort when no byte moved for this long
    std::uint64_t max_send_bytes_per_second = 0;   // upload rate cap (CURLOPT_MAX_SEND_SPEED_LARGE); 0 = none
    RetryPolicy retry;
    std::string user_agent = "distconv/0.1";
};

struct Request {
    std::string method = "GET";
    std::string path_or_url;  // "/jobs" (joined to base_url) or a full "http(s)://..." URL
    HeaderList headers;
    std::string body;
    std::string content_type;   // sets Content-Type when not empty
    std::optional<bool> retry;  // default: only idempotent methods (GET HEAD PUT DELETE OPTIONS)
    std::optional<std::chrono::milliseconds>
        timeout;          // overrides ClientOptions::request_timeout (long polls)
    ProgressFn progress;  // upload progress when there is a body, download progress otherwise
};

struct Upload {
    std::string method = "PUT";
    std::string path_or_url;
    HeaderList headers;  // e.g. Content-Range for a resumed upload
    std::string content_type = "application/octet-stream";
    std::optional<bool> retry;  // default as Request; callback uploads are never retried (no rewind)
    std::optional<std::chrono::milliseconds> timeout;
    ProgressFn progress;  // bytes of this body sent (the offset is not counted)
};

struct DownloadOptions {
    bool resume = true;  // continue an existing "<dest>.part" with Range: bytes=N-
    HeaderList headers;
    ProgressFn progress;  // done counts bytes already in the .part file
};

struct DownloadResult {
    long status = 0;            // 200, 206, or 416 when the .part file was already complete
    uint64_t size = 0;          // final size of dest
    uint64_t resumed_from = 0;  // bytes kept from an earlier partial file
    int attempts = 0;
    Headers headers;     // of the last answer
    std::string sha256;  // SHA-256 (hex) of dest, computed while writing (a kept .part prefix is read once)
};

// One Client can be shared by threads; it keeps a small pool of curl handles so connections are reused.
class Client {
  public:
    explicit Client(ClientOptions options);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    const ClientOptions& options() const;
    std::string url_for(std::string_view path_or_url) const;

    Result<Response> request(const Request& request);
    Result<Response> get(std::string_view path);
    Result<Response> del(std::string_view path);
    Result<Response> post_json(std::string_view path, const nlohmann::json& body);
    Result<Response> put_json(std::string_view path, const nlohmann::json& body);

    // The parsed JSON of a 2xx answer (null when empty), the API Error otherwise.
    Result<nlohmann::json> call_json(std::string method, std::string_view path,
                                     const std::optional<nlohmann::json>& body = std::nullopt);

    // Streams `file` from `offset` to its end; never holds the file in memory. Retries re-read from `offset`.
    Result<Response> upload_file(const Upload& upload, const std::filesystem::path& file,
                                 uint64_t offset = 0);
    // Streams what `reader` produces; chunked transfer encoding when `size` is unknown.
    Result<Response> upload_callback(const Upload& upload, BodyReader reader,
                                     std::optional<uint64_t> size = std::nullopt);

    // Downloads to "<dest>.part", fsyncs, then renames it to `dest`: a file at `dest` is always complete.
    // Resumes an existing .part with Range, and resumes again after a cut connection while retries remain
    // (an attempt that moved bytes does not use up the retry budget). A 200 answer to a Range request
    // restarts from zero. Non-2xx answers become the API Error and leave the .part file in place.
    Result<DownloadResult> download_to_file(std::string_view path, const std::filesystem::path& dest,
                                            const DownloadOptions& options = {});

  private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace distconv::http
