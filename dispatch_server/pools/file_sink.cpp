#include "dispatch_server/pools/file_sink.hpp"

#include "common/fs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace distconv::dispatch {

namespace stdfs = std::filesystem;

namespace {
constexpr size_t k_sink_buffer = 64 << 10;            // one write() per 64 KiB (16 of the 4 KiB chunks)
constexpr uint64_t k_sink_writeback_every = 8 << 20;  // start writeback every 8 MiB
}  // namespace

FileSink::~FileSink() {
    if (m_fd >= 0) ::close(m_fd);
}

Status FileSink::open(const stdfs::path& path, uint64_t offset) {
    std::error_code ec;
    stdfs::create_directories(path.parent_path(), ec);
    m_fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (m_fd < 0)
        return Error(ErrorCode::Internal, "cannot open " + path.filename().string() + ": " + strerror(errno));
    if (::ftruncate(m_fd, static_cast<off_t>(offset)) != 0 ||
        ::lseek(m_fd, static_cast<off_t>(offset), SEEK_SET) < 0)
        return Error(ErrorCode::Internal, std::string("cannot position upload: ") + strerror(errno));
    m_position = offset;
    m_kicked = offset;
    m_buffered.reserve(k_sink_buffer);
    if (offset == 0) m_hash.emplace();
    return {};
}

bool FileSink::flush() {
    const char* data = m_buffered.data();
    size_t size = m_buffered.size();
    while (size > 0) {
        ssize_t n = ::write(m_fd, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            m_error = errno == ENOSPC
                          ? Error(ErrorCode::InsufficientStorage, "the storage pool is full")
                          : Error(ErrorCode::Internal, std::string("write failed: ") + strerror(errno));
            m_buffered.clear();
            return false;
        }
        data += n;
        size -= static_cast<size_t>(n);
        m_position += static_cast<uint64_t>(n);
    }
    m_buffered.clear();
    if (m_position - m_kicked >= k_sink_writeback_every) {
        fs::start_writeback(m_fd, m_kicked, m_position);  // finish()'s fsync makes them durable
        m_kicked = m_position;
    }
    return true;
}

bool FileSink::write(const char* data, size_t size) {
    if (m_error) return false;
    if (size > m_limit - std::min(m_limit, position())) {
        m_error = m_limit_error;
        return false;
    }
    if (m_hash) m_hash->update(data, size);
    while (size > 0) {
        size_t take = std::min(size, k_sink_buffer - m_buffered.size());
        m_buffered.append(data, take);
        data += take;
        size -= take;
        if (m_buffered.size() == k_sink_buffer && !flush()) return false;
    }
    return true;
}

Status FileSink::finish() {
    if (m_fd < 0) return {};
    bool flushed = flush();  // also after a refused chunk: what came before it was accepted
    int rc = flushed ? ::fsync(m_fd) : 0;
    int err = errno;
    ::close(m_fd);
    m_fd = -1;
    if (!flushed) return *m_error;
    if (rc != 0) return Error(ErrorCode::Internal, std::string("fsync failed: ") + strerror(err));
    if (m_hash && !m_error) m_sha256 = m_hash->hex_digest();
    m_hash.reset();
    return {};
}

Status upload_outcome(const FileSink& sink, bool body_complete, const Status& finished) {
    if (sink.error()) return *sink.error();
    if (!finished) return finished.error();
    if (!body_complete)
        return Error::invalid("body", "the upload was cut off at byte " + std::to_string(sink.position()) +
                                          "; continue with Content-Range");
    return {};
}

}  // namespace distconv::dispatch
