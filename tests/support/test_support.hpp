#pragma once
// Shared test helpers: a temp directory per test (kept when the test fails), polling with a
// deadline instead of sleeps, and tiny lavfi-generated media clips.

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace distconv::test {

// Creates /tmp/distconv-test-<suite>-<name>-XXXXXX; removes it on destruction unless the current
// test failed (then its path is printed so it can be inspected), or DISTCONV_KEEP_TEST_DIRS is set.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return m_path; }
    std::filesystem::path operator/(const std::string& name) const { return m_path / name; }

  private:
    std::filesystem::path m_path;
};

// Polls `condition` every few milliseconds until it is true or `timeout` passes; returns its last value.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& content);

// Runs a command (argv, no shell) and returns its exit code; stdout goes to `out` when given.
int run_command(const std::vector<std::string>& argv, std::string* out = nullptr);

// Makes a small clip with ffmpeg's lavfi sources (testsrc2 + sine): `seconds` long, WxH, encoded
// with libx264 + aac into `path` (container from the extension). Returns false if ffmpeg failed.
bool make_test_clip(const std::filesystem::path& path, double seconds = 1.0, int width = 320,
                    int height = 240);

// Absolute path of a file under tests/data.
std::filesystem::path data_path(const std::string& relative);

}  // namespace distconv::test
