#pragma once
// Reads a Server-Sent Events stream (GET /jobs/{id}/events) as it arrives. http::Client collects
// whole bodies, and an events stream only ends with the job, so this one call uses libcurl directly
// with the same options (key, CA bundle, TLS verification); libcurl stays out of this header.

#include "common/error.hpp"
#include "common/http/client.hpp"
#include "submission_client/core.hpp"

#include <functional>
#include <string>

namespace distconv::client {

// Called for each event; return false to stop reading.
using SseHandler = std::function<bool(const SseEvent& event)>;
// Polled about every 100 ms; return true to abort the stream (Ctrl-C).
using AbortCheck = std::function<bool()>;

// Streams `url` until the server closes it, the handler stops it, or `aborted` says so. Returns the
// HTTP status (an error envelope body becomes the Error for non-2xx answers).
Result<long> read_sse(const http::ClientOptions& options, const std::string& url, const SseHandler& handler,
                      const AbortCheck& aborted);

}  // namespace distconv::client
