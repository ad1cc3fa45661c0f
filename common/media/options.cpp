#include "common/media/options.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <regex>

namespace distconv::media {
namespace {

using nlohmann::json;
using Names = std::vector<std::string_view>;

bool contains(const Names& list, std::string_view value) {
    return std::find(list.begin(), list.end(), value) != list.end();
}

std::string join(const Names& list) {
    std::string out;
    for (auto name : list) {
        if (!out.empty()) out += ", ";
        out += name;
    }
    return out;
}

std::string format_number(double value) {
    if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15)
        return std::to_string(static_cast<long long>(value));
    std::array<char, 64> buf{};
    auto res = std::to_chars(buf.data(), buf.data() + buf.size(), value);
    return std::string(buf.data(), res.ptr);
}

// ---------------------------------------------------------------------------------------------
// Allow-lists and the container table.

const Names k_video_codecs = {"libx264",   "libx265", "libvpx", "libvpx-vp9", "libaom-av1",
                              "libsvtav1", "mpeg4",   "copy",   "none"};
const Names k_audio_codecs = {"aac", "libopus", "libvorbis", "libmp3lame", "flac", "ac3", "copy", "none"};
const Names k_x26x_presets = {"ultrafast", "superfast", "veryfast", "faster",   "fast",
                              "medium",    "slow",      "slower",   "veryslow", "placebo"};
const Names k_sample_rates = {"8000",  "11025", "12000", "16000", "22050",  "24000", "32000",
                              "44100", "48000", "88200", "96000", "176400", "192000"};

struct ContainerInfo {
    std::string_view name;
    std::string_view muxer;
    Names extensions;  // the first is the one default_output_filename uses
    Names video;       // empty: audio only, video.codec must be "none"
    Names audio;
};

const std::vector<ContainerInfo>& containers() {
    static const std::vector<ContainerInfo> table = {
        {"mp4",
         "mp4",
         {"mp4", "m4v"},
         {"libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1", "mpeg4"},
         {"aac", "libmp3lame", "libopus", "ac3"}},
        {"mov", "mov", {"mov"}, {"libx264", "libx265", "mpeg4"}, {"aac", "libmp3lame", "ac3"}},
        {"mkv",
         "matroska",
         {"mkv"},
         {"libx264", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1", "mpeg4"},
         {"aac", "libopus", "libvorbis", "libmp3lame", "flac", "ac3"}},
        {"webm",
         "webm",
         {"webm"},
         {"libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"},
         {"libopus", "libvorbis"}},
        {"ts", "mpegts", {"ts"}, {"libx264", "libx265", "mpeg4"}, {"aac", "libmp3lame", "ac3", "libopus"}},
        {"m4a", "ipod", {"m4a"}, {}, {"aac"}},
        {"mp3", "mp3", {"mp3"}, {}, {"libmp3lame"}},
        {"ogg", "ogg", {"ogg", "oga", "opus"}, {}, {"libopus", "libvorbis", "flac"}},
        {"flac", "flac", {"flac"}, {}, {"flac"}},
    };
    return table;
}

const ContainerInfo* find_container(std::string_view name) {
    for (const auto& c : containers())
        if (c.name == name) return &c;
    return nullptr;
}

const ContainerInfo* container_for_extension(std::string_view ext) {
    std::string lower(ext);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    for (const auto& c : containers())
        if (contains(c.extensions, lower)) return &c;
    return nullptr;
}

std::string_view extension_of(std::string_view filename) {
    auto dot = filename.rfind('.');
    if (dot == std::string_view::npos || dot == 0) return {};
    return filename.substr(dot + 1);
}

bool is_x26x(std::string_view codec) {
    return codec == "libx264" || codec == "libx265";
}
bool is_vpx_or_aom(std::string_view codec) {
    return codec == "libvpx" || codec == "libvpx-vp9" || codec == "libaom-av1";
}
bool is_encoding(std::string_view codec) {
    return codec != "copy" && codec != "none";
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid UTF-8.
size_t utf8_sequence_length(std::string_view s, size_t i) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = b(i);
    if (c < 0x80) return 1;
    size_t n = 0;
    unsigned int cp = 0;
    if ((c & 0xE0) == 0xC0) {
        n = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        cp = c & 0x07;
    } else
        return 0;
    if (i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k) {
        if ((b(i + k) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b(i + k) & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8_sequence_length(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// String and number checks shared by every field.

struct TextRules {
    size_t max_len = 64;
    bool allow_slash = false;      // fps "30000/1001"
    bool allow_non_ascii = false;  // output_filename may be UTF-8
};

// Rejects what can never be a sane option value: empty, too long, NUL or control characters,
// and anything that looks like a protocol, a path or a pipe, because ffmpeg would act on those.
Status check_text(const std::string& field, const std::string& value, TextRules rules = {}) {
    if (value.empty()) return Error::invalid(field, field + " must not be empty");
    if (value.size() > rules.max_len)
        return Error::invalid(field,
                              field + " is too long (at most " + std::to_string(rules.max_len) + " bytes)");
    for (unsigned char c : value) {
        if (c == 0) return Error::invalid(field, field + " must not contain a NUL byte");
        if (c < 0x20 || c == 0x7f)
            return Error::invalid(field, field + " must not contain control characters");
        if (c >= 0x80 && !rules.allow_non_ascii) return Error::invalid(field, field + " must be plain ASCII");
    }
    static const std::regex k_protocol("^[A-Za-z][A-Za-z0-9+.-]*:");
    if (std::regex_search(value, k_protocol) || value.find("://") != std::string::npos)
        return Error::invalid(field, field + " must not name a protocol ('" + value + "')");
    if ((!rules.allow_slash && value.find('/') != std::string::npos) || value.find('\\') != std::string::npos)
        return Error::invalid(field, field + " must not contain a path");
    if (value.find('|') != std::string::npos) return Error::invalid(field, field + " must not contain '|'");
    return {};
}

std::optional<long long> parse_int(std::string_view text) {
    if (text.empty() || text.size() > 12) return std::nullopt;
    long long v = 0;
    auto res = std::from_chars(text.data(), text.data() + text.size(), v);
    if (res.ec != std::errc() || res.ptr != text.data() + text.size()) return std::nullopt;
    return v;
}

Status check_int_range(const std::string& field, long long v, long long lo, long long hi) {
    if (v < lo || v > hi)
        return Error::invalid(field, field + " must be between " + std::to_string(lo) + " and " +
                                         std::to_string(hi) + " (got " + std::to_string(v) + ")");
    return {};
}

Status check_rate(const std::string& field, const std::string& value, double lo, double hi) {
    DISTCONV_TRY(check_text(field, value, {.max_len = 16}));
    auto bits = parse_bitrate(value);
    if (!bits)
        return Error::invalid(field, field + " must look like 128k, 3M or 2500000 (got '" + value + "')");
    if (*bits < lo || *bits > hi)
        return Error::invalid(field, field + " must be between " + format_number(lo) + " and " +
                                         format_number(hi) + " bits/s (got '" + value + "')");
    return {};
}

// ---------------------------------------------------------------------------------------------
// JSON -> JobOptions.

Status expect_object(const json& j, const std::string& field) {
    if (!j.is_object())
        return Error::invalid(field, field + " must be an object, not " + std::string(j.type_name()));
    return {};
}

std::string join_field(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
}

Status read_string(const json& j, const std::string& field, std::optional<std::string>& out) {
    if (j.is_null()) return {};
    if (!j.is_string())
        return Error::invalid(field, field + " must be a string, not " + std::string(j.type_name()));
    out = j.get<std::string>();
    return {};
}

Status read_int(const json& j, const std::string& field, std::optional<int>& out) {
    if (j.is_null()) return {};
    if (j.is_number_integer()) {
        // is_number_integer covers both signed and unsigned storage.
        if (j.is_number_unsigned()) {
            auto v = j.get<std::uint64_t>();
            if (v > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
                return Error::invalid(field, field + " is out of range");
            out = static_cast<int>(v);
            return {};
        }
        auto v = j.get<std::int64_t>();
        if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
            return Error::invalid(field, field + " is out of range");
        out = static_cast<int>(v);
        return {};
    }
    if (j.is_number_float()) {
        double d = j.get<double>();
        if (!std::isfinite(d)) return Error::invalid(field, field + " must be a finite number");
        if (d != std::floor(d)) return Error::invalid(field, field + " must be an integer");
        if (d < std::numeric_limits<int>::min() || d > std::numeric_limits<int>::max())
            return Error::invalid(field, field + " is out of range");
        out = static_cast<int>(d);
        return {};
    }
    return Error::invalid(field, field + " must be an integer, not " + std::string(j.type_name()));
}

Status read_double(const json& j, const std::string& field, std::optional<double>& out) {
    if (j.is_null()) return {};
    if (!j.is_number())
        return Error::invalid(field, field + " must be a number, not " + std::string(j.type_name()));
    double d = j.get<double>();
    if (!std::isfinite(d)) return Error::invalid(field, field + " must be a finite number");
    out = d;
    return {};
}

// fps may be a JSON number (30, 29.97) or a string ("30000/1001"); it is kept as text.
Status read_fps(const json& j, const std::string& field, std::optional<std::string>& out) {
    if (j.is_null()) return {};
    if (j.is_number()) {
        double d = j.get<double>();
        if (!std::isfinite(d)) return Error::invalid(field, field + " must be a finite number");
        if (d <= 0 || d > 1e6) return Error::invalid(field, field + " must be between 1 and 240");
        out = format_number(d);
        return {};
    }
    if (j.is_string()) {
        out = j.get<std::string>();
        return {};
    }
    return Error::invalid(
        field, field + " must be a number or a \"num/den\" string, not " + std::string(j.type_name()));
}

Status read_string_list(const json& j, const std::string& field,
                        std::optional<std::vector<std::string>>& out) {
    if (j.is_null()) return {};
    if (!j.is_array()) return Error::invalid(field, field + " must be an array of strings");
    if (j.size() > 32) return Error::invalid(field, field + " may name at most 32 entries");
    std::vector<std::string> v;
    for (const auto& e : j) {
        if (!e.is_string()) return Error::invalid(field, field + " must be an array of strings");
        v.push_back(e.get<std::string>());
    }
    out = std::move(v);
    return {};
}

Status parse_video(const json& j, VideoOptions& v) {
    DISTCONV_TRY(expect_object(j, "video"));
    for (const auto& [key, value] : j.items()) {
        std::string field = join_field("video", key);
        if (key == "codec")
            DISTCONV_TRY(read_string(value, field, v.codec));
        else if (key == "crf")
            DISTCONV_TRY(read_int(value, field, v.crf));
        else if (key == "bitrate")
            DISTCONV_TRY(read_string(value, field, v.bitrate));
        else if (key == "maxrate")
            DISTCONV_TRY(read_string(value, field, v.maxrate));
        else if (key == "bufsize")
            DISTCONV_TRY(read_string(value, field, v.bufsize));
        else if (key == "preset")
            DISTCONV_TRY(read_string(value, field, v.preset));
        else if (key == "fps")
            DISTCONV_TRY(read_fps(value, field, v.fps));
        else if (key == "scale")
            DISTCONV_TRY(read_string(value, field, v.scale));
        else if (key == "pix_fmt")
            DISTCONV_TRY(read_string(value, field, v.pix_fmt));
        else if (key == "profile")
            DISTCONV_TRY(read_string(value, field, v.profile));
        else if (key == "deinterlace")
            DISTCONV_TRY(read_string(value, field, v.deinterlace));
        else if (key == "hdr")
            DISTCONV_TRY(read_string(value, field, v.hdr));
        else
            return Error::invalid(field, "unknown option " + field);
    }
    return {};
}

Status parse_audio(const json& j, AudioOptions& a) {
    DISTCONV_TRY(expect_object(j, "audio"));
    for (const auto& [key, value] : j.items()) {
        std::string field = join_field("audio", key);
        if (key == "codec")
            DISTCONV_TRY(read_string(value, field, a.codec));
        else if (key == "bitrate")
            DISTCONV_TRY(read_string(value, field, a.bitrate));
        else if (key == "channels")
            DISTCONV_TRY(read_int(value, field, a.channels));
        else if (key == "sample_rate")
            DISTCONV_TRY(read_int(value, field, a.sample_rate));
        else if (key == "tracks")
            DISTCONV_TRY(read_string(value, field, a.tracks));
        else if (key == "languages")
            DISTCONV_TRY(read_string_list(value, field, a.languages));
        else
            return Error::invalid(field, "unknown option " + field);
    }
    return {};
}

Status parse_subtitles(const json& j, SubtitleOptions& s) {
    DISTCONV_TRY(expect_object(j, "subtitles"));
    for (const auto& [key, value] : j.items()) {
        std::string field = join_field("subtitles", key);
        if (key == "mode")
            DISTCONV_TRY(read_string(value, field, s.mode));
        else if (key == "languages")
            DISTCONV_TRY(read_string_list(value, field, s.languages));
        else if (key == "on_unsupported")
            DISTCONV_TRY(read_string(value, field, s.on_unsupported));
        else
            return Error::invalid(field, "unknown option " + field);
    }
    return {};
}

Status parse_trim(const json& j, TrimOptions& t) {
    DISTCONV_TRY(expect_object(j, "trim"));
    for (const auto& [key, value] : j.items()) {
        std::string field = join_field("trim", key);
        if (key == "start")
            DISTCONV_TRY(read_double(value, field, t.start));
        else if (key == "duration")
            DISTCONV_TRY(read_double(value, field, t.duration));
        else
            return Error::invalid(field, "unknown option " + field);
    }
    return {};
}

Status parse_split(const json& j, SplitOptions& t) {
    DISTCONV_TRY(expect_object(j, "split"));
    for (const auto& [key, value] : j.items()) {
        std::string field = join_field("split", key);
        if (key == "mode")
            DISTCONV_TRY(read_string(value, field, t.mode));
        else if (key == "segment_seconds")
            DISTCONV_TRY(read_double(value, field, t.segment_seconds));
        else
            return Error::invalid(field, "unknown option " + field);
    }
    return {};
}

Status parse_extra_args(const json& j, std::optional<std::vector<std::string>>& out) {
    if (j.is_null()) return {};
    if (!j.is_array())
        return Error::invalid("extra_args",
                              "extra_args must be an array of strings, not " + std::string(j.type_name()));
    std::vector<std::string> args;
    for (size_t i = 0; i < j.size(); ++i) {
        if (!j[i].is_string())
            return Error::invalid("extra_args[" + std::to_string(i) + "]",
                                  "extra_args[" + std::to_string(i) + "] must be a string");
        args.push_back(j[i].get<std::string>());
    }
    out = std::move(args);
    return {};
}

// ---------------------------------------------------------------------------------------------
// Value validation.

Status validate_output_filename(const std::string& name) {
    const std::string field = "output_filename";
    if (name.empty()) return Error::invalid(field, "output_filename must not be empty");
    if (name.size() > 255) return Error::invalid(field, "output_filename is longer than 255 bytes");
    if (!valid_utf8(name)) return Error::invalid(field, "output_filename must be valid UTF-8");
    if (name == "." || name == "..") return Error::invalid(field, "output_filename must be a file name");
    for (unsigned char c : name) {
        if (c == 0) return Error::invalid(field, "output_filename must not contain a NUL byte");
        if (c < 0x20 || c == 0x7f)
            return Error::invalid(field, "output_filename must not contain control characters");
    }
    if (name.find('/') != std::string::npos || name.find('\\') != std::string::npos)
        return Error::invalid(field, "output_filename must be a plain file name, without '/' or '\\'");
    if (name.find("..") != std::string::npos)
        return Error::invalid(field, "output_filename must not contain '..'");
    if (name.front() == '-') return Error::invalid(field, "output_filename must not start with '-'");
    if (name.front() == '.') return Error::invalid(field, "output_filename must not start with '.'");
    // ':' could make ffmpeg read the name as a protocol ("file:", "pipe:"); '|' as a concat list.
    if (name.find(':') != std::string::npos || name.find('|') != std::string::npos)
        return Error::invalid(field, "output_filename must not contain ':' or '|'");
    return {};
}

Status validate_fps(const std::string& fps) {
    const std::string field = "video.fps";
    DISTCONV_TRY(check_text(field, fps, {.max_len = 24, .allow_slash = true}));
    static const std::regex k_ratio("^([0-9]{1,9})/([0-9]{1,9})$");
    static const std::regex k_decimal("^[0-9]{1,6}(\\.[0-9]{1,6})?$");
    std::smatch m;
    double value = 0;
    if (std::regex_match(fps, m, k_ratio)) {
        double num = std::stod(m[1].str());
        double den = std::stod(m[2].str());
        if (den == 0) return Error::invalid(field, "video.fps has a zero denominator");
        value = num / den;
    } else if (std::regex_match(fps, k_decimal)) {
        value = std::stod(fps);
    } else {
        return Error::invalid(field, "video.fps must be a number or \"num/den\" (got '" + fps + "')");
    }
    if (!(value >= 1 && value <= 240)) return Error::invalid(field, "video.fps must be between 1 and 240");
    return {};
}

Status validate_scale(const std::string& scale) {
    const std::string field = "video.scale";
    DISTCONV_TRY(check_text(field, scale, {.max_len = 16}));
    static const std::regex k_scale("^(-?[0-9]{1,5}):(-?[0-9]{1,5})$");
    std::smatch m;
    if (!std::regex_match(scale, m, k_scale))
        return Error::invalid(field, "video.scale must be \"W:H\" such as \"1280:720\" or \"-2:720\"");
    for (int i = 1; i <= 2; ++i) {
        long long v = std::stoll(m[i].str());
        if (v == -1 || v == -2) continue;
        if (v < 16 || v > 16384)
            return Error::invalid(
                field, "video.scale sizes must be between 16 and 16384, or -1/-2 to keep the aspect");
        if (v % 2 != 0) return Error::invalid(field, "video.scale sizes must be even (4:2:0 video needs it)");
    }
    return {};
}

Status check_choice(const std::string& field, const std::optional<std::string>& value, const Names& allowed) {
    if (!value) return {};
    DISTCONV_TRY(check_text(field, *value, {.max_len = 16}));
    if (!contains(allowed, *value))
        return Error::invalid(field, field + " must be one of " + join(allowed) + " (got '" + *value + "')");
    return {};
}

// ISO 639-1 or -2 codes: two or three lowercase letters, each named once.
Status check_languages(const std::string& field, const std::optional<std::vector<std::string>>& list) {
    if (!list) return {};
    if (list->empty()) return Error::invalid(field, field + " must name at least one language");
    for (size_t i = 0; i < list->size(); ++i) {
        const auto& l = (*list)[i];
        DISTCONV_TRY(check_text(field, l, {.max_len = 8}));
        const bool ok = (l.size() == 2 || l.size() == 3) &&
                        std::all_of(l.begin(), l.end(), [](char c) { return c >= 'a' && c <= 'z'; });
        if (!ok)
            return Error::invalid(
                field, field + " entries are ISO 639 codes such as \"eng\" or \"fr\" (got '" + l + "')");
        for (size_t k = 0; k < i; ++k)
            if ((*list)[k] == l) return Error::invalid(field, field + " names '" + l + "' twice");
    }
    return {};
}

Status validate_video(const VideoOptions& v) {
    DISTCONV_TRY(check_choice("video.deinterlace", v.deinterlace, {"auto", "on", "off"}));
    DISTCONV_TRY(check_choice("video.hdr", v.hdr, {"keep", "tonemap"}));
    if (v.codec) {
        DISTCONV_TRY(check_text("video.codec", *v.codec));
        if (!contains(k_video_codecs, *v.codec))
            return Error::invalid("video.codec", "unknown video codec '" + *v.codec +
                                                     "' (allowed: " + join(k_video_codecs) + ")");
    }
    const std::string codec = v.codec.value_or("");
    if (!codec.empty() && !is_encoding(codec)) {
        // copy and none take no encoder settings: say which field is in the way.
        const std::pair<const char*, bool> set_fields[] = {
            {"video.crf", v.crf.has_value()},         {"video.bitrate", v.bitrate.has_value()},
            {"video.maxrate", v.maxrate.has_value()}, {"video.bufsize", v.bufsize.has_value()},
            {"video.preset", v.preset.has_value()},   {"video.fps", v.fps.has_value()},
            {"video.scale", v.scale.has_value()},     {"video.pix_fmt", v.pix_fmt.has_value()},
            {"video.profile", v.profile.has_value()}};
        for (const auto& [field, set] : set_fields)
            if (set)
                return Error::invalid(field,
                                      std::string(field) + " cannot be used with video.codec " + codec);
        return {};
    }
    if (v.crf) {
        int lo = 0;
        int hi = 63;
        if (is_x26x(codec)) hi = 51;
        if (codec == "mpeg4")
            return Error::invalid("video.crf", "video.crf is not supported by mpeg4; use bitrate");
        DISTCONV_TRY(check_int_range("video.crf", *v.crf, lo, hi));
    }
    if (v.bitrate) DISTCONV_TRY(check_rate("video.bitrate", *v.bitrate, 16e3, 500e6));
    if (v.maxrate) DISTCONV_TRY(check_rate("video.maxrate", *v.maxrate, 16e3, 500e6));
    if (v.bufsize) DISTCONV_TRY(check_rate("video.bufsize", *v.bufsize, 16e3, 500e6));
    if (v.maxrate && !v.bufsize)
        return Error::invalid("video.bufsize", "video.maxrate needs video.bufsize as well");
    if (v.preset) {
        DISTCONV_TRY(check_text("video.preset", *v.preset));
        if (codec.empty()) {
            // The codec comes from a preset later: accept what some codec accepts.
            auto n = parse_int(*v.preset);
            if (!contains(k_x26x_presets, *v.preset) && !(n && *n >= 0 && *n <= 13))
                return Error::invalid("video.preset", "unknown video.preset '" + *v.preset + "'");
        } else if (is_x26x(codec)) {
            if (!contains(k_x26x_presets, *v.preset))
                return Error::invalid("video.preset", "unknown video.preset '" + *v.preset +
                                                          "' (allowed: " + join(k_x26x_presets) + ")");
        } else if (is_vpx_or_aom(codec) || codec == "libsvtav1") {
            auto n = parse_int(*v.preset);
            int hi = codec == "libsvtav1" ? 13 : 8;
            if (!n || *n < 0 || *n > hi)
                return Error::invalid("video.preset", "video.preset for " + codec + " is a speed from 0 to " +
                                                          std::to_string(hi) + " (got '" + *v.preset + "')");
        } else {
            return Error::invalid("video.preset", "video.preset is not supported by " + codec);
        }
    }
    if (v.fps) DISTCONV_TRY(validate_fps(*v.fps));
    if (v.scale) DISTCONV_TRY(validate_scale(*v.scale));
    if (v.pix_fmt) {
        DISTCONV_TRY(check_text("video.pix_fmt", *v.pix_fmt));
        Names allowed = {"yuv420p",     "yuv422p",     "yuv444p", "yuv420p10le",
                         "yuv422p10le", "yuv444p10le", "nv12"};
        if (codec == "mpeg4" || codec == "libvpx")
            allowed = {"yuv420p"};
        else if (codec == "libsvtav1")
            allowed = {"yuv420p", "yuv420p10le"};
        else if (codec == "libx265" || codec == "libaom-av1" || codec == "libvpx-vp9")
            allowed = {"yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le"};
        if (!contains(allowed, *v.pix_fmt))
            return Error::invalid("video.pix_fmt", "video.pix_fmt '" + *v.pix_fmt + "' is not allowed" +
                                                       (codec.empty() ? "" : " for " + codec) +
                                                       " (allowed: " + join(allowed) + ")");
    }
    if (v.profile) {
        DISTCONV_TRY(check_text("video.profile", *v.profile));
        Names allowed;
        if (codec == "libx264")
            allowed = {"baseline", "main", "high", "high10", "high422", "high444"};
        else if (codec == "libx265")
            allowed = {"main", "main10", "main12", "main422-10", "main444-8", "mainstillpicture"};
        else if (codec == "libvpx-vp9")
            allowed = {"0", "1", "2", "3"};
        else if (codec == "libaom-av1" || codec == "libsvtav1")
            allowed = {"main", "high", "professional"};
        else if (codec.empty())
            allowed = {"baseline", "main",   "high",       "high10",    "high422",          "high444",
                       "main10",   "main12", "main422-10", "main444-8", "mainstillpicture", "professional",
                       "0",        "1",      "2",          "3"};
        if (!contains(allowed, *v.profile))
            return Error::invalid("video.profile",
                                  "video.profile '" + *v.profile + "' is not allowed" +
                                      (codec.empty() ? "" : " for " + codec) +
                                      (allowed.empty() ? "" : " (allowed: " + join(allowed) + ")"));
    }
    return {};
}

Status validate_audio(const AudioOptions& a) {
    DISTCONV_TRY(check_choice("audio.tracks", a.tracks, {"all", "first"}));
    DISTCONV_TRY(check_languages("audio.languages", a.languages));
    if (a.codec) {
        DISTCONV_TRY(check_text("audio.codec", *a.codec));
        if (!contains(k_audio_codecs, *a.codec))
            return Error::invalid("audio.codec", "unknown audio codec '" + *a.codec +
                                                     "' (allowed: " + join(k_audio_codecs) + ")");
    }
    const std::string codec = a.codec.value_or("");
    if (!codec.empty() && !is_encoding(codec)) {
        const std::pair<const char*, bool> set_fields[] = {{"audio.bitrate", a.bitrate.has_value()},
                                                           {"audio.channels", a.channels.has_value()},
                                                           {"audio.sample_rate", a.sample_rate.has_value()}};
        for (const auto& [field, set] : set_fields)
            if (set)
                return Error::invalid(field,
                                      std::string(field) + " cannot be used with audio.codec " + codec);
        return {};
    }
    if (a.bitrate) {
        if (codec == "flac")
            return Error::invalid("audio.bitrate", "audio.bitrate does not apply to lossless flac");
        DISTCONV_TRY(check_rate("audio.bitrate", *a.bitrate, 6e3, codec == "libopus" ? 512e3 : 1e6));
    }
    if (a.channels) {
        int hi = 8;
        if (codec == "libmp3lame") hi = 2;
        if (codec == "ac3") hi = 6;
        DISTCONV_TRY(check_int_range("audio.channels", *a.channels, 1, hi));
    }
    if (a.sample_rate) {
        auto rate = std::to_string(*a.sample_rate);
        if (!contains(k_sample_rates, rate))
            return Error::invalid(
                "audio.sample_rate",
                "audio.sample_rate " + rate + " is not a known rate (allowed: " + join(k_sample_rates) + ")");
        Names allowed;
        if (codec == "libopus") allowed = {"8000", "12000", "16000", "24000", "48000"};
        if (codec == "libmp3lame")
            allowed = {"8000", "11025", "12000", "16000", "22050", "24000", "32000", "44100", "48000"};
        if (codec == "ac3") allowed = {"32000", "44100", "48000"};
        if (!allowed.empty() && !contains(allowed, rate))
            return Error::invalid("audio.sample_rate", "audio.sample_rate " + rate + " is not supported by " +
                                                           codec + " (allowed: " + join(allowed) + ")");
    }
    return {};
}

Status validate_subtitles(const SubtitleOptions& s) {
    DISTCONV_TRY(check_choice("subtitles.mode", s.mode, {"keep", "drop"}));
    DISTCONV_TRY(check_choice("subtitles.on_unsupported", s.on_unsupported, {"drop", "fail"}));
    DISTCONV_TRY(check_languages("subtitles.languages", s.languages));
    if (s.mode == "drop" && s.languages)
        return Error::invalid("subtitles.languages",
                              "subtitles.languages cannot be used with subtitles.mode drop");
    return {};
}

Status validate_split(const SplitOptions& t) {
    DISTCONV_TRY(check_choice("split.mode", t.mode, {"auto", "on", "off"}));
    if (t.segment_seconds &&
        (!std::isfinite(*t.segment_seconds) || *t.segment_seconds < 2 || *t.segment_seconds > 3600))
        return Error::invalid("split.segment_seconds", "split.segment_seconds must be between 2 and 3600");
    return {};
}

Status validate_trim(const TrimOptions& t) {
    if (t.start) {
        if (!std::isfinite(*t.start))
            return Error::invalid("trim.start", "trim.start must be a finite number");
        if (*t.start < 0 || *t.start > 1e6)
            return Error::invalid("trim.start", "trim.start must be between 0 and 1000000 seconds");
    }
    if (t.duration) {
        if (!std::isfinite(*t.duration))
            return Error::invalid("trim.duration", "trim.duration must be a finite number");
        if (*t.duration <= 0 || *t.duration > 1e6)
            return Error::invalid("trim.duration",
                                  "trim.duration must be more than 0 and at most 1000000 seconds");
    }
    return {};
}

// extra_args: a short allow-list of flag/value pairs. Everything that could add an input, an
// output, a filter graph, a protocol or a muxer choice is refused; settings that have their own
// field are refused with a pointer to that field.
struct ExtraFlag {
    std::string_view flag;
    long long lo = 0;   // for integer flags
    long long hi = -1;  // hi < lo: not an integer flag
};

const std::vector<ExtraFlag>& integer_flags() {
    static const std::vector<ExtraFlag> flags = {
        {"-g", 1, 1000},           {"-keyint_min", 1, 1000}, {"-bf", 0, 16},          {"-refs", 1, 16},
        {"-sc_threshold", 0, 100}, {"-threads", 0, 64},      {"-tile-columns", 0, 6}, {"-row-mt", 0, 1},
        {"-lag-in-frames", 0, 25}, {"-aq-mode", 0, 3},
    };
    return flags;
}

const std::vector<std::pair<std::string_view, std::string_view>>& field_flags() {
    static const std::vector<std::pair<std::string_view, std::string_view>> flags = {
        {"-c:v", "video.codec"},       {"-vcodec", "video.codec"},    {"-codec:v", "video.codec"},
        {"-c:a", "audio.codec"},       {"-acodec", "audio.codec"},    {"-codec:a", "audio.codec"},
        {"-crf", "video.crf"},         {"-b:v", "video.bitrate"},     {"-maxrate", "video.maxrate"},
        {"-bufsize", "video.bufsize"}, {"-preset", "video.preset"},   {"-r", "video.fps"},
        {"-s", "video.scale"},         {"-pix_fmt", "video.pix_fmt"}, {"-profile:v", "video.profile"},
        {"-b:a", "audio.bitrate"},     {"-ac", "audio.channels"},     {"-ar", "audio.sample_rate"},
        {"-ss", "trim.start"},         {"-t", "trim.duration"},       {"-to", "trim.duration"},
    };
    return flags;
}

Status validate_extra_args(const std::vector<std::string>& args, const std::string& container,
                           const std::string& video_codec) {
    if (args.size() > 16) return Error::invalid("extra_args", "extra_args may hold at most 16 items");
    std::vector<std::string> seen;
    for (size_t i = 0; i < args.size(); i += 2) {
        const std::string field = "extra_args[" + std::to_string(i) + "]";
        const std::string& flag = args[i];
        DISTCONV_TRY(check_text(field, flag, {.max_len = 32}));
        if (flag.front() != '-')
            return Error::invalid(field, field + " must be a flag such as -g, not '" + flag + "'");
        for (const auto& [f, replacement] : field_flags())
            if (flag == f)
                return Error::invalid(field, field + ": " + flag + " is set with the " +
                                                 std::string(replacement) + " field, not extra_args");
        const bool known = flag == "-movflags" || flag == "-tune" || flag == "-level" ||
                           std::any_of(integer_flags().begin(), integer_flags().end(),
                                       [&](const ExtraFlag& f) { return f.flag == flag; });
        if (!known) return Error::invalid(field, field + ": " + flag + " is not an allowed extra argument");
        if (std::find(seen.begin(), seen.end(), flag) != seen.end())
            return Error::invalid(field, field + ": " + flag + " is given twice");
        seen.push_back(flag);

        const std::string value_field = "extra_args[" + std::to_string(i + 1) + "]";
        if (i + 1 >= args.size()) return Error::invalid(field, field + ": " + flag + " needs a value");
        const std::string& value = args[i + 1];
        DISTCONV_TRY(check_text(value_field, value, {.max_len = 96}));
        if (value.front() == '-')
            return Error::invalid(value_field,
                                  value_field + ": the value of " + flag + " must not start with '-'");

        if (flag == "-movflags") {
            if (container != "mp4" && container != "mov" && container != "m4a" && !container.empty())
                return Error::invalid(field, field + ": -movflags applies to mp4, mov and m4a only");
            static const Names k_movflags = {"faststart",           "frag_keyframe", "empty_moov",
                                             "default_base_moof",   "separate_moof", "omit_tfhd_offset",
                                             "negative_cts_offsets"};
            static const std::regex k_shape("^\\+?[a-z_]+(\\+[a-z_]+)*$");
            if (!std::regex_match(value, k_shape))
                return Error::invalid(value_field, value_field + ": -movflags takes flags like +faststart");
            size_t pos = 0;
            while (pos < value.size()) {
                if (value[pos] == '+') ++pos;
                size_t end = value.find('+', pos);
                std::string name =
                    value.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
                if (!contains(k_movflags, name))
                    return Error::invalid(value_field, value_field + ": movflag '" + name +
                                                           "' is not allowed (allowed: " + join(k_movflags) +
                                                           ")");
                pos = end == std::string::npos ? value.size() : end;
            }
        } else if (flag == "-tune") {
            Names allowed;
            if (video_codec == "libx264" || video_codec.empty())
                allowed = {"film",       "animation",   "grain", "stillimage",
                           "fastdecode", "zerolatency", "psnr",  "ssim"};
            else if (video_codec == "libx265")
                allowed = {"psnr", "ssim", "grain", "zerolatency", "fastdecode", "animation"};
            if (allowed.empty())
                return Error::invalid(field, field + ": -tune is not supported by " + video_codec);
            if (!contains(allowed, value))
                return Error::invalid(value_field, value_field + ": unknown -tune '" + value +
                                                       "' (allowed: " + join(allowed) + ")");
        } else if (flag == "-level") {
            if (!video_codec.empty() && !is_x26x(video_codec))
                return Error::invalid(field, field + ": -level applies to libx264 and libx265 only");
            static const std::regex k_level("^[1-6](\\.[0-3])?$");
            if (!std::regex_match(value, k_level))
                return Error::invalid(value_field, value_field + ": -level takes a level such as 4.1");
        } else {
            for (const auto& f : integer_flags()) {
                if (f.flag != flag) continue;
                auto n = parse_int(value);
                if (!n) return Error::invalid(value_field, value_field + ": " + flag + " takes an integer");
                DISTCONV_TRY(check_int_range(value_field, *n, f.lo, f.hi));
            }
            if (flag != "-threads" && (video_codec == "copy" || video_codec == "none"))
                return Error::invalid(field,
                                      field + ": " + flag + " needs a video encoder, not " + video_codec);
        }
    }
    return {};
}

Status validate_compatibility(const JobOptions& o) {
    if (!o.container) return {};
    const ContainerInfo* c = find_container(*o.container);
    if (!c) return {};
    const std::string vcodec = o.video.codec.value_or("");
    const std::string acodec = o.audio.codec.value_or("");
    if (c->video.empty()) {
        if (!vcodec.empty() && vcodec != "none")
            return Error::invalid(
                "video.codec",
                "container " + *o.container + " holds audio only: video.codec must be none, not " + vcodec);
    } else if (!vcodec.empty() && is_encoding(vcodec) && !contains(c->video, vcodec)) {
        return Error::invalid("video.codec", "video codec " + vcodec + " cannot be stored in " +
                                                 *o.container + " (allowed: " + join(c->video) +
                                                 ", copy, none)");
    }
    if (!acodec.empty() && is_encoding(acodec) && !contains(c->audio, acodec))
        return Error::invalid("audio.codec", "audio codec " + acodec + " cannot be stored in " +
                                                 *o.container + " (allowed: " + join(c->audio) +
                                                 ", copy, none)");
    if (c->video.empty() && acodec == "none")
        return Error::invalid("audio.codec",
                              "container " + *o.container + " holds audio only: audio.codec cannot be none");
    if (vcodec == "none" && acodec == "none")
        return Error::invalid("audio.codec",
                              "video.codec and audio.codec are both none: the output would be empty");
    if (o.output_filename) {
        auto ext = extension_of(*o.output_filename);
        const ContainerInfo* by_ext = ext.empty() ? nullptr : container_for_extension(ext);
        if (by_ext != c)
            return Error::invalid("output_filename",
                                  "output_filename '" + *o.output_filename + "' should end with ." +
                                      std::string(c->extensions.front()) + " for container " + *o.container);
    }
    return {};
}

// ---------------------------------------------------------------------------------------------
// Presets.

JobOptions make(std::string container, VideoOptions video, AudioOptions audio,
                std::optional<std::vector<std::string>> extra = std::nullopt) {
    JobOptions o;
    o.container = std::move(container);
    o.video = std::move(video);
    o.audio = std::move(audio);
    o.extra_args = std::move(extra);
    return o;
}

VideoOptions video(std::string codec, std::optional<int> crf, std::optional<std::string> preset,
                   std::optional<std::string> scale = std::nullopt,
                   std::optional<std::string> pix_fmt = "yuv420p",
                   std::optional<std::string> profile = std::nullopt) {
    VideoOptions v;
    v.codec = std::move(codec);
    v.crf = crf;
    v.preset = std::move(preset);
    v.scale = std::move(scale);
    v.pix_fmt = std::move(pix_fmt);
    v.profile = std::move(profile);
    return v;
}

AudioOptions audio(std::string codec, std::optional<std::string> bitrate,
                   std::optional<int> channels = std::nullopt) {
    AudioOptions a;
    a.codec = std::move(codec);
    a.bitrate = std::move(bitrate);
    a.channels = channels;
    return a;
}

VideoOptions no_video() {
    VideoOptions v;
    v.codec = "none";
    return v;
}

std::vector<Preset> make_presets() {
    const std::vector<std::string> faststart = {"-movflags", "+faststart"};
    std::vector<Preset> p = {
        {"h264-web", "H.264 + AAC in MP4 for the web: CRF 23, veryfast, fast start (the default)",
         make("mp4", video("libx264", 23, "veryfast", std::nullopt, "yuv420p", "high"), audio("aac", "128k"),
              faststart)},
        {"h264-archive", "H.264 high quality in MKV with lossless FLAC audio: CRF 18, slow",
         make("mkv", video("libx264", 18, "slow"), audio("flac", std::nullopt))},
        {"h264-small", "Small H.264 + AAC MP4 at 480p: CRF 28, medium",
         make("mp4", video("libx264", 28, "medium", "-2:480", "yuv420p", "main"), audio("aac", "96k"),
              faststart)},
        {"h265-web", "H.265/HEVC + AAC in MP4 (tagged hvc1 for Apple players): CRF 26, fast",
         make("mp4", video("libx265", 26, "fast"), audio("aac", "128k"), faststart)},
        {"h265-archive", "H.265/HEVC 10-bit in MKV with FLAC audio: CRF 20, slow",
         make("mkv", video("libx265", 20, "slow", std::nullopt, "yuv420p10le"), audio("flac", std::nullopt))},
        {"h265-small", "Small H.265/HEVC + AAC MP4 at 480p: CRF 30, medium",
         make("mp4", video("libx265", 30, "medium", "-2:480"), audio("aac", "64k"), faststart)},
        {"vp9-web", "VP9 + Opus in WebM for the web: CRF 32, speed 4",
         make("webm", video("libvpx-vp9", 32, "4"), audio("libopus", "128k"))},
        {"vp9-archive", "VP9 high quality in MKV with FLAC audio: CRF 20, speed 1",
         make("mkv", video("libvpx-vp9", 20, "1"), audio("flac", std::nullopt))},
        {"vp9-small", "Small VP9 + Opus WebM at 480p: CRF 40, speed 5",
         make("webm", video("libvpx-vp9", 40, "5", "-2:480"), audio("libopus", "64k"))},
        {"av1-web", "AV1 (SVT-AV1) + Opus in WebM for the web: CRF 35, preset 8",
         make("webm", video("libsvtav1", 35, "8"), audio("libopus", "128k"))},
        {"av1-archive", "AV1 (SVT-AV1) 10-bit in MKV with FLAC audio: CRF 24, preset 4",
         make("mkv", video("libsvtav1", 24, "4", std::nullopt, "yuv420p10le"), audio("flac", std::nullopt))},
        {"av1-small", "Small AV1 (SVT-AV1) + Opus WebM at 480p: CRF 45, preset 10",
         make("webm", video("libsvtav1", 45, "10", "-2:480"), audio("libopus", "64k"))},
        {"av1-aom-web", "AV1 (libaom) + Opus in WebM: CRF 32, cpu-used 6 (slower than SVT-AV1)",
         make("webm", video("libaom-av1", 32, "6"), audio("libopus", "128k"))},
        {"remux-mkv", "Copy the video and audio streams into MKV without re-encoding",
         make(
             "mkv",
             [] {
                 VideoOptions v;
                 v.codec = "copy";
                 return v;
             }(),
             [] {
                 AudioOptions a;
                 a.codec = "copy";
                 return a;
             }())},
        {"audio-aac", "Audio only: AAC 192k in M4A", make("m4a", no_video(), audio("aac", "192k"))},
        {"audio-mp3", "Audio only: MP3 192k", make("mp3", no_video(), audio("libmp3lame", "192k"))},
        {"audio-opus", "Audio only: Opus 128k in Ogg", make("ogg", no_video(), audio("libopus", "128k"))},
        {"audio-flac", "Audio only: lossless FLAC", make("flac", no_video(), audio("flac", std::nullopt))},
    };
    return p;
}

// The preset a container suggests when the options name none.
std::string_view default_preset_for(std::string_view container) {
    if (container == "webm") return "vp9-web";
    if (container == "m4a") return "audio-aac";
    if (container == "mp3") return "audio-mp3";
    if (container == "ogg") return "audio-opus";
    if (container == "flac") return "audio-flac";
    return k_default_preset;
}

template <typename T>
void overlay(std::optional<T>& target, const std::optional<T>& value) {
    if (value) target = value;
}

}  // namespace

// -------------------------------------------------------------------------------------------------

bool VideoOptions::empty() const {
    return *this == VideoOptions{};
}
bool AudioOptions::empty() const {
    return *this == AudioOptions{};
}
bool SubtitleOptions::empty() const {
    return *this == SubtitleOptions{};
}
bool TrimOptions::empty() const {
    return *this == TrimOptions{};
}
bool SplitOptions::empty() const {
    return *this == SplitOptions{};
}

Result<JobOptions> parse_job_options(const nlohmann::json& j) {
    if (!j.is_object()) return Error::invalid("options", "job options must be a JSON object");
    JobOptions o;
    for (const auto& [key, value] : j.items()) {
        if (key == "output_filename")
            DISTCONV_TRY(read_string(value, key, o.output_filename));
        else if (key == "preset")
            DISTCONV_TRY(read_string(value, key, o.preset));
        else if (key == "container")
            DISTCONV_TRY(read_string(value, key, o.container));
        else if (key == "video") {
            if (!value.is_null()) DISTCONV_TRY(parse_video(value, o.video));
        } else if (key == "audio") {
            if (!value.is_null()) DISTCONV_TRY(parse_audio(value, o.audio));
        } else if (key == "subtitles") {
            if (!value.is_null()) DISTCONV_TRY(parse_subtitles(value, o.subtitles));
        } else if (key == "trim") {
            if (!value.is_null()) DISTCONV_TRY(parse_trim(value, o.trim));
        } else if (key == "split") {
            if (!value.is_null()) DISTCONV_TRY(parse_split(value, o.split));
        } else if (key == "extra_args")
            DISTCONV_TRY(parse_extra_args(value, o.extra_args));
        else
            return Error::invalid(key, "unknown option " + key);
    }
    return o;
}

nlohmann::json to_json(const JobOptions& o) {
    json j = json::object();
    if (o.output_filename) j["output_filename"] = *o.output_filename;
    if (o.preset) j["preset"] = *o.preset;
    if (o.container) j["container"] = *o.container;
    if (!o.video.empty()) {
        json v = json::object();
        const auto& s = o.video;
        if (s.codec) v["codec"] = *s.codec;
        if (s.crf) v["crf"] = *s.crf;
        if (s.bitrate) v["bitrate"] = *s.bitrate;
        if (s.maxrate) v["maxrate"] = *s.maxrate;
        if (s.bufsize) v["bufsize"] = *s.bufsize;
        if (s.preset) v["preset"] = *s.preset;
        if (s.fps) {
            // Plain numbers go back out as JSON numbers; "num/den" (or anything odd) stays a string.
            static const std::regex k_decimal("^[0-9]{1,6}(\\.[0-9]{1,6})?$");
            if (std::regex_match(*s.fps, k_decimal)) {
                double d = std::stod(*s.fps);
                if (d == std::floor(d))
                    v["fps"] = static_cast<long long>(d);
                else
                    v["fps"] = d;
            } else {
                v["fps"] = *s.fps;
            }
        }
        if (s.scale) v["scale"] = *s.scale;
        if (s.pix_fmt) v["pix_fmt"] = *s.pix_fmt;
        if (s.profile) v["profile"] = *s.profile;
        if (s.deinterlace) v["deinterlace"] = *s.deinterlace;
        if (s.hdr) v["hdr"] = *s.hdr;
        j["video"] = std::move(v);
    }
    if (!o.audio.empty()) {
        json a = json::object();
        if (o.audio.codec) a["codec"] = *o.audio.codec;
        if (o.audio.bitrate) a["bitrate"] = *o.audio.bitrate;
        if (o.audio.channels) a["channels"] = *o.audio.channels;
        if (o.audio.sample_rate) a["sample_rate"] = *o.audio.sample_rate;
        if (o.audio.tracks) a["tracks"] = *o.audio.tracks;
        if (o.audio.languages) a["languages"] = *o.audio.languages;
        j["audio"] = std::move(a);
    }
    if (!o.subtitles.empty()) {
        json t = json::object();
        if (o.subtitles.mode) t["mode"] = *o.subtitles.mode;
        if (o.subtitles.languages) t["languages"] = *o.subtitles.languages;
        if (o.subtitles.on_unsupported) t["on_unsupported"] = *o.subtitles.on_unsupported;
        j["subtitles"] = std::move(t);
    }
    if (!o.trim.empty()) {
        json t = json::object();
        if (o.trim.start) t["start"] = *o.trim.start;
        if (o.trim.duration) t["duration"] = *o.trim.duration;
        j["trim"] = std::move(t);
    }
    if (!o.split.empty()) {
        json t = json::object();
        if (o.split.mode) t["mode"] = *o.split.mode;
        if (o.split.segment_seconds) t["segment_seconds"] = *o.split.segment_seconds;
        j["split"] = std::move(t);
    }
    if (o.extra_args) j["extra_args"] = *o.extra_args;
    return j;
}

Status validate(const JobOptions& o) {
    if (o.output_filename) DISTCONV_TRY(validate_output_filename(*o.output_filename));
    if (o.preset) {
        DISTCONV_TRY(check_text("preset", *o.preset));
        if (!find_preset(*o.preset)) return Error::invalid("preset", "unknown preset '" + *o.preset + "'");
    }
    if (o.container) {
        DISTCONV_TRY(check_text("container", *o.container, {.max_len = 16}));
        if (!find_container(*o.container)) {
            Names names;
            for (const auto& c : containers()) names.push_back(c.name);
            return Error::invalid("container",
                                  "unknown container '" + *o.container + "' (allowed: " + join(names) + ")");
        }
    }
    DISTCONV_TRY(validate_video(o.video));
    DISTCONV_TRY(validate_audio(o.audio));
    DISTCONV_TRY(validate_subtitles(o.subtitles));
    DISTCONV_TRY(validate_trim(o.trim));
    DISTCONV_TRY(validate_split(o.split));
    if (o.extra_args)
        DISTCONV_TRY(
            validate_extra_args(*o.extra_args, o.container.value_or(""), o.video.codec.value_or("")));
    DISTCONV_TRY(validate_compatibility(o));
    return {};
}

const std::vector<Preset>& builtin_presets() {
    static const std::vector<Preset> presets = make_presets();
    return presets;
}

const Preset* find_preset(std::string_view name) {
    for (const auto& p : builtin_presets())
        if (p.name == name) return &p;
    return nullptr;
}

std::string preset_keeps(std::string_view container) {
    if (container == "mp4" || container == "mov")
        return "every audio track; text subtitles (as mov_text; bitmap subtitles are dropped with the "
               "reason); "
               "chapters, metadata and cover art";
    if (container == "mkv")
        return "every audio track; every subtitle (copied); chapters, metadata and attachments";
    if (container == "webm")
        return "every audio track; text subtitles (as WebVTT; bitmap subtitles are dropped with the reason); "
               "chapters and metadata";
    if (container == "ts") return "every audio track; DVB subtitles; metadata";
    if (container == "m4a") return "every audio track; chapters, metadata and cover art";
    if (container == "mp3" || container == "flac") return "the first audio track; metadata and cover art";
    return "every audio track; metadata";
}

nlohmann::json to_json(const Preset& preset) {
    return json{{"name", preset.name},
                {"description", preset.description},
                {"keeps", preset_keeps(preset.options.container.value_or("mp4"))},
                {"options", to_json(preset.options)}};
}

Result<JobOptions> resolve_options(const JobOptions& in) {
    // Check the explicit values first so errors name what the user wrote, not a merged result.
    DISTCONV_TRY(validate(in));

    std::optional<std::string> container = in.container;
    if (!container && in.output_filename) {
        // "out.webm" with no container: the name says which one.
        if (const auto* c = container_for_extension(extension_of(*in.output_filename)))
            container = std::string(c->name);
    }
    const Preset* preset = nullptr;
    if (in.preset) {
        preset = find_preset(*in.preset);
        if (!preset) return Error::invalid("preset", "unknown preset '" + *in.preset + "'");
    } else {
        preset = find_preset(default_preset_for(container.value_or("mp4")));
    }

    JobOptions out = preset->options;
    out.preset = preset->name;
    out.output_filename = in.output_filename;
    // A preset's extra_args belong to its container and encoder: drop them when either changes.
    if (container && container != out.container) {
        out.container = container;
        out.extra_args.reset();
    }
    if (in.video.codec && in.video.codec != out.video.codec) {
        // Encoder settings belong to the preset's codec; size and rate do not.
        VideoOptions kept;
        if (is_encoding(*in.video.codec)) {
            kept.scale = out.video.scale;
            kept.fps = out.video.fps;
        }
        out.video = kept;
        out.extra_args.reset();
    }
    if (in.audio.codec && in.audio.codec != out.audio.codec) out.audio = AudioOptions{};

    const auto& v = in.video;
    // An explicit bitrate means bitrate control: the preset's CRF would override it in x264.
    if (v.bitrate && !v.crf) out.video.crf.reset();
    if (v.crf && !v.bitrate) out.video.bitrate.reset();
    overlay(out.video.codec, v.codec);
    overlay(out.video.crf, v.crf);
    overlay(out.video.bitrate, v.bitrate);
    overlay(out.video.maxrate, v.maxrate);
    overlay(out.video.bufsize, v.bufsize);
    overlay(out.video.preset, v.preset);
    overlay(out.video.fps, v.fps);
    overlay(out.video.scale, v.scale);
    overlay(out.video.pix_fmt, v.pix_fmt);
    overlay(out.video.profile, v.profile);
    overlay(out.video.deinterlace, v.deinterlace);
    overlay(out.video.hdr, v.hdr);

    overlay(out.audio.codec, in.audio.codec);
    overlay(out.audio.bitrate, in.audio.bitrate);
    overlay(out.audio.channels, in.audio.channels);
    overlay(out.audio.sample_rate, in.audio.sample_rate);
    overlay(out.audio.tracks, in.audio.tracks);
    overlay(out.audio.languages, in.audio.languages);
    out.subtitles = in.subtitles;  // presets keep every subtitle track: only the job selects

    overlay(out.trim.start, in.trim.start);
    overlay(out.trim.duration, in.trim.duration);
    out.split = in.split;  // the job's own choice; presets do not split
    if (in.extra_args) out.extra_args = in.extra_args;
    if (out.extra_args && out.extra_args->empty()) out.extra_args.reset();

    DISTCONV_TRY(validate(out));
    return out;
}

Result<JobOptions> parse_and_resolve(const nlohmann::json& j) {
    auto parsed = parse_job_options(j);
    if (!parsed) return std::move(parsed).error();
    return resolve_options(*parsed);
}

const std::vector<std::string>& supported_containers() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> out;
        for (const auto& c : containers()) out.emplace_back(c.name);
        return out;
    }();
    return names;
}

const std::vector<std::string>& supported_video_codecs() {
    static const std::vector<std::string> names(k_video_codecs.begin(), k_video_codecs.end());
    return names;
}

const std::vector<std::string>& supported_audio_codecs() {
    static const std::vector<std::string> names(k_audio_codecs.begin(), k_audio_codecs.end());
    return names;
}

std::string container_extension(std::string_view container) {
    const auto* c = find_container(container);
    return c ? std::string(c->extensions.front()) : std::string();
}

std::string container_muxer(std::string_view container) {
    const auto* c = find_container(container);
    return c ? std::string(c->muxer) : std::string();
}

bool is_audio_only_container(std::string_view container) {
    const auto* c = find_container(container);
    return c && c->video.empty();
}

std::string default_output_filename(const std::string& input_filename, const JobOptions& resolved) {
    std::string ext = container_extension(resolved.container.value_or("mp4"));
    if (ext.empty()) ext = "mp4";
    std::string name = input_filename;
    auto slash = name.find_last_of("/\\");
    if (slash != std::string::npos) name = name.substr(slash + 1);
    auto dot = name.rfind('.');
    if (dot != std::string::npos && dot > 0) name.resize(dot);
    std::string clean;
    for (size_t i = 0; i < name.size();) {
        size_t n = utf8_sequence_length(name, i);
        if (n == 0) {  // a stray byte of broken UTF-8
            clean += '_';
            ++i;
            continue;
        }
        auto c = static_cast<unsigned char>(name[i]);
        if (n == 1 && (c < 0x20 || c == 0x7f || c == ':' || c == '|'))
            clean += '_';
        else
            clean.append(name, i, n);
        i += n;
    }
    name = std::move(clean);
    while (name.find("..") != std::string::npos) name.replace(name.find(".."), 2, "_");
    while (!name.empty() && (name.front() == '-' || name.front() == '.' || name.front() == ' '))
        name.erase(0, 1);
    // Leave room for ".ext"; never cut a UTF-8 sequence in half.
    const size_t max_stem = 255 - ext.size() - 1;
    if (name.size() > max_stem) {
        size_t cut = max_stem;
        while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;
        name.resize(cut);
    }
    while (!name.empty() && name.back() == '.') name.pop_back();
    if (name.empty()) name = "output";
    return name + "." + ext;
}

std::optional<double> parse_bitrate(std::string_view text) {
    static const std::regex k_shape("^[0-9]{1,12}(\\.[0-9]{1,6})?[kKmM]?$");
    std::string s(text);
    if (!std::regex_match(s, k_shape)) return std::nullopt;
    double scale = 1;
    char last = s.back();
    if (last == 'k' || last == 'K') scale = 1e3;
    if (last == 'm' || last == 'M') scale = 1e6;
    if (scale != 1) s.pop_back();
    double v = std::stod(s) * scale;
    if (!std::isfinite(v)) return std::nullopt;
    return v;
}

}  // namespace distconv::media
