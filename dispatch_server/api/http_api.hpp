#pragma once
// The REST API v1 over cpp-httplib. The only part of the server that sees HTTP: each handler decodes
// the request, calls a service, and encodes the answer or the one error envelope. httplib.h stays in
// http_api.cpp.

#include "common/error.hpp"

#include <memory>
#include <string>

namespace distconv::dispatch {

class AuthService;
class JobService;
class ChangeNotifier;
class EngineService;
class Metrics;
class SessionService;
struct DispatchConfig;

struct ApiServices {
    AuthService& auth;
    JobService& jobs;
    ChangeNotifier& notifier;
    const DispatchConfig& config;
    EngineService* engines = nullptr;    // the engine protocol's routes, when set
    Metrics* metrics = nullptr;          // request counters and /metrics, when set
    SessionService* sessions = nullptr;  // the web dashboard and its sign-in sessions, when set
};

class HttpApi {
  public:
    explicit HttpApi(ApiServices services);
    ~HttpApi();
    HttpApi(const HttpApi&) = delete;
    HttpApi& operator=(const HttpApi&) = delete;

    // Binds host:port (port 0 picks a free one) and returns the bound port. With config.tls_cert and
    // tls_key set the server speaks HTTPS only; a certificate or key that cannot be loaded is an error here.
    Result<int> bind(const std::string& host, int port);
    // Serves until stop(); returns when the listener has closed.
    void serve();
    // Stops accepting, wakes long-polls and event streams, lets in-flight requests finish.
    void stop();
    bool running() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace distconv::dispatch
