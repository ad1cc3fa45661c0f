#include "tests/integration/fault/fault_proxy.hpp"

#include <cstring>
#include <string_view>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace distconv::fault {

namespace {

bool send_all(int fd, const char* data, size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        data += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

// A cut that looks like a dropped network: RST instead of an orderly FIN.
void hard_close(int fd) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    ::close(fd);
}

bool starts_request(std::string_view s) {
    for (std::string_view m : {"GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "PATCH "})
        if (s.substr(0, m.size()) == m) return true;
    return false;
}

}  // namespace

FaultProxy::FaultProxy() {
    // Close-on-exec: daemons the harness starts must not hold copies of the proxy's sockets (a copy
    // keeps a connection open after the proxy closed it, and its peer waits for an answer for ever).
    m_listen = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(m_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(m_listen, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(m_listen, 128);
    socklen_t len = sizeof(addr);
    getsockname(m_listen, reinterpret_cast<sockaddr*>(&addr), &len);
    m_port = ntohs(addr.sin_port);
    m_acceptor = std::thread([this] { accept_loop(); });
}

FaultProxy::~FaultProxy() {
    m_stop = true;
    if (m_acceptor.joinable()) m_acceptor.join();
    ::close(m_listen);
    std::vector<Conn> threads;
    {
        std::lock_guard lock(m_mutex);
        threads.swap(m_threads);
    }
    for (auto& t : threads) t.thread.join();
}

void FaultProxy::arm(const std::string& needle, Action action, std::function<void()> hook) {
    std::lock_guard lock(m_mutex);
    m_armed = true;
    m_needle = needle;
    m_action = action;
    m_hook = std::move(hook);
    m_fired = false;
}

void FaultProxy::disarm() {
    std::lock_guard lock(m_mutex);
    m_armed = false;
    m_hook = {};
}

bool FaultProxy::take_trigger(const char* data, size_t n, Action* action, std::function<void()>* hook) {
    std::string_view s(data, n);
    if (!starts_request(s)) return false;
    auto eol = s.find("\r\n");
    auto line = s.substr(0, eol == std::string_view::npos ? s.size() : eol);
    std::lock_guard lock(m_mutex);
    if (!m_armed || line.find(m_needle) == std::string_view::npos) return false;
    m_armed = false;
    *action = m_action;
    *hook = std::move(m_hook);
    m_hook = {};
    return true;
}

void FaultProxy::accept_loop() {
    while (!m_stop) {
        pollfd p{m_listen, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        int client = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        std::lock_guard lock(m_mutex);
        // Join the connections that ended, so a long run does not pile up threads.
        for (auto it = m_threads.begin(); it != m_threads.end();) {
            if (it->done->load()) {
                it->thread.join();
                it = m_threads.erase(it);
            } else {
                ++it;
            }
        }
        auto done = std::make_shared<std::atomic<bool>>(false);
        m_threads.push_back({std::thread([this, client, done] {
                                 serve(client);
                                 *done = true;
                             }),
                             done});
    }
}

void FaultProxy::serve(int client) {
    int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(m_upstream.load()));
    if (::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        ::close(upstream);
        hard_close(client);
        return;
    }
    int one = 1;
    setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    bool cut_next_upload = false;  // the next client chunk is an upload body to cut
    bool cut_next_answer = false;  // the next server chunk is an answer to cut
    std::vector<char> buf(64 * 1024);
    bool done = false;
    while (!done && !m_stop) {
        pollfd p[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
        if (::poll(p, 2, 100) <= 0) continue;
        for (int i = 0; i < 2 && !done; ++i) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int from = i == 0 ? client : upstream;
            int to = i == 0 ? upstream : client;
            ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
            if (n <= 0) {
                done = true;
                break;
            }
            size_t len = static_cast<size_t>(n);
            if (i == 0) {
                if (cut_next_upload) {
                    send_all(to, buf.data(), len / 2);
                    done = true;
                    break;
                }
                Action action;
                std::function<void()> hook;
                if (take_trigger(buf.data(), len, &action, &hook)) {
                    m_fired = true;
                    if (action == Action::CutUpload) {
                        std::string_view s(buf.data(), len);
                        auto end = s.find("\r\n\r\n");
                        size_t body = end == std::string_view::npos ? 0 : len - (end + 4);
                        if (body > 64) {
                            send_all(to, buf.data(), end + 4 + body / 2);
                            done = true;
                            break;
                        }
                        cut_next_upload = true;
                    } else if (action == Action::CutDownload) {
                        cut_next_answer = true;
                    }
                    if (!send_all(to, buf.data(), len)) done = true;
                    if (action == Action::Hook && hook) hook();
                    continue;
                }
            } else if (cut_next_answer) {
                send_all(to, buf.data(), len / 2);
                done = true;
                break;
            }
            if (!send_all(to, buf.data(), len)) done = true;
        }
    }
    hard_close(client);
    hard_close(upstream);
}

}  // namespace distconv::fault
