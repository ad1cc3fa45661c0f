#pragma once
// Filesystem helpers: durable atomic writes, free space, fsync.

#include "common/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string_view>

namespace distconv::fs {

// Writes `data` to `path` durably: a temp file in the same directory, fsync, rename over `path`,
// fsync of the directory. Readers see the old or the new content, never a mix.
Status atomic_write(const std::filesystem::path& path, std::string_view data);

// Renames `from` to `to` (same filesystem) and fsyncs the destination directory.
Status durable_rename(const std::filesystem::path& from, const std::filesystem::path& to);

Status fsync_path(const std::filesystem::path& path);  // file or directory
// Asks the kernel to start (not wait for) writeback of bytes [from, to) of `fd`, so a later fsync
// waits for the tail only. A hint: errors are ignored; durability still comes from the fsync.
void start_writeback(int fd, uint64_t from, uint64_t to);

struct SpaceInfo {
    uint64_t capacity_bytes = 0;
    uint64_t free_bytes = 0;  // free for an unprivileged user (f_bavail)
};
Result<SpaceInfo> disk_space(const std::filesystem::path& path);

// Bytes used by regular files under `dir` (recursively); missing dir → 0.
uint64_t directory_size(const std::filesystem::path& dir);

// A name is a plain file name: not empty, no '/', '\0', not "." or "..".
bool is_plain_file_name(std::string_view name);

}  // namespace distconv::fs
