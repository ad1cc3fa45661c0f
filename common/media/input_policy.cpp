#include "common/media/input_policy.hpp"

#include <algorithm>
#include <iterator>

namespace distconv::media {
namespace {

// Containers and elementary streams people keep media in, each read by a demuxer that opens nothing
// but its own input. (mov opens external data references only with -enable_drefs 1, which nothing
// here sets.)
constexpr std::string_view k_allowed[] = {
    "mov",    "matroska", "avi",       "mpegts",    "mpeg",     "mpegvideo",    "m4v",    "h264", "hevc",
    "vc1",    "obu",      "ivf",       "flv",       "asf",      "ogg",          "wav",    "w64",  "mp3",
    "flac",   "aac",      "ac3",       "eac3",      "dts",      "dtshd",        "truehd", "mlp",  "aiff",
    "caf",    "au",       "amr",       "amrnb",     "amrwb",    "ape",          "wv",     "tak",  "mpc",
    "mpc8",   "dsf",      "mxf",       "nut",       "dv",       "yuv4mpegpipe", "rm",     "gif",  "apng",
    "mjpeg",  "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe",    "wtv",    "gxf",  "mpjpeg",
    "smjpeg", "daud",     "oma",       "voc",
};

// Formats that are instructions to open other things, with the reason given to the user.
struct Refused {
    std::string_view name;
    std::string_view why;
};
constexpr Refused k_refused[] = {
    {"hls", "an HLS playlist names segments by URL or path for ffmpeg to fetch"},
    {"dash", "a DASH manifest names segments by URL for ffmpeg to fetch"},
    {"webm_dash_manifest", "a DASH manifest names other files"},
    {"concat", "a concat list names other files for ffmpeg to read"},
    {"sdp", "an SDP file makes ffmpeg receive a network stream"},
    {"rtsp", "an RTSP description makes ffmpeg open a network stream"},
    {"rtp", "RTP makes ffmpeg open a network stream"},
    {"image2", "an image sequence pattern names other files"},
    {"imf", "an IMF composition names other files"},
    {"vobsub", "a VobSub index names another file"},
    {"ffmetadata", "an ffmetadata file is not media"},
    {"tty", "a text file is not media"},
    {"bin", "a text file is not media"},
    {"lavfi", "a filter graph is not media"},
};

}  // namespace

std::string demuxer_of(std::string_view format_name) {
    auto comma = format_name.find(',');
    return std::string(format_name.substr(0, comma));
}

bool demuxer_allowed(std::string_view demuxer) {
    return std::find(std::begin(k_allowed), std::end(k_allowed), demuxer) != std::end(k_allowed);
}

std::string allowed_demuxers() {
    std::string out;
    for (auto d : k_allowed) {
        if (!out.empty()) out += ',';
        out += d;
    }
    return out;
}

Status check_source_format(std::string_view format_name) {
    const std::string demuxer = demuxer_of(format_name);
    if (demuxer_allowed(demuxer)) return {};
    nlohmann::json details{{"format", demuxer}, {"allowed", allowed_demuxers()}};
    for (const auto& r : k_refused)
        if (r.name == demuxer)
            return Error(ErrorCode::UnsupportedMediaType,
                         "the source is in format '" + demuxer + "', which distconv does not read: " +
                             std::string(r.why) + "; upload the media file itself",
                         details);
    return Error(
        ErrorCode::UnsupportedMediaType,
        "the source is in format '" + demuxer + "', which is not one distconv reads (see details.allowed)",
        details);
}

std::optional<std::string> parse_probed_format(std::string_view text) {
    // "[hls @ 0x55ad5b15c240] Format hls probed with size=2048 and score=100"
    constexpr std::string_view k_mark = "Format ";
    constexpr std::string_view k_tail = " probed with size=";
    for (size_t at = text.find(k_tail); at != std::string_view::npos; at = text.find(k_tail, at + 1)) {
        size_t start = text.rfind(k_mark, at);
        if (start == std::string_view::npos) continue;
        start += k_mark.size();
        std::string_view name = text.substr(start, at - start);
        if (name.empty() || name.size() > 64) continue;
        bool plain = std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == ',';
        });
        if (plain) return std::string(name);
    }
    return std::nullopt;
}

}  // namespace distconv::media
