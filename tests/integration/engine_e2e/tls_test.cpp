// The whole flow over HTTPS: certificates made by scripts/gen-certs.sh, distconv-dispatch serving
// with --tls-cert/--tls-key, an engine and the CLI verifying the server with --ca-cert. A client that
// trusts another CA fails with a message naming the certificate problem.

#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <gtest/gtest.h>

#include <regex>

using namespace std::chrono_literals;
namespace stdfs = std::filesystem;

namespace distconv::e2e {
namespace {

std::string cli_binary() { return std::string(DISTCONV_BINARY_DIR) + "/submission_client/distconv"; }

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
        ASSERT_EQ(test::run_command({dispatch_binary(), "keys", "create", "--data-dir", data, "--role", "user", "--name", "tls-user"}, &out), 0);
        m_user_key = trim(out);
        out.clear();
        ASSERT_EQ(test::run_command({dispatch_binary(), "keys", "create", "--data-dir", data, "--role", "engine", "--name", "tls-engine"}, &out),
                  0);
        m_engine_key = trim(out);
        m_dispatch = std::make_unique<Daemon>(
            std::vector<std::string>{dispatch_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                                     "--tls-cert", (m_dir / "certs/server.crt").string(), "--tls-key",
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
                                 "--hostname", "tls-engine", "--benchmark", "off", "--heartbeat-interval", "500ms",
                                 "--claim-wait", "2s"},
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

TEST_F(TlsTest, AClientTrustingAnotherCaIsRefusedWithAClearMessage) {
    std::string out;
    int rc = cli({"list"}, (m_dir / "other-ca/ca.crt").string(), &out);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("certificate"), std::string::npos) << out;
    EXPECT_NE(out.find("--ca-cert"), std::string::npos) << out;

    // An engine with the wrong CA never registers and says why.
    auto engine = std::make_unique<Daemon>(
        std::vector<std::string>{engine_binary(), "--server", m_url, "--key", m_engine_key, "--ca-cert",
                                 (m_dir / "other-ca/ca.crt").string(), "--work-dir", (m_dir / "engine").string(),
                                 "--hostname", "wrong-ca", "--benchmark", "off"},
        m_dir / "engine.log");
    EXPECT_TRUE(test::wait_until([&] { return engine->log().find("certificate") != std::string::npos; }, 20s))
        << engine->log();

    // Plain http to the https port does not get an answer either.
    out.clear();
    std::string http_url = "http" + m_url.substr(5);
    rc = run_shell({cli_binary(), "--server", http_url, "--key", m_user_key, "list"}, &out);
    EXPECT_NE(rc, 0) << out;
}

TEST_F(TlsTest, ServerRefusesAKeyThatDoesNotMatchItsCertificate) {
    std::string out;
    int rc = run_shell({dispatch_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", (m_dir / "d2").string(),
                        "--tls-cert", (m_dir / "certs/server.crt").string(), "--tls-key",
                        (m_dir / "other-ca/server.key").string()},
                       &out);
    EXPECT_NE(rc, 0);
    EXPECT_NE(out.find("TLS"), std::string::npos) << out;
    out.clear();
    rc = run_shell({dispatch_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", (m_dir / "d3").string(),
                    "--tls-cert", (m_dir / "certs/server.crt").string()},
                   &out);
    EXPECT_EQ(rc, 2) << out;
    EXPECT_NE(out.find("tls-key"), std::string::npos) << out;
}

}  // namespace
}  // namespace distconv::e2e
