#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

namespace distconv::test {

namespace {
std::string sanitize(std::string s) {
    for (auto& c : s)
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
    return s.substr(0, 60);
}
}  // namespace

TempDir::TempDir() {
    std::string stem = "distconv-test";
    if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info())
        stem += "-" + sanitize(std::string(info->test_suite_name()) + "-" + info->name());
    std::string templ = (std::filesystem::temp_directory_path() / (stem + "-XXXXXX")).string();
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed for " + templ);
    m_path = buf.data();
}

TempDir::~TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    bool failed = info && info->result() && info->result()->Failed();
    if (failed || std::getenv("DISTCONV_KEEP_TEST_DIRS")) {
        std::cerr << "[ kept    ] test directory " << m_path << "\n";
        return;
    }
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto step = std::chrono::milliseconds(1);
    while (true) {
        if (condition()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(step);
        step = std::min(step * 2, std::chrono::milliseconds(25));
    }
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::filesystem::path& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
}

int run_command(const std::vector<std::string>& argv, std::string* out) {
    int pipefd[2] = {-1, -1};
    if (out && pipe(pipefd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (out) {
            dup2(pipefd[1], STDOUT_FILENO);
            close(pipefd[0]);
            close(pipefd[1]);
        }
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        _exit(127);
    }
    if (out) {
        close(pipefd[1]);
        std::array<char, 4096> buf{};
        ssize_t n;
        while ((n = read(pipefd[0], buf.data(), buf.size())) > 0)
            out->append(buf.data(), static_cast<size_t>(n));
        close(pipefd[0]);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool make_test_clip(const std::filesystem::path& path, double seconds, int width, int height) {
    std::string size = std::to_string(width) + "x" + std::to_string(height);
    std::string dur = std::to_string(seconds);
    return run_command({"ffmpeg",       "-nostdin",
                        "-hide_banner", "-loglevel",
                        "error",        "-y",
                        "-f",           "lavfi",
                        "-i",           "testsrc2=size=" + size + ":rate=25:duration=" + dur,
                        "-f",           "lavfi",
                        "-i",           "sine=frequency=440:sample_rate=44100:duration=" + dur,
                        "-c:v",         "libx264",
                        "-preset",      "ultrafast",
                        "-pix_fmt",     "yuv420p",
                        "-c:a",         "aac",
                        "-shortest",    path.string()}) == 0;
}

std::filesystem::path data_path(const std::string& relative) {
    return std::filesystem::path(DISTCONV_TEST_DATA_DIR) / relative;
}

}  // namespace distconv::test
