#pragma once
// The engine's side of the engine protocol (protocol/openapi.yaml), as an interface so the
// assignment logic can be tested against a fake server.

#include "common/error.hpp"
#include "common/http/client.hpp"
#include "protocol/engines.hpp"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace distconv::engine {

class EngineApi {
  public:
    virtual ~EngineApi() = default;
    virtual Result<protocol::EngineRegistrationReply> register_engine(
        const protocol::EngineRegistration& r) = 0;
    virtual Result<protocol::HeartbeatReply> heartbeat(const std::string& engine_id,
                                                       const protocol::Heartbeat& hb) = 0;
    // nullopt: no work within the wait (204). `abort` is polled while waiting; true ends the wait.
    virtual Result<std::optional<protocol::Assignment>> claim(const std::string& engine_id,
                                                              const protocol::ClaimRequest& request,
                                                              const std::function<bool()>& abort) = 0;
    virtual Result<protocol::ProgressReply> progress(const std::string& assignment_id,
                                                     const protocol::ProgressReport& report) = 0;
    // Downloads the source to `dest` with resume (a "<dest>.part" is continued).
    virtual Status download_source(const protocol::Assignment& a, const std::filesystem::path& dest,
                                   const http::ProgressFn& progress) = 0;
    // Resumable upload of a finished file: asks the stored offset (HEAD), sends the rest.
    virtual Status upload_output_file(const protocol::Assignment& a, const std::filesystem::path& file,
                                      const http::ProgressFn& progress) = 0;
    // One chunked upload from byte 0 of what `reader` produces (stream mode).
    virtual Status upload_output_stream(const protocol::Assignment& a, http::BodyReader reader) = 0;
    virtual Result<protocol::AssignmentAck> complete(const std::string& assignment_id,
                                                     const protocol::CompleteRequest& request) = 0;
    virtual Result<protocol::AssignmentAck> fail(const std::string& assignment_id,
                                                 const protocol::FailRequest& request) = 0;
    // [offset, offset + length) of the source, in memory (the stream-mode relay's fetches).
    virtual Result<std::string> read_source_range(const protocol::Assignment& a, uint64_t offset,
                                                  uint64_t length) = 0;
    // The absolute URL of the assignment's source on the configured server.
    virtual std::string source_url(const protocol::Assignment& a) const = 0;
};

// An id as one URL path segment (percent-encoded), so a malformed id can still be reported without
// naming another path.
std::string path_segment(const std::string& id);

struct HttpEngineApiOptions {
    std::string server;  // "http://127.0.0.1:8080" (no /api/v1)
    std::string api_key;
    std::string ca_file;
};

class HttpEngineApi final : public EngineApi {
  public:
    explicit HttpEngineApi(const HttpEngineApiOptions& options);
    Result<protocol::EngineRegistrationReply> register_engine(const protocol::EngineRegistration& r) override;
    Result<protocol::HeartbeatReply> heartbeat(const std::string& engine_id,
                                               const protocol::Heartbeat& hb) override;
    Result<std::optional<protocol::Assignment>> claim(const std::string& engine_id,
                                                      const protocol::ClaimRequest& request,
                                                      const std::function<bool()>& abort) override;
    Result<protocol::ProgressReply> progress(const std::string& assignment_id,
                                             const protocol::ProgressReport& report) override;
    Status download_source(const protocol::Assignment& a, const std::filesystem::path& dest,
                           const http::ProgressFn& progress) override;
    Status upload_output_file(const protocol::Assignment& a, const std::filesystem::path& file,
                              const http::ProgressFn& progress) override;
    Status upload_output_stream(const protocol::Assignment& a, http::BodyReader reader) override;
    Result<protocol::AssignmentAck> complete(const std::string& assignment_id,
                                             const protocol::CompleteRequest& request) override;
    Result<protocol::AssignmentAck> fail(const std::string& assignment_id,
                                         const protocol::FailRequest& request) override;
    Result<std::string> read_source_range(const protocol::Assignment& a, uint64_t offset,
                                          uint64_t length) override;
    std::string source_url(const protocol::Assignment& a) const override;

  private:
    Result<nlohmann::json> post(const std::string& path, const nlohmann::json& body, bool retry);
    std::string m_server;
    std::unique_ptr<http::Client> m_client;
};

}  // namespace distconv::engine
