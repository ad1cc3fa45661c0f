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

}  // namespace

Result<ProbeInfo> probe_media_file(const std::string& ffprobe, const std::filesystem::path& file) {
    // 1. Which format is it? Detected without starting any demuxer, so a playlist or list never gets
    //    to open what it names (media/input_policy.hpp).
    auto detect =
        process::run(ffprobe_detect_argv(ffprobe, file.string()), {std::chrono::seconds(20), 1 << 20});
    if (!detect) return detect.error();
    if (detect->timed_out)
        return Error(ErrorCode::UnsupportedMediaType, "ffprobe took too long to read the source");
    auto format = parse_probed_format(detect->err);
    if (!format)
        return Error(ErrorCode::UnsupportedMediaType, "the source is not a media file ffmpeg can read");
    DISTCONV_TRY(check_source_format(*format));
    const std::string demuxer = demuxer_of(*format);

    // 2. Its streams, read as that format only, from that file only.
    auto run =
        process::run(ffprobe_argv(ffprobe, file.string(), demuxer), {std::chrono::seconds(60), 8 << 20});
    if (!run) return run.error();
    if (run->timed_out)
        return Error(ErrorCode::UnsupportedMediaType, "ffprobe took too long to read the source");
    if (run->exit_code != 0) {
        std::string why = without_path(process::tail_lines(run->err, 3), file.string());
        return Error(ErrorCode::UnsupportedMediaType,
                     "the source is not a media file ffmpeg can read" + (why.empty() ? "" : ": " + why));
    }
    auto info = parse_ffprobe_json(run->out);
    if (!info) return Error(ErrorCode::UnsupportedMediaType, info.error().message);
    info->demuxer = demuxer;
    // 3. An HDR (PQ or HLG) picture's mastering display and light levels often travel only in the
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
