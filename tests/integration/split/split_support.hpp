#pragma once
// Helpers for the split-mode end-to-end tests: lavfi sources with a known keyframe cadence (and the
// awkward ones that must not be split), and the ffprobe/ffmpeg measurements the tests compare:
// decoded frame counts, stream start and end times, DTS order, decode errors and per-frame PSNR.

#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace distconv::split_test {

struct SourceSpec {
    double seconds = 44.0;
    int width = 320;
    int height = 240;
    int fps = 24;
    // Frames between keyframes (closed GOPs of exactly this length); 0: one keyframe for the whole clip.
    int gop = 48;
    // A second audio track (French; the first is English), an SRT subtitle as mov_text, two chapters
    // and a title. MP4 output only.
    bool extras = false;
    // Variable frame rate: the first half at `fps`, the second at fps * 5 / 4 (keyframes every 2 s).
    bool vfr = false;
};

// Writes the source with ffmpeg (libx264 ultrafast + AAC 48 kHz stereo; container from the
// extension). Helper files (the SRT, the ffmetadata) go next to it. False when ffmpeg failed; *log
// gets ffmpeg's stderr.
bool make_source(const std::filesystem::path& path, const SourceSpec& spec, std::string* log = nullptr);

// Runs argv; returns stdout and stderr together (for `ffmpeg -v error ...`: what it complains about).
int run_capture_all(const std::vector<std::string>& argv, std::string* out);

// ffprobe -show_streams -show_format -show_chapters as JSON (null on failure).
nlohmann::json probe_all(const std::filesystem::path& file);

// Decoded frames of the first video stream (ffprobe -count_frames: nb_read_frames).
std::optional<long> decoded_video_frames(const std::filesystem::path& file);
// Keyframe packets of the first video stream.
std::optional<long> video_keyframes(const std::filesystem::path& file);

// Where a stream starts and ends on the presentation timeline, in seconds. start: the stream's
// start_time (edit lists and codec delay applied by the demuxer), else its first packet's pts. end:
// start_time + duration when the container records the stream's duration, else the largest
// pts + duration over its packets. frame: the median packet duration (one audio frame for audio).
struct StreamSpan {
    double start = 0;
    double end = 0;
    double frame = 0;
    long packets = 0;
};
// `selector` is an ffprobe stream specifier: "v:0", "a:0".
std::optional<StreamSpan> stream_span(const std::filesystem::path& file, const std::string& selector);

// The presentation times of the first video stream's packets, in seconds, sorted (display order).
std::vector<double> video_pts(const std::filesystem::path& file);

// Empty when every DTS of the first video stream is set and strictly greater than the one before;
// otherwise a description of the first offence (packet number, the two values).
std::string dts_problem(const std::filesystem::path& file);

// What `ffmpeg -v error -i file -f null -` prints (empty: it decodes cleanly). Exit code in *rc.
std::string decode_errors(const std::filesystem::path& file, int* rc = nullptr);

// Per-frame PSNR (psnr_avg of the psnr filter's stats file, frame order) of `encoded` against
// `reference`, both rebased to start at 0. Empty on failure (*log gets ffmpeg's output).
struct PsnrResult {
    std::vector<double> per_frame;  // dB; 100 stands for "inf" (identical frames)
    double average = 0;             // from the mean MSE, as ffmpeg's own summary computes it
};
std::optional<PsnrResult> psnr(const std::filesystem::path& encoded, const std::filesystem::path& reference,
                               const std::filesystem::path& stats_file, std::string* log = nullptr);

// The job's "split" object (null when absent) and its segments by kind.
const nlohmann::json& split_of(const nlohmann::json& job);
std::vector<nlohmann::json> segments_of_kind(const nlohmann::json& job, const std::string& kind);

// An attempt that delivered: state "completed" where the attempt has a state, else finished
// without an error class.
bool attempt_completed(const nlohmann::json& attempt);

}  // namespace distconv::split_test
