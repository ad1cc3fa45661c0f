#pragma once
// The stream-mode relay: ffmpeg reads the source from http://127.0.0.1:PORT/<random path> on the
// engine itself, and the relay fetches the bytes from the dispatch server in ranges, with the
// assignment's credential and the engine's TLS settings (CA file, verification). So ffmpeg never
// holds a credential, never speaks TLS, and never learns the dispatch server's address; the random
// path keeps other local users from reading the source through it. Seeks work (Range).
//
// The relay also checks the bytes: it hashes the source's sequential prefix as fetches arrive, and
// after ffmpeg is done finish_hash() fetches only what was never hashed, so the whole source is
// verified against its SHA-256 without the engine ever holding more than one fetch of it.

#include "common/error.hpp"
#include "common/hash.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace distconv::engine {

// Fetches [offset, offset + length) of the source (length > 0, within the source's size).
using RangeFetch = std::function<Result<std::string>(uint64_t offset, uint64_t length)>;

// What the source hashed to, and how many bytes of it there were (fewer than expected when the
// server's copy ended early).
struct SourceDigest {
    std::string sha256;  // hex
    uint64_t size = 0;
    uint64_t fetched_to_finish = 0;  // of `size`, the bytes finish() fetched (never read in order)
};

// A running SHA-256 over the source's prefix [0, hashed()), fed with blocks in whatever order they
// are fetched. A block that covers the prefix's end extends it with its bytes past the end; any
// other block (a seek ahead, e.g. to an MP4's index at the end, or back into the prefix) is ignored,
// so nothing is buffered: finish() fetches whatever was never hashed. Thread-safe.
class PrefixHash {
  public:
    explicit PrefixHash(uint64_t size) : m_size(size) {}

    void add(uint64_t offset, std::string_view bytes);
    uint64_t hashed() const;
    // Fetches [hashed(), size) in pieces of at most `piece` bytes and returns the digest of the whole
    // source. A fetch answering no bytes ends the source there (the digest's size says how far it
    // got); a failed fetch is the error. Call once; add() is ignored afterwards.
    Result<SourceDigest> finish(const RangeFetch& fetch, uint64_t piece);

  private:
    mutable std::mutex m_mutex;
    const uint64_t m_size;
    uint64_t m_hashed = 0;
    Sha256 m_hash;
    bool m_finished = false;
};

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
    // Stops serving, then the source's digest: the bytes fetched in order while serving and, for
    // the rest, fetches through `fetch` (the relay's own when empty; the caller's may report progress
    // or give up between pieces).
    Result<SourceDigest> finish_hash(const RangeFetch& fetch = {});
    uint64_t hashed_prefix() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace distconv::engine
