#pragma once
// The CLI's one client of the dispatch server's /api/v1: every path the CLI uses is here, once.
// Answers are the server's JSON (commands print it as is with --json) or, for transfers, what moved.

#include "common/error.hpp"
#include "common/http/client.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

namespace distconv::client {

class DispatchApi {
  public:
    explicit DispatchApi(http::Client& http) : m_http(http) {}

    // POST /jobs with a JSON job (a declared `source`, or a `source_url`). With an idempotency key the
    // POST is retried on a dropped connection: the key makes a repeat the same job.
    Result<nlohmann::json> submit(const nlohmann::json& job, const std::string& idempotency_key = "");
    // HEAD /jobs/{id}/source: the bytes of the source the server holds (Upload-Offset).
    Result<std::uint64_t> source_offset(const std::string& job_id);
    // PUT /jobs/{id}/source from `offset` (Content-Range when > 0) to the end of `file`.
    Result<http::Response> put_source(const std::string& job_id, const std::filesystem::path& file,
                                      std::uint64_t offset, std::uint64_t size, http::ProgressFn progress);
    Result<nlohmann::json> job(const std::string& job_id);                            // GET /jobs/{id}
    Result<nlohmann::json> status(const std::string& job_id);                         // GET /jobs/{id}/status
    Result<nlohmann::json> list_jobs(int limit, const std::string& state, bool all);  // GET /jobs
    Result<nlohmann::json> cancel(const std::string& job_id);                         // DELETE /jobs/{id}
    Result<nlohmann::json> retry(const std::string& job_id);                          // POST /jobs/{id}/retry
    std::string events_url(const std::string& job_id) const;  // GET /jobs/{id}/events (SSE)
    // GET /jobs/{id}/result into `dest` (resuming dest.part).
    Result<http::DownloadResult> download_result(const std::string& job_id, const std::filesystem::path& dest,
                                                 const http::DownloadOptions& options);
    Result<nlohmann::json> engines();                                                     // GET /engines
    Result<nlohmann::json> pools();                                                       // GET /pools
    Result<nlohmann::json> presets();                                                     // GET /presets
    Result<nlohmann::json> create_key(const std::string& name, const std::string& role);  // POST /keys
    Result<nlohmann::json> list_keys(bool all);                                           // GET /keys
    Result<nlohmann::json> revoke_key(const std::string& id_or_name);                     // DELETE /keys/{id}

    http::Client& http() { return m_http; }

  private:
    http::Client& m_http;
};

}  // namespace distconv::client
