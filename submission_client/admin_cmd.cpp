#include "submission_client/admin_cmd.hpp"

#include "submission_client/command_util.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace distconv::client {

using nlohmann::json;

int run_engines(Session& s) {
    json j = s.must(s.api().engines());
    if (s.json_mode()) {
        s.print_json(j);
        return k_exit_ok;
    }
    auto items = decode(
        s, protocol::parse_items<protocol::EngineInfo>(
               j, [](const json& x, const std::string& p) { return protocol::parse_engine_info(x, p); }));
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : items) {
        char score[32] = "-";
        if (e.benchmark_score) std::snprintf(score, sizeof score, "%.1f", *e.benchmark_score);
        rows.push_back({e.engine_id, e.hostname, std::string(protocol::to_string(e.state)),
                        std::to_string(e.running_assignments.size()) + "/" + std::to_string(e.slots), score,
                        format_bytes(static_cast<uint64_t>(std::max<int64_t>(e.free_disk_bytes, 0))),
                        ts(e.last_seen_at)});
    }
    std::cout << render_table({"ID", "HOST", "STATE", "SLOTS", "SCORE", "FREE DISK", "LAST SEEN"}, rows);
    return k_exit_ok;
}

int run_pools(Session& s) {
    json j = s.must(s.api().pools());
    if (s.json_mode()) {
        s.print_json(j);
        return k_exit_ok;
    }
    auto items = decode(s, protocol::parse_items<protocol::Pool>(j, [](const json& x, const std::string& p) {
                            return protocol::parse_pool(x, p);
                        }));
    auto b = [](int64_t v) { return format_bytes(static_cast<uint64_t>(std::max<int64_t>(v, 0))); };
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : items)
        rows.push_back({p.name, b(p.used_bytes), b(p.reserved_bytes), b(p.free_bytes),
                        p.capacity_bytes ? b(*p.capacity_bytes) : "-", p.writable ? "yes" : "no",
                        opt_str(p.path, "")});
    std::cout << render_table({"NAME", "USED", "RESERVED", "FREE", "CAPACITY", "WRITABLE", "PATH"}, rows);
    return k_exit_ok;
}

int run_presets(Session& s) {
    json j = s.must(s.api().presets());
    if (s.json_mode()) {
        s.print_json(j);
        return k_exit_ok;
    }
    auto items =
        decode(s, protocol::parse_items<protocol::Preset>(
                      j, [](const json& x, const std::string& p) { return protocol::parse_preset(x, p); }));
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : items)
        rows.push_back({p.name, opt_str(p.options.container), opt_str(p.options.video.codec),
                        opt_str(p.options.audio.codec), p.description});
    std::cout << render_table({"NAME", "CONTAINER", "VIDEO", "AUDIO", "DESCRIPTION"}, rows);
    return k_exit_ok;
}

int run_keys_create(Session& s, const std::string& name, const std::string& role) {
    json j = s.must(s.api().create_key(name, role));
    if (s.json_mode()) {
        s.print_json(j);
        return k_exit_ok;
    }
    auto k = decode(s, protocol::parse_created_key(j));
    // The secret alone on stdout (for $(...)); what it is on stderr.
    std::cerr << "created key " << k.info.key_id << " (" << k.info.name << ", "
              << protocol::to_string(k.info.role) << "); it is shown only this once\n";
    std::cout << k.key << "\n";
    return k_exit_ok;
}

int run_keys_list(Session& s, bool all) {
    json j = s.must(s.api().list_keys(all));
    if (s.json_mode()) {
        s.print_json(j);
        return k_exit_ok;
    }
    auto items = decode(
        s, protocol::parse_items<protocol::ApiKeyInfo>(
               j, [](const json& x, const std::string& p) { return protocol::parse_api_key_info(x, p); }));
    std::vector<std::vector<std::string>> rows;
    for (const auto& k : items)
        rows.push_back({k.key_id, k.name, std::string(protocol::to_string(k.role)), k.prefix + "…",
                        ts(k.created_at), ts(k.last_used_at), k.revoked ? "yes" : "no"});
    std::cout << render_table({"ID", "NAME", "ROLE", "PREFIX", "CREATED", "LAST USED", "REVOKED"}, rows);
    return k_exit_ok;
}

int run_keys_revoke(Session& s, const std::string& id) {
    json j = s.must(s.api().revoke_key(id));
    if (s.json_mode()) {
        s.print_json(j);
    } else {
        auto k = decode(s, protocol::parse_api_key_info(j));
        std::cout << "revoked " << k.key_id << " (" << k.name << ")\n";
    }
    return k_exit_ok;
}

}  // namespace distconv::client
