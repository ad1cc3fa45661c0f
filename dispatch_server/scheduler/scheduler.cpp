#include "dispatch_server/scheduler/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace distconv::dispatch {

namespace {

std::set<std::string> string_set(const nlohmann::json& j) {
    std::set<std::string> out;
    if (j.is_array())
        for (const auto& v : j)
            if (v.is_string()) out.insert(v.get<std::string>());
    return out;
}

std::optional<std::string> codec_of(const nlohmann::json& resolved, const char* section) {
    if (!resolved.is_object() || !resolved.contains(section) || !resolved[section].is_object())
        return std::nullopt;
    const auto& s = resolved[section];
    if (!s.contains("codec") || !s["codec"].is_string()) return std::nullopt;
    std::string codec = s["codec"].get<std::string>();
    if (codec == "copy" || codec == "none") return std::nullopt;
    return codec;
}

// Size classes by duration (or bytes when the duration is unknown): powers of 4.
int size_class(const JobRecord& job) {
    double measure =
        job.duration_seconds ? *job.duration_seconds : static_cast<double>(job.source_size.value_or(0)) / 1e6;
    if (measure <= 1) return 0;
    return static_cast<int>(std::log(measure) / std::log(4.0));
}

}  // namespace

EngineProfile profile_of(const EngineRecord& engine, const std::vector<EngineRecord>& online_engines,
                         uint64_t disk_reserve_bytes) {
    std::vector<double> scores;
    for (const auto& e : online_engines)
        if (e.benchmark_score) scores.push_back(*e.benchmark_score);
    return profile_of(engine, scores, disk_reserve_bytes);
}

EngineProfile profile_of(const EngineRecord& engine, const std::vector<double>& scores,
                         uint64_t disk_reserve_bytes) {
    EngineProfile p;
    p.engine_id = engine.id;
    if (engine.capabilities.is_object()) {
        p.encoders = string_set(engine.capabilities.value("encoders", nlohmann::json::array()));
        p.hwaccels = string_set(engine.capabilities.value("hwaccels", nlohmann::json::array()));
    }
    p.tags.insert(engine.tags.begin(), engine.tags.end());
    p.free_disk_bytes = static_cast<uint64_t>(std::max<int64_t>(0, engine.free_disk_bytes));
    p.disk_reserve_bytes = disk_reserve_bytes;
    if (engine.benchmark_score && scores.size() > 1) {
        auto below = std::count_if(scores.begin(), scores.end(),
                                   [&](double s) { return s < *engine.benchmark_score; });
        p.speed_rank = static_cast<double>(below) / static_cast<double>(scores.size() - 1);
    }
    return p;
}

bool meets_requirements(const JobRecord& job, const EngineProfile& engine) {
    for (const char* section : {"video", "audio"}) {
        auto codec = codec_of(job.resolved, section);
        if (codec && !engine.encoders.count(*codec)) return false;
    }
    const auto& req = job.requirements;
    if (req.is_object()) {
        for (const auto& enc : string_set(req.value("encoders", nlohmann::json::array())))
            if (!engine.encoders.count(enc)) return false;
        for (const auto& tag : string_set(req.value("tags", nlohmann::json::array())))
            if (!engine.tags.count(tag)) return false;
        if (req.contains("hwaccel") && req["hwaccel"].is_string() &&
            !engine.hwaccels.count(req["hwaccel"].get<std::string>()))
            return false;
    }
    return true;
}

std::string describe_requirements(const JobRecord& job) {
    std::set<std::string> encoders;
    for (const char* section : {"video", "audio"})
        if (auto codec = codec_of(job.resolved, section)) encoders.insert(*codec);
    std::set<std::string> tags;
    std::string hwaccel;
    if (job.requirements.is_object()) {
        auto extra = string_set(job.requirements.value("encoders", nlohmann::json::array()));
        encoders.insert(extra.begin(), extra.end());
        tags = string_set(job.requirements.value("tags", nlohmann::json::array()));
        if (job.requirements.contains("hwaccel") && job.requirements["hwaccel"].is_string())
            hwaccel = job.requirements["hwaccel"].get<std::string>();
    }
    auto join = [](const std::set<std::string>& items) {
        std::string out;
        for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
        return out;
    };
    std::string out = "encoders " + (encoders.empty() ? std::string("none") : join(encoders));
    if (!tags.empty()) out += "; tags " + join(tags);
    if (!hwaccel.empty()) out += "; hwaccel " + hwaccel;
    return out;
}

TransferMode choose_transfer_mode(uint64_t source_size, uint64_t free_disk_bytes, uint64_t reserve_bytes) {
    // Saturating sum: source + an output estimate the size of the source + the reserve.
    uint64_t need = source_size;
    need = need > UINT64_MAX - source_size ? UINT64_MAX : need + source_size;
    need = need > UINT64_MAX - reserve_bytes ? UINT64_MAX : need + reserve_bytes;
    return free_disk_bytes >= need ? TransferMode::File : TransferMode::Stream;
}

std::optional<ClaimChoice> choose_job(const std::vector<ClaimCandidate>& candidates,
                                      const EngineProfile& engine) {
    bool fast = engine.speed_rank >= 0.5;
    std::optional<size_t> best;
    std::tuple<int, int, int, int, int64_t, std::string> best_key;
    for (size_t i = 0; i < candidates.size(); ++i) {
        const auto& c = candidates[i];
        if (!meets_requirements(c.job, engine)) continue;
        int cls = size_class(c.job);
        auto key = std::make_tuple(-c.job.priority, c.owner_running, fast ? -cls : cls,
                                   c.last_engine && *c.last_engine == engine.engine_id ? 1 : 0,
                                   c.job.created_at, c.job.id);
        if (!best || key < best_key) {
            best = i;
            best_key = key;
        }
    }
    if (!best) return std::nullopt;
    ClaimChoice choice;
    choice.index = *best;
    choice.transfer_mode = choose_transfer_mode(candidates[*best].job.source_size.value_or(0),
                                                engine.free_disk_bytes, engine.disk_reserve_bytes);
    return choice;
}

int64_t retry_backoff_ms(int attempt_no, int64_t base_ms, int64_t max_ms, double random01) {
    double delay = static_cast<double>(base_ms) * std::pow(2.0, std::max(0, attempt_no - 1));
    delay = std::min(delay, static_cast<double>(max_ms));
    delay *= 0.8 + 0.4 * std::clamp(random01, 0.0, 1.0);
    return static_cast<int64_t>(delay);
}

}  // namespace distconv::dispatch
