#include "common/fs.hpp"

#include "common/hash.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace distconv::fs {
namespace {

Error errno_error(const std::string& what, const std::filesystem::path& path, int err) {
    ErrorCode code = (err == ENOSPC || err == EDQUOT) ? ErrorCode::InsufficientStorage
                     : (err == ENOENT)                ? ErrorCode::NotFound
                                                      : ErrorCode::Internal;
    return Error(code, what + " " + path.string() + ": " + std::strerror(err));
}

}  // namespace

Status fsync_path(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_error("open", path, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0 && err != EINVAL) return errno_error("fsync", path, err);
    return {};
}

Status atomic_write(const std::filesystem::path& path, std::string_view data) {
    auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
    auto tmp = dir / ("." + path.filename().string() + ".tmp-" + to_hex(random_bytes(6)));
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return errno_error("create", tmp, errno);
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            return errno_error("write", tmp, err);
        }
        off += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return errno_error("fsync", tmp, err);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return errno_error("rename to", path, err);
    }
    return fsync_path(dir);
}

Status durable_rename(const std::filesystem::path& from, const std::filesystem::path& to) {
    if (::rename(from.c_str(), to.c_str()) != 0)
        return errno_error("rename " + from.string() + " to", to, errno);
    auto dir = to.parent_path().empty() ? std::filesystem::path(".") : to.parent_path();
    return fsync_path(dir);
}

Result<SpaceInfo> disk_space(const std::filesystem::path& path) {
    struct statvfs st {};
    if (::statvfs(path.c_str(), &st) != 0) return errno_error("statvfs", path, errno);
    SpaceInfo info;
    info.capacity_bytes = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
    info.free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    return info;
}

uint64_t directory_size(const std::filesystem::path& dir) {
    std::error_code ec;
    uint64_t total = 0;
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        std::error_code fec;
        if (it->is_regular_file(fec)) total += it->file_size(fec);
    }
    return total;
}

bool is_plain_file_name(std::string_view name) {
    if (name.empty() || name == "." || name == "..") return false;
    for (char c : name)
        if (c == '/' || c == '\0') return false;
    return true;
}

void start_writeback(int fd, uint64_t from, uint64_t to) {
#ifdef SYNC_FILE_RANGE_WRITE
    if (to > from)
        (void)::sync_file_range(fd, static_cast<off_t>(from), static_cast<off_t>(to - from),
                                SYNC_FILE_RANGE_WRITE);
#else
    (void)fd, (void)from, (void)to;
#endif
}

}  // namespace distconv::fs
