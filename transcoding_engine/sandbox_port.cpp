#include "transcoding_engine/sandbox_port.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace distconv::engine {
namespace {

int loopback_socket(int port, bool listening) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = listening ? ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr)
                       : ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc == 0 && listening) rc = ::listen(fd, 16);
    if (rc != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// A one-byte message with room for one descriptor (SCM_RIGHTS), for sending or receiving it.
struct FdMessage {
    char byte = 'L';
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    FdMessage() {
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
    }
    FdMessage(const FdMessage&) = delete;
    FdMessage& operator=(const FdMessage&) = delete;
};

int fail(const char* what) {
    std::fprintf(stderr, "distconv-engine sandbox-listen: %s: %s\n", what, std::strerror(errno));
    return 126;
}

}  // namespace

int sandbox_listen_main(int argc, char** argv) {
    // argv: program sandbox-listen PORT -- command...
    if (argc < 5 || std::string_view(argv[3]) != "--") {
        std::fprintf(stderr, "usage: distconv-engine sandbox-listen PORT -- COMMAND...\n");
        return 126;
    }
    int port = 0;
    std::string_view p = argv[2];
    if (auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
        ec != std::errc() || end != p.data() + p.size() || port <= 0 || port > 65535) {
        std::fprintf(stderr, "distconv-engine sandbox-listen: bad port '%s'\n", argv[2]);
        return 126;
    }
    int listener = loopback_socket(port, true);
    if (listener < 0) return fail("listen on 127.0.0.1");
    // Hand the listening socket to the engine; keep no copy.
    FdMessage m;
    cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &listener, sizeof(int));
    if (::sendmsg(k_sandbox_port_fd, &m.msg, MSG_NOSIGNAL) != 1) return fail("hand the socket to the engine");
    ::close(listener);
    ::close(k_sandbox_port_fd);
    ::execvp(argv[4], argv + 4);
    return fail(argv[4]);
}

SandboxPort::SandboxPort(int relay_port) : m_relay_port(relay_port) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0) {
        m_parent = pair[0];
        m_child = pair[1];
    }
}

SandboxPort::~SandboxPort() {
    stop();
    if (m_parent >= 0) ::close(m_parent);
    if (m_child >= 0) ::close(m_child);
}

void SandboxPort::start() {
    if (m_child >= 0) {
        ::close(m_child);  // the child has its copy; EOF on m_parent now means it is gone
        m_child = -1;
    }
    if (m_parent < 0 || m_thread.joinable()) return;
    m_thread = std::thread([this] { serve(); });
}

void SandboxPort::stop() {
    m_stop = true;
    if (m_thread.joinable()) m_thread.join();
    std::vector<std::thread> pumps;
    {
        std::lock_guard lock(m_mutex);
        pumps.swap(m_pumps);
    }
    for (auto& t : pumps) t.join();
}

void SandboxPort::serve() {
    // 1. The listening socket, once the helper in the sandbox has made it.
    int listener = -1;
    while (!m_stop && listener < 0) {
        pollfd pf{m_parent, POLLIN, 0};
        int r = ::poll(&pf, 1, 100);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        FdMessage m;
        ssize_t got = ::recvmsg(m_parent, &m.msg, MSG_CMSG_CLOEXEC);
        if (got <= 0) return;  // the child ended without handing a socket over
        for (cmsghdr* c = CMSG_FIRSTHDR(&m.msg); c; c = CMSG_NXTHDR(&m.msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                std::memcpy(&listener, CMSG_DATA(c), sizeof(int));
        if (listener < 0) return;
    }
    // 2. Each of ffmpeg's connections, pumped to the relay.
    while (!m_stop) {
        pollfd pf{listener, POLLIN, 0};
        int r = ::poll(&pf, 1, 100);
        if (r <= 0) continue;
        int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0) continue;
        int upstream = loopback_socket(m_relay_port, false);
        if (upstream < 0) {
            spdlog::warn("sandbox port: cannot reach the relay on 127.0.0.1:{}: {}", m_relay_port,
                         std::strerror(errno));
            ::close(conn);
            continue;
        }
        ++m_connections;
        std::lock_guard lock(m_mutex);
        m_pumps.emplace_back([this, conn, upstream] { pump(conn, upstream); });
    }
    if (listener >= 0) ::close(listener);
}

void SandboxPort::pump(int a, int b) {
    char buf[64 << 10];
    bool a_open = true, b_open = true;  // whether each side may still send
    while (!m_stop && (a_open || b_open)) {
        pollfd pf[2] = {{a, static_cast<short>(a_open ? POLLIN : 0), 0},
                        {b, static_cast<short>(b_open ? POLLIN : 0), 0}};
        int r = ::poll(pf, 2, 100);
        if (r < 0 && errno != EINTR) break;
        if (r <= 0) continue;
        bool failed = false;
        for (int i = 0; i < 2 && !failed; ++i) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int from = i == 0 ? a : b, to = i == 0 ? b : a;
            ssize_t n = ::recv(from, buf, sizeof buf, 0);
            if (n <= 0) {
                // That side is done sending: pass the end on, keep the other direction.
                ::shutdown(to, SHUT_WR);
                (i == 0 ? a_open : b_open) = false;
                if (n < 0) failed = true;
                continue;
            }
            for (ssize_t off = 0; off < n;) {
                ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) {
                    failed = true;
                    break;
                }
                off += w;
            }
        }
        if (failed) break;
    }
    ::close(a);
    ::close(b);
}

}  // namespace distconv::engine
