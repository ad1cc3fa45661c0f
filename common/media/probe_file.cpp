#include "common/media/probe_file.hpp"

#include "common/media/input_policy.hpp"
#include "common/process.hpp"

namespace distconv::media {
namespace {

// ffprobe names the file it read: say "source" rather than disclose where it is.
std::string without_path(std::string text, const std::string& path) {
    for (auto at = text.find(path); at != std::string::npos; at = text.find(path, at))
        text.replace(at, path.size(), "source");
    return text;
}

// Why a file the one-run probe refused is refused: its format detected without opening it with any
// demuxer (a playlist or list never gets to open what it names), then that format's verdict, else
// ffprobe's own words.
Error why_refused(const std::string& ffprobe, const std::filesystem::path& file,
                  const std::string& stderr_text) {
    auto detect =
        process::run(ffprobe_detect_argv(ffprobe, file.string()), {std::chrono::seconds(20), 1 << 20});
    if (detect && !detect->timed_out) {
        auto format = parse_probed_format(detect->err);
        if (!format)
            return Error(ErrorCode::UnsupportedMediaType, "the source is not a media file ffmpeg can read");
        if (auto refused = check_source_format(*format); !refused) return refused.error();
    }
    std::string why = without_path(process::tail_lines(stderr_text, 3), file.string());
    return Error(ErrorCode::UnsupportedMediaType,
                 "the source is not a media file ffmpeg can read" + (why.empty() ? "" : ": " + why));
}

}  // namespace

Result<ProbeInfo> probe_media_file(const std::string& ffprobe, const std::filesystem::path& file) {
    // 1. Its format and streams in one run: libavformat detects the format and opens it only if it is
    //    one of the allowed demuxers (media/input_policy.hpp), so a playlist or list never gets to
    //    open what it names. A refusal is explained by a second, detecting run (why_refused).
    auto run =
        process::run(ffprobe_allowed_argv(ffprobe, file.string()), {std::chrono::seconds(60), 8 << 20});
    if (!run) return run.error();
    if (run->timed_out)
        return Error(ErrorCode::UnsupportedMediaType, "ffprobe took too long to read the source");
    if (run->exit_code != 0) return why_refused(ffprobe, file, run->err);
    auto info = parse_ffprobe_json(run->out);
    if (!info) return Error(ErrorCode::UnsupportedMediaType, info.error().message);
    // What opened it must be allowed by name too (the whitelist matches any of a demuxer's names).
    DISTCONV_TRY(check_source_format(info->format_name));
    const std::string demuxer = demuxer_of(info->format_name);
    info->demuxer = demuxer;
    // 2. An HDR (PQ or HLG) picture's mastering display and light levels often travel only in the
    //    first frame (HEVC SEI): the encoder needs them given again, or the output is not HDR10.
    if (const auto* v = info->first_video();
        v && (v->color_transfer == "smpte2084" || v->color_transfer == "arib-std-b67")) {
        auto frames = process::run(first_frame_argv(ffprobe, file.string(), demuxer),
                                   {std::chrono::seconds(30), 1 << 20});
        if (frames && !frames->timed_out && frames->exit_code == 0)
            add_first_frame_side_data(*info, frames->out);
    }
    return info;
}

}  // namespace distconv::media
