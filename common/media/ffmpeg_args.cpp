#include "common/media/ffmpeg_args.hpp"

#include "common/media/input_policy.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace distconv::media {
namespace {

std::string format_seconds(double seconds) {
    std::array<char, 64> buf{};
    auto res = std::to_chars(buf.data(), buf.data() + buf.size(), seconds, std::chars_format::fixed, 6);
    std::string s(buf.data(), res.ptr);
    // 1.500000 -> 1.5, 10.000000 -> 10
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s.empty() ? "0" : s;
}

Status check_endpoint(const std::string& field, const std::string& value) {
    if (value.empty()) return Error::invalid(field, field + " must not be empty");
    for (unsigned char c : value)
        if (c < 0x20 || c == 0x7f)
            return Error::invalid(field, field + " must not contain control characters");
    // "-" alone is stdin/stdout; anything else starting with '-' would be read as an option.
    if (value.front() == '-' && value != "-")
        return Error::invalid(field, field + " must not start with '-'");
    return {};
}

void add_video_args(const VideoOptions& v, const std::string& container, std::vector<std::string>& argv) {
    const std::string codec = v.codec.value_or("libx264");
    if (codec == "none") {
        argv.push_back("-vn");
        return;
    }
    argv.insert(argv.end(), {"-c:v", codec});
    if (codec == "copy") return;

    if (v.preset) {
        if (codec == "libx264" || codec == "libx265" || codec == "libsvtav1") {
            argv.insert(argv.end(), {"-preset", *v.preset});
        } else {
            argv.insert(argv.end(), {"-cpu-used", *v.preset});
        }
    }
    if (codec == "libvpx" || codec == "libvpx-vp9") argv.insert(argv.end(), {"-deadline", "good"});
    if (codec == "libvpx-vp9" || codec == "libaom-av1") argv.insert(argv.end(), {"-row-mt", "1"});
    if (v.crf) argv.insert(argv.end(), {"-crf", std::to_string(*v.crf)});
    if (v.bitrate) {
        argv.insert(argv.end(), {"-b:v", *v.bitrate});
    } else if (v.crf && (codec == "libvpx-vp9" || codec == "libaom-av1")) {
        // Without -b:v 0 these encoders treat CRF as a floor under a default bitrate target.
        argv.insert(argv.end(), {"-b:v", "0"});
    }
    if (v.maxrate) argv.insert(argv.end(), {"-maxrate", *v.maxrate});
    if (v.bufsize) argv.insert(argv.end(), {"-bufsize", *v.bufsize});
    if (v.profile) argv.insert(argv.end(), {"-profile:v", *v.profile});
    if (v.pix_fmt) argv.insert(argv.end(), {"-pix_fmt", *v.pix_fmt});
    if (v.fps) argv.insert(argv.end(), {"-r", *v.fps});
    if (v.scale) argv.insert(argv.end(), {"-vf", "scale=" + *v.scale});
    if (codec == "libx265") {
        argv.insert(argv.end(), {"-x265-params", "log-level=error"});
        // Apple players only play HEVC in MP4/MOV when it is tagged hvc1.
        if (container == "mp4" || container == "mov") argv.insert(argv.end(), {"-tag:v", "hvc1"});
    }
}

void add_audio_args(const AudioOptions& a, std::vector<std::string>& argv) {
    const std::string codec = a.codec.value_or("aac");
    if (codec == "none") {
        argv.push_back("-an");
        return;
    }
    argv.insert(argv.end(), {"-c:a", codec});
    if (codec == "copy") return;
    if (a.bitrate) argv.insert(argv.end(), {"-b:a", *a.bitrate});
    if (a.channels) argv.insert(argv.end(), {"-ac", std::to_string(*a.channels)});
    if (a.sample_rate) argv.insert(argv.end(), {"-ar", std::to_string(*a.sample_rate)});
}

bool safe_unquoted(const std::string& arg) {
    if (arg.empty()) return false;
    return std::all_of(arg.begin(), arg.end(), [](char ch) {
        auto c = static_cast<unsigned char>(ch);
        return std::isalnum(c) || ch == '_' || ch == '-' || ch == '.' || ch == '/' || ch == ':' ||
               ch == ',' || ch == '+' || ch == '=' || ch == '@' || ch == '%';
    });
}

}  // namespace

Result<std::vector<std::string>> build_ffmpeg_argv(const JobOptions& o, const std::string& input,
                                                   const std::string& output, const ArgvSettings& s) {
    DISTCONV_TRY(validate(o));
    DISTCONV_TRY(check_endpoint("input", input));
    DISTCONV_TRY(check_endpoint("output", output));
    if (s.ffmpeg.empty()) return Error::invalid("ffmpeg", "the ffmpeg path must not be empty");
    static const std::array<std::string_view, 6> k_levels = {"quiet", "panic",   "fatal",
                                                             "error", "warning", "info"};
    if (std::find(k_levels.begin(), k_levels.end(), s.loglevel) == k_levels.end())
        return Error::invalid("loglevel", "unknown loglevel '" + s.loglevel + "'");
    if (s.threads && (*s.threads < 0 || *s.threads > 256))
        return Error::invalid("threads", "threads must be between 0 and 256");

    if (!s.input_format.empty() && !demuxer_allowed(s.input_format))
        return Error::invalid("input_format",
                              "input format '" + s.input_format + "' is not an allowed demuxer");
    static const std::array<std::string_view, 2> k_protocols = {k_file_protocols, k_relay_protocols};
    if (std::find(k_protocols.begin(), k_protocols.end(), s.input_protocols) == k_protocols.end())
        return Error::invalid("input_protocols",
                              "input protocols '" + s.input_protocols + "' are not allowed");

    const std::string container = o.container.value_or("mp4");
    const std::string muxer = container_muxer(container);
    if (muxer.empty()) return Error::invalid("container", "unknown container '" + container + "'");

    std::vector<std::string> argv = {s.ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", s.loglevel};
    if (s.progress) argv.insert(argv.end(), {"-progress", "pipe:1", "-nostats"});
    // -ss before -i seeks the input (fast, and frame-accurate when re-encoding).
    if (o.trim.start && *o.trim.start > 0) argv.insert(argv.end(), {"-ss", format_seconds(*o.trim.start)});
    argv.insert(argv.end(), {"-protocol_whitelist", s.input_protocols});
    if (!s.input_format.empty())
        argv.insert(argv.end(), {"-format_whitelist", s.input_format, "-f", s.input_format});
    argv.insert(argv.end(), {"-i", input});
    if (o.trim.duration) argv.insert(argv.end(), {"-t", format_seconds(*o.trim.duration)});

    const std::string vcodec = o.video.codec.value_or("libx264");
    const std::string acodec = o.audio.codec.value_or("aac");
    // The first video and audio stream only, each optional ('?'): subtitles and data never ride along.
    if (vcodec != "none") argv.insert(argv.end(), {"-map", "0:v:0?"});
    if (acodec != "none") argv.insert(argv.end(), {"-map", "0:a:0?"});
    add_video_args(o.video, container, argv);
    add_audio_args(o.audio, argv);

    const bool mp4_family = container == "mp4" || container == "mov" || container == "m4a";
    if (o.extra_args) {
        const auto& extra = *o.extra_args;
        for (size_t i = 0; i + 1 < extra.size(); i += 2) {
            if (extra[i] == "-threads" && s.threads) continue;
            // faststart rewrites the file at the end, which a non-seekable sink cannot do.
            if (extra[i] == "-movflags" && s.streamable) continue;
            argv.insert(argv.end(), {extra[i], extra[i + 1]});
        }
    }
    if (s.streamable && mp4_family)
        argv.insert(argv.end(), {"-movflags", "+frag_keyframe+empty_moov+default_base_moof"});
    if (s.threads) argv.insert(argv.end(), {"-threads", std::to_string(*s.threads)});
    argv.insert(argv.end(), {"-f", muxer, output});
    return argv;
}

std::string quote_command(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& arg : argv) {
        if (!out.empty()) out += ' ';
        if (safe_unquoted(arg)) {
            out += arg;
            continue;
        }
        out += '\'';
        for (char c : arg) {
            if (c == '\'')
                out += "'\\''";
            else
                out += c;
        }
        out += '\'';
    }
    return out;
}

}  // namespace distconv::media
