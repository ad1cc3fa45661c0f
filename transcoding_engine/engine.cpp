#include "transcoding_engine/engine.hpp"

#include "common/systemd.hpp"

#include <spdlog/spdlog.h>

#include <random>
#include <thread>

namespace distconv::engine {

protocol::Heartbeat build_heartbeat(const HeartbeatInputs& in, const SystemInfo& sys,
                                    const std::filesystem::path& work_dir) {
    protocol::Heartbeat hb;
    if (in.draining)
        hb.state = protocol::EngineState::Draining;
    else if (in.overloaded || static_cast<int>(in.running_assignments.size()) >= in.slots)
        hb.state = protocol::EngineState::Busy;
    else
        hb.state = protocol::EngineState::Idle;
    hb.load_average = sys.load_average();
    auto free = sys.free_disk_bytes(work_dir) - static_cast<std::int64_t>(in.reserve_disk_bytes);
    hb.free_disk_bytes = std::max<std::int64_t>(free, 0);
    hb.memory = sys.memory();
    hb.cpu_temperature_c = sys.cpu_temperature_c();
    hb.running_assignments = in.running_assignments;
    hb.benchmark_score = in.benchmark_score;
    return hb;
}

Engine::Engine(EngineApi& api, FfmpegRunner& runner, StateStore& state, const SystemInfo& sys,
               EngineSettings settings, protocol::Capabilities capabilities,
               std::optional<double> benchmark_score, BenchmarkFn benchmark)
    : m_api(api),
      m_state(state),
      m_sys(sys),
      m_settings(std::move(settings)),
      m_capabilities(std::move(capabilities)),
      m_benchmark(std::move(benchmark)),
      m_executor(api, runner, state, m_settings.executor),
      m_benchmark_score(benchmark_score) {}

Engine::~Engine() = default;

std::string Engine::engine_id() const {
    std::lock_guard lock(m_mutex);
    return m_engine_id;
}

std::vector<std::string> Engine::running_assignments() const {
    std::lock_guard lock(m_mutex);
    std::vector<std::string> ids;
    for (const auto& [id, _] : m_active) ids.push_back(id);
    return ids;
}

std::int64_t Engine::reported_free_disk() const {
    auto free =
        m_sys.free_disk_bytes(m_settings.work_dir) - static_cast<std::int64_t>(m_settings.reserve_disk_bytes);
    return std::max<std::int64_t>(free, 0);
}

bool machine_overloaded(const SystemInfo& sys, double max_load, std::uint64_t min_free_memory) {
    if (max_load > 0) {
        auto load = sys.load_average();
        if (load && *load > max_load) return true;
    }
    if (min_free_memory > 0) {
        auto memory = sys.memory();
        if (memory &&
            static_cast<std::uint64_t>(std::max<std::int64_t>(memory->available_bytes, 0)) < min_free_memory)
            return true;
    }
    return false;
}

bool Engine::overloaded() const {
    return machine_overloaded(m_sys, m_settings.max_load, m_settings.min_free_memory_bytes);
}

bool Engine::sleep_unless_draining(std::chrono::milliseconds d) {
    std::unique_lock lock(m_mutex);
    return !m_cv.wait_for(lock, d, [&] { return m_draining.load(); });
}

void Engine::request_drain() {
    if (m_draining.exchange(true)) return;
    spdlog::info("draining: no new claims, running work may finish");
    std::lock_guard lock(m_mutex);
    m_cv.notify_all();
}

void Engine::stop_now() {
    m_stop_now = true;
    request_drain();
    std::lock_guard lock(m_mutex);
    for (auto& [id, a] : m_active) a->stop(StopReason::Draining, m_settings.executor.kill_grace);
    m_cv.notify_all();
}

bool Engine::recover() {
    auto records = m_state.assignments();
    if (!records) {
        spdlog::error("{}", records.error().to_string());
        return true;
    }
    bool all_reported = true;
    for (const auto& r : *records) {
        spdlog::warn("assignment {} (job {}) was interrupted by a restart: reporting it", r.assignment_id,
                     r.job_id);
        protocol::FailRequest f;
        f.fencing_token = r.fencing_token;
        f.error_class = protocol::ErrorClass::Transient;
        f.message = "engine restarted";
        auto ack = m_api.fail(r.assignment_id, f);
        // 404/409: the server already moved on; either way the assignment is no longer ours.
        if (!ack && ack.error().code != ErrorCode::NotFound && ack.error().code != ErrorCode::LeaseLost &&
            ack.error().code != ErrorCode::Conflict && ack.error().code != ErrorCode::InvalidArgument) {
            spdlog::warn("assignment {}: cannot report yet: {}", r.assignment_id, ack.error().to_string());
            all_reported = false;
            continue;
        }
        std::error_code ec;
        if (!r.dir.empty()) std::filesystem::remove_all(r.dir, ec);
        (void)m_state.remove_assignment(r.assignment_id);
    }
    // Files of assignments that never reached the state file (or whose row is gone).
    std::error_code ec;
    auto records_left = m_state.assignments();
    for (const auto& e : std::filesystem::directory_iterator(m_settings.work_dir / "assignments", ec)) {
        bool known = false;
        if (records_left)
            for (const auto& r : *records_left)
                known = known || r.assignment_id == e.path().filename().string();
        if (!known) std::filesystem::remove_all(e.path(), ec);
    }
    return all_reported;
}

Status Engine::ensure_registered(bool force) {
    std::lock_guard reg_lock(m_register_mutex);
    if (!force) {
        if (!engine_id().empty()) return {};
        if (auto stored = m_state.engine_id()) {
            std::lock_guard lock(m_mutex);
            m_engine_id = *stored;
            return {};
        }
    }
    protocol::EngineRegistration reg;
    reg.hostname = m_settings.hostname.empty() ? m_sys.hostname() : m_settings.hostname;
    reg.version = m_settings.version;
    reg.slots = m_settings.slots;
    reg.capabilities = m_capabilities;
    reg.tags = m_settings.tags;
    {
        std::lock_guard lock(m_mutex);
        reg.benchmark_score = m_benchmark_score;
    }
    reg.free_disk_bytes = reported_free_disk();
    auto reply = m_api.register_engine(reg);
    if (!reply) return reply.error();
    DISTCONV_TRY(m_state.set_engine_id(reply->engine_id));
    {
        std::lock_guard lock(m_mutex);
        m_engine_id = reply->engine_id;
    }
    spdlog::info("registered as engine {} ({} slots)", reply->engine_id, reg.slots);
    return {};
}

Status Engine::heartbeat_once() {
    HeartbeatInputs in;
    in.draining = m_draining || m_server_drain;
    in.overloaded = overloaded();
    in.slots = m_settings.slots;
    in.running_assignments = running_assignments();
    in.reserve_disk_bytes = m_settings.reserve_disk_bytes;
    {
        std::lock_guard lock(m_mutex);
        if (m_benchmark_rerun) in.benchmark_score = m_benchmark_score;
    }
    auto hb = build_heartbeat(in, m_sys, m_settings.work_dir);
    auto reply = m_api.heartbeat(engine_id(), hb);
    if (!reply) {
        if (reply.error().code == ErrorCode::NotFound) {
            spdlog::warn("the server does not know engine {}: registering again", engine_id());
            DISTCONV_TRY(ensure_registered(true));
        }
        return reply.error();
    }
    {
        std::lock_guard lock(m_mutex);
        if (in.benchmark_score) m_benchmark_rerun = false;
        for (const auto& id : reply->cancel) {
            auto it = m_active.find(id);
            if (it == m_active.end()) continue;
            spdlog::info("assignment {}: the server asks to stop it", id);
            it->second->stop(StopReason::Canceled, m_settings.executor.kill_grace);
        }
    }
    if (reply->drain != m_server_drain.exchange(reply->drain))
        spdlog::info(reply->drain ? "the server asks to drain" : "the server lifted the drain");
    if (reply->rerun_benchmark && m_benchmark) {
        spdlog::info("re-running the benchmark as the server asks");
        if (auto score = m_benchmark(); score) {
            std::lock_guard lock(m_mutex);
            m_benchmark_score = *score;
            m_benchmark_rerun = true;
        }
    }
    return {};
}

void Engine::tick() {
    m_last_tick_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now().time_since_epoch())
                         .count();
}

bool Engine::responsive() const {
    int64_t last = m_last_tick_ms.load();
    if (last == 0 || m_finished) return true;
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
    // Registration retries wait up to 30 s, heartbeats one interval (plus a slow server's answer).
    int64_t limit = 120000 + 3 * static_cast<int64_t>(m_settings.heartbeat_interval.count());
    return now - last < limit;
}

void Engine::heartbeat_loop() {
    while (!m_finished) {
        tick();
        if (auto st = heartbeat_once(); !st) spdlog::warn("heartbeat: {}", st.error().to_string());
        std::unique_lock lock(m_mutex);
        m_cv.wait_for(lock, m_settings.heartbeat_interval, [&] { return m_finished.load(); });
    }
}

void Engine::worker_loop(int index) {
    std::mt19937 rng(std::random_device{}() + static_cast<unsigned>(index));
    int failures = 0;
    while (!m_draining) {
        if (m_server_drain || overloaded()) {
            sleep_unless_draining(m_settings.heartbeat_interval);
            continue;
        }
        protocol::ClaimRequest req;
        req.free_slots = std::max(1, m_settings.slots - static_cast<int>(running_assignments().size()));
        req.wait_seconds = m_settings.claim_wait_seconds;
        req.free_disk_bytes = reported_free_disk();
        auto claimed = m_api.claim(engine_id(), req, [&] { return m_draining.load(); });
        if (!claimed) {
            if (m_draining) break;
            if (claimed.error().code == ErrorCode::NotFound) {
                if (auto st = ensure_registered(true); st) continue;
            }
            // Unreachable server or trouble there: back off (with jitter), never give up.
            ++failures;
            auto base = std::min(30000, 500 * (1 << std::min(failures, 6)));
            std::uniform_int_distribution<int> jitter(base / 2, base);
            spdlog::warn("claim: {} (retrying)", claimed.error().to_string());
            sleep_unless_draining(std::chrono::milliseconds(jitter(rng)));
            continue;
        }
        failures = 0;
        if (!claimed->has_value()) continue;
        auto active = std::make_shared<ActiveAssignment>(std::move(**claimed));
        {
            std::lock_guard lock(m_mutex);
            m_active[active->id()] = active;
        }
        if (m_draining) active->stop(StopReason::Draining);  // a claim answered while the drain began
        (void)m_executor.run(*active);
        std::lock_guard lock(m_mutex);
        m_active.erase(active->id());
        m_cv.notify_all();
    }
}

int Engine::run() {
    std::error_code ec;
    std::filesystem::create_directories(m_settings.work_dir / "assignments", ec);
    // Register first (recovery needs no id, but the server must be up to hear about it anyway).
    for (int attempt = 1; !m_draining; ++attempt) {
        tick();
        auto st = ensure_registered();
        if (st) break;
        spdlog::warn("registration: {} (retrying)", st.error().to_string());
        sleep_unless_draining(std::chrono::milliseconds(std::min(30000, 500 * (1 << std::min(attempt, 6)))));
    }
    if (m_draining) return 0;
    systemd::notify_status("registered as engine " + engine_id() + " (" + std::to_string(m_settings.slots) +
                           " slot(s))");
    for (int attempt = 1; (tick(), !recover()) && !m_draining; ++attempt)
        sleep_unless_draining(std::chrono::milliseconds(std::min(30000, 500 * (1 << std::min(attempt, 6)))));

    std::thread heartbeat([this] { heartbeat_loop(); });
    std::vector<std::thread> workers;
    for (int i = 0; i < m_settings.slots; ++i) workers.emplace_back([this, i] { worker_loop(i); });

    {
        std::unique_lock lock(m_mutex);
        m_cv.wait(lock, [&] { return m_draining.load(); });
        // Running work may finish until the drain timeout; after that it is handed back.
        if (!m_cv.wait_for(lock, m_settings.drain_timeout,
                           [&] { return m_active.empty() || m_stop_now.load(); })) {
            spdlog::warn("drain timeout: handing back {} assignment(s)", m_active.size());
        }
        for (auto& [id, a] : m_active) a->stop(StopReason::Draining, m_settings.executor.kill_grace);
    }
    for (auto& w : workers) w.join();
    m_finished = true;
    {
        std::lock_guard lock(m_mutex);
        m_cv.notify_all();
    }
    heartbeat.join();
    (void)heartbeat_once();  // tell the server at once that this engine is draining and holds nothing
    spdlog::info("engine stopped");
    return 0;
}

}  // namespace distconv::engine
