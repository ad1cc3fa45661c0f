#include "common/config.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

using namespace distconv;

namespace {

// A small typed config like the programs have: flags bound to a struct.
struct DemoConfig {
    std::string listen = "127.0.0.1:8080";
    std::string data_dir = "data";
    int slots = 1;
    std::string log_level = "info";
    std::vector<std::string> pools;
};

struct DemoApp {
    CLI::App app{"demo"};
    DemoConfig cfg;
    CLI::App* serve = nullptr;
    DemoApp(const config::SourceSettings& s = {}) {
        app.add_option("--listen", cfg.listen, "address");
        app.add_option("--data-dir", cfg.data_dir, "dir");
        app.add_option("--slots", cfg.slots, "slots")->check(CLI::Range(1, 64));
        app.add_option("--log-level", cfg.log_level, "level")
            ->check(CLI::IsMember({"debug", "info", "warn"}));
        app.add_option("--pool", cfg.pools, "pools");
        serve = app.add_subcommand("serve", "run")->fallthrough();
        config::add_sources(app, s);
    }
};

class EnvGuard {
  public:
    EnvGuard(const char* name, const char* value) : m_name(name) { setenv(name, value, 1); }
    ~EnvGuard() { unsetenv(m_name); }

  private:
    const char* m_name;
};

}  // namespace

TEST(Config, DefaultsWhenNothingGiven) {
    DemoApp d;
    auto r = config::parse(d.app, std::vector<std::string>{}, std::cout);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(d.cfg.listen, "127.0.0.1:8080");
    EXPECT_EQ(d.cfg.slots, 1);
}

TEST(Config, PrecedenceFlagOverIniOverEnv) {
    test::TempDir dir;
    test::write_file(dir / "demo.ini",
                     "# comment\nlisten = 0.0.0.0:9000\nslots = 4\n; other comment\ndata-dir = /srv/x\n");
    EnvGuard e1("DISTCONV_LISTEN", "10.0.0.1:1");
    EnvGuard e2("DISTCONV_SLOTS", "7");
    EnvGuard e3("DISTCONV_LOG_LEVEL", "debug");
    EnvGuard e4("DISTCONV_DATA_DIR", "/from/env");
    DemoApp d;
    auto r = config::parse(
        d.app, {"serve", "--config", (dir / "demo.ini").string(), "--data-dir", "/from/flag"}, std::cout);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(d.cfg.data_dir, "/from/flag");  // flag beats file and env
    EXPECT_EQ(d.cfg.listen, "0.0.0.0:9000");  // file beats env
    EXPECT_EQ(d.cfg.slots, 4);
    EXPECT_EQ(d.cfg.log_level, "debug");  // env fills what neither flag nor file gave
    EXPECT_TRUE(d.serve->parsed());
}

TEST(Config, EnvAloneIsUsed) {
    EnvGuard e("DISTCONV_SLOTS", "12");
    DemoApp d;
    ASSERT_TRUE(config::parse(d.app, std::vector<std::string>{}, std::cout).ok());
    EXPECT_EQ(d.cfg.slots, 12);
}

TEST(Config, ExplicitEnvNameIsKept) {
    CLI::App app{"client"};
    std::string key;
    app.add_option("--key", key)->envname("DISTCONV_API_KEY");
    config::add_sources(app);
    EnvGuard e("DISTCONV_API_KEY", "secret");
    ASSERT_TRUE(config::parse(app, std::vector<std::string>{}, std::cout).ok());
    EXPECT_EQ(key, "secret");
}

TEST(Config, UnknownIniKeyIsAClearError) {
    test::TempDir dir;
    test::write_file(dir / "demo.ini", "listen = 1.2.3.4:5\nlisten_adress = typo\n");
    DemoApp d;
    auto r = config::parse(d.app, {"--config", (dir / "demo.ini").string()}, std::cout);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::InvalidArgument);
    EXPECT_NE(r.error().message.find("listen_adress"), std::string::npos) << r.error().message;
}

TEST(Config, BadValueInIniIsAnError) {
    test::TempDir dir;
    test::write_file(dir / "demo.ini", "slots = 1000\n");
    DemoApp d;
    auto r = config::parse(d.app, {"--config", (dir / "demo.ini").string()}, std::cout);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("slots"), std::string::npos) << r.error().message;
}

TEST(Config, BadValueInEnvIsAnError) {
    EnvGuard e("DISTCONV_SLOTS", "many");
    DemoApp d;
    auto r = config::parse(d.app, std::vector<std::string>{}, std::cout);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("slots"), std::string::npos) << r.error().message;
}

TEST(Config, BadFlagValueAndUnknownFlag) {
    DemoApp d;
    auto r = config::parse(d.app, {"--log-level", "loud"}, std::cout);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("loud"), std::string::npos) << r.error().message;
    DemoApp d2;
    auto r2 = config::parse(d2.app, {"--no-such-flag"}, std::cout);
    ASSERT_FALSE(r2.ok());
    EXPECT_NE(r2.error().message.find("no-such-flag"), std::string::npos) << r2.error().message;
}

TEST(Config, MissingConfigFileIsAnError) {
    DemoApp d;
    auto r = config::parse(d.app, {"--config", "/nonexistent/demo.ini"}, std::cout);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("/nonexistent/demo.ini"), std::string::npos) << r.error().message;
}

TEST(Config, DefaultFileIsReadWhenPresent) {
    test::TempDir dir;
    test::write_file(dir / "client.ini", "listen = 9.9.9.9:99\n");
    config::SourceSettings s;
    s.default_files = {(dir / "missing.ini").string(), (dir / "client.ini").string()};
    DemoApp d(s);
    ASSERT_TRUE(config::parse(d.app, std::vector<std::string>{}, std::cout).ok());
    EXPECT_EQ(d.cfg.listen, "9.9.9.9:99");
}

TEST(Config, RepeatedIniKeyFillsAVectorOption) {
    test::TempDir dir;
    test::write_file(dir / "demo.ini", "pool = a=/x\npool = b=/y:10G\n");
    DemoApp d;
    ASSERT_TRUE(config::parse(d.app, {"--config", (dir / "demo.ini").string()}, std::cout).ok());
    ASSERT_EQ(d.cfg.pools.size(), 2u);
    EXPECT_EQ(d.cfg.pools[1], "b=/y:10G");
}

TEST(Config, HelpIsAnExitSuccessOutcome) {
    DemoApp d;
    std::ostringstream out;
    auto r = config::parse(d.app, {"--help"}, out);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, config::Outcome::ExitSuccess);
    EXPECT_NE(out.str().find("--data-dir"), std::string::npos);
}

TEST(Config, UnknownEnvVarsAreReported) {
    DemoApp d;
    auto unknown = config::unknown_env_vars(d.app, {"PATH=/bin", "DISTCONV_SLOTS=2", "DISTCONV_SLTOS=3"});
    ASSERT_EQ(unknown.size(), 1u);
    EXPECT_EQ(unknown[0], "DISTCONV_SLTOS");
}

TEST(Config, EnvNameForFlag) {
    EXPECT_EQ(config::env_name_for("DISTCONV_", "data-dir"), "DISTCONV_DATA_DIR");
}

TEST(Config, ByteSizes) {
    EXPECT_EQ(*config::parse_byte_size("1048576"), 1048576u);
    EXPECT_EQ(*config::parse_byte_size("500M"), 500ull << 20);
    EXPECT_EQ(*config::parse_byte_size("64GiB"), 64ull << 30);
    EXPECT_EQ(*config::parse_byte_size("1.5G"), 3ull << 29);
    EXPECT_EQ(*config::parse_byte_size("2 TB"), 2ull << 40);
    EXPECT_FALSE(config::parse_byte_size("").ok());
    EXPECT_FALSE(config::parse_byte_size("-1G").ok());
    EXPECT_FALSE(config::parse_byte_size("12 parsecs").ok());
    EXPECT_FALSE(config::parse_byte_size("lots").ok());
    EXPECT_FALSE(config::parse_byte_size("1e30").ok());
}

TEST(Config, Durations) {
    EXPECT_EQ(*config::parse_duration_ms("30"), 30000);
    EXPECT_EQ(*config::parse_duration_ms("250ms"), 250);
    EXPECT_EQ(*config::parse_duration_ms("5m"), 300000);
    EXPECT_EQ(*config::parse_duration_ms("24h"), 86400000);
    EXPECT_EQ(*config::parse_duration_ms("7d"), 7 * 86400000LL);
    EXPECT_FALSE(config::parse_duration_ms("soon").ok());
    EXPECT_FALSE(config::parse_duration_ms("-5s").ok());
    EXPECT_FALSE(config::parse_duration_ms("5 fortnights").ok());
}
