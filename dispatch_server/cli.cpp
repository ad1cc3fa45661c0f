#include "dispatch_server/cli.hpp"

#include "common/config.hpp"
#include "common/logging.hpp"
#include "common/time.hpp"
#include "dispatch_server/app.hpp"
#include "dispatch_server/config.hpp"
#include "dispatch_server/service/auth.hpp"
#include "dispatch_server/store/store.hpp"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>
#include <thread>

namespace distconv::dispatch {

namespace {

constexpr int k_exit_ok = 0;
constexpr int k_exit_failure = 1;
constexpr int k_exit_usage = 2;

int fail(const Error& e, int code) {
    std::cerr << "distconv-dispatch: " << e.message << "\n";
    return code;
}

Result<std::unique_ptr<Store>> open_store(const DispatchConfig& config, const Clock& clock) {
    std::error_code ec;
    std::filesystem::create_directories(config.data_dir, ec);
    return Store::open(config.database_path(), clock);
}

int serve(const DispatchConfig& config) {
    // Signals are taken by one thread with sigwait, so no handler runs inside library code.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    auto server = DispatchServer::create(config);
    if (!server) return fail(server.error(), k_exit_failure);
    std::thread waiter([&] {
        int sig = 0;
        sigwait(&signals, &sig);
        if (sig == SIGINT || sig == SIGTERM) {
            spdlog::info("signal {}: finishing in-flight requests and stopping", sig);
            (*server)->stop();
        }
    });
    std::cout << "listening on " << config.host << ":" << (*server)->port() << std::endl;
    (*server)->run();
    // Wake the waiter if we stopped for another reason.
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    server->reset();
    return k_exit_ok;
}

}  // namespace

int dispatch_main(int argc, char** argv) {
    CLI::App app{"distconv-dispatch: the distconv job queue, storage and REST API"};
    app.set_version_flag("--version", "distconv-dispatch 0.1.0");
    app.require_subcommand(1);
    DispatchConfig config;
    add_options(app, config);

    auto* serve_cmd = app.add_subcommand("serve", "Run the server")->fallthrough();
    auto* check_cmd = app.add_subcommand("check-config", "Check the configuration and exit")->fallthrough();
    auto* keys = app.add_subcommand("keys", "Manage API keys")->fallthrough()->require_subcommand(1);
    std::string key_role = "user", key_name;
    auto* keys_create =
        keys->add_subcommand("create", "Create a key; prints the secret alone on stdout")->fallthrough();
    keys_create->add_option("--role", key_role, "admin|user|engine")
        ->check(CLI::IsMember({"admin", "user", "engine"}))
        ->capture_default_str();
    keys_create->add_option("--name", key_name, "A name for the key")->required();
    bool list_json = false, list_all = false;
    auto* keys_list = keys->add_subcommand("list", "List keys")->fallthrough();
    keys_list->add_flag("--json", list_json, "JSON output");
    keys_list->add_flag("--all", list_all, "Include revoked keys");
    std::string revoke_id;
    auto* keys_revoke = keys->add_subcommand("revoke", "Revoke a key by id or name")->fallthrough();
    keys_revoke->add_option("key", revoke_id, "Key id or name")->required();
    std::string backup_file;
    auto* backup_cmd = app.add_subcommand("backup", "Write an online backup of the database")->fallthrough();
    backup_cmd->add_option("file", backup_file, "Destination file")->required();

    config::add_sources(app);
    auto parsed = config::parse(app, argc, argv, std::cout);
    if (!parsed) return fail(parsed.error(), k_exit_usage);
    if (*parsed == config::Outcome::ExitSuccess) return k_exit_ok;
    if (auto st = finalize(config); !st) return fail(st.error(), k_exit_usage);

    logging::Settings log;
    log.level = config.log_level;
    log.format = config.log_format == "json" ? logging::Format::Json : logging::Format::Text;
    log.file = config.log_file;
    log.program = "distconv-dispatch";
    if (auto st = logging::setup(log); !st) return fail(st.error(), k_exit_usage);
    for (const auto& name : config::unknown_env_vars(app, config::process_environment()))
        if (name != "DISTCONV_SERVER" && name != "DISTCONV_API_KEY")
            spdlog::warn("ignoring {}: no such setting", name);

    if (check_cmd->parsed()) {
        std::cout << "configuration ok: listen " << config.host << ":" << config.port << ", data-dir "
                  << config.data_dir << ", " << config.pools.size() << " pool(s)\n";
        return k_exit_ok;
    }
    if (serve_cmd->parsed()) return serve(config);

    SystemClock clock;
    auto store = open_store(config, clock);
    if (!store) return fail(store.error(), k_exit_failure);
    if (backup_cmd->parsed()) {
        auto st = (*store)->backup_to(backup_file);
        if (!st) return fail(st.error(), k_exit_failure);
        std::cerr << "backup written to " << backup_file << "\n";
        return k_exit_ok;
    }
    AuthService auth(**store);
    if (keys_create->parsed()) {
        auto created = auth.create_key(key_name, *protocol::parse_role(key_role));
        if (!created)
            return fail(created.error(),
                        created.error().code == ErrorCode::InvalidArgument ? k_exit_usage : k_exit_failure);
        std::cout << created->secret << std::endl;
        std::cerr << "created " << key_role << " key '" << key_name << "' (id " << created->record.id
                  << "); it is shown only once\n";
        return k_exit_ok;
    }
    if (keys_list->parsed()) {
        auto keys_found = auth.list_keys(list_all);
        if (!keys_found) return fail(keys_found.error(), k_exit_failure);
        if (list_json) {
            nlohmann::json items = nlohmann::json::array();
            for (const auto& k : *keys_found) items.push_back(protocol::to_json(AuthService::info(k)));
            std::cout << nlohmann::json{{"items", items}}.dump(2) << "\n";
        } else {
            std::printf("%-26s  %-24s  %-6s  %-10s  %s\n", "ID", "NAME", "ROLE", "PREFIX", "CREATED");
            for (const auto& k : *keys_found)
                std::printf("%-26s  %-24s  %-6s  %-10s  %s%s\n", k.id.c_str(), k.name.c_str(),
                            std::string(protocol::to_string(k.role)).c_str(), k.prefix.c_str(),
                            format_rfc3339_ms(k.created_at).c_str(), k.revoked_at ? "  (revoked)" : "");
        }
        return k_exit_ok;
    }
    if (keys_revoke->parsed()) {
        auto revoked = auth.revoke_key(revoke_id);
        if (!revoked) return fail(revoked.error(), k_exit_failure);
        std::cerr << "revoked key '" << revoked->name << "'\n";
        return k_exit_ok;
    }
    return k_exit_usage;
}

}  // namespace distconv::dispatch
