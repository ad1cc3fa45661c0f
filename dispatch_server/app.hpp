#pragma once
// DispatchServer wires the store, pools, services and HTTP API together and runs the maintenance
// loop (queue TTL, retention, orphan sweep). main.cpp and the integration tests both use it.

#include "common/error.hpp"
#include "common/time.hpp"
#include "dispatch_server/config.hpp"

#include <memory>

namespace distconv::dispatch {

class Store;
class JobService;
class AuthService;
class EngineService;
class StoragePools;

class DispatchServer {
  public:
    // Opens the database (running migrations), prepares the pools and binds the listener.
    static Result<std::unique_ptr<DispatchServer>> create(const DispatchConfig& config,
                                                          std::shared_ptr<const Clock> clock = nullptr);
    ~DispatchServer();
    DispatchServer(const DispatchServer&) = delete;
    DispatchServer& operator=(const DispatchServer&) = delete;

    int port() const;
    // Serves until stop() (from another thread or a signal handler's thread). Returns when stopped.
    void run();
    // Stops accepting requests, lets in-flight ones finish, stops maintenance. Safe to call twice.
    void stop();

    Store& store();
    JobService& jobs();
    StoragePools& pools();
    AuthService& auth();
    EngineService& engines();

  private:
    struct Impl;
    explicit DispatchServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace distconv::dispatch
