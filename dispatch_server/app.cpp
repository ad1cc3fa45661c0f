#include "dispatch_server/app.hpp"

#include "common/process.hpp"
#include "common/systemd.hpp"
#include "dispatch_server/api/http_api.hpp"
#include "dispatch_server/metrics/metrics.hpp"
#include "dispatch_server/pools/pools.hpp"
#include "dispatch_server/service/auth.hpp"
#include "dispatch_server/service/engines.hpp"
#include "dispatch_server/service/jobs.hpp"
#include "dispatch_server/service/notifier.hpp"
#include "dispatch_server/service/sessions.hpp"
#include "dispatch_server/service/split.hpp"
#include "dispatch_server/store/store.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <thread>

namespace distconv::dispatch {

struct DispatchServer::Impl {
    DispatchConfig config;
    std::shared_ptr<const Clock> clock;
    std::unique_ptr<Store> store;
    std::unique_ptr<StoragePools> pools;
    FfprobeProber prober;
    ChangeNotifier notifier;
    Metrics metrics;
    std::unique_ptr<AssignmentCredentials> credentials;
    std::unique_ptr<AuthService> auth;
    std::unique_ptr<SessionService> sessions;  // with the dashboard on
    std::unique_ptr<JobService> jobs;
    std::unique_ptr<EngineService> engines;
    std::unique_ptr<FfmpegSplitMedia> split_media;
    std::unique_ptr<SplitService> split;
    std::unique_ptr<HttpApi> api;
    int port = 0;

    std::mutex mutex;
    std::condition_variable cv;
    bool stopping = false;
    std::thread maintenance;
    std::thread rescuer;
    std::thread splitter;

    Impl(const DispatchConfig& c, std::shared_ptr<const Clock> clk)
        : config(c), clock(std::move(clk)), prober(c.ffprobe) {}

    // Ends expired leases and silent engines' work often enough that a lost job waits at most about a
    // quarter of a lease beyond its expiry.
    void rescue_loop() {
        auto interval = std::chrono::milliseconds(std::clamp<int64_t>(config.lease_ms / 4, 50, 1000));
        std::unique_lock lock(mutex);
        while (!stopping) {
            lock.unlock();
            try {
                engines->rescue();
            } catch (const std::exception& e) {
                spdlog::error("rescue failed: {}", e.what());
            }
            lock.lock();
            cv.wait_for(lock, interval, [&] { return stopping; });
        }
    }

    // Split mode's coordinator: wakes on any change (a task's progress or end) and at least every
    // half second; its work (a cut, a join) runs here, off the request threads.
    void split_loop() {
        uint64_t seen = notifier.generation();
        std::unique_lock lock(mutex);
        while (!stopping) {
            lock.unlock();
            try {
                split->tick();
            } catch (const std::exception& e) {
                spdlog::error("split: {}", e.what());
            }
            seen = notifier.wait_for_change(seen, std::chrono::milliseconds(500));
            lock.lock();
            // At most a few passes a second, however many progress reports arrive.
            cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping; });
        }
    }

    void maintenance_loop() {
        std::unique_lock lock(mutex);
        while (!stopping) {
            lock.unlock();
            try {
                auto report = jobs->run_maintenance();
                if (report.expired_jobs || report.outputs_deleted || report.sources_deleted ||
                    report.orphans_removed || report.uploads_abandoned)
                    spdlog::info(
                        "maintenance: {} jobs expired, {} uploads abandoned, {} outputs and {} sources "
                        "deleted, "
                        "{} orphan files removed",
                        report.expired_jobs, report.uploads_abandoned, report.outputs_deleted,
                        report.sources_deleted, report.orphans_removed);
                for (const auto& e : report.errors) spdlog::warn("maintenance: {}", e);
            } catch (const std::exception& e) {
                spdlog::error("maintenance failed: {}", e.what());
            }
            lock.lock();
            cv.wait_for(lock, std::chrono::milliseconds(config.maintenance_interval_ms),
                        [&] { return stopping; });
        }
    }
};

Result<std::unique_ptr<DispatchServer>> DispatchServer::create(const DispatchConfig& config,
                                                               std::shared_ptr<const Clock> clock) {
    if (!clock) clock = std::make_shared<SystemClock>();
    auto impl = std::make_unique<Impl>(config, clock);
    std::error_code ec;
    std::filesystem::create_directories(config.data_dir, ec);
    if (ec)
        return Error(ErrorCode::Internal, "cannot create data-dir " + config.data_dir + ": " + ec.message());
    auto store = Store::open(config.database_path(), *impl->clock,
                             std::chrono::milliseconds(config.db_busy_timeout_ms));
    if (!store) return store.error();
    impl->store = std::move(*store);
    impl->pools = std::make_unique<StoragePools>(config.pools);
    if (auto st = impl->pools->prepare(); !st) return st.error();
    // The secret that signs per-assignment credentials; kept so a restart does not cut running transfers.
    auto credentials =
        AssignmentCredentials::load_or_create(std::filesystem::path(config.data_dir) / "credential.secret");
    if (!credentials) return credentials.error();
    impl->credentials = std::make_unique<AssignmentCredentials>(std::move(*credentials));
    impl->auth = std::make_unique<AuthService>(*impl->store, impl->credentials.get(), impl->clock.get());
    if (config.ui_enabled) {
        SessionSettings settings;
        settings.idle = std::chrono::milliseconds(config.session_idle_ms);
        settings.absolute = std::chrono::milliseconds(config.session_max_ms);
        impl->sessions = std::make_unique<SessionService>(*impl->auth, *impl->clock, settings);
        impl->auth->set_sessions(impl->sessions.get());
    }
    // Probes, cuts and joins of uploaded media yield the CPU to the requests of users and engines.
    process::set_child_nice(config.media_nice);
    impl->jobs = std::make_unique<JobService>(*impl->store, *impl->pools, impl->config, impl->prober,
                                              *impl->clock, impl->notifier);
    impl->engines = std::make_unique<EngineService>(*impl->store, *impl->pools, impl->config, *impl->clock,
                                                    impl->notifier, &impl->metrics, impl->credentials.get());
    impl->split_media = std::make_unique<FfmpegSplitMedia>(config.ffmpeg, config.ffprobe);
    impl->split = std::make_unique<SplitService>(*impl->store, *impl->pools, impl->config, impl->prober,
                                                 *impl->split_media, *impl->clock, impl->notifier);
    impl->api =
        std::make_unique<HttpApi>(ApiServices{*impl->auth, *impl->jobs, impl->notifier, impl->config,
                                              impl->engines.get(), &impl->metrics, impl->sessions.get()});
    auto port = impl->api->bind(config.host, config.port);
    if (!port) return port.error();
    impl->port = *port;
    return std::unique_ptr<DispatchServer>(new DispatchServer(std::move(impl)));
}

DispatchServer::DispatchServer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

DispatchServer::~DispatchServer() {
    stop();
    if (m_impl->maintenance.joinable()) m_impl->maintenance.join();
    if (m_impl->rescuer.joinable()) m_impl->rescuer.join();
    if (m_impl->splitter.joinable()) m_impl->splitter.join();
}

int DispatchServer::port() const {
    return m_impl->port;
}

void DispatchServer::run() {
    m_impl->maintenance = std::thread([this] { m_impl->maintenance_loop(); });
    m_impl->rescuer = std::thread([this] { m_impl->rescue_loop(); });
    m_impl->splitter = std::thread([this] { m_impl->split_loop(); });
    std::string where = std::string(m_impl->config.tls_cert.empty() ? "http" : "https") + "://" +
                        m_impl->config.host + ":" + std::to_string(m_impl->port);
    spdlog::info("distconv-dispatch serving on {} (data in {})", where, m_impl->config.data_dir);
    // The listener is bound: connections queue until serve() accepts them, so systemd may go on.
    systemd::notify_ready("serving on " + where);
    {
        // Pings only while the store answers (a wedged database lock means a restart).
        systemd::Watchdog watchdog([this] {
            (void)m_impl->store->count_by_state();
            return true;
        });
        m_impl->api->serve();
        stop();
    }
    if (m_impl->maintenance.joinable()) m_impl->maintenance.join();
    if (m_impl->rescuer.joinable()) m_impl->rescuer.join();
    if (m_impl->splitter.joinable()) m_impl->splitter.join();
    spdlog::info("distconv-dispatch stopped");
}

void DispatchServer::stop() {
    {
        std::lock_guard lock(m_impl->mutex);
        if (!m_impl->stopping) systemd::notify_stopping();
        m_impl->stopping = true;
    }
    m_impl->cv.notify_all();
    m_impl->api->stop();
}

Store& DispatchServer::store() {
    return *m_impl->store;
}
JobService& DispatchServer::jobs() {
    return *m_impl->jobs;
}
StoragePools& DispatchServer::pools() {
    return *m_impl->pools;
}
AuthService& DispatchServer::auth() {
    return *m_impl->auth;
}
EngineService& DispatchServer::engines() {
    return *m_impl->engines;
}

}  // namespace distconv::dispatch
