// The `distconv` binary as a child process against the real dispatch server, started in-process on
// 127.0.0.1 port 0. There is no engine here: jobs are moved along through the server's store (the
// way an engine would) when a test needs them running, completed or failed.

#include "common/hash.hpp"
#include "dispatch_server/app.hpp"
#include "dispatch_server/config.hpp"
#include "dispatch_server/pools/pools.hpp"
#include "dispatch_server/service/auth.hpp"
#include "dispatch_server/service/jobs.hpp"
#include "dispatch_server/store/store.hpp"
#include "tests/support/must.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace distconv {
namespace {

using distconv::test::must;

namespace stdfs = std::filesystem;
using dispatch::JobState;
using nlohmann::json;

const std::string k_binary = DISTCONV_BINARY_DIR "/submission_client/distconv";

// A running `distconv`: stdout and stderr go to files in the test's dir.
class Child {
  public:
    Child(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
          const stdfs::path& dir, const std::string& tag, const std::string& program = k_binary)
        : m_out(dir / (tag + ".out")), m_err(dir / (tag + ".err")) {
        std::vector<std::string> argv{program};
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<std::string> envs;
        for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
        m_pid = ::fork();
        if (m_pid == 0) {
            int in = ::open("/dev/null", O_RDONLY);
            int out = ::open(m_out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            int err = ::open(m_err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            ::dup2(in, 0);
            ::dup2(out, 1);
            ::dup2(err, 2);
            std::vector<char*> a, e;
            for (auto& s : argv) a.push_back(s.data());
            a.push_back(nullptr);
            for (auto& s : envs) e.push_back(s.data());
            e.push_back(nullptr);
            ::execve(a[0], a.data(), e.data());
            ::_exit(127);
        }
    }
    ~Child() {
        if (m_pid > 0 && !m_status) {
            ::kill(m_pid, SIGKILL);
            ::waitpid(m_pid, nullptr, 0);
        }
    }
    // The exit code (128+signal when killed), or -1 after the timeout.
    int wait(std::chrono::seconds timeout = std::chrono::seconds(60)) {
        if (m_status) return *m_status;
        bool done = test::wait_until(
            [&] {
                int st = 0;
                if (::waitpid(m_pid, &st, WNOHANG) != m_pid) return false;
                m_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                return true;
            },
            timeout);
        return done ? *m_status : -1;
    }
    void signal(int sig) { ::kill(m_pid, sig); }
    std::string out() const { return test::read_file(m_out); }
    std::string err() const { return test::read_file(m_err); }

  private:
    stdfs::path m_out, m_err;
    pid_t m_pid = -1;
    std::optional<int> m_status;
};

struct RunResult {
    int code;
    std::string out;
    std::string err;
};

class CliServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dispatch::DispatchConfig cfg;
        cfg.data_dir = (m_dir / "data").string();
        cfg.listen = "127.0.0.1:0";
        cfg.log_level = "warn";
        ASSERT_TRUE(dispatch::finalize(cfg).ok());
        m_config = cfg;
        auto s = dispatch::DispatchServer::create(m_config);
        ASSERT_TRUE(s.ok()) << s.error().to_string();
        m_server = std::move(*s);
        m_thread = std::thread([this] { m_server->run(); });
        m_url = "http://127.0.0.1:" + std::to_string(m_server->port());
        auto user = m_server->auth().create_key("alice", protocol::Role::User);
        ASSERT_TRUE(user.ok());
        m_key = user->secret;
        m_user = dispatch::Principal{user->record.id, user->record.name, protocol::Role::User};
        auto admin = m_server->auth().create_key("root", protocol::Role::Admin);
        ASSERT_TRUE(admin.ok());
        m_admin_key = admin->secret;
        ASSERT_TRUE(test::make_test_clip(m_dir / "clip.mp4", 1.0, 160, 120));
        stdfs::create_directories(m_dir / "home");
    }
    void TearDown() override {
        if (m_server) m_server->stop();
        if (m_thread.joinable()) m_thread.join();
    }

    // A clean environment: no DISTCONV_* from the caller, HOME without a client.ini.
    std::map<std::string, std::string> env(const std::string& key) const {
        std::map<std::string, std::string> e{
            {"HOME", (m_dir / "home").string()},
            {"PATH", std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin"},
            {"DISTCONV_SERVER", m_url}};
        if (!key.empty()) e["DISTCONV_API_KEY"] = key;
        return e;
    }
    std::unique_ptr<Child> start(const std::vector<std::string>& args, const std::string& key = "") {
        return std::make_unique<Child>(args, env(key.empty() ? m_key : key), m_dir.path(),
                                       "run" + std::to_string(++m_runs));
    }
    RunResult run(const std::vector<std::string>& args, const std::string& key = "") {
        auto c = start(args, key);
        int code = c->wait();
        return {code, c->out(), c->err()};
    }
    json run_json(const std::vector<std::string>& args) {
        auto r = run(args);
        EXPECT_EQ(r.code, 0) << r.err;
        auto j = json::parse(r.out, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << r.out;
        return j;
    }

    std::string submit_detached(const stdfs::path& file) {
        auto j = run_json({"submit", file.string(), "--detach", "--json"});
        return j["jobs"][0]["job_id"].get<std::string>();
    }

    JobState state_of(const std::string& id) { return m_server->store().get_job(id)->state; }

    // Does what an engine would: claim, run, and store an output (or fail).
    void to_running(const std::string& id) {
        ASSERT_TRUE(m_server->store().transition(id, {JobState::Queued}, JobState::Assigned, {}).ok());
        dispatch::JobUpdate u;
        u.progress_percent = 40;
        ASSERT_TRUE(m_server->store().transition(id, {JobState::Assigned}, JobState::Running, u).ok());
    }
    std::string complete_with(const std::string& id, const std::string& bytes) {
        auto& pools = m_server->pools();
        std::string rel = dispatch::StoragePools::job_file(id, dispatch::FileKind::Output);
        auto path = pools.resolve("default", rel);
        stdfs::create_directories(path.parent_path());
        test::write_file(path, bytes);
        dispatch::JobUpdate u;
        u.output_pool = "default";
        u.output_path = rel;
        u.output_size = bytes.size();
        u.output_sha256 = sha256_hex(bytes);
        u.progress_percent = 100;
        auto r = m_server->store().transition(id, {JobState::Running}, JobState::Completed, u);
        EXPECT_TRUE(r.ok()) << r.error().to_string();
        return *u.output_sha256;
    }
    // Wakes the server's event streams (a store write alone does not): cancel + retry a spare job.
    void poke(const std::string& spare) {
        (void)m_server->jobs().retry(m_user, spare);
        (void)m_server->jobs().cancel(m_user, spare);
    }

    test::TempDir m_dir;
    dispatch::DispatchConfig m_config;
    std::unique_ptr<dispatch::DispatchServer> m_server;
    std::thread m_thread;
    std::string m_url, m_key, m_admin_key;
    dispatch::Principal m_user;
    int m_runs = 0;
};

std::string random_bytes_of(size_t n) {
    std::string s;
    s.reserve(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; ++i) {
        x = x * 1664525u + 1013904223u;
        s.push_back(static_cast<char>(x >> 24));
    }
    return s;
}

TEST_F(CliServerTest, SubmitDetachJsonCarriesTheJobId) {
    auto j = run_json({"submit", (m_dir / "clip.mp4").string(), "--detach", "--json", "--crf", "30"});
    ASSERT_EQ(j["jobs"].size(), 1u);
    std::string id = j["jobs"][0]["job_id"];
    EXPECT_EQ(j["jobs"][0]["state"], "queued");
    EXPECT_EQ(j["jobs"][0]["input"], (m_dir / "clip.mp4").string());
    EXPECT_EQ(j["jobs"][0]["output"], (m_dir / "clip.transcoded.mp4").string());  // never the input itself
    auto job = m_server->store().get_job(id);
    ASSERT_TRUE(job.ok());
    EXPECT_EQ(job->state, JobState::Queued);
    EXPECT_EQ(job->output_filename, "clip.transcoded.mp4");
    EXPECT_EQ(job->options["video"]["crf"], 30);
    EXPECT_EQ(job->source_filename, "clip.mp4");
    // The uploaded source is byte for byte the file.
    auto src = m_server->pools().resolve(job->source_pool, job->source_path);
    EXPECT_EQ(sha256_file(src).value_or(""), sha256_file(m_dir / "clip.mp4").value_or("x"));
}

TEST_F(CliServerTest, BatchOfThreeDetached) {
    for (auto n : {"a.mov", "b.mov", "c.mov"}) stdfs::copy_file(m_dir / "clip.mp4", m_dir / n);
    stdfs::create_directories(m_dir / "out");
    auto r = run({"submit", (m_dir / "a.mov").string(), (m_dir / "b.mov").string(),
                  (m_dir / "c.mov").string(), "--output-dir", (m_dir / "out").string(), "--detach"});
    ASSERT_EQ(r.code, 0) << r.err;
    int lines = 0;
    for (char c : r.out) lines += c == '\n';
    EXPECT_EQ(lines, 3) << r.out;
    EXPECT_NE(r.out.find("a.mov -> "), std::string::npos);
    EXPECT_NE(r.out.find("c.mov -> "), std::string::npos);

    auto list = run_json({"list", "--json"});
    EXPECT_EQ(list["total"], 3);
    ASSERT_EQ(list["items"].size(), 3u);
    std::set<std::string> names;
    for (const auto& it : list["items"]) {
        EXPECT_EQ(it["state"], "queued");
        names.insert(it["output_filename"].get<std::string>());
    }
    EXPECT_EQ(names, (std::set<std::string>{"a.mp4", "b.mp4", "c.mp4"}));

    auto human = run({"list", "--state", "queued"});
    ASSERT_EQ(human.code, 0);
    EXPECT_NE(human.out.find("ID"), std::string::npos);
    EXPECT_NE(human.out.find("b.mp4"), std::string::npos);
}

// The interactive menu, as a user at a terminal sees it: distconv on a pseudo-terminal, no
// subcommand, choices typed in.
TEST_F(CliServerTest, MenuOnATerminalListsJobsAndQuits) {
    std::string id = submit_detached(m_dir / "clip.mp4");
    int master = -1;
    pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::vector<std::string> envs;
        for (const auto& [k, v] : env(m_key)) envs.push_back(k + "=" + v);
        std::vector<char*> e;
        for (auto& v : envs) e.push_back(v.data());
        e.push_back(nullptr);
        char* argv[] = {const_cast<char*>(k_binary.c_str()), nullptr};
        ::execve(argv[0], argv, e.data());
        ::_exit(127);
    }
    std::string screen;
    auto read_until = [&](const std::string& needle) {
        return test::wait_until(
            [&] {
                char buf[4096];
                pollfd p{master, POLLIN, 0};
                while (::poll(&p, 1, 50) > 0) {
                    ssize_t n = ::read(master, buf, sizeof buf);
                    if (n <= 0) break;
                    screen.append(buf, static_cast<size_t>(n));
                }
                return screen.find(needle) != std::string::npos;
            },
            std::chrono::seconds(10));
    };
    ASSERT_TRUE(read_until("1  submit a file")) << screen;
    ASSERT_TRUE(read_until("> ")) << screen;
    ASSERT_EQ(::write(master, "2\n", 2), 2);
    EXPECT_TRUE(read_until(id)) << "my jobs lists the job: " << screen;
    ASSERT_EQ(::write(master, "7\n", 2), 2);
    EXPECT_TRUE(read_until("choose 1-5 or q")) << screen;
    ASSERT_EQ(::write(master, "q\n", 2), 2);
    int status = 0;
    ASSERT_TRUE(
        test::wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, std::chrono::seconds(10)))
        << screen;
    ::close(master);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << screen;
}

TEST_F(CliServerTest, StatusCancelRetry) {
    std::string id = submit_detached(m_dir / "clip.mp4");
    auto st = run_json({"status", id, "--json"});
    EXPECT_EQ(st["job_id"], id);
    EXPECT_EQ(st["state"], "queued");
    EXPECT_EQ(st["queue_position"], 1);

    auto c = run({"cancel", id});
    ASSERT_EQ(c.code, 0) << c.err;
    EXPECT_NE(c.out.find(id + "  canceled"), std::string::npos) << c.out;
    EXPECT_EQ(state_of(id), JobState::Canceled);

    auto human = run({"status", id});
    ASSERT_EQ(human.code, 0);
    EXPECT_NE(human.out.find("canceled"), std::string::npos);
    // The stream plan and the command, from the probe taken at submit.
    EXPECT_NE(human.out.find("streams\n  #0 video h264"), std::string::npos) << human.out;
    EXPECT_NE(human.out.find("#1 audio aac"), std::string::npos) << human.out;
    EXPECT_NE(human.out.find("command   ffmpeg "), std::string::npos) << human.out;

    auto rj = run_json({"retry", id, "--json"});
    EXPECT_EQ(rj["state"], "queued");
    EXPECT_EQ(state_of(id), JobState::Queued);

    auto again = run({"retry", id});  // a queued job cannot be retried: the server's CONFLICT, no HTTP noise
    EXPECT_EQ(again.code, 1);
    EXPECT_EQ(again.err.rfind("distconv: CONFLICT: ", 0), 0u) << again.err;

    auto missing = run({"status", "01J00000000000000000000000"});
    EXPECT_EQ(missing.code, 1);
    EXPECT_NE(missing.err.find("JOB_NOT_FOUND"), std::string::npos) << missing.err;
}

TEST_F(CliServerTest, PresetsAndPools) {
    auto p = run_json({"presets", "--json"});
    bool found = false;
    for (const auto& it : p["items"]) found |= it["name"] == "h264-web";
    EXPECT_TRUE(found) << p.dump();
    auto human = run({"presets"});
    EXPECT_EQ(human.code, 0);
    EXPECT_NE(human.out.find("h264-web"), std::string::npos);

    auto pools = run_json({"pools", "--json"});
    ASSERT_GE(pools["items"].size(), 1u);
    EXPECT_EQ(pools["items"][0]["name"], "default");
    auto ph = run({"pools"});
    EXPECT_EQ(ph.code, 0);
    EXPECT_NE(ph.out.find("default"), std::string::npos);
}

TEST_F(CliServerTest, ExitCodes) {
    EXPECT_EQ(run({"submit", "--no-such-flag", (m_dir / "clip.mp4").string()}).code, 2);
    EXPECT_EQ(run({"submit", (m_dir / "missing.mp4").string()}).code, 2);
    EXPECT_EQ(run({"list", "--limit", "0"}).code, 2);
    EXPECT_EQ(run({"submit", (m_dir / "clip.mp4").string(), "--video-codec", "h265x", "--detach"}).code, 2);
    EXPECT_EQ(run({}).code, 2);  // no subcommand and stdin is not a terminal

    // A port that was bound and closed: nothing listens there.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    int port = ntohs(addr.sin_port);
    ::close(fd);
    auto unreachable = run({"--server", "http://127.0.0.1:" + std::to_string(port), "list"});
    EXPECT_EQ(unreachable.code, 3);
    EXPECT_NE(unreachable.err.find("distconv: UNAVAILABLE"), std::string::npos) << unreachable.err;

    auto bad_key = run({"list"}, "dcv_not_a_real_key");
    EXPECT_EQ(bad_key.code, 3);
    EXPECT_NE(bad_key.err.find("distconv: UNAUTHENTICATED"), std::string::npos) << bad_key.err;
    EXPECT_EQ(run({"keys", "list"}).code, 3);  // a user key on an admin endpoint: FORBIDDEN

    // The key is not sent in clear text to another host.
    auto insecure = run({"--server", "http://192.0.2.1:8080", "list"});
    EXPECT_EQ(insecure.code, 2);
    EXPECT_NE(insecure.err.find("--allow-insecure"), std::string::npos);

    // Refuses to overwrite an existing output, before uploading anything.
    test::write_file(m_dir / "clip.transcoded.mp4", "keep me");
    auto refused = run({"submit", (m_dir / "clip.mp4").string()});
    EXPECT_EQ(refused.code, 2);
    EXPECT_NE(refused.err.find("already exists"), std::string::npos) << refused.err;
    EXPECT_EQ(test::read_file(m_dir / "clip.transcoded.mp4"), "keep me");
    EXPECT_EQ(must(m_server->store().list_jobs({})).total, 0);
}

TEST_F(CliServerTest, HelpForEverySubcommandHasAnExample) {
    for (std::vector<std::string> cmd : {std::vector<std::string>{"submit"},
                                         {"status"},
                                         {"list"},
                                         {"watch"},
                                         {"cancel"},
                                         {"retry"},
                                         {"download"},
                                         {"engines"},
                                         {"pools"},
                                         {"presets"},
                                         {"keys"},
                                         {"keys", "create"},
                                         {"keys", "list"},
                                         {"keys", "revoke"},
                                         {"library"},
                                         {"library", "plan"},
                                         {"library", "run"},
                                         {"library", "status"}}) {
        cmd.push_back("--help");
        auto r = run(cmd);
        EXPECT_EQ(r.code, 0) << cmd[0];
        EXPECT_NE(r.out.find("Example"), std::string::npos) << cmd[0] << ": " << r.out;
    }
}

TEST_F(CliServerTest, DownloadResumesAPartialFileAndChecksSha) {
    std::string id = submit_detached(m_dir / "clip.mp4");
    to_running(id);
    std::string bytes = random_bytes_of(300000);
    std::string sha = complete_with(id, bytes);

    // An earlier download was cut halfway: OUT.part holds the first half.
    auto out = m_dir / "result.mp4";
    test::write_file(m_dir / "result.mp4.part", bytes.substr(0, 150000));
    auto j = run_json({"download", id, "-o", out.string(), "--json"});
    EXPECT_EQ(j["resumed_from"], 150000);
    EXPECT_EQ(j["size"], 300000);
    EXPECT_EQ(j["sha256"], sha);
    EXPECT_EQ(sha256_file(out).value_or(""), sha);
    EXPECT_FALSE(stdfs::exists(m_dir / "result.mp4.part"));

    // Existing output: refused without --force, replaced with it.
    auto refused = run({"download", id, "-o", out.string()});
    EXPECT_EQ(refused.code, 2);
    test::write_file(out, "old");
    auto forced = run({"download", id, "-o", out.string(), "--force"});
    EXPECT_EQ(forced.code, 0) << forced.err;
    EXPECT_EQ(sha256_file(out).value_or(""), sha);

    // Not completed: nothing to download.
    std::string queued = submit_detached(m_dir / "clip.mp4");
    auto not_ready = run({"download", queued, "-o", (m_dir / "nope.mp4").string()});
    EXPECT_EQ(not_ready.code, 1);
    EXPECT_NE(not_ready.err.find("JOB_NOT_READY"), std::string::npos) << not_ready.err;
}

TEST_F(CliServerTest, SubmitWaitFollowsEventsAndDownloads) {
    std::string spare = submit_detached(m_dir / "clip.mp4");
    ASSERT_TRUE(m_server->jobs().cancel(m_user, spare).ok());
    stdfs::copy_file(m_dir / "clip.mp4", m_dir / "movie.mov");
    auto child = start({"submit", (m_dir / "movie.mov").string(), "--json"});
    std::string id;
    ASSERT_TRUE(test::wait_until(
        [&] {
            // A multipart job is stored first and queued once its source is in place: wait for queued.
            for (const auto& j : must(m_server->store().list_jobs({})).items)
                if (j.id != spare && j.state == JobState::Queued) id = j.id;
            return !id.empty();
        },
        std::chrono::seconds(20)));
    to_running(id);
    poke(spare);
    std::string bytes = random_bytes_of(50000);
    std::string sha = complete_with(id, bytes);
    poke(spare);
    ASSERT_EQ(child->wait(), 0) << child->err();
    auto j = json::parse(child->out());
    EXPECT_EQ(j["jobs"][0]["job_id"], id);
    EXPECT_EQ(j["jobs"][0]["state"], "completed");
    EXPECT_EQ(j["jobs"][0]["output"], (m_dir / "movie.mp4").string());
    EXPECT_EQ(sha256_file(m_dir / "movie.mp4").value_or(""), sha);
    // Not a terminal: plain state lines, no bars or escape codes.
    EXPECT_NE(child->err().find("running"), std::string::npos) << child->err();
    EXPECT_EQ(child->err().find("\x1b["), std::string::npos);
}

TEST_F(CliServerTest, BatchWaitFollowsAllAndDownloadsEach) {
    for (auto n : {"a.mov", "b.mov"}) stdfs::copy_file(m_dir / "clip.mp4", m_dir / n);
    stdfs::create_directories(m_dir / "out");
    auto child = start({"submit", (m_dir / "a.mov").string(), (m_dir / "b.mov").string(), "--output-dir",
                        (m_dir / "out").string(), "--json"});
    std::vector<std::string> ids;
    ASSERT_TRUE(test::wait_until(
        [&] {
            ids.clear();
            for (const auto& j : must(m_server->store().list_jobs({})).items)
                if (j.state == JobState::Queued) ids.push_back(j.id);
            return ids.size() == 2;
        },
        std::chrono::seconds(20)));
    std::map<std::string, std::string> shas;
    for (size_t i = 0; i < ids.size(); ++i) {
        to_running(ids[i]);
        auto job = m_server->store().get_job(ids[i]);
        shas[job->output_filename] = complete_with(ids[i], random_bytes_of(10000 + i * 999));
    }
    ASSERT_EQ(child->wait(), 0) << child->err();
    auto j = json::parse(child->out());
    ASSERT_EQ(j["jobs"].size(), 2u);
    for (const auto& it : j["jobs"]) EXPECT_EQ(it["state"], "completed");
    EXPECT_EQ(sha256_file(m_dir / "out/a.mp4").value_or(""), shas["a.mp4"]);
    EXPECT_EQ(sha256_file(m_dir / "out/b.mp4").value_or(""), shas["b.mp4"]);
}

TEST_F(CliServerTest, FailedJobExitsOne) {
    std::string spare = submit_detached(m_dir / "clip.mp4");
    ASSERT_TRUE(m_server->jobs().cancel(m_user, spare).ok());
    auto child = start({"submit", (m_dir / "clip.mp4").string(), "-o", (m_dir / "o.mkv").string()});
    std::string id;
    ASSERT_TRUE(test::wait_until(
        [&] {
            // A multipart job is stored first and queued once its source is in place: wait for queued.
            for (const auto& j : must(m_server->store().list_jobs({})).items)
                if (j.id != spare && j.state == JobState::Queued) id = j.id;
            return !id.empty();
        },
        std::chrono::seconds(20)));
    to_running(id);
    dispatch::JobUpdate u;
    u.message = "ffmpeg exited with code 1: Unknown encoder";
    u.failure_code = "TRANSCODE_FAILED";
    ASSERT_TRUE(
        m_server->store().transition(id, {JobState::Running}, JobState::Failed, u, "transcode failed").ok());
    poke(spare);
    ASSERT_EQ(child->wait(std::chrono::seconds(40)), 1) << child->err();
    EXPECT_NE(child->err().find("failed"), std::string::npos) << child->err();
    EXPECT_FALSE(stdfs::exists(m_dir / "o.mkv"));
}

TEST_F(CliServerTest, CtrlCWhileWaitingCancelsTheJob) {
    auto child = start({"submit", (m_dir / "clip.mp4").string()});
    std::string id;
    ASSERT_TRUE(test::wait_until(
        [&] {
            auto page = must(m_server->store().list_jobs({}));
            if (!page.items.empty()) id = page.items[0].id;
            return !id.empty();
        },
        std::chrono::seconds(20)));
    // Wait until the CLI is following (it printed the job line), then interrupt.
    ASSERT_TRUE(test::wait_until([&] { return child->out().find(id) != std::string::npos; },
                                 std::chrono::seconds(20)));
    child->signal(SIGINT);
    EXPECT_EQ(child->wait(std::chrono::seconds(20)), 130) << child->err();
    EXPECT_EQ(state_of(id), JobState::Canceled);
    EXPECT_NE(child->err().find("canceled " + id), std::string::npos) << child->err();
}

TEST_F(CliServerTest, AdminKeys) {
    auto created = run({"keys", "create", "--name", "bob", "--role", "user"}, m_admin_key);
    ASSERT_EQ(created.code, 0) << created.err;
    std::string secret = created.out.substr(0, created.out.find('\n'));
    EXPECT_EQ(secret.rfind("dcv_", 0), 0u) << created.out;
    // The new key works.
    auto as_bob = run({"list", "--json"}, secret);
    EXPECT_EQ(as_bob.code, 0) << as_bob.err;
    auto list = run({"keys", "list", "--json"}, m_admin_key);
    ASSERT_EQ(list.code, 0);
    EXPECT_NE(list.out.find("\"bob\""), std::string::npos);
    EXPECT_EQ(list.out.find(secret), std::string::npos);  // never the secret
    auto revoked = run({"keys", "revoke", "bob"}, m_admin_key);
    EXPECT_EQ(revoked.code, 0) << revoked.err;
    EXPECT_EQ(run({"list"}, secret).code, 3);
}

TEST_F(CliServerTest, ConfigFileSuppliesServerAndKey) {
    stdfs::create_directories(m_dir / "home/.config/distconv");
    test::write_file(m_dir / "home/.config/distconv/client.ini",
                     "server = " + m_url + "\nkey = " + m_key + "\n");
    std::map<std::string, std::string> e{{"HOME", (m_dir / "home").string()}, {"PATH", "/usr/bin:/bin"}};
    Child c({"presets", "--json"}, e, m_dir.path(), "ini");
    EXPECT_EQ(c.wait(), 0) << c.err();
    EXPECT_NE(c.out().find("h264-web"), std::string::npos);
}

// --- End to end with a real engine (runs when distconv-engine has been built) ------------------------

const std::string k_engine = DISTCONV_BINARY_DIR "/transcoding_engine/distconv-engine";

class CliEngineTest : public CliServerTest {
  protected:
    void start_engine() {
        if (!stdfs::exists(k_engine)) GTEST_SKIP() << "distconv-engine is not built: " << k_engine;
        auto key = m_server->auth().create_key("engine1", protocol::Role::Engine);
        ASSERT_TRUE(key.ok());
        stdfs::create_directories(m_dir / "engine");
        std::map<std::string, std::string> e{{"HOME", (m_dir / "home").string()},
                                             {"PATH", std::getenv("PATH")}};
        m_engine = std::make_unique<Child>(
            std::vector<std::string>{"--server", m_url, "--key", key->secret, "--work-dir",
                                     (m_dir / "engine").string(), "--benchmark", "off", "--claim-wait", "2s",
                                     "--heartbeat-interval", "1s", "--reserve-disk", "1M"},
            e, m_dir.path(), "engine", k_engine);
    }
    void TearDown() override {
        if (m_engine) {
            m_engine->signal(SIGTERM);
            m_engine->wait(std::chrono::seconds(20));
        }
        CliServerTest::TearDown();
    }
    std::unique_ptr<Child> m_engine;
};

std::string probe_video_codec(const stdfs::path& file) {
    std::string out;
    test::run_command({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                       "stream=codec_name", "-of", "default=nw=1:nk=1", file.string()},
                      &out);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

TEST_F(CliEngineTest, SubmitWaitProducesTheOutputWithTheRightCodec) {
    start_engine();
    auto child = start({"submit", (m_dir / "clip.mp4").string(), "-o", (m_dir / "out.mkv").string(),
                        "--video-codec", "mpeg4", "--json"});
    ASSERT_EQ(child->wait(std::chrono::seconds(120)), 0) << child->err() << "\nengine:\n" << m_engine->err();
    auto j = json::parse(child->out());
    EXPECT_EQ(j["jobs"][0]["state"], "completed");
    ASSERT_TRUE(stdfs::exists(m_dir / "out.mkv"));
    EXPECT_EQ(probe_video_codec(m_dir / "out.mkv"), "mpeg4");
    EXPECT_FALSE(stdfs::exists(m_dir / "out.mkv.part"));
}

TEST_F(CliEngineTest, JobTheEnginesFfmpegRejectsExitsOne) {
    start_engine();
    // Valid options that ffmpeg's MPEG-4 encoder refuses ("dimensions too large for MPEG-4").
    auto r = run({"submit", (m_dir / "clip.mp4").string(), "-o", (m_dir / "bad.mkv").string(),
                  "--video-codec", "mpeg4", "--scale", "16384:16"});
    ASSERT_EQ(r.code, 1) << r.err << "\nengine:\n" << m_engine->err();
    EXPECT_NE(r.err.find("failed"), std::string::npos) << r.err;
    EXPECT_FALSE(stdfs::exists(m_dir / "bad.mkv"));
}

// True while some process runs ffmpeg with an argument under `dir` (the engine's work dir).
bool ffmpeg_running_under(const stdfs::path& dir) {
    std::error_code ec;
    for (const auto& entry : stdfs::directory_iterator("/proc", ec)) {
        std::string cmdline = test::read_file(entry.path() / "cmdline");
        if (cmdline.empty()) continue;
        std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
        if (cmdline.rfind("ffmpeg", 0) == 0 || cmdline.find("/ffmpeg ") != std::string::npos)
            if (cmdline.find(dir.string()) != std::string::npos) return true;
    }
    return false;
}

TEST_F(CliEngineTest, CtrlCWhileTranscodingCancelsTheJobAndStopsFfmpeg) {
    start_engine();
    // Long enough to still be transcoding when the interrupt comes.
    ASSERT_TRUE(test::make_test_clip(m_dir / "long.mp4", 30.0, 640, 360));
    auto child = start({"submit", (m_dir / "long.mp4").string(), "-o", (m_dir / "long.out.mkv").string(),
                        "--video-codec", "libx265", "--crf", "30"});
    std::string id;
    ASSERT_TRUE(test::wait_until(
        [&] {
            auto page = must(m_server->store().list_jobs({}));
            if (page.items.empty()) return false;
            id = page.items.front().id;
            return m_server->store().get_job(id)->state == JobState::Running;
        },
        std::chrono::seconds(60)))
        << child->err() << "\nengine:\n"
        << m_engine->err();
    ASSERT_TRUE(
        test::wait_until([&] { return ffmpeg_running_under(m_dir / "engine"); }, std::chrono::seconds(10)));
    child->signal(SIGINT);
    EXPECT_EQ(child->wait(std::chrono::seconds(20)), 130) << child->err();
    auto interrupted = std::chrono::steady_clock::now();
    EXPECT_TRUE(
        test::wait_until([&] { return !ffmpeg_running_under(m_dir / "engine"); }, std::chrono::seconds(5)));
    EXPECT_LT(std::chrono::steady_clock::now() - interrupted, std::chrono::seconds(3));
    EXPECT_TRUE(
        test::wait_until([&] { return state_of(id) == JobState::Canceled; }, std::chrono::seconds(10)))
        << to_string(state_of(id));
    EXPECT_FALSE(stdfs::exists(m_dir / "long.out.mkv"));
}

}  // namespace
}  // namespace distconv
