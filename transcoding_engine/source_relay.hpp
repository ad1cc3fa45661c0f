#pragma once
// The stream-mode relay: ffmpeg reads the source from http://127.0.0.1:PORT/<random path> on the
// engine itself, and the relay fetches the bytes from the dispatch server in ranges, with the
// assignment's credential and the engine's TLS settings (CA file, verification). So ffmpeg never
// holds a credential, never speaks TLS, and never learns the dispatch server's address; the random
// path keeps other local users from reading the source through it. Seeks work (Range).

#include "common/error.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace distconv::engine {

// Fetches [offset, offset + length) of the source (length > 0, within the source's size).
using RangeFetch = std::function<Result<std::string>(uint64_t offset, uint64_t length)>;

class SourceRelay {
  public:
    SourceRelay(uint64_t size, RangeFetch fetch);
    ~SourceRelay();
    SourceRelay(const SourceRelay&) = delete;
    SourceRelay& operator=(const SourceRelay&) = delete;

    // Binds 127.0.0.1 on a free port and serves on a thread of its own.
    Status start();
    void stop();
    std::string url() const;  // valid after start()
    int port() const;
    uint64_t bytes_served() const;
    // The first fetch failure, if any (ffmpeg then sees the connection end).
    std::optional<Error> error() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace distconv::engine
