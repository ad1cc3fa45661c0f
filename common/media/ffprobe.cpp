#include "common/media/ffprobe.hpp"

#include "common/media/input_policy.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <limits>

namespace distconv::media {
namespace {

using nlohmann::json;

// A number that ffprobe may print as a JSON number or as a string; nullopt for "N/A" and junk.
std::optional<double> number_field(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    if (it->is_number()) {
        double v = it->get<double>();
        return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
    }
    if (it->is_string()) return parse_ffmpeg_number(it->get_ref<const std::string&>());
    return std::nullopt;
}

std::optional<std::int64_t> int64_field(const json& obj, const char* key) {
    auto v = number_field(obj, key);
    if (!v || *v < 0 || *v > 9e18) return std::nullopt;
    return static_cast<std::int64_t>(*v);
}

std::optional<int> int_field(const json& obj, const char* key) {
    auto v = number_field(obj, key);
    if (!v || *v < 0 || *v > std::numeric_limits<int>::max()) return std::nullopt;
    return static_cast<int>(*v);
}

std::string string_field(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_string()) return {};
    return it->get<std::string>();
}

std::optional<double> positive(std::optional<double> v) {
    if (v && *v > 0) return v;
    return std::nullopt;
}

}  // namespace

bool ProbeInfo::has_video() const {
    return first_video() != nullptr;
}
bool ProbeInfo::has_audio() const {
    return first_audio() != nullptr;
}

const StreamInfo* ProbeInfo::first_video() const {
    for (const auto& s : streams)
        if (s.codec_type == "video") return &s;
    return nullptr;
}

const StreamInfo* ProbeInfo::first_audio() const {
    for (const auto& s : streams)
        if (s.codec_type == "audio") return &s;
    return nullptr;
}

std::optional<double> parse_ffmpeg_number(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
        text.remove_suffix(1);
    if (text.empty() || text == "N/A") return std::nullopt;
    double v = 0;
    auto res = std::from_chars(text.data(), text.data() + text.size(), v);
    if (res.ec != std::errc() || res.ptr != text.data() + text.size() || !std::isfinite(v))
        return std::nullopt;
    return v;
}

std::optional<double> parse_rational(std::string_view text) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos) return positive(parse_ffmpeg_number(text));
    auto num = parse_ffmpeg_number(text.substr(0, slash));
    auto den = parse_ffmpeg_number(text.substr(slash + 1));
    if (!num || !den || *den == 0) return std::nullopt;
    const double v = *num / *den;  // "1e300/1e-300" overflows
    if (!std::isfinite(v)) return std::nullopt;
    return positive(v);
}

Result<ProbeInfo> parse_ffprobe_json(std::string_view text) {
    json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (root.is_discarded()) return Error(ErrorCode::InvalidArgument, "ffprobe output is not valid JSON");
    if (!root.is_object()) return Error(ErrorCode::InvalidArgument, "ffprobe output is not a JSON object");

    ProbeInfo info;
    auto fmt = root.find("format");
    if (fmt != root.end() && fmt->is_object()) {
        info.format_name = string_field(*fmt, "format_name");
        info.duration_seconds = positive(number_field(*fmt, "duration"));
        info.size = int64_field(*fmt, "size");
        info.bit_rate = int64_field(*fmt, "bit_rate");
    }
    auto streams = root.find("streams");
    if (streams != root.end() && !streams->is_array())
        return Error(ErrorCode::InvalidArgument, "ffprobe output has a 'streams' that is not an array");
    if (streams != root.end()) {
        for (const auto& s : *streams) {
            if (!s.is_object()) continue;
            StreamInfo st;
            st.index = int_field(s, "index").value_or(static_cast<int>(info.streams.size()));
            st.codec_type = string_field(s, "codec_type");
            st.codec_name = string_field(s, "codec_name");
            if (st.codec_type == "video") {
                st.width = int_field(s, "width");
                st.height = int_field(s, "height");
                st.fps = parse_rational(string_field(s, "avg_frame_rate"));
                if (!st.fps) st.fps = parse_rational(string_field(s, "r_frame_rate"));
            } else if (st.codec_type == "audio") {
                st.channels = int_field(s, "channels");
                st.sample_rate = int_field(s, "sample_rate");
            }
            st.duration_seconds = positive(number_field(s, "duration"));
            st.bit_rate = int64_field(s, "bit_rate");
            info.streams.push_back(std::move(st));
        }
    }
    if (!info.duration_seconds) {
        // Only audio and video count: a subtitle track may claim any length.
        for (const auto& st : info.streams)
            if ((st.codec_type == "video" || st.codec_type == "audio") && st.duration_seconds &&
                (!info.duration_seconds || *st.duration_seconds > *info.duration_seconds))
                info.duration_seconds = st.duration_seconds;
    }
    if (fmt == root.end() && streams == root.end())
        return Error(ErrorCode::InvalidArgument, "ffprobe output has neither 'format' nor 'streams'");
    if (!info.has_video() && !info.has_audio())
        return Error(ErrorCode::UnsupportedMediaType, "no audio or video stream found in the file",
                     json{{"format", info.format_name}, {"streams", info.streams.size()}});
    return info;
}

std::vector<std::string> ffprobe_argv(const std::string& ffprobe, const std::string& file,
                                      const std::string& demuxer) {
    std::vector<std::string> argv = {ffprobe, "-v", "error"};
    if (!demuxer.empty())
        argv.insert(argv.end(), {"-protocol_whitelist", std::string(k_file_protocols), "-format_whitelist",
                                 demuxer, "-f", demuxer});
    argv.insert(argv.end(), {"-print_format", "json", "-show_format", "-show_streams", file});
    return argv;
}

std::vector<std::string> ffprobe_detect_argv(const std::string& ffprobe, const std::string& file) {
    return {ffprobe,
            "-hide_banner",
            "-v",
            "debug",
            "-protocol_whitelist",
            std::string(k_file_protocols),
            "-format_whitelist",
            "none",
            file};
}

}  // namespace distconv::media
