#include "tests/integration/split/split_support.hpp"

#include "common/process.hpp"
#include "tests/support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace distconv::split_test {

namespace {

std::string num(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

std::optional<double> to_double(const nlohmann::json& v) {
    try {
        if (v.is_number()) return v.get<double>();
        if (v.is_string()) {
            const auto s = v.get<std::string>();
            if (s.empty() || s == "N/A") return std::nullopt;
            size_t used = 0;
            double d = std::stod(s, &used);
            if (used != s.size() || !std::isfinite(d)) return std::nullopt;
            return d;
        }
    } catch (...) {
    }
    return std::nullopt;
}

nlohmann::json run_ffprobe_json(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"ffprobe", "-v", "error", "-of", "json"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    if (test::run_command(argv, &out) != 0) return nullptr;
    auto j = nlohmann::json::parse(out, nullptr, false);
    return j.is_discarded() ? nlohmann::json() : j;
}

}  // namespace

int run_capture_all(const std::vector<std::string>& argv, std::string* out) {
    auto run = process::run(argv);
    if (!run) return -1;
    if (out) *out += run->out + run->err;
    return run->exit_code;
}

bool make_source(const std::filesystem::path& path, const SourceSpec& spec, std::string* log) {
    const auto dir = path.parent_path();
    const std::string size = std::to_string(spec.width) + "x" + std::to_string(spec.height);
    const std::string dur = num(spec.seconds);
    std::vector<std::string> argv{"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"};
    if (spec.vfr) {
        // Two rates on one timebase fine enough for both (1/(5 fps)), kept as they are (-fps_mode vfr).
        const std::string half = num(spec.seconds / 2);
        const std::string tb = "settb=1/" + std::to_string(spec.fps * 5);
        argv.insert(
            argv.end(),
            {"-filter_complex",
             "testsrc2=size=" + size + ":rate=" + std::to_string(spec.fps) + ":duration=" + half + "," + tb +
                 "[a];testsrc2=size=" + size + ":rate=" + std::to_string(spec.fps * 5 / 4) +
                 ":duration=" + half + "," + tb + "[b];[a][b]concat=n=2:v=1:a=0[v]",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=" + dur, "-map", "[v]",
             "-map", "0:a", "-fps_mode", "vfr", "-force_key_frames", "expr:gte(t,n_forced*2)"});
    } else {
        argv.insert(argv.end(),
                    {"-f", "lavfi", "-i",
                     "testsrc2=size=" + size + ":rate=" + std::to_string(spec.fps) + ":duration=" + dur, "-f",
                     "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=" + dur});
        if (spec.extras) {
            const auto srt = dir / "source-subs.srt";
            test::write_file(srt,
                             "1\n00:00:01,000 --> 00:00:03,000\nHello\n\n"
                             "2\n00:00:19,000 --> 00:00:22,000\nAcross a seam\n\n"
                             "3\n00:00:31,000 --> 00:00:33,000\nLater\n\n");
            const auto meta = dir / "source-meta.txt";
            const long end_ms = std::lround(spec.seconds * 1000);
            test::write_file(meta,
                             ";FFMETADATA1\ntitle=distconv split test\n"
                             "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=15000\ntitle=One\n"
                             "[CHAPTER]\nTIMEBASE=1/1000\nSTART=15000\nEND=" +
                                 std::to_string(end_ms) + "\ntitle=Two\n");
            argv.insert(argv.end(), {"-f",
                                     "lavfi",
                                     "-i",
                                     "sine=frequency=660:sample_rate=48000:duration=" + dur,
                                     "-i",
                                     srt.string(),
                                     "-i",
                                     meta.string(),
                                     "-map",
                                     "0:v",
                                     "-map",
                                     "1:a",
                                     "-map",
                                     "2:a",
                                     "-map",
                                     "3:s",
                                     "-map_metadata",
                                     "4",
                                     "-map_chapters",
                                     "4",
                                     "-c:s",
                                     "mov_text",
                                     "-metadata:s:a:1",
                                     "language=fre",
                                     "-metadata:s:s:0",
                                     "language=eng"});
        } else {
            argv.insert(argv.end(), {"-map", "0:v", "-map", "1:a"});
        }
        const std::string gop = std::to_string(spec.gop > 0 ? spec.gop : 100000);
        argv.insert(argv.end(), {"-g", gop, "-keyint_min", gop, "-sc_threshold", "0"});
    }
    argv.insert(argv.end(),
                {"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
                 "-ar", "48000", "-b:a", "96k", "-metadata:s:a:0", "language=eng", path.string()});
    std::string out;
    const int rc = run_capture_all(argv, &out);
    if (log) *log = out;
    return rc == 0 && std::filesystem::exists(path);
}

nlohmann::json probe_all(const std::filesystem::path& file) {
    return run_ffprobe_json({"-show_streams", "-show_format", "-show_chapters", file.string()});
}

std::optional<long> decoded_video_frames(const std::filesystem::path& file) {
    auto j = run_ffprobe_json(
        {"-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", file.string()});
    if (!j.is_object() || !j.contains("streams") || j["streams"].empty()) return std::nullopt;
    auto v = to_double(j["streams"][0].value("nb_read_frames", nlohmann::json()));
    if (!v) return std::nullopt;
    return static_cast<long>(*v);
}

std::optional<long> video_keyframes(const std::filesystem::path& file) {
    std::string out;
    if (test::run_command({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "packet=flags", "-of", "csv=p=0", file.string()},
                          &out) != 0)
        return std::nullopt;
    std::istringstream lines(out);
    long keys = 0;
    for (std::string line; std::getline(lines, line);)
        if (!line.empty() && line[0] == 'K') ++keys;
    return keys;
}

std::optional<StreamSpan> stream_span(const std::filesystem::path& file, const std::string& selector) {
    auto j = run_ffprobe_json({"-select_streams", selector, "-show_entries",
                               "stream=start_time,duration:packet=pts_time,duration_time", file.string()});
    if (!j.is_object() || !j.contains("streams") || j["streams"].empty()) return std::nullopt;
    const auto& s = j["streams"][0];
    StreamSpan span;
    std::optional<double> first_pts, last_end;
    std::vector<double> durations;
    for (const auto& p : j.value("packets", nlohmann::json::array())) {
        auto pts = to_double(p.value("pts_time", nlohmann::json()));
        auto d = to_double(p.value("duration_time", nlohmann::json()));
        ++span.packets;
        if (!pts) continue;
        if (!first_pts || *pts < *first_pts) first_pts = *pts;
        const double end = *pts + d.value_or(0.0);
        if (!last_end || end > *last_end) last_end = end;
        if (d && *d > 0) durations.push_back(*d);
    }
    auto start_time = to_double(s.value("start_time", nlohmann::json()));
    auto duration = to_double(s.value("duration", nlohmann::json()));
    if (!start_time && !first_pts) return std::nullopt;
    span.start = start_time ? *start_time : *first_pts;
    if (duration) {
        span.end = span.start + *duration;
    } else if (last_end) {
        span.end = *last_end;
    } else {
        return std::nullopt;
    }
    if (!durations.empty()) {
        std::nth_element(durations.begin(), durations.begin() + durations.size() / 2, durations.end());
        span.frame = durations[durations.size() / 2];
    }
    return span;
}

std::vector<double> video_pts(const std::filesystem::path& file) {
    std::string out;
    std::vector<double> pts;
    if (test::run_command({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "packet=pts_time", "-of", "csv=p=0", file.string()},
                          &out) != 0)
        return pts;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
        if (auto v = to_double(nlohmann::json(line.substr(0, line.find(','))))) pts.push_back(*v);
    }
    std::sort(pts.begin(), pts.end());
    return pts;
}

std::string dts_problem(const std::filesystem::path& file) {
    std::string out;
    if (test::run_command({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "packet=dts,pts", "-of", "csv=p=0", file.string()},
                          &out) != 0)
        return "ffprobe failed on " + file.string();
    std::istringstream lines(out);
    std::optional<long long> prev;
    long n = 0;
    for (std::string line; std::getline(lines, line); ++n) {
        // csv: pts,dts (ffprobe prints them in its own field order: pts first)
        std::vector<std::string> fields;
        std::stringstream ss(line);
        for (std::string f; std::getline(ss, f, ',');) fields.push_back(f);
        if (fields.size() < 2) return "packet " + std::to_string(n) + ": unreadable line '" + line + "'";
        const std::string& dts = fields[1];
        long long v = 0;
        try {
            size_t used = 0;
            v = std::stoll(dts, &used);
            if (used != dts.size()) throw std::invalid_argument(dts);
        } catch (...) {
            return "packet " + std::to_string(n) + " has no DTS ('" + line + "')";
        }
        if (prev && v <= *prev)
            return "packet " + std::to_string(n) + ": DTS " + std::to_string(v) + " after " +
                   std::to_string(*prev);
        prev = v;
    }
    if (n == 0) return "no video packets";
    return "";
}

std::string decode_errors(const std::filesystem::path& file, int* rc) {
    std::string out;
    int code = run_capture_all(
        {"ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", file.string(), "-f", "null", "-"}, &out);
    if (rc) *rc = code;
    return out;
}

std::optional<PsnrResult> psnr(const std::filesystem::path& encoded, const std::filesystem::path& reference,
                               const std::filesystem::path& stats_file, std::string* log) {
    std::error_code ec;
    std::filesystem::remove(stats_file, ec);
    const std::string graph =
        "[0:v]setpts=PTS-STARTPTS[e];[1:v]setpts=PTS-STARTPTS[r];[e][r]psnr=stats_file='" +
        stats_file.string() + "'";
    std::string out;
    int rc = run_capture_all({"ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", encoded.string(),
                              "-i", reference.string(), "-lavfi", graph, "-f", "null", "-"},
                             &out);
    if (log) *log = out;
    if (rc != 0) return std::nullopt;
    std::istringstream lines(test::read_file(stats_file));
    PsnrResult r;
    double mse_sum = 0;
    for (std::string line; std::getline(lines, line);) {
        auto field = [&](const std::string& key) -> std::optional<std::string> {
            auto at = line.find(" " + key + ":");
            if (at == std::string::npos) return std::nullopt;
            at += key.size() + 2;
            return line.substr(at, line.find(' ', at) - at);
        };
        auto mse = field("mse_avg");
        auto p = field("psnr_avg");
        if (!mse || !p) continue;
        mse_sum += std::stod(*mse);
        r.per_frame.push_back(*p == "inf" ? 100.0 : std::stod(*p));
    }
    if (r.per_frame.empty()) return std::nullopt;
    const double mse_mean = mse_sum / static_cast<double>(r.per_frame.size());
    r.average = mse_mean > 0 ? 10.0 * std::log10(255.0 * 255.0 / mse_mean) : 100.0;
    return r;
}

const nlohmann::json& split_of(const nlohmann::json& job) {
    static const nlohmann::json k_null;
    if (!job.is_object() || !job.contains("split") || !job["split"].is_object()) return k_null;
    return job["split"];
}

std::vector<nlohmann::json> segments_of_kind(const nlohmann::json& job, const std::string& kind) {
    std::vector<nlohmann::json> out;
    const auto& s = split_of(job);
    if (!s.is_object() || !s.contains("segments") || !s["segments"].is_array()) return out;
    for (const auto& seg : s["segments"])
        if (seg.is_object() && seg.value("kind", "") == kind) out.push_back(seg);
    return out;
}

bool attempt_completed(const nlohmann::json& a) {
    if (!a.is_object()) return false;
    if (a.contains("state") && a["state"].is_string()) return a["state"].get<std::string>() == "completed";
    return !a.value("finished_at", nlohmann::json()).is_null() &&
           a.value("error_class", nlohmann::json()).is_null();
}

}  // namespace distconv::split_test
