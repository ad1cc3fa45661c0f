// Pure pieces of the engine: ffmpeg capability parsing (on this machine's real ffmpeg 5.1 output),
// failure classification, /proc and /sys readings, config checks, argv building, heartbeats.

#include "common/hash.hpp"
#include "tests/support/test_support.hpp"
#include "transcoding_engine/capabilities.hpp"
#include "transcoding_engine/config.hpp"
#include "transcoding_engine/engine.hpp"
#include "transcoding_engine/failure.hpp"
#include "transcoding_engine/system_info.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

using namespace distconv;
using namespace distconv::engine;

namespace {

std::string engine_data(const std::string& name) {
    return test::read_file(std::filesystem::path(DISTCONV_SOURCE_DIR) / "tests/unit/engine/data" / name);
}

void put(const std::filesystem::path& path, const std::string& content) {
    std::filesystem::create_directories(path.parent_path());
    test::write_file(path, content);
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

TEST(Capabilities, ParsesRealEncoderList) {
    auto names = parse_codec_list(engine_data("encoders.txt"));
    EXPECT_EQ(names.size(), 217u);
    EXPECT_TRUE(contains(names, "libx264"));
    EXPECT_TRUE(contains(names, "aac"));
    EXPECT_TRUE(contains(names, "a64multi"));
    EXPECT_FALSE(contains(names, "="));  // the legend rows are not codecs
    EXPECT_FALSE(contains(names, "------"));
}

TEST(Capabilities, ParsesRealDecodersHwaccelsAndVersion) {
    auto decoders = parse_codec_list(engine_data("decoders.txt"));
    EXPECT_GT(decoders.size(), 400u);
    EXPECT_TRUE(contains(decoders, "h264"));
    EXPECT_TRUE(contains(decoders, "hevc"));
    auto hw = parse_hwaccels(engine_data("hwaccels.txt"));
    EXPECT_EQ(hw, (std::vector<std::string>{"vdpau", "cuda", "vaapi", "qsv", "drm", "opencl", "vulkan"}));
    EXPECT_EQ(parse_ffmpeg_version(engine_data("version.txt")), "5.1.9-0+deb12u1");
    EXPECT_EQ(parse_ffmpeg_version("garbage"), "");
    EXPECT_TRUE(parse_hwaccels("Hardware acceleration methods:\n\n").empty());
}

TEST(FailureClass, PermanentForRejectedOptionsAndUndecodableInput) {
    using protocol::ErrorClass;
    EXPECT_EQ(classify_failure(1, "in.mkv: Invalid data found when processing input"), ErrorClass::Permanent);
    EXPECT_EQ(classify_failure(1, "Unknown encoder 'libfoo'"), ErrorClass::Permanent);
    EXPECT_EQ(classify_failure(1, "Error while opening encoder for output stream #0:0"),
              ErrorClass::Permanent);
    EXPECT_EQ(classify_failure(8, "Invalid argument"), ErrorClass::Permanent);
    EXPECT_EQ(classify_failure(1, "Cannot determine format of input stream 0:0 after EOF"),
              ErrorClass::Permanent);
}

TEST(FailureClass, TransientForSignalsDiskAndNetwork) {
    using protocol::ErrorClass;
    EXPECT_EQ(classify_failure(std::nullopt, "Invalid data found when processing input"),
              ErrorClass::Transient);
    EXPECT_EQ(classify_failure(1, "av_interleaved_write_frame(): No space left on device\nInvalid argument"),
              ErrorClass::Transient);
    EXPECT_EQ(classify_failure(1, "Connection refused"), ErrorClass::Transient);
    EXPECT_EQ(classify_failure(1, "something nobody recognises"), ErrorClass::Transient);
}

TEST(SystemInfo, ReadsFakeProcAndSysTree) {
    test::TempDir dir;
    put(dir / "proc/loadavg", "1.25 0.50 0.10 1/200 999\n");
    put(dir / "proc/meminfo", "MemTotal:  8000 kB\nMemFree: 1000 kB\nMemAvailable: 6000 kB\n");
    put(dir / "sys/class/thermal/thermal_zone0/type", "acpitz\n");
    put(dir / "sys/class/thermal/thermal_zone0/temp", "30000\n");
    put(dir / "sys/class/thermal/thermal_zone1/type", "x86_pkg_temp\n");
    put(dir / "sys/class/thermal/thermal_zone1/temp", "48500\n");
    LinuxSystemInfo sys(dir.path());
    EXPECT_DOUBLE_EQ(*sys.load_average(), 1.25);
    auto mem = sys.memory();
    ASSERT_TRUE(mem);
    EXPECT_EQ(mem->total_bytes, 8000 * 1024);
    EXPECT_EQ(mem->available_bytes, 6000 * 1024);
    EXPECT_DOUBLE_EQ(*sys.cpu_temperature_c(), 48.5);  // the CPU zone wins over the first
    EXPECT_GT(sys.free_disk_bytes(dir.path()), 0);
}

TEST(SystemInfo, AbsentSensorIsNullAndHwmonIsTheFallback) {
    test::TempDir dir;
    std::filesystem::create_directories(dir / "sys/class/thermal");
    EXPECT_FALSE(LinuxSystemInfo(dir.path()).cpu_temperature_c().has_value());
    EXPECT_FALSE(LinuxSystemInfo(dir.path()).memory().has_value());
    put(dir / "sys/class/hwmon/hwmon0/temp1_input", "55000\n");
    EXPECT_DOUBLE_EQ(*LinuxSystemInfo(dir.path()).cpu_temperature_c(), 55.0);
    EXPECT_FALSE(parse_millidegrees("-273000").has_value());
    EXPECT_FALSE(parse_millidegrees("abc").has_value());
}

TEST(Config, RefusesPlainHttpKeyToRemoteHosts) {
    EngineConfig c;
    c.server = "http://dispatch.example.com:8080";
    c.key = "k";
    c.work_dir = "/tmp/x";
    auto st = finalize(c);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().details["field"], "server");
    c.allow_insecure = true;
    EXPECT_TRUE(finalize(c));
    EngineConfig local;
    local.server = "http://127.0.0.1:9/";
    local.key = "k";
    local.work_dir = "/tmp/x";
    local.claim_wait = "10s";
    ASSERT_TRUE(finalize(local));
    EXPECT_EQ(local.api_base, "http://127.0.0.1:9/api/v1");
    EXPECT_EQ(local.claim_wait_seconds, 10);
    local.claim_wait = "2m";
    EXPECT_FALSE(finalize(local));
    EXPECT_TRUE(is_loopback_host("::1"));
    EXPECT_TRUE(is_loopback_host("127.0.0.1"));
    EXPECT_TRUE(is_loopback_host("127.255.3.4"));
    EXPECT_FALSE(is_loopback_host("127.example.com"));  // a remote name, whatever it starts with
    EXPECT_FALSE(is_loopback_host("127.0.0.1.example.com"));
    EXPECT_FALSE(is_loopback_host("127.0.0.256"));
    EngineConfig named = local;
    named.server = "http://127.attacker.example:8080";
    EXPECT_FALSE(finalize(named));
    EXPECT_EQ(parse_server_url("https://[::1]:8443/x")->host, "::1");
    EXPECT_FALSE(parse_server_url("ftp://host"));
}

TEST(Config, ARelativeWorkDirIsMadeAbsolute) {
    // ffmpeg runs inside the assignment's directory: a relative work dir would name nothing there.
    EngineConfig c;
    c.server = "http://127.0.0.1:9";
    c.key = "k";
    c.work_dir = "engine-work/./x";
    ASSERT_TRUE(finalize(c));
    EXPECT_TRUE(std::filesystem::path(c.work_dir).is_absolute()) << c.work_dir;
    EXPECT_EQ(c.work_dir, (std::filesystem::current_path() / "engine-work/x").string());
}

TEST(Config, MaxLoadMustBeAFiniteNonNegativeNumber) {
    EngineConfig c;
    c.server = "http://127.0.0.1:9";
    c.key = "k";
    c.work_dir = "/tmp/x";
    c.max_load = 2.5;
    EXPECT_TRUE(finalize(c));
    for (double bad : {-1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
        c.max_load = bad;
        auto st = finalize(c);
        ASSERT_FALSE(st) << bad;
        EXPECT_EQ(st.error().details["field"], "max-load");
    }
}

TEST(Argv, FileModeReplacesPlaceholdersAndAddsProgress) {
    protocol::Assignment a;
    a.ffmpeg_argv = {"-nostdin", "-y", "-i", "{input}", "-c:v", "libx264", "-f", "mp4", "{output}"};
    auto argv = build_file_argv(a, "/usr/bin/ffmpeg", "/w/in", "/w/out.mp4");
    EXPECT_EQ(argv,
              (std::vector<std::string>{"/usr/bin/ffmpeg", "-progress", "pipe:1", "-nostats", "-nostdin",
                                        "-y", "-i", "/w/in", "-c:v", "libx264", "-f", "mp4", "/w/out.mp4"}));
    a.ffmpeg_argv = {"-progress", "pipe:1", "-i", "{input}",
                     "x{output}"};  // embedded placeholder: left alone
    argv = build_file_argv(a, "ffmpeg", "/w/in", "/w/out");
    EXPECT_EQ(argv, (std::vector<std::string>{"ffmpeg", "-progress", "pipe:1", "-i", "/w/in", "x{output}"}));
}

TEST(Argv, StreamModeReadsTheRelayWithNoCredentialAndWritesToFd3) {
    protocol::Assignment a;
    a.fencing_token = 7;
    a.credential = "dca1.SECRET";
    a.ffmpeg_argv = {"-progress", "pipe:1",  "-protocol_whitelist", "http,tcp", "-i", "{input}", "-f",
                     "matroska",  "{output}"};
    auto argv = build_stream_argv(a, "ffmpeg", "http://127.0.0.1:5000/abc");
    EXPECT_EQ(argv,
              (std::vector<std::string>{"ffmpeg", "-progress", "pipe:1", "-protocol_whitelist", "http,tcp",
                                        "-i", "http://127.0.0.1:5000/abc", "-f", "matroska", "pipe:3"}));
    for (const auto& arg : argv) EXPECT_EQ(arg.find("SECRET"), std::string::npos) << arg;
}

namespace {

class FakeSystem final : public SystemInfo {
  public:
    std::string hostname() const override { return "fake-host"; }
    std::optional<double> load_average() const override { return 0.5; }
    std::int64_t free_disk_bytes(const std::filesystem::path&) const override { return 10'000; }
    std::optional<protocol::Memory> memory() const override { return protocol::Memory{100, 50}; }
    std::optional<double> cpu_temperature_c() const override { return std::nullopt; }
};

}  // namespace

TEST(Backpressure, LoadAndMemoryLimits) {
    FakeSystem sys;  // load 0.5, 50 bytes available
    EXPECT_FALSE(machine_overloaded(sys, 0, 0));
    EXPECT_FALSE(machine_overloaded(sys, 1.0, 10));
    EXPECT_TRUE(machine_overloaded(sys, 0.25, 0));
    EXPECT_TRUE(machine_overloaded(sys, 0, 100));
}

TEST(Argv, CpuSetPinsFfmpegWithTaskset) {
    std::vector<std::string> argv{"ffmpeg", "-i", "in", "out"};
    EXPECT_EQ(with_cpu_set(argv, ""), argv);
    EXPECT_EQ(with_cpu_set(argv, "0-1,3"),
              (std::vector<std::string>{"taskset", "-c", "0-1,3", "ffmpeg", "-i", "in", "out"}));
    EngineConfig c;
    c.server = "http://127.0.0.1:9";
    c.key = "k";
    c.work_dir = "/tmp/x";
    c.cpu_set = "0-3,6";
    c.min_free_memory = "512M";
    ASSERT_TRUE(finalize(c));
    EXPECT_EQ(c.min_free_memory_bytes, 512ull << 20);
    c.cpu_set = "0-3;rm";
    EXPECT_EQ(finalize(c).error().details["field"], "cpu-set");
    c.cpu_set = "";
    c.min_free_memory = "lots";
    EXPECT_EQ(finalize(c).error().details["field"], "min-free-memory");
}

TEST(Heartbeat, PayloadFollowsTheEngineSituation) {
    FakeSystem sys;
    HeartbeatInputs in;
    in.slots = 2;
    in.reserve_disk_bytes = 4'000;
    in.running_assignments = {"a1"};
    auto hb = build_heartbeat(in, sys, "/w");
    EXPECT_EQ(hb.state, protocol::EngineState::Idle);  // one of two slots free
    EXPECT_EQ(hb.free_disk_bytes, 6'000);              // the reserve is not offered
    EXPECT_EQ(hb.running_assignments, std::vector<std::string>{"a1"});
    EXPECT_FALSE(hb.cpu_temperature_c.has_value());
    EXPECT_EQ(protocol::to_json(hb)["cpu_temperature_c"], nullptr);
    in.running_assignments.push_back("a2");
    EXPECT_EQ(build_heartbeat(in, sys, "/w").state, protocol::EngineState::Busy);
    in.draining = true;
    EXPECT_EQ(build_heartbeat(in, sys, "/w").state, protocol::EngineState::Draining);
    in.reserve_disk_bytes = 1'000'000;
    EXPECT_EQ(build_heartbeat(in, sys, "/w").free_disk_bytes, 0);
}
