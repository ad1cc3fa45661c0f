#pragma once
// The real distconv-dispatch for the docs tests: a child process on 127.0.0.1 port 0 with its own data
// dir, optionally serving HTTPS, with a user, an admin and an engine key, and the states the examples
// need made through its public API only (a fake engine registers, claims, uploads and completes or
// fails over HTTP, so no ffmpeg runs). Also: a process run with a deadline that kills its whole group.

#include "common/http/client.hpp"
#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace distconv::docs {

// How a bounded run ended. timed_out: it was still running at the deadline and its group was killed.
struct Finished {
    int exit_code = -1;
    bool timed_out = false;
    std::chrono::milliseconds took{0};
};

// Runs argv (no shell) in its own process group in `cwd` with exactly `env`, stdin from /dev/null,
// stdout and stderr to the given files.
Finished run_bounded(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                     const std::filesystem::path& cwd, const std::filesystem::path& out,
                     const std::filesystem::path& err, std::chrono::milliseconds deadline);

// The absolute path of a program found on $PATH ("" when there is none).
std::string find_program(const std::string& name);

class LiveDispatch {
  public:
    // Data dir and log under `dir`/`name`; HTTPS with certs/server.{crt,key} when `certs` is given
    // (clients then trust certs/ca.crt).
    LiveDispatch(const std::filesystem::path& dir, const std::string& name,
                 const std::filesystem::path& certs = {});
    ~LiveDispatch();
    LiveDispatch(const LiveDispatch&) = delete;
    LiveDispatch& operator=(const LiveDispatch&) = delete;

    int port() const { return m_port; }
    bool tls() const { return !m_certs.empty(); }
    std::string log() const { return m_daemon ? m_daemon->log() : ""; }
    const std::string& user_key() const { return m_user_key; }
    const std::string& admin_key() const { return m_admin_key; }

    // Every helper below fails the test (ADD_FAILURE) and throws std::runtime_error when the server
    // does not answer as expected, so a broken fixture never passes for a broken example.
    nlohmann::json job(const std::string& id);
    std::string state(const std::string& id);
    // Multipart submit of `media` (a file on disk): the queued job's id.
    std::string submit(const std::filesystem::path& media);
    // JSON submit with a declared source of `size` bytes: the awaiting_upload job's id.
    std::string declare(uint64_t size, const std::string& sha256, const std::string& filename);
    // PUT bytes [offset, offset + bytes.size()) of a `total`-byte source.
    void upload_source(const std::string& id, const std::string& bytes, uint64_t offset, uint64_t total);
    void cancel(const std::string& id);
    // Submits `media` and has the fake engine run it: completed with `output` as its result...
    std::string completed_job(const std::filesystem::path& media, const std::string& output);
    // ...or failed (permanent) with `stderr_tail` from ffmpeg.
    std::string failed_job(const std::filesystem::path& media, const std::string& stderr_tail);

    // The fake engine (registered on first use) and its EngineInfo from GET /engines.
    std::string engine_id();
    nlohmann::json engine_info(const std::string& id);
    // One heartbeat of the fake engine; its answer (cancel, drain, rerun_benchmark).
    nlohmann::json heartbeat();
    void set_drain(const std::string& engine, bool drain);

    // POST /keys (admin) for a user key: {key_id, key}.
    std::pair<std::string, std::string> create_user_key(const std::string& name);
    // Whether GET /jobs answers 200 with this key.
    bool key_works(const std::string& key);

  private:
    struct Assignment {
        std::string id;
        int64_t fencing_token = 0;
    };
    // Cancels every other queued job, then claims until the fake engine holds `job`.
    Assignment claim(const std::string& job);
    http::ClientOptions options(const std::string& key) const;

    std::filesystem::path m_dir;
    std::filesystem::path m_certs;
    std::string m_user_key, m_admin_key, m_engine_key;
    std::unique_ptr<e2e::Daemon> m_daemon;
    int m_port = 0;
    std::unique_ptr<http::Client> m_user, m_admin, m_engine;
    std::string m_engine_id;
};

}  // namespace distconv::docs
