#include "dispatch_server/api/connection_gate.hpp"

#include "common/error.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

namespace distconv::dispatch {

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t k_read_chunk = 16 * 1024;  // read-ahead for httplib's byte-at-a-time header reader
constexpr size_t k_peek = 64 * 1024;        // a head this large without its end goes to httplib (431)
constexpr size_t k_small_body =
    16 * 1024;  // head + body up to this size arrives whole before a worker takes it

// One client connection. Owned by the gate while it waits between requests, by a worker while served.
struct Conn {
    int fd = -1;
    std::string ahead;  // bytes read from the socket and not yet parsed (a pipelined next request)
    size_t ahead_pos = 0;
    bool began = false;  // a byte of the next request has arrived: the header deadline runs
    Clock::time_point deadline{};
    size_t buffered() const { return ahead.size() - ahead_pos; }
};

// What the request a worker is serving asked of its connection (connection:: functions).
struct RequestHooks {
    Conn* conn = nullptr;
    bool close = false;
    std::vector<std::function<void()>> unanswered;
};
thread_local RequestHooks t_hooks;

int poll_ms(Clock::duration d) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    return static_cast<int>(std::clamp<int64_t>(ms, 0, 24 * 3600 * 1000));
}

bool wait_for(int fd, short events, Clock::duration budget) {
    auto until = Clock::now() + budget;
    while (true) {
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, poll_ms(until - Clock::now()));
        if (r > 0) return (p.revents & (events | POLLHUP | POLLERR)) != 0;
        if (r == 0) return false;
        if (errno != EINTR) return false;
    }
}

// The peer has closed or reset its side: readable with nothing to read, or an error.
bool peer_closed(int fd) {
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLERR | POLLHUP | POLLRDHUP)) return true;
    char c;
    ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void address_of(int fd, bool peer, std::string& ip, int& port) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len)
                 : ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    if (r != 0) return;
    char text[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
        ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
        port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
        ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
        port = ntohs(a->sin6_port);
    }
    ip = text;
}

// Best effort, on a connection about to be closed: never blocks.
void send_timeout_answer(int fd, const std::string& message) {
    std::string body = Error(ErrorCode::InvalidArgument, message).to_json().dump();
    std::string head =
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n";
    std::string all = head + body;
    (void)::send(fd, all.data(), all.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// The socket as httplib's parser reads and writes it while one request is served: reads are bounded
// by the read timeout and by the phase's deadline (headers, then a non-upload body).
class ConnStream final : public httplib::Stream {
  public:
    ConnStream(Conn& c, const GateSettings& s) : m_c(c), m_s(s) {}

    void set_deadline(std::optional<Clock::time_point> d) { m_deadline = d; }
    bool timed_out() const { return m_timed_out; }
    bool write_failed() const { return m_write_failed; }
    uint64_t written() const { return m_written; }

    bool is_readable() const override {
        return m_c.buffered() > 0 || wait_for(m_c.fd, POLLIN, read_budget());
    }
    bool is_writable() const override {
        return wait_for(m_c.fd, POLLOUT, m_s.write_timeout) && !peer_closed(m_c.fd);
    }

    ssize_t read(char* ptr, size_t size) override {
        if (size == 0) return 0;
        if (m_c.buffered() > 0) {
            size_t n = std::min(size, m_c.buffered());
            std::memcpy(ptr, m_c.ahead.data() + m_c.ahead_pos, n);
            m_c.ahead_pos += n;
            if (m_c.buffered() == 0) {
                m_c.ahead.clear();
                m_c.ahead_pos = 0;
            }
            return static_cast<ssize_t>(n);
        }
        auto budget = read_budget();
        if (budget <= Clock::duration::zero() || !wait_for(m_c.fd, POLLIN, budget)) {
            if (m_deadline && Clock::now() >= *m_deadline) m_timed_out = true;
            return -1;
        }
        if (size >= k_read_chunk) return recv_some(ptr, size);
        char chunk[k_read_chunk];
        ssize_t n = recv_some(chunk, sizeof(chunk));
        if (n <= 0) return n;
        size_t give = std::min(size, static_cast<size_t>(n));
        std::memcpy(ptr, chunk, give);
        if (static_cast<size_t>(n) > give) m_c.ahead.assign(chunk + give, static_cast<size_t>(n) - give);
        return static_cast<ssize_t>(give);
    }

    ssize_t write(const char* ptr, size_t size) override {
        if (m_write_failed) return -1;
        if (!wait_for(m_c.fd, POLLOUT, m_s.write_timeout)) {
            m_write_failed = true;
            return -1;
        }
        while (true) {
            ssize_t n = ::send(m_c.fd, ptr, size, MSG_NOSIGNAL);
            if (n >= 0) {
                m_written += static_cast<uint64_t>(n);
                return n;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;  // the caller loops
            m_write_failed = true;
            return -1;
        }
    }

    void get_remote_ip_and_port(std::string& ip, int& port) const override {
        address_of(m_c.fd, true, ip, port);
    }
    void get_local_ip_and_port(std::string& ip, int& port) const override {
        address_of(m_c.fd, false, ip, port);
    }
    socket_t socket() const override { return m_c.fd; }

  private:
    Clock::duration read_budget() const {
        Clock::duration budget = m_s.read_timeout;
        if (m_deadline) budget = std::min<Clock::duration>(budget, *m_deadline - Clock::now());
        return budget;
    }
    ssize_t recv_some(char* ptr, size_t size) {
        while (true) {
            ssize_t n = ::recv(m_c.fd, ptr, size, 0);
            if (n >= 0 || errno != EINTR) return n < 0 ? -1 : n;
        }
    }

    Conn& m_c;
    const GateSettings& m_s;
    std::optional<Clock::time_point> m_deadline;
    bool m_timed_out = false;
    bool m_write_failed = false;
    uint64_t m_written = 0;
};

// httplib's accept loop hands each new socket to its task queue; this one runs the hand-over
// (GatedServer::process_and_close_socket, which only registers the connection) on the accept thread.
class InlineQueue final : public httplib::TaskQueue {
  public:
    explicit InlineQueue(std::function<void()> on_shutdown) : m_on_shutdown(std::move(on_shutdown)) {}
    void enqueue(std::function<void()> fn) override { fn(); }
    void shutdown() override { m_on_shutdown(); }

  private:
    std::function<void()> m_on_shutdown;
};

}  // namespace

size_t request_head_end(const char* data, size_t size) {
    for (size_t i = 0; i + 1 < size; ++i) {
        if (data[i] != '\n') continue;
        if (data[i + 1] == '\n') return i + 2;
        if (data[i + 1] == '\r' && i + 2 < size && data[i + 2] == '\n') return i + 3;
    }
    return std::string::npos;
}

size_t request_bytes_needed(std::string_view head,
                            const std::function<bool(const std::string&, const std::string&)>& is_streaming) {
    auto line_end = head.find('\n');
    std::string_view line = head.substr(0, line_end);
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return head.size();
    std::string method(line.substr(0, sp1));
    std::string path(line.substr(sp1 + 1, sp2 - sp1 - 1));
    if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
    if (is_streaming && is_streaming(method, path)) return head.size();
    std::optional<uint64_t> length;
    size_t at = line_end == std::string_view::npos ? head.size() : line_end + 1;
    while (at < head.size()) {
        auto end = head.find('\n', at);
        std::string_view h =
            head.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
        at = end == std::string_view::npos ? head.size() : end + 1;
        auto colon = h.find(':');
        if (colon == std::string_view::npos) continue;
        std::string name(h.substr(0, colon));
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        // A client that waits for "100 Continue" sends its body only once a worker answers the head.
        if (name == "transfer-encoding" || name == "expect") return head.size();
        if (name != "content-length") continue;
        std::string_view v = h.substr(colon + 1);
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.remove_suffix(1);
        if (v.empty() || v.size() > 18 || length) return head.size();  // httplib decides about odd framing
        uint64_t value = 0;
        for (char d : v) {
            if (d < '0' || d > '9') return head.size();
            value = value * 10 + static_cast<uint64_t>(d - '0');
        }
        length = value;
    }
    if (!length || head.size() + *length > k_small_body) return head.size();
    return head.size() + static_cast<size_t>(*length);
}

struct GatedServer::Impl {
    GatedServer& owner;
    GateSettings settings;
    int epoll_fd = -1;
    int wake_fd = -1;

    mutable std::mutex mutex;                                // guards everything below
    std::unordered_map<int, std::unique_ptr<Conn>> waiting;  // in the gate, by fd
    std::deque<std::unique_ptr<Conn>> ready;                 // complete heads, for the workers
    std::condition_variable ready_cv;
    size_t serving = 0;
    bool started = false;
    bool stopping = false;
    GateCounters counts;
    uint64_t slow_since_log = 0;
    Clock::time_point last_slow_log{};

    std::thread gate;
    // The workers: started as requests need them (none is free when one is ready), up to
    // settings.workers; one idle for settings.worker_idle beyond settings.min_workers ends.
    std::unordered_map<std::thread::id, std::thread> workers;
    std::vector<std::thread::id> ended;  // workers that ended, to be joined
    size_t idle = 0;                     // workers waiting for a ready connection

    Impl(GatedServer& o, GateSettings s) : owner(o), settings(std::move(s)) {
        epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
        wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = wake_fd;
        ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);
    }

    ~Impl() {
        shutdown();
        if (epoll_fd >= 0) ::close(epoll_fd);
        if (wake_fd >= 0) ::close(wake_fd);
    }

    void start() {
        std::lock_guard lock(mutex);
        if (started) return;
        started = true;
        gate = std::thread([this] { gate_loop(); });
        for (int i = 0; i < std::clamp(settings.min_workers, 1, std::max(1, settings.workers)); ++i)
            start_worker_locked();
    }

    size_t alive_locked() const { return workers.size() - ended.size(); }

    // One more worker (mutex held); false when the system refused a thread.
    bool start_worker_locked() {
        for (auto id : ended) {
            if (auto it = workers.find(id); it != workers.end()) {
                it->second.join();  // it has left worker_loop, and needs the mutex no more
                workers.erase(it);
            }
        }
        ended.clear();
        try {
            std::thread t([this] { worker_loop(); });
            auto id = t.get_id();
            workers.emplace(id, std::move(t));
            counts.workers_started++;
            return true;
        } catch (const std::system_error& e) {
            spdlog::warn("could not start another HTTP worker ({} running): {}", workers.size(), e.what());
            return false;
        }
    }

    void shutdown() {
        {
            std::lock_guard lock(mutex);
            if (stopping) return;
            stopping = true;
        }
        uint64_t one = 1;
        (void)::write(wake_fd, &one, sizeof(one));
        ready_cv.notify_all();
        if (gate.joinable()) gate.join();
        std::unordered_map<std::thread::id, std::thread> all;
        {
            std::lock_guard lock(mutex);
            all.swap(workers);  // no worker starts once stopping is set
        }
        for (auto& [id, w] : all)
            if (w.joinable()) w.join();
        std::lock_guard lock(mutex);
        for (auto& [fd, c] : waiting) close_conn(*c);
        waiting.clear();
        for (auto& c : ready) close_conn(*c);
        ready.clear();
    }

    static void close_conn(Conn& c) {
        if (c.fd < 0) return;
        ::shutdown(c.fd, SHUT_RDWR);
        ::close(c.fd);
        c.fd = -1;
    }

    // --- the gate ---------------------------------------------------------------------------------
    void admit(int fd) {
        // httplib accepts without close-on-exec: an ffprobe or ffmpeg the server starts would hold a
        // copy of the connection and keep it open after the server closed it.
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        int on = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        auto c = std::make_unique<Conn>();
        c->fd = fd;
        c->deadline = Clock::now() + settings.header_timeout;
        std::lock_guard lock(mutex);
        ++counts.accepted;
        if (stopping || waiting.size() + ready.size() + serving >= settings.max_connections) {
            ++counts.refused_over_limit;
            close_conn(*c);
            if (!stopping)
                spdlog::warn("closed a new connection: {} connections are open (max {})",
                             waiting.size() + ready.size() + serving, settings.max_connections);
            return;
        }
        wait_locked(std::move(c));
    }

    // A connection back to waiting for its next request (mutex held).
    void wait_locked(std::unique_ptr<Conn> c) {
        int fd = c->fd;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
        ev.data.fd = fd;
        waiting[fd] = std::move(c);
        if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close_conn(*waiting[fd]);
            waiting.erase(fd);
        }
    }

    void to_workers_locked(std::unique_ptr<Conn> c) {
        ready.push_back(std::move(c));
        if (ready.size() > idle && !stopping && alive_locked() < static_cast<size_t>(settings.workers))
            start_worker_locked();
        ready_cv.notify_one();
    }

    // A connection with news: its head complete (to a worker), closed, or still arriving.
    void check(int fd, uint32_t events) {
        std::lock_guard lock(mutex);
        auto it = waiting.find(fd);
        if (it == waiting.end()) return;
        Conn& c = *it->second;
        static thread_local std::vector<char> peek(k_peek);
        ssize_t n = ::recv(fd, peek.data(), peek.size(), MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (events & (EPOLLHUP | EPOLLERR)) return drop_locked(it);
            return;
        }
        if (n <= 0) return drop_locked(it);  // closed by the client (or reset) between requests
        if (!c.began) {
            c.began = true;
            c.deadline = Clock::now() + settings.header_timeout;
        }
        std::string joined;
        std::string_view data(peek.data(), static_cast<size_t>(n));
        if (c.buffered() > 0) {
            joined = c.ahead.substr(c.ahead_pos);
            joined.append(data);
            data = joined;
        }
        // A client that has shut down its sending side will send no more: httplib answers what came.
        bool more_may_come = (events & EPOLLRDHUP) == 0;
        size_t head = request_head_end(data.data(), data.size());
        if (more_may_come && head == std::string::npos && static_cast<size_t>(n) < peek.size()) return;
        if (more_may_come && head != std::string::npos &&
            data.size() < request_bytes_needed(data.substr(0, head), settings.is_streaming))
            return;  // a small body still arriving: it waits here too
        ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
        auto conn = std::move(it->second);
        waiting.erase(it);
        to_workers_locked(std::move(conn));
    }

    void drop_locked(std::unordered_map<int, std::unique_ptr<Conn>>::iterator it) {
        close_conn(*it->second);
        waiting.erase(it);
    }

    void expire() {
        std::lock_guard lock(mutex);
        auto now = Clock::now();
        for (auto it = waiting.begin(); it != waiting.end();) {
            Conn& c = *it->second;
            if (now < c.deadline) {
                ++it;
                continue;
            }
            if (c.began) {
                send_timeout_answer(c.fd, "the request headers did not arrive within " +
                                              std::to_string(settings.header_timeout.count()) + " ms");
                ++counts.slow_headers_closed;
                ++slow_since_log;
            }
            close_conn(c);
            it = waiting.erase(it);
        }
        if (slow_since_log > 0 && now - last_slow_log >= std::chrono::seconds(10)) {
            spdlog::warn("closed {} connection(s) whose request headers were not complete within {} ms",
                         slow_since_log, settings.header_timeout.count());
            slow_since_log = 0;
            last_slow_log = now;
        }
    }

    void gate_loop() {
        std::vector<epoll_event> events(256);
        auto next_expiry = Clock::now();
        while (true) {
            {
                std::lock_guard lock(mutex);
                if (stopping) return;
            }
            int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), 100);
            for (int i = 0; i < n; ++i) {
                if (events[i].data.fd == wake_fd) continue;
                check(events[i].data.fd, events[i].events);
            }
            if (Clock::now() >= next_expiry) {
                expire();
                next_expiry = Clock::now() + std::chrono::milliseconds(100);
            }
        }
    }

    // --- the workers ------------------------------------------------------------------------------
    void worker_loop() {
        while (true) {
            std::unique_ptr<Conn> c;
            {
                std::unique_lock lock(mutex);
                ++idle;
                bool woken =
                    ready_cv.wait_for(lock, settings.worker_idle, [&] { return stopping || !ready.empty(); });
                --idle;
                if (ready.empty()) {
                    if (stopping) return;  // and nothing left to answer
                    if (!woken && alive_locked() > static_cast<size_t>(settings.min_workers)) {
                        ended.push_back(std::this_thread::get_id());  // joined by the next start
                        return;
                    }
                    continue;
                }
                c = std::move(ready.front());
                ready.pop_front();
                ++serving;
            }
            bool keep = serve_one(*c);
            std::lock_guard lock(mutex);
            --serving;
            if (!keep || stopping) {
                close_conn(*c);
                continue;
            }
            c->began = c->buffered() > 0;
            c->deadline = Clock::now() + (c->began ? settings.header_timeout : settings.keep_alive_timeout);
            if (c->began &&
                request_head_end(c->ahead.data() + c->ahead_pos, c->buffered()) != std::string::npos)
                to_workers_locked(std::move(c));  // a pipelined request, already here
            else
                wait_locked(std::move(c));
        }
    }

    // Serves one request; true when the connection may carry another.
    bool serve_one(Conn& c) {
        ConnStream strm(c, settings);
        strm.set_deadline(c.deadline > Clock::now() ? c.deadline : Clock::now() + settings.header_timeout);
        t_hooks = RequestHooks{};
        t_hooks.conn = &c;
        bool closed_by_request = false;
        bool stopping_now;
        {
            std::lock_guard lock(mutex);
            stopping_now = stopping;
        }
        bool ok = owner.process_request(strm, stopping_now, closed_by_request, [&](httplib::Request& req) {
            // The head is parsed: a body of a route that is not an upload must arrive in time too.
            bool streamed = settings.is_streaming && settings.is_streaming(req.method, req.path);
            strm.set_deadline(streamed
                                  ? std::nullopt
                                  : std::optional<Clock::time_point>(Clock::now() + settings.body_timeout));
        });
        auto hooks = std::move(t_hooks);
        t_hooks = RequestHooks{};
        if (strm.timed_out()) {
            if (strm.written() == 0)
                send_timeout_answer(c.fd, "the request did not arrive within the server's time limits");
            std::lock_guard lock(mutex);
            ++counts.slow_bodies_closed;
        }
        if (!ok || strm.write_failed())
            for (auto& f : hooks.unanswered) f();
        return ok && !strm.write_failed() && !strm.timed_out() && !closed_by_request && !hooks.close &&
               !stopping_now && owner.svr_sock_ != INVALID_SOCKET;
    }
};

namespace connection {

bool peer_gone() {
    return t_hooks.conn && t_hooks.conn->fd >= 0 && peer_closed(t_hooks.conn->fd);
}

void close_after_answer() {
    t_hooks.close = true;
}

void on_unanswered(std::function<void()> callback) {
    if (t_hooks.conn) t_hooks.unanswered.push_back(std::move(callback));
}

}  // namespace connection

GatedServer::GatedServer(GateSettings settings) : m_impl(std::make_unique<Impl>(*this, std::move(settings))) {
    // Every waiting connection is a descriptor: the soft limit (often 1024) would cap the farm.
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 1 << 20);
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }
    new_task_queue = [this] {
        if (svr_sock_ != INVALID_SOCKET) ::fcntl(svr_sock_, F_SETFD, FD_CLOEXEC);  // the listening socket too
        m_impl->start();
        return new InlineQueue([this] { m_impl->shutdown(); });
    };
}

GatedServer::~GatedServer() {
    m_impl->shutdown();
}

GateCounters GatedServer::counters() const {
    std::lock_guard lock(m_impl->mutex);
    GateCounters c = m_impl->counts;
    c.waiting = m_impl->waiting.size();
    c.serving = m_impl->serving + m_impl->ready.size();
    c.workers = m_impl->alive_locked();
    return c;
}

bool GatedServer::process_and_close_socket(socket_t sock) {
    m_impl->admit(sock);
    return true;
}

}  // namespace distconv::dispatch
