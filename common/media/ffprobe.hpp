#pragma once
// Parsing `ffprobe -v error -print_format json -show_format -show_streams FILE`.
// ffprobe prints most numbers as strings ("duration": "1.000000") and "N/A" when unknown; every
// field here is optional except what identifies a stream.

#include "common/error.hpp"

#include <nlohmann/json.hpp>

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
    // What a library file carries per stream (tags and dispositions), and the picture's properties.
    std::string language{};                  // tags.language ("eng"; "" when untagged or "und")
    std::string title{};                     // tags.title
    std::vector<std::string> disposition{};  // the set flags: "default", "forced", "attached_pic", ...
    std::string channel_layout{};            // "5.1", "stereo"
    std::string pix_fmt{};                   // "yuv420p10le"
    std::string color_primaries{}, color_transfer{}, color_space{}, color_range{};
    std::string field_order{};           // "progressive", "tt", "bb", "tb", "bt"
    std::optional<double> rotation{};    // degrees, from a display matrix
    std::string mastering_display{};     // x265 form: G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min), when known
    std::string content_light{};         // "max_cll,max_fall", when known
    std::string filename{}, mimetype{};  // attachments' tags

    bool has_disposition(std::string_view flag) const;
};

struct ProbeInfo {
    std::string format_name;                 // "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", ...
    std::string demuxer{};                   // the -f name it was read with ("mov"); set by the prober
    std::optional<double> duration_seconds;  // the format's, else the longest stream's
    std::optional<std::int64_t> size;
    std::optional<std::int64_t> bit_rate;
    std::vector<StreamInfo> streams;
    int chapters = 0;     // how many chapters the file has
    std::string title{};  // the format's (global) title tag

    bool has_video() const;
    bool has_audio() const;
    const StreamInfo* first_video() const;
    const StreamInfo* first_audio() const;
};

// INVALID_ARGUMENT when the text is not ffprobe's JSON; UNSUPPORTED_MEDIA_TYPE when it is but
// the file has no audio or video stream (not a media file we can transcode).
Result<ProbeInfo> parse_ffprobe_json(std::string_view json);

// The probe as the dispatch stores it (the source's; GET /jobs/{id} shows it) and reads it back:
// probe_from_json(to_json(p)) keeps every field here. Unknown or missing fields read as unset.
nlohmann::json to_json(const ProbeInfo& info);
ProbeInfo probe_from_json(const nlohmann::json& j);

// Adds what the first video frame's side data says (HDR10 mastering display and content light
// levels, which an HEVC stream carries in SEI rather than in the container) to `info`'s first
// video stream, from `ffprobe -show_frames` JSON (first_frame_argv). Unparsable text changes nothing.
void add_first_frame_side_data(ProbeInfo& info, std::string_view frames_json);

// {ffprobe, "-v", "error", [pinned input,] "-print_format", "json", "-show_format", "-show_streams",
// "-show_chapters", file}.
// With a demuxer, the input is pinned: -protocol_whitelist file -format_whitelist D -f D, so ffprobe
// reads that one file as that one format and nothing else (see input_policy.hpp).
std::vector<std::string> ffprobe_argv(const std::string& ffprobe, const std::string& file,
                                      const std::string& demuxer = "");
// The same probe with the format detected, but only one of the allowed demuxers may open it
// (-format_whitelist of input_policy.hpp's list, checked by libavformat before the demuxer starts):
// what a file's format is and its streams in one run. Only the file protocol is allowed.
std::vector<std::string> ffprobe_allowed_argv(const std::string& ffprobe, const std::string& file);
// The first video frame's side data only: -select_streams v:0 -read_intervals %+#1 -show_frames.
std::vector<std::string> first_frame_argv(const std::string& ffprobe, const std::string& file,
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
