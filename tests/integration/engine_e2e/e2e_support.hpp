#pragma once
// Helpers for the end-to-end tests: the real distconv-dispatch and distconv-engine binaries as
// child processes on 127.0.0.1, jobs submitted over HTTP, outputs checked with the real ffprobe.

#include "common/http/client.hpp"
#include "tests/support/test_support.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace distconv::e2e {

std::string dispatch_binary();
std::string engine_binary();

// A child process with stdout+stderr appended to a log file; SIGKILLed and reaped on destruction.
class Daemon {
  public:
    Daemon(const std::vector<std::string>& argv, const std::filesystem::path& log);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    pid_t pid() const { return m_pid; }
    bool running() const { return m_pid > 0; }
    const std::filesystem::path& log_path() const { return m_log; }
    std::string log() const { return test::read_file(m_log); }
    void signal(int sig) const;
    // Sends `sig` and waits for the exit; returns the exit code, or 128 + the signal.
    int signal_and_wait(int sig);
    int wait_exit();

  private:
    pid_t m_pid = -1;
    std::filesystem::path m_log;
};

// Timings short enough for tests; a test overrides what it needs.
struct DispatchTimings {
    std::string lease_timeout = "5s";
    std::string heartbeat_interval = "500ms";
    std::string engine_offline_after = "10s";
    std::string retry_backoff = "200ms";
    std::string retry_backoff_max = "500ms";
    std::vector<std::string> extra_args;  // appended to distconv-dispatch serve's command line as given
};

struct EngineOptions {
    int slots = 1;
    std::string heartbeat_interval = "500ms";
    std::string claim_wait = "2s";
    std::optional<std::string> reserve_disk;
    std::vector<std::string> tags;
    std::vector<std::string> extra_args;  // appended to the command line as given (e.g. {"--sandbox", "off"})
};

// One dispatch server (port 0, its own data dir under the test's TempDir) and the engines a test starts.
class Cluster {
  public:
    explicit Cluster(DispatchTimings timings = {});
    ~Cluster();

    const test::TempDir& dir() const { return m_dir; }
    const std::string& url() const { return m_url; }
    // The keys the cluster created (a test that checks where a key must never appear needs them).
    const std::string& user_key() const { return m_user_key; }
    const std::string& engine_key() const { return m_engine_key; }
    Daemon& dispatch() { return *m_dispatch; }
    // Stops the dispatch server with `sig` and starts it again on the same port and data dir.
    void restart_dispatch(int sig);

    // Starts distconv-engine with its work dir at dir()/name (the same name reuses the work dir).
    std::unique_ptr<Daemon> start_engine(const std::string& name, const EngineOptions& options = {});
    std::filesystem::path work_dir(const std::string& name) const { return m_dir / name; }

    // Multipart POST /api/v1/jobs with the file and the job JSON; returns the job id (empty on error,
    // with the answer in *answer when given).
    std::string submit(const std::filesystem::path& source, const nlohmann::json& job,
                       std::string* answer = nullptr);
    nlohmann::json job(const std::string& id);
    nlohmann::json status(const std::string& id);
    nlohmann::json engines();
    http::Response cancel(const std::string& id);
    // POST with the engine key, as an engine would (e.g. a late complete with a stale fencing token).
    http::Response engine_post(const std::string& path, const nlohmann::json& body);
    bool download_result(const std::string& id, const std::filesystem::path& dest);

    // Polls the job until `pred` holds (true) or `timeout` passes (false); *last gets the last resource.
    bool wait_job(const std::string& id, const std::function<bool(const nlohmann::json&)>& pred,
                  std::chrono::milliseconds timeout, nlohmann::json* last = nullptr);
    bool wait_state(const std::string& id, const std::string& state, std::chrono::milliseconds timeout,
                    nlohmann::json* last = nullptr);

    // The id an engine registered under, read from GET /engines by its work-dir name (hostname is set to it).
    std::string engine_id(const std::string& name);

  private:
    test::TempDir m_dir;
    std::string m_url;
    std::string m_user_key;
    std::string m_engine_key;
    std::unique_ptr<Daemon> m_dispatch;
    std::vector<std::string> m_dispatch_argv;
    int m_restarts = 0;
    std::unique_ptr<http::Client> m_client;
    std::unique_ptr<http::Client> m_engine_client;
};

// Pids of live ffmpeg processes whose command line mentions `needle` (e.g. an engine's work dir).
std::vector<pid_t> ffmpeg_pids_mentioning(const std::string& needle);
// Pids of the direct children of `pid` (all its threads).
std::vector<pid_t> children_of(pid_t pid);

struct Probe {
    std::vector<std::string> codecs;  // stream codec names in order
    std::optional<double> duration;   // format duration in seconds
    std::string format;               // format_name
};
std::optional<Probe> ffprobe(const std::filesystem::path& file);

// POST /jobs with the job JSON and the source file in one multipart body.
http::Request multipart_submit(const std::filesystem::path& source, const nlohmann::json& job);
// Duration of the first video stream computed from its packets (works for every container).
std::optional<double> video_duration(const std::filesystem::path& file);
// True when the file's top-level "moov" box comes before its "mdat" box.
bool moov_before_mdat(const std::filesystem::path& file);

}  // namespace distconv::e2e
