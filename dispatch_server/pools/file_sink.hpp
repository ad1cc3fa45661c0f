#pragma once
// Writing an upload into a pool file: the one sink every upload path uses (multipart submits, source
// PUTs, engines' output PUTs).

#include "common/error.hpp"
#include "common/hash.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace distconv::dispatch {

// Streams bytes into a pool file at a given offset; the HTTP layer feeds it chunks. Chunks are
// gathered into 64 KiB writes (the HTTP library hands over 4 KiB at a time), writeback to the disk is
// started every 8 MiB so the closing fsync waits for the tail only, and a file written from byte 0
// is hashed on the way (no second read for the SHA-256 check).
class FileSink {
  public:
    FileSink() = default;
    ~FileSink();
    FileSink(const FileSink&) = delete;
    FileSink& operator=(const FileSink&) = delete;
    // Opens `path` for writing at `offset` (truncating anything after it).
    Status open(const std::filesystem::path& path, uint64_t offset);
    // Writes a chunk; fails (and remembers why) once `limit` total bytes would be passed.
    bool write(const char* data, size_t size);
    Status finish();  // writes what is gathered, fsync + close
    // Bytes accepted so far; after a failed write, the bytes that reached the file.
    uint64_t position() const { return m_position + m_buffered.size(); }
    // SHA-256 (hex) of the whole file, after a successful finish(), when it was written from byte 0.
    const std::optional<std::string>& sha256() const { return m_sha256; }
    void set_limit(uint64_t limit, Error error_when_exceeded) {
        m_limit = limit;
        m_limit_error = std::move(error_when_exceeded);
    }
    const std::optional<Error>& error() const { return m_error; }

  private:
    bool flush();
    int m_fd = -1;
    uint64_t m_position = 0;  // bytes written to the file
    uint64_t m_kicked = 0;    // writeback has been started for bytes before this
    std::string m_buffered;   // accepted, not yet written
    std::optional<Sha256> m_hash;
    std::optional<std::string> m_sha256;
    uint64_t m_limit = UINT64_MAX;
    Error m_limit_error;
    std::optional<Error> m_error;
};

// What an upload into `sink` came to once its body ended (`body_complete`: the HTTP layer delivered
// all of it) and finish() returned `finished`: the sink's own error first (over its limit, pool full),
// then a failed fsync, then a body cut off at sink.position() (INVALID_ARGUMENT: continue with
// Content-Range from there).
Status upload_outcome(const FileSink& sink, bool body_complete, const Status& finished);

}  // namespace distconv::dispatch
