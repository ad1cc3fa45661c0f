#include "dispatch_server/pools/pools.hpp"

#include "common/fs.hpp"
#include "common/ulid.hpp"

#include <set>

namespace distconv::dispatch {

namespace stdfs = std::filesystem;

StoragePools::StoragePools(std::vector<PoolConfig> pools) : m_pools(std::move(pools)) {}

Status StoragePools::prepare() {
    for (const auto& p : m_pools) {
        std::error_code ec;
        stdfs::create_directories(p.root / "jobs", ec);
        if (!ec) stdfs::create_directories(p.root / "incoming", ec);
        if (ec)
            return Error(ErrorCode::Internal,
                         "pool '" + p.name + "': cannot create " + p.root.string() + ": " + ec.message());
    }
    return check_writable();
}

Status StoragePools::check_writable() const {
    for (const auto& p : m_pools) {
        auto probe = p.root / ".write-check";
        auto st = fs::atomic_write(probe, "ok");
        if (!st)
            return Error(ErrorCode::Unavailable,
                         "pool '" + p.name + "' is not writable: " + st.error().message);
        std::error_code ec;
        stdfs::remove(probe, ec);
    }
    return {};
}

const PoolConfig* StoragePools::find(const std::string& name) const {
    for (const auto& p : m_pools)
        if (p.name == name) return &p;
    return nullptr;
}

std::vector<PoolCandidate> StoragePools::candidates() const {
    std::lock_guard lock(m_mutex);
    std::vector<PoolCandidate> out;
    for (const auto& p : m_pools) {
        PoolCandidate c;
        c.name = p.name;
        c.cap_bytes = p.cap_bytes;
        auto space = fs::disk_space(p.root);
        uint64_t free_bytes = space ? space->free_bytes : 0;
        uint64_t inflight = m_inflight.count(p.name) ? m_inflight.at(p.name) : 0;
        c.disk_free_bytes = free_bytes > inflight ? free_bytes - inflight : 0;
        if (c.cap_bytes) *c.cap_bytes = *c.cap_bytes > inflight ? *c.cap_bytes - inflight : 0;
        out.push_back(c);
    }
    return out;
}

stdfs::path StoragePools::resolve(const std::string& pool, const std::string& relative) const {
    const auto* p = find(pool);
    if (!p || relative.empty()) return {};
    return p->root / relative;
}

std::string StoragePools::job_file(const std::string& job_id, FileKind kind) {
    return "jobs/" + job_id + (kind == FileKind::Source ? "/source" : "/output");
}

Result<StoragePools::Incoming> StoragePools::reserve_incoming(Store& store, uint64_t bytes) {
    std::lock_guard lock(m_mutex);
    for (const auto& p : m_pools) {
        uint64_t inflight = m_inflight.count(p.name) ? m_inflight.at(p.name) : 0;
        auto stored = store.reserved_bytes(p.name);
        if (!stored) return stored.error();  // never over-commit a pool the database cannot account for
        uint64_t reserved = *stored + inflight;
        if (p.cap_bytes && (reserved > *p.cap_bytes || *p.cap_bytes - reserved < bytes)) continue;
        auto space = fs::disk_space(p.root);
        if (!space || space->free_bytes < inflight || space->free_bytes - inflight < bytes) continue;
        m_inflight[p.name] += bytes;
        return Incoming{p.name, "incoming/" + new_ulid() + ".part", bytes};
    }
    return Error(ErrorCode::InsufficientStorage,
                 "no storage pool has room for " + std::to_string(bytes) + " bytes",
                 nlohmann::json{{"needed_bytes", bytes}});
}

void StoragePools::release_incoming(const Incoming& incoming) {
    std::lock_guard lock(m_mutex);
    auto& v = m_inflight[incoming.pool];
    v = v > incoming.bytes ? v - incoming.bytes : 0;
}

StoragePools::SweepReport StoragePools::sweep_orphans(
    const std::vector<std::pair<std::string, std::string>>& referenced, std::chrono::seconds min_age) const {
    SweepReport report;
    std::set<stdfs::path> keep;
    for (const auto& [pool, rel] : referenced) {
        auto path = resolve(pool, rel);
        if (path.empty()) continue;
        keep.insert(path);
        keep.insert(path.string() + ".part");  // an upload in progress
    }
    auto now = stdfs::file_time_type::clock::now();
    for (const auto& p : m_pools) {
        for (const char* sub : {"jobs", "incoming"}) {
            std::error_code ec;
            std::vector<stdfs::path> files;
            for (auto it = stdfs::recursive_directory_iterator(p.root / sub, ec);
                 !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec))
                if (it->is_regular_file()) files.push_back(it->path());
            for (const auto& f : files) {
                if (keep.count(f)) continue;
                std::error_code fec;
                auto mtime = stdfs::last_write_time(f, fec);
                if (fec || now - mtime < min_age) continue;
                auto size = stdfs::file_size(f, fec);
                if (stdfs::remove(f, fec)) {
                    ++report.files_removed;
                    report.bytes_removed += fec ? 0 : size;
                }
            }
        }
        // Drop job directories left empty.
        std::error_code ec;
        for (auto it = stdfs::directory_iterator(p.root / "jobs", ec);
             !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
            std::error_code dec;
            if (it->is_directory() && stdfs::is_empty(it->path(), dec)) stdfs::remove(it->path(), dec);
        }
    }
    return report;
}

Result<std::vector<StoragePools::Usage>> StoragePools::usage(Store& store) const {
    std::vector<Usage> out;
    for (const auto& p : m_pools) {
        auto reserved = store.reserved_bytes(p.name);
        if (!reserved) return reserved.error();
        uint64_t inflight = 0;
        {
            std::lock_guard lock(m_mutex);
            if (auto it = m_inflight.find(p.name); it != m_inflight.end()) inflight = it->second;
        }
        auto space = fs::disk_space(p.root);
        Usage u;
        u.name = p.name;
        u.root = p.root;
        u.cap_bytes = p.cap_bytes;
        u.reserved_bytes = *reserved;
        u.used_bytes = fs::directory_size(p.root / "jobs");
        u.disk_free_bytes = space ? space->free_bytes : 0;
        u.writable = space.ok();
        uint64_t free = u.disk_free_bytes > inflight ? u.disk_free_bytes - inflight : 0;
        const uint64_t taken = u.reserved_bytes + inflight;
        if (p.cap_bytes) free = std::min(free, *p.cap_bytes > taken ? *p.cap_bytes - taken : 0);
        u.free_bytes = free;
        out.push_back(std::move(u));
    }
    return out;
}

}  // namespace distconv::dispatch
