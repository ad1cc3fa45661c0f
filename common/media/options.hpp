#pragma once
// The job options model: what a user may ask ffmpeg to do, as typed optional fields.
// parse_job_options() checks shape and types (strict: unknown keys are errors), validate() checks
// values against allow-lists, and resolve_options() applies a named preset then the explicit fields.
// Every failure is an INVALID_ARGUMENT naming the offending field in details.field ("video.crf").

#include "common/error.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace distconv::media {

struct VideoOptions {
    // libx264, libx265, libvpx, libvpx-vp9, libaom-av1, libsvtav1, mpeg4, copy, none
    std::optional<std::string> codec;
    std::optional<int> crf;
    std::optional<std::string> bitrate;  // "3M", "800k", "2500000"
    std::optional<std::string> maxrate;
    std::optional<std::string> bufsize;
    // x264/x265: "veryfast"...; vpx/aom: cpu-used "0".."8"; svtav1: "0".."13"
    std::optional<std::string> preset;
    std::optional<std::string> fps;    // "30", "29.97" or "30000/1001" (JSON: number or string)
    std::optional<std::string> scale;  // "W:H", each 16..16384 (even) or -1/-2
    std::optional<std::string> pix_fmt;
    std::optional<std::string> profile;
    std::optional<std::string> deinterlace;  // auto (when the probe says interlaced; the default), on, off
    std::optional<std::string> hdr;          // keep (the default: a 10-bit HDR source needs 10-bit), tonemap

    bool empty() const;
    bool operator==(const VideoOptions&) const = default;
};

struct AudioOptions {
    std::optional<std::string> codec;  // aac, libopus, libvorbis, libmp3lame, flac, ac3, copy, none
    std::optional<std::string> bitrate;
    std::optional<int> channels;
    std::optional<int> sample_rate;
    std::optional<std::string> tracks;                  // all (the default), first
    std::optional<std::vector<std::string>> languages;  // ISO 639 codes, in output order

    bool empty() const;
    bool operator==(const AudioOptions&) const = default;
};

struct SubtitleOptions {
    std::optional<std::string> mode;                    // keep (the default), drop
    std::optional<std::vector<std::string>> languages;  // ISO 639 codes, in output order
    std::optional<std::string> on_unsupported;          // drop (the default, with the reason), fail

    bool empty() const;
    bool operator==(const SubtitleOptions&) const = default;
};

struct TrimOptions {
    std::optional<double> start;     // seconds
    std::optional<double> duration;  // seconds

    bool empty() const;
    bool operator==(const TrimOptions&) const = default;
};

// Split mode (docs/protocol.md "Split mode"): one long video encoded as keyframe-cut segments by
// several engines at once, audio once, joined on the dispatch server without re-encoding.
struct SplitOptions {
    std::optional<std::string> mode;        // auto (the default), on, off
    std::optional<double> segment_seconds;  // 2..3600, default 60

    bool empty() const;
    bool operator==(const SplitOptions&) const = default;
};
inline constexpr double k_default_segment_seconds = 60;

struct JobOptions {
    std::optional<std::string> output_filename;
    std::optional<std::string> preset;
    std::optional<std::string> container;  // mp4, mov, mkv, webm, ts, m4a, mp3, ogg, flac
    VideoOptions video;
    AudioOptions audio;
    SubtitleOptions subtitles;
    TrimOptions trim;
    SplitOptions split;
    std::optional<std::vector<std::string>> extra_args;

    bool operator==(const JobOptions&) const = default;
};

// Strict JSON -> JobOptions: unknown keys and wrong types are errors naming the field
// ("video.crff", "audio.channels"). A JSON null counts as "not given". Values are not checked here.
Result<JobOptions> parse_job_options(const nlohmann::json& json);

// JobOptions -> JSON in the contract's shape; only the fields that are set. Round-trips with parse.
nlohmann::json to_json(const JobOptions& options);

// Checks every value that is set (allow-lists, ranges, codec/container compatibility, extra_args).
Status validate(const JobOptions& options);

struct Preset {
    std::string name;
    std::string description;
    JobOptions options;
};

const std::vector<Preset>& builtin_presets();
const Preset* find_preset(std::string_view name);
// What a preset in `container` keeps of a source by default (GET /presets "keeps"; the stream plan
// in stream_plan.hpp decides it stream by stream).
std::string preset_keeps(std::string_view container);
nlohmann::json to_json(const Preset& preset);  // {"name","description","options"}

// The name of the preset used when the options name none and the container does not suggest one.
inline constexpr std::string_view k_default_preset = "h264-web";

// The options a job really runs with: the named preset (or a default that suits the container),
// then the explicit fields on top, then validate(). Container, codec and every setting are filled in.
Result<JobOptions> resolve_options(const JobOptions& options);

// parse_job_options() then resolve_options().
Result<JobOptions> parse_and_resolve(const nlohmann::json& json);

// Allow-lists, exposed for callers that advertise them (GET /presets, capability checks).
const std::vector<std::string>& supported_containers();
const std::vector<std::string>& supported_video_codecs();
const std::vector<std::string>& supported_audio_codecs();

// "mp4" -> "mp4", "mkv" -> "mkv", "m4a" -> "m4a"; empty for an unknown container.
std::string container_extension(std::string_view container);
// The ffmpeg muxer for a container: "mkv" -> "matroska", "ts" -> "mpegts", "m4a" -> "ipod".
std::string container_muxer(std::string_view container);
// True when the container holds audio only (m4a, mp3, ogg, flac).
bool is_audio_only_container(std::string_view container);

// The input's stem plus the resolved container's extension, made safe as an output_filename
// ("My Movie.final.MOV" -> "My Movie.final.mp4"; "../x" -> "x.mp4"; "" -> "output.mp4").
std::string default_output_filename(const std::string& input_filename, const JobOptions& resolved);

// Parses "128k", "3M", "2.5M", "800000" to bits per second; nullopt unless it matches
// ^[0-9]+(\.[0-9]+)?[kKmM]?$ and is finite.
std::optional<double> parse_bitrate(std::string_view text);

}  // namespace distconv::media
