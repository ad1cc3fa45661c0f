// The whole flow over HTTPS: certificates made by scripts/gen-certs.sh, distconv-dispatch serving
// with --tls-cert/--tls-key, an engine and the CLI verifying the server with --ca-cert. A client that
// trusts another CA fails with a message naming the certificate problem.

#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <regex>

using namespace std::chrono_literals;
namespace stdfs = std::filesystem;

namespace distconv::e2e {
namespace {

std::string cli_binary() {
    return std::string(DISTCONV_BINARY_DIR) + "/submission_client/distconv";
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

// Runs a command through sh with stderr folded into stdout; returns the exit code.
int run_shell(const std::vector<std::string>& argv, std::string* out) {
    std::string cmd;
    for (const auto& a : argv) {
        std::string quoted = "'";
        for (char c : a) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
        cmd += quoted + "' ";
    }
    return test::run_command({"/bin/sh", "-c", cmd + "2>&1"}, out);
}

// Every process on this host whose command line or environment contains `needle` (pid and which).
std::vector<std::string> processes_holding(const std::string& needle) {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& entry : stdfs::directory_iterator("/proc", ec)) {
        const std::string pid = entry.path().filename().string();
        if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit)) continue;
        for (const char* what : {"cmdline", "environ"}) {
            // test::read_file: a process that exits while it is read gives an empty answer (an
            // istreambuf_iterator would throw from underflow with ESRCH).
            std::string content = test::read_file(entry.path() / what);
            if (content.find(needle) != std::string::npos) found.push_back(pid + "/" + what);
        }
    }
    return found;
}

// Whether a process whose command line holds all of `parts` runs now.
bool process_running_with(const std::vector<std::string>& parts) {
    std::error_code ec;
    for (const auto& entry : stdfs::directory_iterator("/proc", ec)) {
        std::string content = test::read_file(entry.path() / "cmdline");
        if (std::all_of(parts.begin(), parts.end(),
                        [&](const auto& p) { return content.find(p) != std::string::npos; }))
            return true;
    }
    return false;
}

bool gen_certs(const stdfs::path& dir) {
    std::string out;
    int rc = run_shell({std::string(DISTCONV_SOURCE_DIR) + "/scripts/gen-certs.sh", dir.string()}, &out);
    EXPECT_EQ(rc, 0) << out;
    return rc == 0 && stdfs::exists(dir / "ca.crt") && stdfs::exists(dir / "server.crt") &&
           stdfs::exists(dir / "server.key");
}

class TlsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(gen_certs(m_dir / "certs"));
        ASSERT_TRUE(gen_certs(m_dir / "other-ca"));
        auto data = (m_dir / "data").string();
        std::string out;
        ASSERT_EQ(test::run_command({dispatch_binary(), "keys", "create", "--data-dir", data, "--role",
                                     "user", "--name", "tls-user"},
                                    &out),
                  0);
        m_user_key = trim(out);
        out.clear();
        ASSERT_EQ(test::run_command({dispatch_binary(), "keys", "create", "--data-dir", data, "--role",
                                     "engine", "--name", "tls-engine"},
                                    &out),
                  0);
        m_engine_key = trim(out);
        m_dispatch = std::make_unique<Daemon>(
            std::vector<std::string>{dispatch_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir",
                                     data, "--tls-cert", (m_dir / "certs/server.crt").string(), "--tls-key",
                                     (m_dir / "certs/server.key").string(), "--heartbeat-interval", "500ms"},
            m_dir / "dispatch.log");
        static const std::regex k_listening(R"(listening on 127\.0\.0\.1:(\d+))");
        std::smatch m;
        std::string log;
        ASSERT_TRUE(test::wait_until(
            [&] {
                log = m_dispatch->log();
                return std::regex_search(log, m, k_listening);
            },
            10s))
            << log;
        m_url = "https://127.0.0.1:" + m[1].str();
    }

    int cli(std::vector<std::string> args, const std::string& ca, std::string* out) {
        args.insert(args.begin(), {cli_binary(), "--server", m_url, "--key", m_user_key, "--ca-cert", ca});
        return run_shell(args, out);
    }

    test::TempDir m_dir;
    std::string m_user_key, m_engine_key, m_url;
    std::unique_ptr<Daemon> m_dispatch;
};

TEST_F(TlsTest, SubmitTranscodeAndDownloadOverHttps) {
    auto engine = std::make_unique<Daemon>(
        std::vector<std::string>{engine_binary(), "--server", m_url, "--key", m_engine_key, "--ca-cert",
                                 (m_dir / "certs/ca.crt").string(), "--work-dir", (m_dir / "engine").string(),
                                 "--hostname", "tls-engine", "--benchmark", "off", "--heartbeat-interval",
                                 "500ms", "--claim-wait", "2s"},
        m_dir / "engine.log");
    ASSERT_TRUE(test::make_test_clip(m_dir / "clip.mp4", 1.0));
    std::string out;
    int rc = cli({"submit", (m_dir / "clip.mp4").string(), "--preset", "h264-small", "-o",
                  (m_dir / "clip.out.mp4").string(), "--json"},
                 (m_dir / "certs/ca.crt").string(), &out);
    ASSERT_EQ(rc, 0) << out << "\n--- engine:\n" << engine->log() << "\n--- dispatch:\n" << m_dispatch->log();
    auto probe = ffprobe(m_dir / "clip.out.mp4");
    ASSERT_TRUE(probe.has_value());
    ASSERT_FALSE(probe->codecs.empty());
    EXPECT_EQ(probe->codecs[0], "h264");
    // The engine spoke HTTPS the whole way (the server accepts nothing else).
    EXPECT_EQ(engine->log().find("certificate"), std::string::npos) << engine->log();
}

TEST_F(TlsTest, StreamModeOverHttpsKeepsTheEngineKeyOutOfEveryProcess) {
    // A stream-mode engine (no disk to spare): ffmpeg reads the engine's loopback relay, the relay
    // reads the server over verified HTTPS with the assignment's credential.
    auto engine = std::make_unique<Daemon>(
        std::vector<std::string>{engine_binary(), "--server", m_url, "--key", m_engine_key, "--ca-cert",
                                 (m_dir / "certs/ca.crt").string(), "--work-dir", (m_dir / "engine").string(),
                                 "--hostname", "tls-stream", "--benchmark", "off", "--heartbeat-interval",
                                 "500ms", "--claim-wait", "2s", "--reserve-disk", "1000T"},
        m_dir / "engine.log");
    // Long enough to be seen running: 4 s of 640x360 at the archive preset takes a few seconds here.
    ASSERT_TRUE(test::make_test_clip(m_dir / "clip.mp4", 4.0, 640, 360));
    std::string out;
    std::atomic<bool> done{false};
    std::vector<std::string> holders;
    bool saw_ffmpeg = false;
    bool saw_user_key = false;  // the control: the CLI runs with --key USER_KEY, so the scan can find keys
    int scans = 0;
    std::thread watcher([&] {
        while (!done) {
            auto found = processes_holding(m_engine_key);
            holders.insert(holders.end(), found.begin(), found.end());
            saw_user_key = saw_user_key || !processes_holding(m_user_key).empty();
            saw_ffmpeg =
                saw_ffmpeg || process_running_with({"ffmpeg", "-protocol_whitelist", "http://127.0.0.1:"});
            ++scans;
            std::this_thread::sleep_for(20ms);
        }
    });
    int rc = cli({"submit", (m_dir / "clip.mp4").string(), "--preset", "h264-archive", "-o",
                  (m_dir / "clip.out.mkv").string(), "--json"},
                 (m_dir / "certs/ca.crt").string(), &out);
    done = true;
    watcher.join();
    ASSERT_EQ(rc, 0) << out << "\n--- engine:\n" << engine->log();
    EXPECT_NE(engine->log().find("stream mode): starting"), std::string::npos) << engine->log();
    EXPECT_TRUE(saw_ffmpeg) << "the scans (" << scans << ") never caught ffmpeg running";
    EXPECT_TRUE(saw_user_key) << "the scan never found the CLI's own key on its command line";
    EXPECT_TRUE(holders.empty()) << "processes holding the engine key: " << ::testing::PrintToString(holders);
    auto probe = ffprobe(m_dir / "clip.out.mkv");
    ASSERT_TRUE(probe.has_value());
    ASSERT_FALSE(probe->codecs.empty());
    EXPECT_EQ(probe->codecs[0], "h264");
    EXPECT_EQ(engine->log().find(m_engine_key), std::string::npos);
}

TEST_F(TlsTest, AClientTrustingAnotherCaIsRefusedWithAClearMessage) {
    std::string out;
    int rc = cli({"list"}, (m_dir / "other-ca/ca.crt").string(), &out);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("certificate"), std::string::npos) << out;
    EXPECT_NE(out.find("--ca-cert"), std::string::npos) << out;

    // An engine with the wrong CA (a stream-mode one: all its bytes would go through its relay)
    // never registers, never sends its key in clear, and says why.
    auto engine = std::make_unique<Daemon>(
        std::vector<std::string>{engine_binary(), "--server", m_url, "--key", m_engine_key, "--ca-cert",
                                 (m_dir / "other-ca/ca.crt").string(), "--work-dir",
                                 (m_dir / "engine").string(), "--hostname", "wrong-ca", "--benchmark", "off",
                                 "--reserve-disk", "1000T"},
        m_dir / "engine.log");
    EXPECT_TRUE(test::wait_until([&] { return engine->log().find("certificate") != std::string::npos; }, 20s))
        << engine->log();
    EXPECT_EQ(m_dispatch->log().find("registered"), std::string::npos) << m_dispatch->log();

    // Plain http to the https port does not get an answer either.
    out.clear();
    std::string http_url = "http" + m_url.substr(5);
    rc = run_shell({cli_binary(), "--server", http_url, "--key", m_user_key, "list"}, &out);
    EXPECT_NE(rc, 0) << out;
}

TEST_F(TlsTest, ServerRefusesAKeyThatDoesNotMatchItsCertificate) {
    std::string out;
    int rc = run_shell({dispatch_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir",
                        (m_dir / "d2").string(), "--tls-cert", (m_dir / "certs/server.crt").string(),
                        "--tls-key", (m_dir / "other-ca/server.key").string()},
                       &out);
    EXPECT_NE(rc, 0);
    EXPECT_NE(out.find("TLS"), std::string::npos) << out;
    out.clear();
    rc = run_shell({dispatch_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir",
                    (m_dir / "d3").string(), "--tls-cert", (m_dir / "certs/server.crt").string()},
                   &out);
    EXPECT_EQ(rc, 2) << out;
    EXPECT_NE(out.find("tls-key"), std::string::npos) << out;
}

}  // namespace
}  // namespace distconv::e2e
