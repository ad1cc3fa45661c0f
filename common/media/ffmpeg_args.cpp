#include "common/media/ffmpeg_args.hpp"

#include "common/media/input_policy.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <optional>

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

// x265's mastering-display notation (chromaticities in 0.00002 units, luminance in 0.0001 cd/m²) in
// SVT-AV1's (plain numbers): "G(13250,34500)...L(10000000,1)" -> "G(0.2650,0.6900)...L(1000.0000,0.0001)".
std::optional<std::string> svt_mastering_display(const std::string& x265) {
    long v[10];
    if (std::sscanf(x265.c_str(), "G(%ld,%ld)B(%ld,%ld)R(%ld,%ld)WP(%ld,%ld)L(%ld,%ld)", &v[0], &v[1], &v[2],
                    &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) != 10)
        return std::nullopt;
    char buf[200];
    std::snprintf(buf, sizeof buf, "G(%.4f,%.4f)B(%.4f,%.4f)R(%.4f,%.4f)WP(%.4f,%.4f)L(%.4f,%.4f)",
                  v[0] / 50000.0, v[1] / 50000.0, v[2] / 50000.0, v[3] / 50000.0, v[4] / 50000.0,
                  v[5] / 50000.0, v[6] / 50000.0, v[7] / 50000.0, v[8] / 10000.0, v[9] / 10000.0);
    return std::string(buf);
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

// Without a plan the options name every video stream (-c:v, -crf); with one they name the main video
// only (-c:v:0, -crf:v:0: it is the first video stream out), since copied cover art may follow it.
void add_video_args(const VideoOptions& v, const std::string& container, const StreamPlan* plan, bool segment,
                    std::vector<std::string>& argv) {
    const std::string codec = v.codec.value_or("libx264");
    if (codec == "none") {
        argv.push_back("-vn");
        return;
    }
    argv.insert(argv.end(), {plan ? "-c:v:0" : "-c:v", codec});
    if (codec == "copy") return;
    const std::string opt = plan ? ":v:0" : "";     // for options that take no type letter without a plan
    const std::string vopt = plan ? ":v:0" : ":v";  // -b:v, -profile:v, -tag:v

    if (v.preset) {
        if (codec == "libx264" || codec == "libx265" || codec == "libsvtav1") {
            argv.insert(argv.end(), {"-preset" + opt, *v.preset});
        } else {
            argv.insert(argv.end(), {"-cpu-used" + opt, *v.preset});
        }
    }
    if (codec == "libvpx" || codec == "libvpx-vp9") argv.insert(argv.end(), {"-deadline" + opt, "good"});
    if (codec == "libvpx-vp9" || codec == "libaom-av1") argv.insert(argv.end(), {"-row-mt" + opt, "1"});
    if (v.crf) argv.insert(argv.end(), {"-crf" + opt, std::to_string(*v.crf)});
    if (v.bitrate) {
        argv.insert(argv.end(), {"-b" + vopt, *v.bitrate});
    } else if (v.crf && (codec == "libvpx-vp9" || codec == "libaom-av1")) {
        // Without -b:v 0 these encoders treat CRF as a floor under a default bitrate target.
        argv.insert(argv.end(), {"-b" + vopt, "0"});
    }
    if (v.maxrate) argv.insert(argv.end(), {"-maxrate" + opt, *v.maxrate});
    if (v.bufsize) argv.insert(argv.end(), {"-bufsize" + opt, *v.bufsize});
    if (v.profile) argv.insert(argv.end(), {"-profile" + vopt, *v.profile});
    if (v.pix_fmt) argv.insert(argv.end(), {"-pix_fmt" + opt, *v.pix_fmt});
    if (v.fps) argv.insert(argv.end(), {"-r" + opt, *v.fps});
    std::vector<std::string> filters;
    if (plan && plan->deinterlace) filters.push_back("bwdif=mode=send_frame");
    if (plan && plan->tonemap)
        filters.push_back(
            "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,"
            "zscale=t=bt709:m=bt709:r=tv,format=" +
            v.pix_fmt.value_or("yuv420p"));
    if (v.scale) filters.push_back("scale=" + *v.scale);
    if (!filters.empty()) {
        std::string chain;
        for (const auto& f : filters) chain += (chain.empty() ? "" : ",") + f;
        argv.insert(argv.end(), {plan ? "-filter:v:0" : "-vf", chain});
    }
    if (plan) {
        if (!plan->color_primaries.empty())
            argv.insert(argv.end(), {"-color_primaries:v:0", plan->color_primaries});
        if (!plan->color_transfer.empty()) argv.insert(argv.end(), {"-color_trc:v:0", plan->color_transfer});
        if (!plan->color_space.empty()) argv.insert(argv.end(), {"-colorspace:v:0", plan->color_space});
        if (!plan->color_range.empty()) argv.insert(argv.end(), {"-color_range:v:0", plan->color_range});
    }
    const bool hdr10 = plan && (!plan->mastering_display.empty() || !plan->content_light.empty());
    if (codec == "libx265") {
        std::string params = "log-level=error";
        // A segment is joined to its neighbours: no leading frame may refer to the one before.
        if (segment) params += ":open-gop=0";
        if (hdr10) {
            params += ":hdr10=1";
            if (!plan->mastering_display.empty()) params += ":master-display=" + plan->mastering_display;
            if (!plan->content_light.empty()) params += ":max-cll=" + plan->content_light;
        }
        argv.insert(argv.end(), {"-x265-params" + opt, params});
        // Apple players only play HEVC in MP4/MOV when it is tagged hvc1.
        if (!segment && (container == "mp4" || container == "mov"))
            argv.insert(argv.end(), {"-tag" + vopt, "hvc1"});
    }
    if (codec == "libsvtav1" && hdr10) {
        std::string params;
        if (auto md = svt_mastering_display(plan->mastering_display)) params = "mastering-display=" + *md;
        if (!plan->content_light.empty())
            params += (params.empty() ? "" : ":") + std::string("content-light=") + plan->content_light;
        if (!params.empty()) argv.insert(argv.end(), {"-svtav1-params" + opt, params});
    }
}

void add_audio_args(const AudioOptions& a, const StreamPlan* plan, std::vector<std::string>& argv) {
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
    if (!plan) return;
    int k = 0;  // a track the codec cannot hold as it is: downmixed, as the plan says
    for (int i : plan->output_order) {
        const auto& p = plan->streams[static_cast<size_t>(i)];
        if (p.type != "audio") continue;
        if (p.channels) argv.insert(argv.end(), {"-ac:a:" + std::to_string(k), std::to_string(*p.channels)});
        ++k;
    }
}

// The plan's maps, and the codecs of what is not the main video or audio: cover art, subtitles,
// attachments; chapters and global metadata.
void add_plan_maps(const StreamPlan& plan, std::vector<std::string>& argv) {
    for (int i : plan.output_order)
        argv.insert(argv.end(), {"-map", "0:" + std::to_string(plan.streams[static_cast<size_t>(i)].index)});
}

void add_plan_codecs(const StreamPlan& plan, std::vector<std::string>& argv) {
    int video = 0, subtitle = 0;
    bool attachments = false;
    for (int i : plan.output_order) {
        const auto& p = plan.streams[static_cast<size_t>(i)];
        if (p.type == "video") {
            if (&p != plan.main_video()) argv.insert(argv.end(), {"-c:v:" + std::to_string(video), "copy"});
            ++video;
        } else if (p.type == "subtitle") {
            argv.insert(argv.end(), {"-c:s:" + std::to_string(subtitle++), p.encoder});
        } else if (p.type == "attachment") {
            attachments = true;
        }
    }
    if (attachments) argv.insert(argv.end(), {"-c:t", "copy"});
    argv.insert(argv.end(), {"-map_metadata", "0", "-map_chapters", plan.chapters ? "0" : "-1"});
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
    const std::string muxer = s.video_segment ? std::string(k_segment_muxer) : container_muxer(container);
    if (muxer.empty()) return Error::invalid("container", "unknown container '" + container + "'");
    if (s.video_segment && (!s.plan || !s.plan->main_video() || s.plan->output_order.size() != 1))
        return Error::invalid("plan", "a video segment maps its one video stream and nothing else");

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
    if (s.plan) {
        add_plan_maps(*s.plan, argv);
    } else {
        // The first video and audio stream only, each optional ('?'): subtitles and data never ride along.
        if (vcodec != "none") argv.insert(argv.end(), {"-map", "0:v:0?"});
        if (acodec != "none") argv.insert(argv.end(), {"-map", "0:a:0?"});
    }
    const bool has_video = !s.plan || s.plan->main_video();
    const bool has_audio =
        !s.plan || std::any_of(s.plan->output_order.begin(), s.plan->output_order.end(), [&](int i) {
            return s.plan->streams[static_cast<size_t>(i)].type == "audio";
        });
    if (has_video) add_video_args(o.video, container, s.plan, s.video_segment, argv);
    // Every frame of a segment, as it comes, with its own timestamp: the join counts on the
    // segment's frames being exactly the source's.
    if (s.video_segment) argv.insert(argv.end(), {"-fps_mode", "passthrough"});
    if (has_audio) add_audio_args(o.audio, s.plan, argv);
    if (s.plan) add_plan_codecs(*s.plan, argv);

    const bool mp4_family = container == "mp4" || container == "mov" || container == "m4a";
    if (o.extra_args) {
        const auto& extra = *o.extra_args;
        for (size_t i = 0; i + 1 < extra.size(); i += 2) {
            if (extra[i] == "-threads" && s.threads) continue;
            // faststart rewrites the file at the end, which a non-seekable sink cannot do.
            if (extra[i] == "-movflags" && (s.streamable || s.video_segment)) continue;
            argv.insert(argv.end(), {extra[i], extra[i + 1]});
        }
    }
    if (s.streamable && mp4_family && !s.video_segment)
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
