// The real process runner against tests/fake/fake-ffmpeg.sh, the state file, and the executor
// driving a fake server through whole assignments.

#include "common/hash.hpp"
#include "tests/support/test_support.hpp"
#include "transcoding_engine/engine.hpp"
#include "transcoding_engine/executor.hpp"
#include "transcoding_engine/runner.hpp"
#include "transcoding_engine/state_store.hpp"

#include "transcoding_engine/sandbox.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <signal.h>
#include <unistd.h>

using namespace distconv;
using namespace distconv::engine;
using namespace std::chrono_literals;

namespace {

const std::string k_fake = std::string(DISTCONV_SOURCE_DIR) + "/tests/fake/fake-ffmpeg.sh";
const std::string k_progress = std::string(DISTCONV_SOURCE_DIR) + "/tests/data/media/progress_x264.txt";

}  // namespace

TEST(Runner, StreamsStdoutAndReportsExitCodeAndStderr) {
    PosixRunner runner;
    RunSpec spec;
    spec.argv = {k_fake, "out"};
    spec.env = {
        {"FAKE_FFMPEG_PROGRESS", k_progress}, {"FAKE_FFMPEG_EXIT", "3"}, {"FAKE_FFMPEG_STDERR", "boom"}};
    auto p = runner.start(spec);
    ASSERT_TRUE(p) << p.error().to_string();
    std::string out;
    auto r = (*p)->wait([&](std::string_view chunk) { out += chunk; });
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_FALSE(r.signal);
    EXPECT_EQ(r.stderr_tail, "boom\n");
    EXPECT_EQ(out, test::read_file(k_progress));
}

TEST(Runner, TerminateKillsTheProcessGroup) {
    PosixRunner runner;
    RunSpec spec;
    // Ignores SIGTERM (so it needs the SIGKILL) and leaves a child in its group.
    spec.argv = {"sh", "-c", "trap '' TERM; sleep 30 & echo ready; wait; sleep 30"};
    auto p = runner.start(spec);
    ASSERT_TRUE(p);
    int pid = (*p)->pid();
    auto t0 = std::chrono::steady_clock::now();
    auto r = (*p)->wait([&](std::string_view) { (*p)->terminate(200ms); });
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_TRUE(r.killed);
    EXPECT_EQ(r.signal, SIGKILL);
    // Nothing left in the group (a killed child may linger a moment as a zombie of its reaper).
    EXPECT_TRUE(test::wait_until([&] { return ::kill(-pid, 0) != 0; }, 3s));
}

TEST(Runner, OutputPipeIsFd3AndMissingProgramIsAnError) {
    PosixRunner runner;
    RunSpec spec;
    spec.argv = {k_fake, "pipe:3"};
    spec.env = {{"FAKE_FFMPEG_OUTPUT", "streamed bytes"}};
    spec.output_pipe = true;
    auto p = runner.start(spec);
    ASSERT_TRUE(p);
    std::string data;
    std::thread reader([&] {
        char buf[64];
        ssize_t n;
        while ((n = read((*p)->output_fd(), buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
    });
    auto r = (*p)->wait({});
    reader.join();
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(data, "streamed bytes");
    RunSpec missing;
    missing.argv = {"/nonexistent/ffmpeg"};
    EXPECT_FALSE(runner.start(missing));
}

TEST(StateStore, KeepsEngineIdAndAssignmentsAcrossReopen) {
    test::TempDir dir;
    {
        auto s = StateStore::open(dir / "engine.db");
        ASSERT_TRUE(s);
        EXPECT_FALSE((*s)->engine_id());
        ASSERT_TRUE((*s)->set_engine_id("E1"));
        ASSERT_TRUE((*s)->record_assignment({"A1", "J1", 4, "received", (dir / "a1").string(), 0}));
        ASSERT_TRUE((*s)->record_assignment({"A2", "J2", 5, "received", "", 0}));
        ASSERT_TRUE((*s)->update_state("A1", "transcoding"));
        ASSERT_TRUE((*s)->remove_assignment("A2"));
    }
    auto s = StateStore::open(dir / "engine.db");
    ASSERT_TRUE(s);
    EXPECT_EQ((*s)->engine_id(), "E1");
    auto rows = (*s)->assignments();
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ((*rows)[0].assignment_id, "A1");
    EXPECT_EQ((*rows)[0].fencing_token, 4);
    EXPECT_EQ((*rows)[0].state, "transcoding");
}

namespace {

// A scripted server: records every call.
class FakeApi final : public EngineApi {
  public:
    std::mutex m;
    std::vector<protocol::ProgressReport> progress_reports;
    std::vector<protocol::FailRequest> fails;
    std::vector<std::string> fail_ids;
    std::optional<protocol::CompleteRequest> completed;
    std::string uploaded;
    std::string source_content = "source bytes";
    bool continue_ = true;
    bool lease_lost = false;
    StateStore* state = nullptr;  // to check the record exists while acting
    bool recorded_while_downloading = false;
    std::vector<std::string> credentials_used;      // by the transfers, in order
    std::optional<std::string> renewed_credential;  // handed out by progress answers

    Result<protocol::EngineRegistrationReply> register_engine(const protocol::EngineRegistration&) override {
        return protocol::EngineRegistrationReply{"E-new", 5, 30};
    }
    Result<protocol::HeartbeatReply> heartbeat(const std::string&, const protocol::Heartbeat&) override {
        return protocol::HeartbeatReply{};
    }
    Result<std::optional<protocol::Assignment>> claim(const std::string&, const protocol::ClaimRequest&,
                                                      const std::function<bool()>&) override {
        return std::optional<protocol::Assignment>();
    }
    Result<protocol::ProgressReply> progress(const std::string&, const protocol::ProgressReport& r) override {
        std::lock_guard l(m);
        progress_reports.push_back(r);
        if (lease_lost) return Error(ErrorCode::LeaseLost, "stale");
        protocol::ProgressReply reply;
        reply.continue_ = continue_ || r.phase != protocol::ProgressPhase::Transcoding;
        reply.credential = renewed_credential;
        return reply;
    }
    Status download_source(const protocol::Assignment& a, const std::filesystem::path& dest,
                           const http::ProgressFn& p) override {
        {
            std::lock_guard l(m);
            credentials_used.push_back(a.credential);
        }
        if (state) {
            auto rows = state->assignments();
            recorded_while_downloading =
                rows && rows->size() == 1 && (*rows)[0].assignment_id == a.assignment_id;
        }
        test::write_file(dest, source_content);
        if (p) p(source_content.size(), source_content.size());
        return {};
    }
    Status upload_output_file(const protocol::Assignment& a, const std::filesystem::path& file,
                              const http::ProgressFn&) override {
        {
            std::lock_guard l(m);
            credentials_used.push_back(a.credential);
        }
        uploaded = test::read_file(file);
        return {};
    }
    Status upload_output_stream(const protocol::Assignment&, http::BodyReader reader) override {
        char buf[7];
        size_t n;
        while ((n = reader(buf, sizeof buf)) > 0) {
            if (n == http::k_read_abort) return Error(ErrorCode::Unavailable, "aborted");
            uploaded.append(buf, n);
        }
        return {};
    }
    Result<protocol::AssignmentAck> complete(const std::string&,
                                             const protocol::CompleteRequest& r) override {
        completed = r;
        return protocol::AssignmentAck{"J", protocol::JobState::Completed};
    }
    Result<protocol::AssignmentAck> fail(const std::string& id, const protocol::FailRequest& r) override {
        std::lock_guard l(m);
        fails.push_back(r);
        fail_ids.push_back(id);
        return protocol::AssignmentAck{"J", protocol::JobState::Queued};
    }
    Result<std::string> read_source_range(const protocol::Assignment& a, uint64_t offset,
                                          uint64_t length) override {
        std::lock_guard l(m);
        credentials_used.push_back(a.credential);
        if (offset >= source_content.size()) return std::string();
        return source_content.substr(offset, length);
    }
    std::string source_url(const protocol::Assignment&) const override { return "http://127.0.0.1:1/src"; }
};

struct Harness {
    test::TempDir dir;
    FakeApi api;
    PosixRunner runner;
    std::unique_ptr<StateStore> state;
    protocol::Assignment a;
    Harness() {
        state = StateStore::open(dir / "engine.db").value();
        api.state = state.get();
        a.assignment_id = "01JAAAAAAAAAAAAAAAAAAAAAA1";
        a.job_id = "01JBBBBBBBBBBBBBBBBBBBBBB2";
        a.fencing_token = 9;
        a.source_url = "/api/v1/assignments/" + a.assignment_id + "/source";
        a.source_format = "mov";
        a.credential = "dca1.first";
        set_mode(protocol::TransferMode::File);
        a.source_size = static_cast<std::int64_t>(api.source_content.size());
        a.source_sha256 = sha256_hex(api.source_content);
        a.output_container = "mp4";
        a.duration_seconds = 2.0;
    }
    // The argv the server sends for the mode, as check_assignment expects it.
    void set_mode(protocol::TransferMode mode) {
        a.transfer_mode = mode;
        a.ffmpeg_argv = protocol::assignment_argv(a.options, mode, a.source_format).value();
    }
    Executor executor(std::vector<std::pair<std::string, std::string>> env,
                      const std::string& ffmpeg = k_fake, const std::string& bwrap = "") {
        // The fake reads its settings from its environment (ffmpeg-env: the engine's own is not passed on).
        ExecutorSettings s;
        s.work_dir = dir.path();
        s.ffmpeg = ffmpeg;
        s.bwrap = bwrap;
        s.self_exe = std::string(DISTCONV_BINARY_DIR) + "/transcoding_engine/distconv-engine";
        s.server = "http://127.0.0.1:1";
        s.ffmpeg_env = std::move(env);
        s.progress_interval = 0ms;
        s.kill_grace = 200ms;
        return Executor(api, runner, *state, s);
    }
};

}  // namespace

TEST(Executor, FileModeDownloadsTranscodesUploadsAndCompletes) {
    Harness h;
    auto ex = h.executor({{"FAKE_FFMPEG_PROGRESS", k_progress}, {"FAKE_FFMPEG_OUTPUT", "encoded!"}});
    ActiveAssignment active(h.a);
    EXPECT_EQ(ex.run(active), AssignmentOutcome::Completed);
    EXPECT_TRUE(h.api.recorded_while_downloading);
    EXPECT_EQ(h.api.uploaded, "encoded!");
    ASSERT_TRUE(h.api.completed);
    EXPECT_EQ(h.api.completed->fencing_token, 9);
    EXPECT_EQ(h.api.completed->output_size, 8);
    EXPECT_EQ(h.api.completed->output_sha256, sha256_hex("encoded!"));
    bool saw_transcoding = false, saw_download = false;
    for (const auto& r : h.api.progress_reports) {
        EXPECT_EQ(r.fencing_token, 9);
        saw_transcoding |= r.phase == protocol::ProgressPhase::Transcoding && r.percent > 0;
        saw_download |= r.phase == protocol::ProgressPhase::Downloading;
    }
    EXPECT_TRUE(saw_transcoding);
    EXPECT_TRUE(saw_download);
    EXPECT_TRUE(h.api.fails.empty());
    EXPECT_FALSE(std::filesystem::exists(ex.assignment_dir(h.a.assignment_id)));  // files cleaned
    EXPECT_TRUE(h.state->assignments()->empty());                                 // record forgotten
}

TEST(Executor, RejectedOptionsFailPermanentWithStderrTail) {
    Harness h;
    auto ex = h.executor({{"FAKE_FFMPEG_EXIT", "1"}, {"FAKE_FFMPEG_STDERR", "Unknown encoder 'libnope'"}});
    ActiveAssignment active(h.a);
    EXPECT_EQ(ex.run(active), AssignmentOutcome::Failed);
    ASSERT_EQ(h.api.fails.size(), 1u);
    EXPECT_EQ(h.api.fails[0].error_class, protocol::ErrorClass::Permanent);
    EXPECT_EQ(h.api.fails[0].exit_code, 1);
    EXPECT_NE(h.api.fails[0].stderr_tail.find("Unknown encoder"), std::string::npos);
    EXPECT_FALSE(h.api.completed);
}

TEST(Executor, ChecksumMismatchFailsAsSourceCorruptWithoutRunningFfmpeg) {
    Harness h;
    h.a.source_sha256 = std::string(64, '0');
    auto ex = h.executor({{"FAKE_FFMPEG_OUTPUT", "x"}});
    ActiveAssignment active(h.a);
    EXPECT_EQ(ex.run(active), AssignmentOutcome::Failed);
    ASSERT_EQ(h.api.fails.size(), 1u);
    EXPECT_EQ(h.api.fails[0].error_class, protocol::ErrorClass::SourceCorrupt);
    // Both digests, so the report says what was expected and what arrived.
    EXPECT_NE(h.api.fails[0].message.find("expected " + std::string(64, '0') + ", got " +
                                          sha256_hex(h.api.source_content)),
              std::string::npos)
        << h.api.fails[0].message;
    EXPECT_TRUE(h.api.uploaded.empty());
    EXPECT_FALSE(h.api.completed);
    EXPECT_FALSE(std::filesystem::exists(ex.assignment_dir(h.a.assignment_id)));  // the bad copy is gone
}

TEST(Executor, SizeMismatchFailsAsSourceCorrupt) {
    Harness h;
    h.a.source_size += 1;
    auto ex = h.executor({{"FAKE_FFMPEG_OUTPUT", "x"}});
    ActiveAssignment active(h.a);
    EXPECT_EQ(ex.run(active), AssignmentOutcome::Failed);
    ASSERT_EQ(h.api.fails.size(), 1u);
    EXPECT_EQ(h.api.fails[0].error_class, protocol::ErrorClass::SourceCorrupt);
    EXPECT_NE(h.api.fails[0].message.find("bytes"), std::string::npos) << h.api.fails[0].message;
    EXPECT_TRUE(h.api.uploaded.empty());
}

TEST(Executor, ContinueFalseKillsFfmpegAndNeverCompletes) {
    Harness h;
    h.api.continue_ = false;
    auto ex = h.executor({{"FAKE_FFMPEG_PROGRESS", k_progress}, {"FAKE_FFMPEG_SLEEP", "5"}});
    ActiveAssignment active(h.a);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(ex.run(active), AssignmentOutcome::Canceled);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);  // not the 5 s the fake sleeps per block
    EXPECT_FALSE(h.api.completed);
    ASSERT_EQ(h.api.fails.size(), 1u);
    EXPECT_EQ(h.api.fails[0].message, "canceled");
}

TEST(Executor, LeaseLostStopsSilently) {
    Harness h;
    h.api.lease_lost = true;
    auto ex = h.executor({{"FAKE_FFMPEG_PROGRESS", k_progress}, {"FAKE_FFMPEG_SLEEP", "5"}});
    ActiveAssignment active(h.a);
    EXPECT_EQ(ex.run(active), AssignmentOutcome::LeaseLost);
    EXPECT_TRUE(h.api.fails.empty());
    EXPECT_FALSE(h.api.completed);
}

TEST(Executor, StreamModeUploadsWhatFfmpegWritesToFd3) {
    Harness h;
    h.set_mode(protocol::TransferMode::Stream);
    auto ex = h.executor({{"FAKE_FFMPEG_PROGRESS", k_progress}, {"FAKE_FFMPEG_OUTPUT", "matroska bytes"}});
    ActiveAssignment active(h.a);
    EXPECT_EQ(ex.run(active), AssignmentOutcome::Completed);
    EXPECT_EQ(h.api.uploaded, "matroska bytes");
    ASSERT_TRUE(h.api.completed);
    EXPECT_EQ(h.api.completed->output_sha256, sha256_hex("matroska bytes"));
    EXPECT_TRUE(h.api.fails.empty());
}

TEST(Executor, StreamModeSourceNotMatchingItsSha256FailsAsSourceCorruptAndNeverCompletes) {
    Harness h;
    h.set_mode(protocol::TransferMode::Stream);
    h.a.source_sha256 = sha256_hex(h.api.source_content);
    h.api.source_content[3] = static_cast<char>(h.api.source_content[3] ^ 0x20);  // corrupted after upload
    auto ex = h.executor({{"FAKE_FFMPEG_PROGRESS", k_progress}, {"FAKE_FFMPEG_OUTPUT", "matroska bytes"}});
    ActiveAssignment active(h.a);
    EXPECT_EQ(ex.run(active), AssignmentOutcome::Failed);
    EXPECT_FALSE(h.api.completed);
    ASSERT_EQ(h.api.fails.size(), 1u);
    EXPECT_EQ(h.api.fails[0].error_class, protocol::ErrorClass::SourceCorrupt);
    EXPECT_NE(h.api.fails[0].message.find("got " + sha256_hex(h.api.source_content)), std::string::npos)
        << h.api.fails[0].message;
}

TEST(Executor, StreamModeFfmpegFailingOnACorruptSourceIsReportedAsSourceCorrupt) {
    Harness h;
    h.set_mode(protocol::TransferMode::Stream);
    h.api.source_content[0] = static_cast<char>(h.api.source_content[0] ^ 0x20);
    auto ex = h.executor(
        {{"FAKE_FFMPEG_EXIT", "1"}, {"FAKE_FFMPEG_STDERR", "Invalid data found when processing input"}});
    ActiveAssignment active(h.a);
    EXPECT_EQ(ex.run(active), AssignmentOutcome::Failed);
    ASSERT_EQ(h.api.fails.size(), 1u);
    EXPECT_EQ(h.api.fails[0].error_class, protocol::ErrorClass::SourceCorrupt);  // not "permanent"
    EXPECT_NE(h.api.fails[0].stderr_tail.find("Invalid data"), std::string::npos);
}

TEST(Executor, StreamModeWithoutASha256SkipsTheCheck) {
    Harness h;
    h.set_mode(protocol::TransferMode::Stream);
    h.a.source_sha256.reset();
    h.api.source_content[0] = static_cast<char>(h.api.source_content[0] ^ 0x20);
    auto ex = h.executor({{"FAKE_FFMPEG_PROGRESS", k_progress}, {"FAKE_FFMPEG_OUTPUT", "matroska bytes"}});
    ActiveAssignment active(h.a);
    EXPECT_EQ(ex.run(active), AssignmentOutcome::Completed);
    EXPECT_TRUE(h.api.credentials_used.empty());  // nothing fetched: the fake ffmpeg reads no input
}

TEST(Engine, RecoveryReportsOrphansAndCleansTheirFiles) {
    Harness h;
    auto orphan_dir = h.dir / "assignments" / "OLD";
    test::write_file(orphan_dir / "source", "partial");
    test::write_file(h.dir / "assignments" / "STRAY" / "x", "no record");
    ASSERT_TRUE(h.state->record_assignment({"OLD", "J0", 3, "transcoding", orphan_dir.string(), 0}));
    ASSERT_TRUE(h.state->set_engine_id("E-old"));
    class NoSys final : public SystemInfo {
        std::string hostname() const override { return "h"; }
        std::optional<double> load_average() const override { return std::nullopt; }
        std::int64_t free_disk_bytes(const std::filesystem::path&) const override { return 1; }
        std::optional<protocol::Memory> memory() const override { return std::nullopt; }
        std::optional<double> cpu_temperature_c() const override { return std::nullopt; }
    } sys;
    EngineSettings es;
    es.work_dir = h.dir.path();
    es.executor.work_dir = h.dir.path();
    Engine engine(h.api, h.runner, *h.state, sys, es, {}, std::nullopt);
    ASSERT_TRUE(engine.ensure_registered());
    EXPECT_EQ(engine.engine_id(), "E-old");  // reused, not registered again
    EXPECT_TRUE(engine.recover());
    ASSERT_EQ(h.api.fails.size(), 1u);
    EXPECT_EQ(h.api.fail_ids[0], "OLD");
    EXPECT_EQ(h.api.fails[0].fencing_token, 3);
    EXPECT_EQ(h.api.fails[0].error_class, protocol::ErrorClass::Transient);
    EXPECT_EQ(h.api.fails[0].message, "engine restarted");
    EXPECT_FALSE(std::filesystem::exists(orphan_dir));
    EXPECT_FALSE(std::filesystem::exists(h.dir / "assignments" / "STRAY"));
    EXPECT_TRUE(h.state->assignments()->empty());
    ASSERT_TRUE(engine.ensure_registered(true));
    EXPECT_EQ(h.state->engine_id(), "E-new");
}

// --- The sandbox, through the executor: a hostile "ffmpeg" reports what it could reach. ---------

namespace {

const std::string k_escape = std::string(DISTCONV_SOURCE_DIR) + "/tests/fake/escape-ffmpeg.sh";

// A TCP listener on 127.0.0.1 that counts the connections it accepts.
struct Listener {
    int fd = -1;
    int port = 0;
    std::atomic<int> accepted{0};
    std::atomic<bool> stop{false};
    std::thread thread;
    Listener() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        ::listen(fd, 16);
        socklen_t len = sizeof addr;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
        port = ntohs(addr.sin_port);
        thread = std::thread([this] {
            while (!stop) {
                pollfd p{fd, POLLIN, 0};
                if (::poll(&p, 1, 50) <= 0) continue;
                int c = ::accept(fd, nullptr, nullptr);
                if (c >= 0) {
                    ++accepted;
                    ::close(c);
                }
            }
        });
    }
    ~Listener() {
        stop = true;
        thread.join();
        ::close(fd);
    }
};

struct EscapeRun {
    std::string report;
    std::vector<std::filesystem::path>
        outside;  // files it tries to create: beside the work dir, and outside /tmp
    int connections = 0;
    bool wrote_any_outside() const {
        return std::any_of(outside.begin(), outside.end(),
                           [](const auto& p) { return std::filesystem::exists(p); });
    }
    ~EscapeRun() {
        for (const auto& p : outside) std::filesystem::remove(p);
    }
};

// Runs the hostile ffmpeg as an assignment in `mode`, under bubblewrap when `bwrap` is set.
EscapeRun run_escape(Harness& h, protocol::TransferMode mode, const std::string& bwrap) {
    h.set_mode(mode);
    Listener listener;
    EscapeRun out;
    out.outside = {h.dir / "outside.txt", std::filesystem::path(DISTCONV_BINARY_DIR) /
                                              ("sandbox-escape-" + std::to_string(::getpid()) + ".txt")};
    test::write_file(h.dir / "engine.key", "dcv_KEYFILESECRET");
    ::setenv("DISTCONV_API_KEY", "dcv_ENVSECRET", 1);
    auto ex =
        h.executor({{"ESCAPE_OUTSIDE", out.outside[0].string() + ":" + out.outside[1].string()},
                    {"ESCAPE_READ", (h.dir / "engine.db").string() + ":" + (h.dir / "engine.key").string()},
                    {"ESCAPE_PORT", std::to_string(listener.port)}},
                   k_escape, bwrap);
    ActiveAssignment active(h.a);
    EXPECT_EQ(ex.run(active), AssignmentOutcome::Completed);
    ::unsetenv("DISTCONV_API_KEY");
    out.report = h.api.uploaded;
    out.connections = listener.accepted.load();
    return out;
}

bool bwrap_works(std::string* why) {
    test::TempDir scratch;
    auto st = probe_bwrap("bwrap", scratch.path());
    if (!st && why) *why = st.error().message;
    return st.ok();
}

// The tests that need bubblewrap working on this machine.
class SandboxTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string why;
        if (!bwrap_works(&why)) GTEST_SKIP() << "bubblewrap cannot run here: " << why;
    }
};

}  // namespace

TEST_F(SandboxTest, FileModeFfmpegCannotWriteOutsideReadTheEngineFilesOrConnect) {
    Harness h;
    auto r = run_escape(h, protocol::TransferMode::File, "bwrap");
    EXPECT_FALSE(r.wrote_any_outside()) << r.report;
    EXPECT_NE(r.report.find("unreadable=" + (h.dir / "engine.db").string()), std::string::npos) << r.report;
    EXPECT_NE(r.report.find("unreadable=" + (h.dir / "engine.key").string()), std::string::npos) << r.report;
    EXPECT_EQ(r.report.find("SECRET"), std::string::npos)
        << r.report;  // neither the key file nor the env key
    EXPECT_NE(r.report.find("tcp=refused"), std::string::npos) << r.report;
    EXPECT_EQ(r.connections, 0);
    EXPECT_NE(r.report.find("proc=none"), std::string::npos) << r.report;
    EXPECT_EQ(r.report.find("DISTCONV_"), std::string::npos) << r.report;
}

TEST_F(SandboxTest, StreamModeFfmpegIsConfinedTheSameAndReachesOnlyItsOnePort) {
    Harness h;
    auto r = run_escape(h, protocol::TransferMode::Stream, "bwrap");
    EXPECT_FALSE(r.wrote_any_outside()) << r.report;
    // Its network is its own: the host's loopback (where the listener waits) is out of reach.
    EXPECT_NE(r.report.find("tcp=refused"), std::string::npos) << r.report;
    EXPECT_EQ(r.connections, 0);
    EXPECT_EQ(r.report.find("SECRET"), std::string::npos) << r.report;
    EXPECT_EQ(r.report.find("DISTCONV_"), std::string::npos) << r.report;
    EXPECT_NE(r.report.find("proc=none"), std::string::npos) << r.report;
}

TEST(Sandbox, WithoutItTheSameFfmpegReachesEverything) {
    // The control: the checks above can fail. Only the environment stays clean without a sandbox.
    Harness h;
    auto r = run_escape(h, protocol::TransferMode::File, "");
    EXPECT_TRUE(std::filesystem::exists(r.outside[0]) && std::filesystem::exists(r.outside[1])) << r.report;
    EXPECT_NE(r.report.find("dcv_KEYFILESECRET"), std::string::npos) << r.report;
    EXPECT_NE(r.report.find("tcp=connected"), std::string::npos) << r.report;
    EXPECT_EQ(r.connections, 1);
    EXPECT_EQ(r.report.find("dcv_ENVSECRET"), std::string::npos) << r.report;  // scrubbed even then
}
