#pragma once
// Parsing `ffprobe -v error -print_format json -show_format -show_streams FILE`.
// ffprobe prints most numbers as strings ("duration": "1.000000") and "N/A" when unknown; every
// field here is optional except what identifies a stream.

#include "common/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace distconv::media {

struct StreamInfo {
    int index = 0;
    std::string codec_type;  // "video", "audio", "subtitle", "data", "attachment"
    std::string codec_name;  // "h264", "aac", ... (may be empty for unknown codecs)
    std::optional<int> width;
    std::optional<int> height;
    std::optional<double> fps;  // from avg_frame_rate ("30000/1001"), else r_frame_rate
    std::optional<int> channels;
    std::optional<int> sample_rate;
    std::optional<double> duration_seconds;
    std::optional<std::int64_t> bit_rate;
};

struct ProbeInfo {
    std::string format_name;                 // "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", ...
    std::string demuxer{};                   // the -f name it was read with ("mov"); set by the prober
    std::optional<double> duration_seconds;  // the format's, else the longest stream's
    std::optional<std::int64_t> size;
    std::optional<std::int64_t> bit_rate;
    std::vector<StreamInfo> streams;

    bool has_video() const;
    bool has_audio() const;
    const StreamInfo* first_video() const;
    const StreamInfo* first_audio() const;
};

// INVALID_ARGUMENT when the text is not ffprobe's JSON; UNSUPPORTED_MEDIA_TYPE when it is but
// the file has no audio or video stream (not a media file we can transcode).
Result<ProbeInfo> parse_ffprobe_json(std::string_view json);

// {ffprobe, "-v", "error", [pinned input,] "-print_format", "json", "-show_format", "-show_streams", file}.
// With a demuxer, the input is pinned: -protocol_whitelist file -format_whitelist D -f D, so ffprobe
// reads that one file as that one format and nothing else (see input_policy.hpp).
std::vector<std::string> ffprobe_argv(const std::string& ffprobe, const std::string& file,
                                      const std::string& demuxer = "");

// Detects the file's format without opening it with any demuxer: the probe runs, the whitelist
// ("none") stops it before the demuxer starts, and -v debug prints what was detected (read it with
// parse_probed_format). Only the file protocol is allowed.
std::vector<std::string> ffprobe_detect_argv(const std::string& ffprobe, const std::string& file);

// A number as ffmpeg and ffprobe print them ("1.000000", " 25 "); nullopt for "N/A", junk and inf/nan.
std::optional<double> parse_ffmpeg_number(std::string_view text);

// "30000/1001" -> 29.97..., "25" -> 25; nullopt for "0/0", "N/A" and garbage.
std::optional<double> parse_rational(std::string_view text);

}  // namespace distconv::media
