#pragma once
// The dispatch server's connection handling in front of httplib's request parser.
//
// httplib 0.11 gives each connection one worker thread from accept to close. A client that sends its
// request headers a byte at a time (slowloris) or just keeps an idle keep-alive connection open holds
// a worker for as long as it likes, and a few dozen such connections stop /healthz. Here a connection
// holds a worker only while one request is being served:
//   - one gate thread (epoll) holds every connection that is between requests; it peeks (does not
//     read) until a connection's request headers have fully arrived, then hands it to a worker;
//   - headers (and a small body, up to 16 KiB with the head, of a route that is not an upload) must be
//     complete within `header_timeout` of their first byte, an idle connection may wait
//     `keep_alive_timeout` for its next request, a larger non-upload body must arrive within
//     `body_timeout`: past that the connection is closed (408 when a request had begun);
//   - a worker runs httplib's own parser and routing (Server::process_request) for that one request,
//     then gives the connection back to the gate (or closes it).
// Plain HTTP only: a TLS server keeps httplib's SSLServer (its headers cannot be peeked).

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace distconv::dispatch {

struct GateSettings {
    int workers = 64;                               // at most; started as requests need them
    int min_workers = 8;                            // kept even when idle
    std::chrono::milliseconds worker_idle{30'000};  // an idle worker beyond min_workers ends after this
    std::chrono::milliseconds header_timeout{10'000};
    std::chrono::milliseconds keep_alive_timeout{5'000};
    std::chrono::milliseconds body_timeout{30'000};  // bodies of routes that are not uploads
    std::chrono::milliseconds read_timeout{60'000};  // one read or write, once a request is being served
    std::chrono::milliseconds write_timeout{60'000};
    size_t max_connections = 8192;  // more are closed at once (a log line says so)
    // Routes whose bodies are streamed by their handler (uploads): no body deadline, the handler's own
    // idle timeouts apply. Called with (method, path) once the headers are parsed.
    std::function<bool(const std::string&, const std::string&)> is_streaming;
};

struct GateCounters {
    uint64_t accepted = 0;
    uint64_t slow_headers_closed = 0;  // headers not complete within header_timeout
    uint64_t slow_bodies_closed = 0;   // a body not complete within body_timeout
    uint64_t refused_over_limit = 0;   // closed at once: max_connections reached
    size_t waiting = 0;                // connections between requests, held by the gate
    size_t serving = 0;                // connections a worker is serving now
    size_t workers = 0;                // worker threads running now
    uint64_t workers_started = 0;
};

// What a handler may ask of the connection its request came on. Outside a gated connection (TLS,
// tests that call handlers directly) these do nothing and peer_gone() is false.
namespace connection {
// The client has closed its side of the connection (or reset it): no answer will reach it.
bool peer_gone();
// End the connection once this answer is written.
void close_after_answer();
// Called (on this worker, after the request) when this answer could not be written completely.
void on_unanswered(std::function<void()> callback);
}  // namespace connection

class GatedServer final : public httplib::Server {
  public:
    explicit GatedServer(GateSettings settings);
    ~GatedServer() override;

    GateCounters counters() const;

    struct Impl;

  private:
    bool process_and_close_socket(socket_t sock) override;
    std::unique_ptr<Impl> m_impl;
};

// The bytes a request needs in the socket before a worker takes it: its head, plus its body when that
// is small (head + body up to 16 KiB) and its route is not an upload. `head` ends at request_head_end.
size_t request_bytes_needed(std::string_view head,
                            const std::function<bool(const std::string&, const std::string&)>& is_streaming);

// Offsets of the end of the request head ("\r\n\r\n", or "\n\n" as httplib also accepts) in `data`,
// or npos. Exposed for the unit test.
size_t request_head_end(const char* data, size_t size);

}  // namespace distconv::dispatch
