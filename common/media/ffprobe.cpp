#include "common/media/ffprobe.hpp"

#include "common/media/input_policy.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
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

// A printable tag value, cut to a sane length: it is shown to users and stored.
std::string tag_field(const json& obj, const char* key) {
    auto tags = obj.find("tags");
    if (tags == obj.end() || !tags->is_object()) return {};
    std::string v = string_field(*tags, key);
    if (v.size() > 256) v.resize(256);
    for (auto& c : v)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    return v;
}

// "34000/50000" -> 34000 in units of 1/`scale` (x265's master-display takes integers).
std::optional<long long> scaled(const json& obj, const char* key, double scale) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    std::optional<double> v;
    if (it->is_number()) v = it->get<double>();
    if (it->is_string()) {
        const auto& t = it->get_ref<const std::string&>();
        auto slash = t.find('/');
        if (slash == std::string::npos) {
            v = parse_ffmpeg_number(t);
        } else {
            auto num = parse_ffmpeg_number(std::string_view(t).substr(0, slash));
            auto den = parse_ffmpeg_number(std::string_view(t).substr(slash + 1));
            if (num && den && *den != 0) v = *num / *den;
        }
    }
    if (!v || !std::isfinite(*v) || *v < 0 || *v * scale > 1e12) return std::nullopt;
    return std::llround(*v * scale);
}

void read_side_data(const json& list, StreamInfo& st) {
    if (!list.is_array()) return;
    for (const auto& sd : list) {
        if (!sd.is_object()) continue;
        const std::string type = string_field(sd, "side_data_type");
        if (type == "Display Matrix") {
            if (auto r = number_field(sd, "rotation"); r && std::fabs(*r) <= 360) st.rotation = *r;
        } else if (type == "Mastering display metadata") {
            auto c = [&](const char* k) { return scaled(sd, k, 50000); };
            auto gx = c("green_x"), gy = c("green_y"), bx = c("blue_x"), by = c("blue_y"), rx = c("red_x"),
                 ry = c("red_y"), wx = c("white_point_x"), wy = c("white_point_y");
            auto lmax = scaled(sd, "max_luminance", 10000), lmin = scaled(sd, "min_luminance", 10000);
            if (gx && gy && bx && by && rx && ry && wx && wy && lmax && lmin && *lmax > 0) {
                auto p = [](long long a, long long b) {
                    return "(" + std::to_string(a) + "," + std::to_string(b) + ")";
                };
                st.mastering_display = "G" + p(*gx, *gy) + "B" + p(*bx, *by) + "R" + p(*rx, *ry) + "WP" +
                                       p(*wx, *wy) + "L" + p(*lmax, *lmin);
            }
        } else if (type == "Content light level metadata") {
            auto cll = int_field(sd, "max_content"), fall = int_field(sd, "max_average");
            if (cll && fall && *cll <= 65535 && *fall <= 65535)
                st.content_light = std::to_string(*cll) + "," + std::to_string(*fall);
        }
    }
}

// Only names ffmpeg uses: lowercase letters, digits and a few separators.
std::string name_field(const json& obj, const char* key) {
    std::string v = string_field(obj, key);
    if (v.size() > 64) return {};
    for (char c : v)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == '(' ||
              c == ')' || c == '+'))
            return {};
    return v;
}

}  // namespace

bool StreamInfo::has_disposition(std::string_view flag) const {
    return std::find(disposition.begin(), disposition.end(), flag) != disposition.end();
}

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
        info.title = tag_field(*fmt, "title");
    }
    if (auto ch = root.find("chapters"); ch != root.end() && ch->is_array())
        info.chapters = static_cast<int>(std::min<size_t>(ch->size(), 100000));
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
            st.language = name_field(s.value("tags", json::object()), "language");
            if (st.language == "und") st.language.clear();
            st.title = tag_field(s, "title");
            if (auto d = s.find("disposition"); d != s.end() && d->is_object())
                for (const auto& [flag, on] : d->items())
                    if (on.is_number_integer() && on.get<long long>() == 1 && flag.size() <= 32)
                        st.disposition.push_back(flag);
            st.channel_layout = name_field(s, "channel_layout");
            st.pix_fmt = name_field(s, "pix_fmt");
            st.color_primaries = name_field(s, "color_primaries");
            st.color_transfer = name_field(s, "color_transfer");
            st.color_space = name_field(s, "color_space");
            st.color_range = name_field(s, "color_range");
            st.field_order = name_field(s, "field_order");
            if (auto sd = s.find("side_data_list"); sd != s.end()) read_side_data(*sd, st);
            if (st.codec_type == "attachment") {
                st.filename = tag_field(s, "filename");
                st.mimetype = tag_field(s, "mimetype");
            }
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

namespace {

// {ffprobe, -v error} and, with a demuxer, the pinned input: that one file as that one format.
std::vector<std::string> pinned_ffprobe(const std::string& ffprobe, const std::string& demuxer) {
    std::vector<std::string> argv = {ffprobe, "-v", "error"};
    if (!demuxer.empty())
        argv.insert(argv.end(), {"-protocol_whitelist", std::string(k_file_protocols), "-format_whitelist",
                                 demuxer, "-f", demuxer});
    return argv;
}

}  // namespace

std::vector<std::string> ffprobe_argv(const std::string& ffprobe, const std::string& file,
                                      const std::string& demuxer) {
    auto argv = pinned_ffprobe(ffprobe, demuxer);
    argv.insert(argv.end(),
                {"-print_format", "json", "-show_format", "-show_streams", "-show_chapters", file});
    return argv;
}

std::vector<std::string> ffprobe_allowed_argv(const std::string& ffprobe, const std::string& file) {
    return {ffprobe,
            "-v",
            "error",
            "-protocol_whitelist",
            std::string(k_file_protocols),
            "-format_whitelist",
            allowed_demuxers(),
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            "-show_chapters",
            file};
}

std::vector<std::string> first_frame_argv(const std::string& ffprobe, const std::string& file,
                                          const std::string& demuxer) {
    auto argv = pinned_ffprobe(ffprobe, demuxer);
    argv.insert(argv.end(), {"-select_streams", "v:0", "-read_intervals", "%+#1", "-show_frames",
                             "-show_entries", "frame=side_data_list", "-print_format", "json", file});
    return argv;
}

void add_first_frame_side_data(ProbeInfo& info, std::string_view frames_json) {
    json root = json::parse(frames_json.begin(), frames_json.end(), nullptr, false);
    if (!root.is_object()) return;
    auto frames = root.find("frames");
    if (frames == root.end() || !frames->is_array() || frames->empty() || !(*frames)[0].is_object()) return;
    for (auto& st : info.streams) {
        if (st.codec_type != "video" || st.has_disposition("attached_pic")) continue;
        StreamInfo from_frame;
        if (auto sd = (*frames)[0].find("side_data_list"); sd != (*frames)[0].end())
            read_side_data(*sd, from_frame);
        if (st.mastering_display.empty()) st.mastering_display = from_frame.mastering_display;
        if (st.content_light.empty()) st.content_light = from_frame.content_light;
        return;
    }
}

json to_json(const ProbeInfo& info) {
    json streams = json::array();
    for (const auto& s : info.streams) {
        json j{{"index", s.index}, {"codec_type", s.codec_type}, {"codec_name", s.codec_name}};
        if (s.width) j["width"] = *s.width;
        if (s.height) j["height"] = *s.height;
        if (s.fps) j["fps"] = *s.fps;
        if (s.channels) j["channels"] = *s.channels;
        if (s.sample_rate) j["sample_rate"] = *s.sample_rate;
        if (s.duration_seconds) j["duration_seconds"] = *s.duration_seconds;
        auto text = [&](const char* k, const std::string& v) {
            if (!v.empty()) j[k] = v;
        };
        text("language", s.language);
        text("title", s.title);
        if (!s.disposition.empty()) j["disposition"] = s.disposition;
        text("channel_layout", s.channel_layout);
        text("pix_fmt", s.pix_fmt);
        text("color_primaries", s.color_primaries);
        text("color_transfer", s.color_transfer);
        text("color_space", s.color_space);
        text("color_range", s.color_range);
        text("field_order", s.field_order);
        if (s.rotation) j["rotation"] = *s.rotation;
        text("mastering_display", s.mastering_display);
        text("content_light", s.content_light);
        text("filename", s.filename);
        text("mimetype", s.mimetype);
        streams.push_back(std::move(j));
    }
    json out{{"format_name", info.format_name}, {"streams", std::move(streams)}};
    if (!info.demuxer.empty()) out["demuxer"] = info.demuxer;
    out["duration_seconds"] = info.duration_seconds ? json(*info.duration_seconds) : json();
    out["chapters"] = info.chapters;
    if (!info.title.empty()) out["title"] = info.title;
    return out;
}

ProbeInfo probe_from_json(const json& j) {
    ProbeInfo info;
    if (!j.is_object()) return info;
    info.format_name = string_field(j, "format_name");
    info.demuxer = string_field(j, "demuxer");
    info.duration_seconds = positive(number_field(j, "duration_seconds"));
    info.chapters = int_field(j, "chapters").value_or(0);
    info.title = string_field(j, "title");
    auto streams = j.find("streams");
    if (streams == j.end() || !streams->is_array()) return info;
    for (const auto& s : *streams) {
        if (!s.is_object()) continue;
        StreamInfo st;
        st.index = int_field(s, "index").value_or(static_cast<int>(info.streams.size()));
        st.codec_type = string_field(s, "codec_type");
        st.codec_name = string_field(s, "codec_name");
        st.width = int_field(s, "width");
        st.height = int_field(s, "height");
        st.fps = positive(number_field(s, "fps"));
        st.channels = int_field(s, "channels");
        st.sample_rate = int_field(s, "sample_rate");
        st.duration_seconds = positive(number_field(s, "duration_seconds"));
        st.language = string_field(s, "language");
        st.title = string_field(s, "title");
        if (auto d = s.find("disposition"); d != s.end() && d->is_array())
            for (const auto& f : *d)
                if (f.is_string()) st.disposition.push_back(f.get<std::string>());
        st.channel_layout = string_field(s, "channel_layout");
        st.pix_fmt = string_field(s, "pix_fmt");
        st.color_primaries = string_field(s, "color_primaries");
        st.color_transfer = string_field(s, "color_transfer");
        st.color_space = string_field(s, "color_space");
        st.color_range = string_field(s, "color_range");
        st.field_order = string_field(s, "field_order");
        st.rotation = number_field(s, "rotation");
        st.mastering_display = string_field(s, "mastering_display");
        st.content_light = string_field(s, "content_light");
        st.filename = string_field(s, "filename");
        st.mimetype = string_field(s, "mimetype");
        info.streams.push_back(std::move(st));
    }
    return info;
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
