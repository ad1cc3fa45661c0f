#include "transcoding_engine/source_relay.hpp"

#include "common/byte_range.hpp"
#include "common/hash.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

namespace distconv::engine {
namespace {

// One fetch from the dispatch server per 4 MiB: large enough that the per-request cost disappears,
// small enough that a seek wastes little and memory stays bounded (one chunk per open connection).
constexpr uint64_t k_chunk = 4 << 20;

}  // namespace

void PrefixHash::add(uint64_t offset, std::string_view bytes) {
    std::lock_guard lock(m_mutex);
    if (m_finished || offset > m_hashed || offset + bytes.size() <= m_hashed) return;
    const uint64_t skip = m_hashed - offset;
    const uint64_t take = std::min<uint64_t>(bytes.size() - skip, m_size - m_hashed);
    m_hash.update(bytes.data() + skip, static_cast<size_t>(take));
    m_hashed += take;
}

uint64_t PrefixHash::hashed() const {
    std::lock_guard lock(m_mutex);
    return m_hashed;
}

Result<SourceDigest> PrefixHash::finish(const RangeFetch& fetch, uint64_t piece) {
    std::lock_guard lock(m_mutex);
    if (m_finished) return Error(ErrorCode::Internal, "the source's hash was already finished");
    m_finished = true;
    SourceDigest d;
    while (m_hashed < m_size) {
        auto bytes = fetch(m_hashed, std::min(piece, m_size - m_hashed));
        if (!bytes) return bytes.error();
        if (bytes->empty()) break;
        const uint64_t take = std::min<uint64_t>(bytes->size(), m_size - m_hashed);
        m_hash.update(bytes->data(), static_cast<size_t>(take));
        m_hashed += take;
        d.fetched_to_finish += take;
    }
    d.size = m_hashed;
    d.sha256 = m_hash.hex_digest();
    return d;
}

struct SourceRelay::Impl {
    explicit Impl(uint64_t source_size) : size(source_size), prefix(source_size) {}
    uint64_t size;
    RangeFetch fetch;
    PrefixHash prefix;
    httplib::Server server;
    std::thread thread;
    std::string path = "/" + random_token(24);
    int port = 0;
    std::atomic<uint64_t> served{0};
    mutable std::mutex mutex;
    std::optional<Error> first_error;

    void failed(const Error& e) {
        std::lock_guard lock(mutex);
        if (!first_error) first_error = e;
    }

    void serve(const httplib::Request& req, httplib::Response& res) {
        if (req.path != path) {
            res.status = 404;
            return;
        }
        res.set_header("Accept-Ranges", "bytes");
        if (req.has_header("Range") && !parse_byte_range(req.get_header_value("Range"), size)) {
            res.status = 416;
            res.set_header("Content-Range", "bytes */" + std::to_string(size));
            return;
        }
        if (size == 0) return;
        // The provider covers the whole source; the HTTP library answers a Range with 206, the
        // Content-Range and the provider called from the range's start.
        const uint64_t first = 0;
        res.set_content_provider(static_cast<size_t>(size), "application/octet-stream",
                                 [this, first](size_t offset, size_t length, httplib::DataSink& sink) {
                                     uint64_t at = first + offset;
                                     auto bytes = fetch(at, std::min<uint64_t>(length, k_chunk));
                                     if (!bytes) {
                                         failed(bytes.error());
                                         return false;
                                     }
                                     if (bytes->empty()) return false;
                                     prefix.add(at, *bytes);
                                     served += bytes->size();
                                     return sink.write(bytes->data(), bytes->size());
                                 });
    }
};

SourceRelay::SourceRelay(uint64_t size, RangeFetch fetch) : m_impl(std::make_unique<Impl>(size)) {
    m_impl->fetch = std::move(fetch);
}

SourceRelay::~SourceRelay() {
    stop();
}

Status SourceRelay::start() {
    auto& s = m_impl->server;
    s.set_tcp_nodelay(true);
    s.new_task_queue = [] { return new httplib::ThreadPool(4); };
    s.Get(".*", [this](const httplib::Request& req, httplib::Response& res) { m_impl->serve(req, res); });
    int port = s.bind_to_any_port("127.0.0.1");
    if (port <= 0) return Error(ErrorCode::Unavailable, "the stream relay cannot listen on 127.0.0.1");
    m_impl->port = port;
    m_impl->thread = std::thread([this] { m_impl->server.listen_after_bind(); });
    // Serving before returning: ffmpeg connects at once, and stop() only ends a running server.
    for (int i = 0; i < 5000 && !s.is_running(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return {};
}

void SourceRelay::stop() {
    if (!m_impl->thread.joinable()) return;
    m_impl->server.stop();
    m_impl->thread.join();
}

std::string SourceRelay::url() const {
    return "http://127.0.0.1:" + std::to_string(m_impl->port) + m_impl->path;
}

int SourceRelay::port() const {
    return m_impl->port;
}

uint64_t SourceRelay::bytes_served() const {
    return m_impl->served.load();
}

std::optional<Error> SourceRelay::error() const {
    std::lock_guard lock(m_impl->mutex);
    return m_impl->first_error;
}

Result<SourceDigest> SourceRelay::finish_hash(const RangeFetch& fetch) {
    stop();  // no fetch of ffmpeg's may run alongside the finishing ones
    return m_impl->prefix.finish(fetch ? fetch : m_impl->fetch, k_chunk);
}

uint64_t SourceRelay::hashed_prefix() const {
    return m_impl->prefix.hashed();
}

}  // namespace distconv::engine
