#pragma once
// What every `distconv` command shares: the global options, the session (the HTTP client, how to
// talk to the user, how a command fails), Ctrl-C, a redrawn status line, and the transfers: a
// resumable submit, following a job's status, a resumable download checked against its SHA-256.

#include "common/error.hpp"
#include "common/http/client.hpp"
#include "protocol/protocol.hpp"
#include "submission_client/core.hpp"
#include "submission_client/dispatch_api.hpp"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace distconv::client {

using Clock = std::chrono::steady_clock;

// Ctrl-C (and, for long-running commands, SIGTERM) sets a flag the commands poll: they stop cleanly,
// cancel or leave their state to resume.
void install_interrupt_handler(bool also_sigterm = false);
bool interrupted();
void clear_interrupted();
// Sleeps up to `d`, waking early on Ctrl-C.
void nap(std::chrono::milliseconds d);
double seconds_since(Clock::time_point t);

struct GlobalOptions {
    std::string server = "http://127.0.0.1:8080";
    std::string key;
    bool json = false;
    std::string ca_cert;
    bool allow_insecure = false;
    std::uint64_t limit_upload = 0;    // bytes per second; 0 = as fast as the link goes
    std::uint64_t limit_download = 0;  // bytes per second; 0 = as fast as the link goes
};

// Exit early with a code after printing what went wrong.
struct Failure {
    int code;
};

// ------------------------------------------------------------------------------------------------
// A single status line on stderr, redrawn in place on a terminal.

class StatusLine {
  public:
    explicit StatusLine(bool enabled) : m_enabled(enabled) {}
    ~StatusLine() { finish(); }
    void update(const std::string& text, bool force = false) {
        if (!m_enabled) return;
        auto now = Clock::now();
        if (!force && m_drawn && now - m_last < std::chrono::milliseconds(100)) return;
        m_last = now;
        m_drawn = true;
        std::cerr << "\r" << text << "\x1b[K" << std::flush;
    }
    void finish() {
        if (m_enabled && m_drawn) std::cerr << "\n" << std::flush;
        m_drawn = false;
    }

  private:
    bool m_enabled;
    bool m_drawn = false;
    Clock::time_point m_last{};
};

// ------------------------------------------------------------------------------------------------
// The session: the HTTP client and how to talk to the user.

class Session {
  public:
    explicit Session(const GlobalOptions& g) : m_g(g) {
        http::ClientOptions o;
        o.base_url = api_base_url(g.server);
        o.api_key = g.key;
        o.ca_file = g.ca_cert;
        o.retry.max_attempts = 3;
        o.max_send_bytes_per_second = g.limit_upload;
        m_client = std::make_unique<http::Client>(o);
        m_api = std::make_unique<DispatchApi>(*m_client);
        m_tty_err = ::isatty(STDERR_FILENO) == 1;
        m_tty_out = ::isatty(STDOUT_FILENO) == 1;
    }

    const GlobalOptions& g() const { return m_g; }
    http::Client& http() { return *m_client; }
    DispatchApi& api() { return *m_api; }
    bool bars() const { return m_tty_err && m_tty_out; }  // no bars when either stream is piped
    bool json_mode() const { return m_g.json; }

    // The answer, or throws Failure after printing the server's error.
    template <typename T>
    T must(Result<T> r) {
        if (!r) fail(r.error());
        return std::move(r).value();
    }

    [[noreturn]] void fail(const Error& e) const {
        std::cerr << error_line(e) << "\n";
        if (e.code == ErrorCode::Unauthenticated && m_g.key.empty())
            std::cerr << "distconv: hint: pass --key or set DISTCONV_API_KEY\n";
        throw Failure{exit_code_for(e)};
    }

    void print_json(const nlohmann::json& j) const { std::cout << j.dump(2) << "\n"; }

  private:
    GlobalOptions m_g;
    std::unique_ptr<http::Client> m_client;
    std::unique_ptr<DispatchApi> m_api;
    bool m_tty_err = false;
    bool m_tty_out = false;
};

template <typename T>
T decode(Session& s, Result<T> r) {
    if (!r) {
        Error e = std::move(r).error();
        e.message = "unexpected answer from the server: " + e.message;
        e.code = ErrorCode::Internal;
        s.fail(e);
    }
    return std::move(r).value();
}

Result<protocol::JobStatus> fetch_status(Session& s, const std::string& id);

struct Downloaded {
    uint64_t size = 0;
    uint64_t resumed_from = 0;
    std::string sha256;
};

// Downloads a completed job's result to `out` (resuming out.part) and checks its SHA-256.
Result<Downloaded> download_result(Session& s, const std::string& job_id, const std::filesystem::path& out,
                                   const std::string& label);

// One file of a submit: where it comes from and goes, and what became of it.
struct Planned {
    std::filesystem::path input;
    std::filesystem::path output;
    std::string container;
    std::string sha256;  // the input's, when already known (else upload_one hashes it)
    std::string job_id;
    std::string state;
    std::string error;  // when this file failed
    int exit = 0;
};

// Submits p.input resumably: a JSON submit declaring the source's size and SHA-256, then
// PUT /jobs/{id}/source from the offset the server holds (HEAD), again from the new offset after a
// dropped connection. With an idempotency key a rerun (after a crash) gets the same job back and
// continues its upload where the server stopped; *resumed_from says where this one started.
Result<protocol::JobResource> upload_one(Session& s, const Planned& p, const TranscodeFlags& flags,
                                         const std::string& idempotency_key = "",
                                         uint64_t* resumed_from = nullptr);

}  // namespace distconv::client
