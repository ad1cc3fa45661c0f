#pragma once
// A TCP proxy on 127.0.0.1 between the engines/clients and the dispatch server. It forwards bytes
// untouched until a trigger is armed; the next request whose first line contains the trigger's
// needle then either has its connection cut midway (half of an upload's body or half of an
// answer goes through, then both sides are closed) or runs a hook (e.g. SIGKILL the server) right
// after the request's first bytes were forwarded. The upstream port can change (server restarts).

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace distconv::fault {

class FaultProxy {
  public:
    enum class Action { CutUpload, CutDownload, Hook };

    FaultProxy();
    ~FaultProxy();
    FaultProxy(const FaultProxy&) = delete;
    FaultProxy& operator=(const FaultProxy&) = delete;

    int port() const { return m_port; }
    void set_upstream(int port) { m_upstream.store(port); }

    // One trigger at a time; a new arm replaces the previous one.
    void arm(const std::string& needle, Action action, std::function<void()> hook = {});
    void disarm();
    // True once the armed trigger fired (reset by arm()).
    bool fired() const { return m_fired.load(); }

  private:
    void accept_loop();
    void serve(int client);
    // When the armed trigger matches this request chunk, takes it (returns true) and fills the action.
    bool take_trigger(const char* data, size_t n, Action* action, std::function<void()>* hook);

    int m_listen = -1;
    int m_port = 0;
    std::atomic<int> m_upstream{0};
    std::atomic<bool> m_stop{false};
    std::thread m_acceptor;
    std::mutex m_mutex;
    struct Conn {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };
    std::vector<Conn> m_threads;
    bool m_armed = false;
    std::string m_needle;
    Action m_action = Action::Hook;
    std::function<void()> m_hook;
    std::atomic<bool> m_fired{false};
};

}  // namespace distconv::fault
