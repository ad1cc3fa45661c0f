#include "transcoding_engine/capabilities.hpp"

#include "common/process.hpp"

#include <chrono>
#include <future>
#include <sstream>

namespace distconv::engine {
namespace {

std::vector<std::string> lines_of(std::string_view text) {
    std::vector<std::string> out;
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        out.push_back(line);
    }
    return out;
}

}  // namespace

std::vector<std::string> parse_codec_list(std::string_view text) {
    std::vector<std::string> names;
    bool in_table = false;
    for (const auto& line : lines_of(text)) {
        std::istringstream ls(line);
        std::string flags, name;
        if (!(ls >> flags)) continue;
        if (!in_table) {
            if (flags.find_first_not_of('-') == std::string::npos && flags.size() >= 3) in_table = true;
            continue;
        }
        // Rows are "<6 flag chars> <name> <description>"; the first flag is V, A, S or D/T.
        if (flags.size() != 6 || !(ls >> name)) continue;
        names.push_back(name);
    }
    return names;
}

std::vector<std::string> parse_hwaccels(std::string_view text) {
    std::vector<std::string> names;
    bool after_header = false;
    for (const auto& line : lines_of(text)) {
        std::istringstream ls(line);
        std::string word;
        if (!(ls >> word)) continue;
        if (!after_header) {
            if (line.find(':') != std::string::npos) after_header = true;
            continue;
        }
        names.push_back(word);
    }
    return names;
}

std::string parse_ffmpeg_version(std::string_view text) {
    for (const auto& line : lines_of(text)) {
        std::istringstream ls(line);
        std::string program, word, version;
        if ((ls >> program >> word >> version) && word == "version") return version;
    }
    return "";
}

Result<protocol::Capabilities> probe_capabilities(const std::string& ffmpeg) {
    process::Options opts;
    opts.timeout = std::chrono::seconds(30);
    auto query = [&](const char* what) -> Result<std::string> {
        auto r = process::run({ffmpeg, "-hide_banner", what}, opts);
        if (!r) return r.error();
        if (r->exit_code != 0)
            return Error(ErrorCode::Unavailable,
                         ffmpeg + " " + what + " exited with " + std::to_string(r->exit_code));
        return r->out;
    };
    // The four queries run at once: the engine's start (and so its crash report) waits on them.
    auto version_f = std::async(std::launch::async, query, "-version");
    auto encoders_f = std::async(std::launch::async, query, "-encoders");
    auto decoders_f = std::async(std::launch::async, query, "-decoders");
    auto hwaccels_f = std::async(std::launch::async, query, "-hwaccels");
    auto version = version_f.get();
    auto encoders = encoders_f.get();
    auto decoders = decoders_f.get();
    auto hwaccels = hwaccels_f.get();
    protocol::Capabilities caps;
    if (!version) return version.error();
    caps.ffmpeg_version = parse_ffmpeg_version(*version);
    if (!encoders) return encoders.error();
    caps.encoders = parse_codec_list(*encoders);
    if (!decoders) return decoders.error();
    caps.decoders = parse_codec_list(*decoders);
    if (!hwaccels) return hwaccels.error();
    caps.hwaccels = parse_hwaccels(*hwaccels);
    if (caps.encoders.empty()) return Error(ErrorCode::Unavailable, ffmpeg + " lists no encoders");
    return caps;
}

Result<double> run_benchmark(const std::string& ffmpeg) {
    constexpr int k_frames = 60;  // 2 s at 30 fps
    process::Options opts;
    opts.timeout = std::chrono::seconds(120);
    auto start = std::chrono::steady_clock::now();
    auto r = process::run({ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                           "testsrc2=size=320x240:rate=30:duration=2", "-c:v", "libx264", "-preset",
                           "ultrafast", "-f", "null", "-"},
                          opts);
    if (!r) return r.error();
    if (r->exit_code != 0)
        return Error(ErrorCode::Unavailable, "benchmark encode failed: " + process::tail_lines(r->err, 3));
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return static_cast<double>(k_frames) / std::max(seconds, 0.001);
}

}  // namespace distconv::engine
