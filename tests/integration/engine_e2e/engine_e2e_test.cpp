// End to end: the real distconv-dispatch, the real distconv-engine binary and real ffmpeg on a
// tiny lavfi clip, all on 127.0.0.1.

#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace distconv;
using namespace std::chrono_literals;

namespace {

const std::string k_dispatch = std::string(DISTCONV_BINARY_DIR) + "/dispatch_server/distconv-dispatch";
const std::string k_engine = std::string(DISTCONV_BINARY_DIR) + "/transcoding_engine/distconv-engine";

int free_port() {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
    close(s);
    return ntohs(addr.sin_port);
}

// A child process with stdout+stderr in a log file; killed on destruction.
class Daemon {
  public:
    Daemon(const std::vector<std::string>& argv, const std::filesystem::path& log) {
        m_pid = fork();
        if (m_pid == 0) {
            int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            dup2(fd, 1);
            dup2(fd, 2);
            std::vector<char*> args;
            for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            execv(args[0], args.data());
            _exit(127);
        }
    }
    ~Daemon() {
        if (m_pid > 0) {
            kill(m_pid, SIGKILL);
            wait_exit();
        }
    }
    pid_t pid() const { return m_pid; }
    int signal_and_wait(int sig) {
        kill(m_pid, sig);
        return wait_exit();
    }
    int wait_exit() {
        int status = 0;
        waitpid(m_pid, &status, 0);
        m_pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

  private:
    pid_t m_pid = -1;
};

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

struct Cluster {
    test::TempDir dir;
    std::string url;
    std::string user_key;
    std::string engine_key;
    std::unique_ptr<Daemon> dispatch;

    Cluster() {
        auto data = (dir / "data").string();
        test::run_command({k_dispatch, "keys", "create", "--data-dir", data, "--role", "user", "--name", "u"}, &user_key);
        test::run_command({k_dispatch, "keys", "create", "--data-dir", data, "--role", "engine", "--name", "e"},
                          &engine_key);
        user_key = trim(user_key);
        engine_key = trim(engine_key);
        int port = free_port();
        url = "http://127.0.0.1:" + std::to_string(port);
        dispatch = std::make_unique<Daemon>(
            std::vector<std::string>{k_dispatch, "serve", "--listen", "127.0.0.1:" + std::to_string(port),
                                     "--data-dir", data},
            dir / "dispatch.log");
        EXPECT_TRUE(test::wait_until([&] { return curl({url + "/healthz"}).find("ok") != std::string::npos; }));
    }

    std::unique_ptr<Daemon> start_engine(const std::string& name) {
        return std::make_unique<Daemon>(
            std::vector<std::string>{k_engine, "--server", url, "--key", engine_key, "--work-dir",
                                     (dir / name).string(), "--benchmark", "off", "--heartbeat-interval", "1s",
                                     "--claim-wait", "5s", "--drain-timeout", "5s"},
            dir / (name + ".log"));
    }

    std::string curl(std::vector<std::string> args) const {
        std::vector<std::string> argv = {"curl", "-sS", "-H", "Authorization: Bearer " + user_key};
        argv.insert(argv.end(), args.begin(), args.end());
        std::string out;
        test::run_command(argv, &out);
        return out;
    }

    nlohmann::json job(const std::string& id) const {
        return nlohmann::json::parse(curl({url + "/api/v1/jobs/" + id}), nullptr, false);
    }
};

}  // namespace

TEST(EngineE2E, SubmittedJobIsTranscodedAndDownloadable) {
    Cluster c;
    auto engine = c.start_engine("engine1");
    ASSERT_TRUE(test::make_test_clip(c.dir / "in.mp4", 1.0, 320, 240));
    auto submitted = nlohmann::json::parse(
        c.curl({"-F", "file=@" + (c.dir / "in.mp4").string(), "-F",
                R"(job={"output_filename":"out.mkv","container":"mkv","video":{"codec":"libx264","preset":"ultrafast"},"audio":{"codec":"aac"}};type=application/json)",
                c.url + "/api/v1/jobs"}),
        nullptr, false);
    ASSERT_TRUE(submitted.contains("job_id")) << submitted.dump();
    std::string id = submitted["job_id"];
    nlohmann::json j;
    ASSERT_TRUE(test::wait_until(
        [&] {
            j = c.job(id);
            return j.is_object() && j.value("state", "") == "completed";
        },
        60s))
        << j.dump();
    c.curl({"-o", (c.dir / "out.mkv").string(), c.url + "/api/v1/jobs/" + id + "/result"});
    std::string probe;
    ASSERT_EQ(test::run_command({"ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                                 (c.dir / "out.mkv").string()},
                                &probe),
              0);
    EXPECT_NE(probe.find("h264"), std::string::npos) << probe;
    EXPECT_NE(probe.find("aac"), std::string::npos) << probe;
    // The engine cleaned its files and drains on SIGTERM with exit code 0.
    EXPECT_TRUE(std::filesystem::is_empty(c.dir / "engine1" / "assignments"));
    EXPECT_EQ(engine->signal_and_wait(SIGTERM), 0);
}

TEST(EngineE2E, OrphanedAssignmentIsReportedAtRestartAndTheJobCompletes) {
    Cluster c;
    ASSERT_TRUE(test::make_test_clip(c.dir / "in.mp4", 1.0, 320, 240));
    {
        // Simulate a crash mid-job: an engine claims, then dies by SIGKILL while ffmpeg is slowed down
        // by a long clip and the slowest preset.
        ASSERT_TRUE(test::make_test_clip(c.dir / "long.mp4", 8.0, 320, 240));
    }
    auto engine = c.start_engine("engine1");
    auto submitted = nlohmann::json::parse(
        c.curl({"-F", "file=@" + (c.dir / "long.mp4").string(), "-F",
                R"(job={"output_filename":"out.mkv","container":"mkv","video":{"codec":"libx264","preset":"slower"},"audio":{"codec":"aac"}};type=application/json)",
                c.url + "/api/v1/jobs"}),
        nullptr, false);
    ASSERT_TRUE(submitted.contains("job_id")) << submitted.dump();
    std::string id = submitted["job_id"];
    ASSERT_TRUE(test::wait_until([&] { return c.job(id).value("state", "") == "running"; }, 30s));
    // ffmpeg runs in its own process group, so it would outlive the engine: find it (the engine's
    // children) first, then kill both as a crash of the machine would.
    std::string children;
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(engine->pid()) + "/task", ec))
        children += test::read_file(t.path() / "children") + " ";
    engine->signal_and_wait(SIGKILL);
    engine.reset();
    std::istringstream ids(children);
    for (pid_t child = 0; ids >> child;) kill(child, SIGKILL);
    auto restarted_at = std::chrono::steady_clock::now();
    auto engine2 = c.start_engine("engine1");
    nlohmann::json j;
    ASSERT_TRUE(test::wait_until(
        [&] {
            j = c.job(id);
            return j.value("state", "") != "running" && j.value("state", "") != "assigned";
        },
        10s))
        << j.dump();
    EXPECT_LT(std::chrono::steady_clock::now() - restarted_at, 8s);
    ASSERT_TRUE(test::wait_until([&] { return c.job(id).value("state", "") == "completed"; }, 240s))
        << c.job(id).dump();
    j = c.job(id);
    ASSERT_TRUE(j["attempts"].is_array());
    EXPECT_GE(j["attempts"].size(), 2u);
}
