#include "common/http/client.hpp"

#include <strings.h>

#include "common/fs.hpp"
#include "common/hash.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

namespace distconv::http {
namespace {

constexpr size_t k_max_idle_handles = 8;
constexpr size_t k_max_error_body = 64 * 1024;    // a download's error answer is kept in memory up to this
constexpr size_t k_transfer_buffer = 512 * 1024;  // curl's receive and send buffer for bodies
// A download asks the kernel to start writing back every this many bytes, so the final fsync
// waits for the tail only instead of the whole file (durability still comes from that fsync).
constexpr uint64_t k_writeback_every = 8 * 1024 * 1024;

// Hashes the first `size` bytes of `path` into `h` (a resumed download's kept prefix).
bool hash_prefix(const std::filesystem::path& path, uint64_t size, Sha256& h) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::vector<char> buf(1 << 20);
    uint64_t done = 0;
    bool ok = true;
    while (done < size) {
        ssize_t n = ::pread(fd, buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done)),
                            static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ok = false;
            break;
        }
        h.update(buf.data(), static_cast<size_t>(n));
        done += static_cast<uint64_t>(n);
    }
    ::close(fd);
    return ok;
}
constexpr int k_max_download_attempts = 100;  // hard stop even while every attempt makes progress

std::once_flag g_curl_init_once;

void ensure_curl_initialised() {
    std::call_once(g_curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
    s = trim(s);
    uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

bool is_idempotent(std::string_view method) {
    return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
           method == "OPTIONS";
}

// Failures where another attempt may well succeed.
bool is_transient(CURLcode code) {
    switch (code) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_AGAIN:
            return true;
        default:
            return false;
    }
}

bool is_retryable_status(long status) {
    return status == 429 || status == 502 || status == 503 || status == 504;
}

double random01() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// The wait before the next attempt: Retry-After (seconds) on 429/503 when given, else the backoff.
std::chrono::milliseconds retry_wait(const RetryPolicy& policy, int failures, const Headers* headers,
                                     long status) {
    if (headers && (status == 429 || status == 503)) {
        if (auto ra = headers->get("Retry-After")) {
            if (auto secs = parse_u64(*ra)) {
                // Capped: a server asking for an hour must not hang a caller that set max_backoff lower.
                auto wait = std::chrono::milliseconds(std::min<uint64_t>(*secs, 86'400) * 1000);
                return std::min(wait, policy.max_backoff);
            }
        }
    }
    return backoff_delay(policy, failures, random01());
}

struct CurlList {
    curl_slist* list = nullptr;
    CurlList() = default;
    CurlList(const CurlList&) = delete;
    CurlList& operator=(const CurlList&) = delete;
    ~CurlList() { curl_slist_free_all(list); }
    void add(const std::string& line) { list = curl_slist_append(list, line.c_str()); }
};

struct UniqueFd {
    int fd = -1;
    explicit UniqueFd(int f) : fd(f) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() {
        if (fd >= 0) ::close(fd);
    }
};

struct UniqueFile {
    std::FILE* f = nullptr;
    UniqueFile() = default;
    UniqueFile(const UniqueFile&) = delete;
    UniqueFile& operator=(const UniqueFile&) = delete;
    ~UniqueFile() {
        if (f) std::fclose(f);
    }
};

// Where a request body comes from; each attempt starts it again from the beginning.
struct BodySource {
    enum class Kind { None, Memory, File, Callback } kind = Kind::None;
    const std::string* memory = nullptr;
    std::filesystem::path file;
    uint64_t file_offset = 0;
    BodyReader reader;
    std::optional<uint64_t> size;  // nullopt: unknown (chunked)
};

// Everything one transfer needs; the same spec is replayed on retries.
struct Transfer {
    std::string method;
    std::string url;
    HeaderList headers;
    std::string content_type;
    BodySource body;
    bool retry = false;
    std::optional<std::chrono::milliseconds> timeout;
    ProgressFn progress;
};

// The state of one attempt, shared with curl's callbacks.
struct Attempt {
    const Transfer* transfer = nullptr;
    long status = 0;
    Headers headers;
    std::string body;
    // Response body sink for downloads; null collects into `body`. Return false to stop.
    std::function<bool(Attempt&, const char*, size_t)> sink;
    // Body reading state.
    std::FILE* file = nullptr;
    bool read_failed = false;
    bool reader_aborted = false;
    // Progress state.
    bool progress_upload = false;
    uint64_t progress_base = 0;
    uint64_t last_done = UINT64_MAX;
    bool aborted_by_caller = false;
    char errbuf[CURL_ERROR_SIZE] = {};
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
    auto& a = *static_cast<Attempt*>(user);
    const size_t n = size * count;
    std::string_view line(data, n);
    if (line.size() >= 5 && line.substr(0, 5) == "HTTP/") {
        // A new status line (after 100 Continue or a redirect): only the last answer's headers count.
        a.headers.clear();
        auto sp = line.find(' ');
        if (sp != std::string_view::npos) {
            auto rest = line.substr(sp + 1);
            auto code = parse_u64(rest.substr(0, rest.find(' ')));
            if (code) a.status = static_cast<long>(*code);
        }
        return n;
    }
    auto colon = line.find(':');
    if (colon != std::string_view::npos)
        a.headers.add(std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
    return n;
}

size_t on_write(char* data, size_t size, size_t count, void* user) {
    auto& a = *static_cast<Attempt*>(user);
    const size_t n = size * count;
    if (a.sink) return a.sink(a, data, n) ? n : 0;
    a.body.append(data, n);
    return n;
}

size_t on_read(char* buf, size_t size, size_t count, void* user) {
    auto& a = *static_cast<Attempt*>(user);
    const size_t n = size * count;
    const BodySource& src = a.transfer->body;
    switch (src.kind) {
        case BodySource::Kind::File: {
            const size_t got = std::fread(buf, 1, n, a.file);
            if (got == 0 && std::ferror(a.file)) {
                a.read_failed = true;
                return CURL_READFUNC_ABORT;
            }
            return got;
        }
        case BodySource::Kind::Callback: {
            const size_t got = src.reader(buf, n);
            if (got == k_read_abort || got > n) {
                a.reader_aborted = true;
                return CURL_READFUNC_ABORT;
            }
            return got;
        }
        case BodySource::Kind::None:
        case BodySource::Kind::Memory:  // sent with POSTFIELDS
            break;
    }
    return 0;
}

// curl rewinds when it must re-send on a fresh connection; only file bodies can do that.
int on_seek(void* user, curl_off_t offset, int origin) {
    auto& a = *static_cast<Attempt*>(user);
    if (origin != SEEK_SET || a.transfer->body.kind != BodySource::Kind::File || !a.file)
        return CURL_SEEKFUNC_CANTSEEK;
    const auto pos = static_cast<off_t>(a.transfer->body.file_offset + static_cast<uint64_t>(offset));
    return fseeko(a.file, pos, SEEK_SET) == 0 ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    auto& a = *static_cast<Attempt*>(user);
    const curl_off_t now = a.progress_upload ? ulnow : dlnow;
    const curl_off_t total = a.progress_upload ? ultotal : dltotal;
    const uint64_t done = a.progress_base + static_cast<uint64_t>(std::max<curl_off_t>(now, 0));
    // The caller hears every call, changed or not: a long-poll that receives nothing must still be
    // abortable (an engine that drains stops waiting for work at once).
    a.last_done = done;
    const uint64_t all = total > 0 ? a.progress_base + static_cast<uint64_t>(total) : 0;
    if (!a.transfer->progress(done, all)) {
        a.aborted_by_caller = true;
        return 1;
    }
    return 0;
}

Error aborted_error(const Transfer& t) {
    Error e(ErrorCode::Internal,
            "transfer aborted by the caller (" + t.method + " " + redact_url(t.url) + ")",
            nlohmann::json{{"aborted", true}, {"url", redact_url(t.url)}});
    e.retryable = false;
    return e;
}

Error transport_error(const Transfer& t, CURLcode code, const char* errbuf) {
    std::string what = errbuf && *errbuf ? std::string(errbuf) : std::string(curl_easy_strerror(code));
    if (code == CURLE_PEER_FAILED_VERIFICATION)
        what +=
            "; the server's TLS certificate is not trusted: pass the CA that signed it with --ca-cert FILE";
    Error e(ErrorCode::Unavailable, what + " (" + t.method + " " + redact_url(t.url) + ")",
            nlohmann::json{{"curl_code", static_cast<int>(code)}, {"url", redact_url(t.url)}});
    e.retryable = is_transient(code);
    return e;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Pure helpers

std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt, double random01_value) {
    attempt = std::max(attempt, 1);
    const double r = std::clamp(random01_value, 0.0, 1.0);
    const double cap = static_cast<double>(policy.max_backoff.count());
    // Computed in double and capped before jitter so large attempt numbers cannot overflow.
    double base = static_cast<double>(policy.initial_backoff.count()) *
                  std::pow(std::max(policy.multiplier, 1.0), static_cast<double>(attempt - 1));
    base = std::min(base, cap);
    const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
    double delay = base * (1.0 + jitter * (2.0 * r - 1.0));
    delay = std::clamp(delay, 0.0, cap);
    return std::chrono::milliseconds(static_cast<int64_t>(std::llround(delay)));
}

std::string redact_url(std::string_view url) {
    std::string out;
    size_t pos = 0;
    auto scheme_end = url.find("://");
    if (scheme_end != std::string_view::npos) {
        pos = scheme_end + 3;
        out.append(url.substr(0, pos));
        auto auth_end = url.find_first_of("/?#", pos);
        auto authority =
            url.substr(pos, auth_end == std::string_view::npos ? url.size() - pos : auth_end - pos);
        auto at = authority.rfind('@');
        out.append(at == std::string_view::npos ? authority : authority.substr(at + 1));
        pos += authority.size();
    }
    auto rest = url.substr(pos);
    rest = rest.substr(0, rest.find('#'));  // fragments never reach the server anyway
    auto q = rest.find('?');
    out.append(rest.substr(0, q));
    if (q == std::string_view::npos) return out;
    out.push_back('?');
    auto query = rest.substr(q + 1);
    bool first = true;
    while (!query.empty()) {
        auto amp = query.find('&');
        auto item = query.substr(0, amp);
        if (!first) out.push_back('&');
        first = false;
        auto eq = item.find('=');
        out.append(eq == std::string_view::npos ? std::string_view("REDACTED") : item.substr(0, eq));
        if (eq != std::string_view::npos) out.append("=REDACTED");
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return out;
}

std::optional<ContentRange> parse_content_range(std::string_view value) {
    value = trim(value);
    if (value.size() < 6 || !iequals(value.substr(0, 6), "bytes ")) return std::nullopt;
    value.remove_prefix(6);
    auto slash = value.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto range = trim(value.substr(0, slash));
    auto total = trim(value.substr(slash + 1));
    ContentRange out;
    if (total != "*") {
        out.total = parse_u64(total);
        if (!out.total) return std::nullopt;
    }
    if (range != "*") {
        auto dash = range.find('-');
        if (dash == std::string_view::npos) return std::nullopt;
        out.start = parse_u64(range.substr(0, dash));
        if (!out.start || !parse_u64(range.substr(dash + 1))) return std::nullopt;
    }
    return out;
}

Error error_from_status(long status, std::string_view redacted_url) {
    ErrorCode code;
    switch (status) {
        case 400:
            code = ErrorCode::InvalidArgument;
            break;
        case 401:
            code = ErrorCode::Unauthenticated;
            break;
        case 403:
            code = ErrorCode::Forbidden;
            break;
        case 404:
            code = ErrorCode::NotFound;
            break;
        case 405:
            code = ErrorCode::MethodNotAllowed;
            break;
        case 409:
            code = ErrorCode::Conflict;
            break;
        case 410:
            code = ErrorCode::ResultGone;
            break;
        case 412:
            code = ErrorCode::PreconditionFailed;
            break;
        case 413:
            code = ErrorCode::FileTooLarge;
            break;
        case 415:
            code = ErrorCode::UnsupportedMediaType;
            break;
        case 416:
            code = ErrorCode::RangeNotSatisfiable;
            break;
        case 429:
            code = ErrorCode::TooManyRequests;
            break;
        case 502:
        case 503:
        case 504:
            code = ErrorCode::Unavailable;
            break;
        case 507:
            code = ErrorCode::InsufficientStorage;
            break;
        default:
            code = status >= 500 ? ErrorCode::Internal : ErrorCode::InvalidArgument;
            break;
    }
    return Error(code, "HTTP " + std::to_string(status) + " from " + std::string(redacted_url),
                 nlohmann::json{{"status", status}, {"url", std::string(redacted_url)}});
}

std::optional<std::string> Headers::get(std::string_view name) const {
    for (const auto& [k, v] : m_items)
        if (iequals(k, name)) return v;
    return std::nullopt;
}

Result<nlohmann::json> Response::json() const {
    if (trim(body).empty()) return nlohmann::json(nullptr);
    auto parsed = nlohmann::json::parse(body, nullptr, false);
    if (parsed.is_discarded())
        return Error(ErrorCode::Internal, "invalid JSON in the answer from " + url,
                     nlohmann::json{{"url", url}});
    return parsed;
}

std::optional<Error> Response::api_error() const {
    if (success()) return std::nullopt;
    auto parsed = nlohmann::json::parse(body, nullptr, false);
    if (!parsed.is_discarded())
        if (auto e = Error::from_json(parsed)) return e;
    Error e = error_from_status(status, url);
    if (!body.empty()) e.details["body"] = body.substr(0, 200);  // helps when a proxy answers in HTML
    return e;
}

Result<Response> expect_success(Result<Response> response) {
    if (!response.ok()) return response;
    if (auto e = response->api_error()) return std::move(*e);
    return response;
}

// ---------------------------------------------------------------------------------------------
// Client

struct Client::Impl {
    ClientOptions options;
    std::mutex mutex;
    std::vector<CURL*> idle;  // handles keep their connections alive between requests

    explicit Impl(ClientOptions o) : options(std::move(o)) {}
    ~Impl() {
        for (CURL* h : idle) curl_easy_cleanup(h);
    }

    class Lease {
      public:
        explicit Lease(Impl& impl) : m_impl(impl) {
            {
                std::lock_guard lock(impl.mutex);
                if (!impl.idle.empty()) {
                    m_handle = impl.idle.back();
                    impl.idle.pop_back();
                }
            }
            if (!m_handle) m_handle = curl_easy_init();
        }
        ~Lease() {
            if (!m_handle) return;
            std::lock_guard lock(m_impl.mutex);
            if (m_impl.idle.size() < k_max_idle_handles)
                m_impl.idle.push_back(m_handle);
            else
                curl_easy_cleanup(m_handle);
        }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        CURL* get() const { return m_handle; }

      private:
        Impl& m_impl;
        CURL* m_handle = nullptr;
    };

    std::string url_for(std::string_view path_or_url) const {
        if (path_or_url.rfind("http://", 0) == 0 || path_or_url.rfind("https://", 0) == 0)
            return std::string(path_or_url);
        std::string base = options.base_url;
        while (!base.empty() && base.back() == '/') base.pop_back();
        if (path_or_url.empty() || path_or_url.front() != '/') base.push_back('/');
        base.append(path_or_url);
        return base;
    }

    // Runs one attempt of `t` on a pooled handle. Returns curl's result; the answer is in `a`.
    CURLcode perform_once(const Transfer& t, Attempt& a) {
        Lease lease(*this);
        CURL* h = lease.get();
        if (!h) return CURLE_FAILED_INIT;
        curl_easy_reset(h);  // keeps the connection cache

        a.transfer = &t;
        UniqueFile file;
        if (t.body.kind == BodySource::Kind::File) {
            file.f = std::fopen(t.body.file.c_str(), "rb");
            if (!file.f || fseeko(file.f, static_cast<off_t>(t.body.file_offset), SEEK_SET) != 0) {
                a.read_failed = true;
                return CURLE_READ_ERROR;
            }
            a.file = file.f;
        }

        curl_easy_setopt(h, CURLOPT_URL, t.url.c_str());
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        // Large bodies move in large pieces: curl's defaults (16 KiB down, 64 KiB up) cost a callback,
        // a write() and a progress call per piece.
        curl_easy_setopt(h, CURLOPT_BUFFERSIZE,
                         static_cast<long>(a.sink ? k_transfer_buffer : CURL_MAX_WRITE_SIZE));
        curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, static_cast<long>(k_transfer_buffer));
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, a.errbuf);
        curl_easy_setopt(h, CURLOPT_USERAGENT, options.user_agent.c_str());
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
        const auto timeout = t.timeout.value_or(options.request_timeout);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
        if (options.max_send_bytes_per_second > 0)
            curl_easy_setopt(h, CURLOPT_MAX_SEND_SPEED_LARGE,
                             static_cast<curl_off_t>(options.max_send_bytes_per_second));
        if (options.low_speed_time.count() > 0) {
            curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
            curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.low_speed_time.count()));
        }
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options.verify_tls ? 1L : 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options.verify_tls ? 2L : 0L);
        if (!options.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options.ca_file.c_str());
        if (options.follow_redirects) {
            curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
            curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
            curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        }
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &a);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);

        CurlList headers;
        const bool has_body = t.body.kind != BodySource::Kind::None;
        if (!has_body) {
            if (t.method == "GET") {
                curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
            } else if (t.method == "HEAD") {
                curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
            } else {
                if (t.method == "POST" || t.method == "PUT" || t.method == "PATCH") {
                    // An empty body still needs "Content-Length: 0".
                    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
                    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t{0});
                }
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, t.method.c_str());
            }
        } else if (t.body.kind == BodySource::Kind::Memory) {
            // POSTFIELDS lets curl itself re-send the body when a kept-alive connection turns out dead.
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body.memory->size()));
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, t.body.memory->data());
            if (t.method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, t.method.c_str());
            headers.add("Expect:");  // in-memory bodies are small: send at once
        } else {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(h, CURLOPT_READDATA, &a);
            curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
            curl_easy_setopt(h, CURLOPT_SEEKDATA, &a);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                             t.body.size ? static_cast<curl_off_t>(*t.body.size) : curl_off_t{-1});
            if (t.method != "PUT") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, t.method.c_str());
            if (!t.body.size) headers.add("Transfer-Encoding: chunked");
            // Streamed bodies keep curl's "Expect: 100-continue", so a refusal costs no bytes.
        }
        // A request that carries its own Authorization (an assignment credential) does not get the key.
        const bool own_auth = std::any_of(t.headers.begin(), t.headers.end(), [](const auto& kv) {
            return kv.first.size() == 13 && strncasecmp(kv.first.c_str(), "Authorization", 13) == 0;
        });
        if (!options.api_key.empty() && !own_auth) headers.add("Authorization: Bearer " + options.api_key);
        if (!t.content_type.empty()) headers.add("Content-Type: " + t.content_type);
        for (const auto& [k, v] : t.headers) headers.add(k + ": " + v);
        if (headers.list) curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.list);

        if (t.progress) {
            a.progress_upload = has_body;
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, &a);
        }

        const CURLcode code = curl_easy_perform(h);
        long status = 0;
        if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status != 0)
            a.status = status;
        // Drop pointers into this stack frame before the handle goes back to the pool.
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
        return code;
    }

    Result<Response> run(const Transfer& t) {
        const int max_attempts = t.retry ? std::max(options.retry.max_attempts, 1) : 1;
        for (int attempt = 1;; ++attempt) {
            Attempt a;
            const CURLcode code = perform_once(t, a);
            if (a.aborted_by_caller || a.reader_aborted) return aborted_error(t);
            if (a.read_failed)
                return Error(ErrorCode::Internal, "cannot read the upload body from " + t.body.file.string() +
                                                      ": " + std::strerror(errno));
            if (code != CURLE_OK) {
                Error e = transport_error(t, code, a.errbuf);
                if (!e.retryable || attempt >= max_attempts) return e;
                std::this_thread::sleep_for(retry_wait(options.retry, attempt, nullptr, 0));
                continue;
            }
            if (t.retry && is_retryable_status(a.status) && attempt < max_attempts) {
                std::this_thread::sleep_for(retry_wait(options.retry, attempt, &a.headers, a.status));
                continue;
            }
            Response r;
            r.status = a.status;
            r.headers = std::move(a.headers);
            r.body = std::move(a.body);
            r.url = redact_url(t.url);
            return r;
        }
    }

    Result<DownloadResult> download(std::string_view path, const std::filesystem::path& dest,
                                    const DownloadOptions& opts);
};

Result<DownloadResult> Client::Impl::download(std::string_view path, const std::filesystem::path& dest,
                                              const DownloadOptions& opts) {
    const std::filesystem::path part = dest.string() + ".part";
    UniqueFd fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    auto io_error = [&](const char* what) {
        return Error(ErrorCode::Internal,
                     std::string(what) + " " + part.string() + ": " + std::strerror(errno));
    };
    if (fd.fd < 0) return io_error("cannot open");
    if (!opts.resume && ::ftruncate(fd.fd, 0) != 0) return io_error("cannot truncate");
    struct stat st {};
    if (::fstat(fd.fd, &st) != 0) return io_error("cannot stat");
    uint64_t offset = static_cast<uint64_t>(st.st_size);
    if (::lseek(fd.fd, static_cast<off_t>(offset), SEEK_SET) < 0) return io_error("cannot seek");

    DownloadResult result;
    result.resumed_from = offset;
    Sha256 hash;
    if (offset > 0 && !hash_prefix(part, offset, hash)) return io_error("cannot read");
    uint64_t kicked = offset;  // writeback has been started for bytes before this
    Transfer t;
    t.method = "GET";
    t.url = url_for(path);
    t.retry = true;
    t.progress = opts.progress;

    bool restarted = false;  // a 416 for a .part that is not a prefix of the resource: one restart from zero
    int failures = 0;
    for (;;) {
        ++result.attempts;
        t.headers = opts.headers;
        if (offset > 0) t.headers.emplace_back("Range", "bytes=" + std::to_string(offset) + "-");

        Attempt a;
        a.progress_base = offset;
        uint64_t moved = 0;
        bool decided = false;
        bool to_file = false;
        std::optional<Error> sink_error;
        a.sink = [&](Attempt& at, const char* data, size_t n) {
            if (!decided) {
                decided = true;
                if (at.status == 206) {
                    auto cr = parse_content_range(at.headers.get("Content-Range").value_or(""));
                    if (!cr || !cr->start || *cr->start != offset) {
                        sink_error =
                            Error(ErrorCode::Internal,
                                  "unexpected Content-Range in the answer from " + redact_url(t.url));
                        return false;
                    }
                    to_file = true;
                } else if (at.status == 200) {
                    // The server ignored Range: start again from zero.
                    if (offset > 0) {
                        if (::ftruncate(fd.fd, 0) != 0 || ::lseek(fd.fd, 0, SEEK_SET) < 0) {
                            sink_error = io_error("cannot truncate");
                            return false;
                        }
                        hash = Sha256();
                        kicked = 0;
                        offset = 0;
                        result.resumed_from = 0;
                        at.progress_base = 0;
                    }
                    to_file = true;
                }
            }
            if (!to_file) {
                if (at.body.size() < k_max_error_body) at.body.append(data, std::min(n, k_max_error_body));
                return true;
            }
            size_t done = 0;
            while (done < n) {
                ssize_t w = ::write(fd.fd, data + done, n - done);
                if (w < 0) {
                    if (errno == EINTR) continue;
                    sink_error = io_error("cannot write");
                    return false;
                }
                done += static_cast<size_t>(w);
            }
            hash.update(data, n);
            offset += n;
            moved += n;
            if (offset - kicked >= k_writeback_every) {
                fs::start_writeback(fd.fd, kicked, offset);
                kicked = offset;
            }
            return true;
        };

        const CURLcode code = perform_once(t, a);
        if (a.aborted_by_caller) return aborted_error(t);
        if (sink_error) return std::move(*sink_error);

        auto retry_or = [&](Error e, const Headers* headers, long status) -> std::optional<Error> {
            if (moved > 0) failures = 0;  // progress was made: the budget starts again
            ++failures;
            if (failures >= std::max(options.retry.max_attempts, 1) ||
                result.attempts >= k_max_download_attempts)
                return e;
            std::this_thread::sleep_for(retry_wait(options.retry, failures, headers, status));
            return std::nullopt;
        };

        if (code != CURLE_OK) {
            Error e = transport_error(t, code, a.errbuf);
            if (!e.retryable) return e;
            if (auto give_up = retry_or(std::move(e), nullptr, 0)) return std::move(*give_up);
            continue;
        }
        result.status = a.status;
        result.headers = a.headers;
        Response r;
        r.status = a.status;
        r.headers = a.headers;
        r.body = a.body;
        r.url = redact_url(t.url);

        if (a.status == 416 && offset > 0) {
            auto cr = parse_content_range(a.headers.get("Content-Range").value_or(""));
            if (cr && cr->total && *cr->total == offset) break;  // the .part file already holds everything
            if (!restarted) {
                restarted = true;
                if (::ftruncate(fd.fd, 0) != 0 || ::lseek(fd.fd, 0, SEEK_SET) < 0)
                    return io_error("cannot truncate");
                hash = Sha256();
                kicked = 0;
                offset = 0;
                result.resumed_from = 0;
                continue;
            }
        }
        if (is_retryable_status(a.status)) {
            if (auto give_up = retry_or(*r.api_error(), &a.headers, a.status)) return std::move(*give_up);
            continue;
        }
        if (a.status != 200 && a.status != 206) {
            if (auto e = r.api_error()) return std::move(*e);
            return Error(ErrorCode::Internal,
                         "unexpected HTTP " + std::to_string(a.status) + " for a download from " + r.url);
        }
        if (a.status == 200 && !decided && offset > 0) {
            // An empty 200 answer to a Range request: the resource is empty now.
            if (::ftruncate(fd.fd, 0) != 0) return io_error("cannot truncate");
            hash = Sha256();
            offset = 0;
            result.resumed_from = 0;
        }
        // A 206 that ends before the resource does (or a server that closed early but cleanly): continue.
        if (a.status == 206) {
            auto cr = parse_content_range(a.headers.get("Content-Range").value_or(""));
            if (cr && cr->total && offset < *cr->total) {
                if (auto give_up =
                        retry_or(Error(ErrorCode::Unavailable, "short answer from " + r.url), nullptr, 0))
                    return std::move(*give_up);
                continue;
            }
        }
        break;
    }

    if (::fsync(fd.fd) != 0) return io_error("cannot fsync");
    std::error_code ec;
    std::filesystem::rename(part, dest, ec);
    if (ec) return Error(ErrorCode::Internal, "cannot rename " + part.string() + ": " + ec.message());
    result.size = offset;
    result.sha256 = hash.hex_digest();
    return result;
}

Client::Client(ClientOptions options) : m_impl(std::make_unique<Impl>(std::move(options))) {
    ensure_curl_initialised();
}

Client::~Client() = default;

const ClientOptions& Client::options() const {
    return m_impl->options;
}

std::string Client::url_for(std::string_view path_or_url) const {
    return m_impl->url_for(path_or_url);
}

Result<Response> Client::request(const Request& request) {
    Transfer t;
    t.method = request.method;
    t.url = m_impl->url_for(request.path_or_url);
    t.headers = request.headers;
    t.content_type = request.content_type;
    if (!request.body.empty()) {
        t.body.kind = BodySource::Kind::Memory;
        t.body.memory = &request.body;
        t.body.size = request.body.size();
        if (t.content_type.empty()) t.content_type = "application/octet-stream";
    }
    t.retry = request.retry.value_or(is_idempotent(request.method));
    t.timeout = request.timeout;
    t.progress = request.progress;
    return m_impl->run(t);
}

namespace {
Request make_request(std::string method, std::string_view path) {
    Request r;
    r.method = std::move(method);
    r.path_or_url = std::string(path);
    return r;
}
}  // namespace

Result<Response> Client::get(std::string_view path) {
    return request(make_request("GET", path));
}

Result<Response> Client::del(std::string_view path) {
    return request(make_request("DELETE", path));
}

Result<Response> Client::post_json(std::string_view path, const nlohmann::json& body) {
    Request r = make_request("POST", path);
    r.body = body.dump();
    r.content_type = "application/json";
    return request(r);
}

Result<Response> Client::put_json(std::string_view path, const nlohmann::json& body) {
    Request r = make_request("PUT", path);
    r.body = body.dump();
    r.content_type = "application/json";
    return request(r);
}

Result<nlohmann::json> Client::call_json(std::string method, std::string_view path,
                                         const std::optional<nlohmann::json>& body) {
    Request r = make_request(std::move(method), path);
    r.headers.emplace_back("Accept", "application/json");
    if (body) {
        r.body = body->dump();
        r.content_type = "application/json";
    }
    auto response = request(r);
    if (!response.ok()) return std::move(response).error();
    if (auto e = response->api_error()) return std::move(*e);
    return response->json();
}

Result<Response> Client::upload_file(const Upload& upload, const std::filesystem::path& file,
                                     uint64_t offset) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(file, ec);
    if (ec) return Error(ErrorCode::Internal, "cannot read " + file.string() + ": " + ec.message());
    if (offset > size)
        return Error::invalid("offset",
                              "offset " + std::to_string(offset) + " is past the end of " + file.string());
    Transfer t;
    t.method = upload.method;
    t.url = m_impl->url_for(upload.path_or_url);
    t.headers = upload.headers;
    t.content_type = upload.content_type;
    t.body.kind = BodySource::Kind::File;
    t.body.file = file;
    t.body.file_offset = offset;
    t.body.size = size - offset;
    t.retry = upload.retry.value_or(is_idempotent(upload.method));
    t.timeout = upload.timeout;
    t.progress = upload.progress;
    return m_impl->run(t);
}

Result<Response> Client::upload_callback(const Upload& upload, BodyReader reader,
                                         std::optional<uint64_t> size) {
    Transfer t;
    t.method = upload.method;
    t.url = m_impl->url_for(upload.path_or_url);
    t.headers = upload.headers;
    t.content_type = upload.content_type;
    t.body.kind = BodySource::Kind::Callback;
    t.body.reader = std::move(reader);
    t.body.size = size;
    t.retry = false;  // a callback cannot be rewound
    t.timeout = upload.timeout;
    t.progress = upload.progress;
    return m_impl->run(t);
}

Result<DownloadResult> Client::download_to_file(std::string_view path, const std::filesystem::path& dest,
                                                const DownloadOptions& options) {
    return m_impl->download(path, dest, options);
}

}  // namespace distconv::http
