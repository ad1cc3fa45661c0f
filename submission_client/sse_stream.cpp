#include "submission_client/sse_stream.hpp"

#include <curl/curl.h>

namespace distconv::client {
namespace {

struct StreamState {
    const SseHandler* handler = nullptr;
    const AbortCheck* aborted = nullptr;
    SseParser parser;
    long status = 0;
    std::string error_body;
    bool stopped = false;
    CURL* curl = nullptr;
};

size_t on_data(char* data, size_t size, size_t count, void* user) {
    auto& s = *static_cast<StreamState*>(user);
    const size_t n = size * count;
    if (s.status == 0) curl_easy_getinfo(s.curl, CURLINFO_RESPONSE_CODE, &s.status);
    if (s.status < 200 || s.status >= 300) {
        if (s.error_body.size() < 65536) s.error_body.append(data, n);
        return n;
    }
    for (const auto& ev : s.parser.feed(std::string_view(data, n))) {
        if (!(*s.handler)(ev)) {
            s.stopped = true;
            return 0;
        }
    }
    return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto& s = *static_cast<StreamState*>(user);
    if (*s.aborted && (*s.aborted)()) {
        s.stopped = true;
        return 1;
    }
    return 0;
}

}  // namespace

Result<long> read_sse(const http::ClientOptions& options, const std::string& url, const SseHandler& handler,
                      const AbortCheck& aborted) {
    CURL* h = curl_easy_init();
    if (!h) return Error(ErrorCode::Internal, "curl_easy_init failed");
    StreamState s;
    s.handler = &handler;
    s.aborted = &aborted;
    s.curl = h;
    struct curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Accept: text/event-stream");
    std::string auth = "Authorization: Bearer " + options.api_key;
    if (!options.api_key.empty()) headers = curl_slist_append(headers, auth.c_str());
    char errbuf[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, options.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
    // The server sends a keep-alive comment every 15 s: a silent minute means the stream is dead.
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options.verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options.verify_tls ? 2L : 0L);
    if (!options.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options.ca_file.c_str());
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &s);
    const CURLcode code = curl_easy_perform(h);
    if (s.status == 0) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    if (s.stopped) return s.status;
    if (code != CURLE_OK)
        return Error(ErrorCode::Unavailable, std::string(*errbuf ? errbuf : curl_easy_strerror(code)) +
                                                 " (events of " + http::redact_url(url) + ")");
    if (s.status < 200 || s.status >= 300) {
        http::Response r;
        r.status = s.status;
        r.body = s.error_body;
        r.url = http::redact_url(url);
        if (auto e = r.api_error()) return *e;
    }
    return s.status;
}

}  // namespace distconv::client
