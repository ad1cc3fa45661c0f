// The real `distconv` binary against a fake dispatch server (cpp-httplib on 127.0.0.1) whose
// completed job names its output "../planted.sh", an absolute path, "..", a dot file or a name
// with a newline. The real server refuses such names at submit (media::validate_output_filename);
// the client must not rely on that: `distconv download <id>` writes the reduced name in its
// current directory and nothing anywhere else. A user-given -o is the control: used as given.

#include "common/hash.hpp"
#include "protocol/jobs.hpp"
#include "submission_client/local_name.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace distconv {
namespace {

namespace stdfs = std::filesystem;
namespace protocol = distconv::protocol;

const std::string k_binary = DISTCONV_BINARY_DIR "/submission_client/distconv";
const std::string k_job_id = "01J00000000000000000000000";
const std::string k_body = "the transcoded bytes\n";

// Answers GET /jobs/{id} with a completed job whose output is called `output_filename`, and
// GET /jobs/{id}/result with the bytes. Everything else is a 404.
class FakeDispatch {
  public:
    explicit FakeDispatch(std::string output_filename) : m_output_filename(std::move(output_filename)) {
        m_server.Get(R"([\s\S]*)",
                     [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); });
    }
    ~FakeDispatch() {
        if (!m_thread.joinable()) return;
        m_server.stop();
        m_thread.join();
    }
    bool start() {
        m_port = m_server.bind_to_any_port("127.0.0.1");
        if (m_port <= 0) return false;
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        return test::wait_until([this] { return m_server.is_running(); });
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }
    std::vector<std::string> requests() {
        std::lock_guard lock(m_mutex);
        return m_requests;
    }

  private:
    void handle(const httplib::Request& req, httplib::Response& res) {
        {
            std::lock_guard lock(m_mutex);
            m_requests.push_back(req.path);
        }
        const std::string job_path = "/api/v1/jobs/" + k_job_id;
        if (req.path == job_path) {
            protocol::JobResource job;
            job.job_id = k_job_id;
            job.state = protocol::JobState::Completed;
            job.progress_percent = 100;
            job.owner = "alice";
            job.output.filename = m_output_filename;
            job.output.size = static_cast<std::int64_t>(k_body.size());
            job.output.sha256 = sha256_hex(k_body);
            res.set_content(protocol::to_json(job).dump(), "application/json");
        } else if (req.path == job_path + "/result") {
            res.set_header("ETag", "\"" + sha256_hex(k_body) + "\"");
            res.set_content(k_body, "application/octet-stream");
        } else {
            res.status = 404;
            res.set_content(
                R"({"error":{"code":"not_found","message":"no such path","details":{},"retryable":false}})",
                "application/json");
        }
    }

    std::string m_output_filename;
    httplib::Server m_server;
    std::thread m_thread;
    int m_port = 0;
    std::mutex m_mutex;
    std::vector<std::string> m_requests;
};

// Every regular file under `root`, relative to it.
std::set<std::string> files_under(const stdfs::path& root) {
    std::set<std::string> out;
    for (const auto& e : stdfs::recursive_directory_iterator(root))
        if (!e.is_directory()) out.insert(stdfs::relative(e.path(), root).string());
    return out;
}

class CliDownloadName : public ::testing::Test {
  protected:
    void SetUp() override {
        stdfs::create_directories(m_work);
        stdfs::create_directories(m_dir / "home");
    }
    // `distconv [args]` run in m_work with a clean environment pointed at `server`.
    int run(const FakeDispatch& server, std::vector<std::string> args) {
        std::vector<std::string> argv{"env",
                                      "-i",
                                      "-C",
                                      m_work.string(),
                                      "HOME=" + (m_dir / "home").string(),
                                      "DISTCONV_SERVER=" + server.url(),
                                      "DISTCONV_API_KEY=test-key",
                                      k_binary};
        argv.insert(argv.end(), args.begin(), args.end());
        return test::run_command(argv);
    }

    test::TempDir m_dir;
    stdfs::path m_work = m_dir / "outside" / "work";  // the user's current directory
};

struct HostileName {
    std::string tag;  // the test's name
    std::string server_name;
    std::string local_name;  // what lands in the current directory
};
void PrintTo(const HostileName& h, std::ostream* os) {
    *os << h.tag;
}

class CliDownloadHostileName : public CliDownloadName, public ::testing::WithParamInterface<HostileName> {};

TEST_P(CliDownloadHostileName, WritesTheReducedNameInTheCurrentDirectoryOnly) {
    std::string server_name = GetParam().server_name;
    // An absolute name points into this test's dir, so a client that honoured it would show here.
    if (server_name.starts_with("ABS:")) server_name = (m_dir / "abs" / server_name.substr(4)).string();
    FakeDispatch server(server_name);
    ASSERT_TRUE(server.start());

    EXPECT_EQ(run(server, {"download", k_job_id}), 0);

    const std::string expected = "outside/work/" + GetParam().local_name;
    EXPECT_EQ(files_under(m_dir.path()), std::set<std::string>{expected});
    EXPECT_EQ(test::read_file(m_dir / expected), k_body);
    EXPECT_FALSE(stdfs::exists(m_dir / "outside" / "planted.sh"));
    EXPECT_FALSE(stdfs::exists(m_dir / "abs"));
    auto requests = server.requests();
    EXPECT_NE(std::find(requests.begin(), requests.end(), "/api/v1/jobs/" + k_job_id + "/result"),
              requests.end());
}

INSTANTIATE_TEST_SUITE_P(
    Names, CliDownloadHostileName,
    ::testing::Values(HostileName{"Parent", "../planted.sh", "planted.sh"},
                      HostileName{"Absolute", "ABS:planted.sh", "planted.sh"},
                      HostileName{"BackslashParent", "..\\planted.sh", "planted.sh"},
                      HostileName{"ParentInTheMiddle", "a/../../planted.sh", "planted.sh"},
                      HostileName{"DotDot", "..", k_job_id + ".out"},
                      HostileName{"Empty", "", k_job_id + ".out"}, HostileName{"Hidden", ".bashrc", "bashrc"},
                      HostileName{"Newline", "evil\n.mp4", "evil.mp4"},
                      HostileName{"TooLong", std::string(1000, 'x') + ".mp4",
                                  std::string(client::k_max_local_name_bytes - 4, 'x') + ".mp4"}),
    [](const ::testing::TestParamInfo<HostileName>& param) { return param.param.tag; });

TEST_F(CliDownloadName, AUserGivenOutputIsUsedAsGiven) {
    FakeDispatch server("../planted.sh");
    ASSERT_TRUE(server.start());

    EXPECT_EQ(run(server, {"download", k_job_id, "-o", "../chosen.mp4"}), 0);

    EXPECT_EQ(files_under(m_dir.path()), std::set<std::string>{"outside/chosen.mp4"});
    EXPECT_EQ(test::read_file(m_dir / "outside" / "chosen.mp4"), k_body);
}

}  // namespace
}  // namespace distconv
