#pragma once
// The stream plan: from the source's probe and the job's resolved options, what the output gets,
// stream by stream (encode, copy, convert or drop, each with its reason), and what travels with
// the streams (chapters, global metadata, colour tags and HDR10 metadata, deinterlacing). The argv
// (ffmpeg_args.hpp) maps exactly the planned streams; the output is checked against the plan
// (verify_output) before it counts. The same function runs on the dispatch (GET /jobs/{id}, the
// job's ffmpeg_command) and on the engine (the command it runs), from the same stored probe.

#include "common/error.hpp"
#include "common/media/ffprobe.hpp"
#include "common/media/options.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace distconv::media {

enum class StreamAction { Encode, Copy, Convert, Drop };
std::string_view to_string(StreamAction a);

struct PlannedStream {
    int index = 0;      // the source's stream index
    std::string type;   // video, audio, subtitle, attachment, data
    std::string codec;  // the source's codec name
    std::string language{};
    std::string title{};
    std::vector<std::string> disposition{};
    StreamAction action = StreamAction::Drop;
    std::string reason{};
    std::string encoder{};            // what ffmpeg writes it with: "libx265", "aac", "mov_text", "copy"
    std::optional<int> channels{};    // audio downmixed to this many channels (only when planned)
    std::string output_codec_name{};  // the codec ffprobe names in the output ("hevc", "mov_text")
};

struct StreamPlan {
    std::vector<PlannedStream> streams;  // in the source's order
    std::vector<int> output_order;       // indexes into `streams` of the kept ones, as the output has them
    bool chapters = false;
    std::string chapters_reason{};
    bool deinterlace = false;
    bool tonemap = false;
    // Carried to the encoder when the main video is encoded (empty: not set).
    std::string color_primaries{}, color_transfer{}, color_space{}, color_range{};
    std::string mastering_display{}, content_light{};  // HDR10, x265 notation
    std::optional<double> rotation{};                  // the source's display rotation (applied)

    const PlannedStream* main_video() const;
};

// 422-style INVALID_ARGUMENT (naming the field and what the source has) when a selection matches
// nothing, when subtitles.on_unsupported is "fail" and a subtitle cannot be carried, and when a
// 10-bit HDR source would be encoded to 8 bits without video.hdr "tonemap".
Result<StreamPlan> plan_streams(const JobOptions& resolved, const ProbeInfo& source);

// {"streams":[{index,type,codec,language,title,disposition,action,reason,encoder,channels}],
//  "chapters":bool,"chapters_reason":..,"picture":{deinterlace,tonemap,color_*,mastering_display,
//  content_light,rotation}}
nlohmann::json to_json(const StreamPlan& plan);

// After ffmpeg exited 0: the output, as ffprobe reads it, against the plan. `expected_seconds` is
// the source's duration less the trims (unknown, or an output without one: no duration check).
// Every kept stream must be there, in order, with its planned codec; the durations must agree
// within max(0.5 s, 1 %).
// The error (OUTPUT_MISMATCH) says what differs.
Status verify_output(const StreamPlan& plan, std::optional<double> expected_seconds, const ProbeInfo& output);

// How a duration differs from the expected one beyond max(0.5 s, 1 %) ("the output is 0.40 s long,
// expected 3.00 s (within 0.50 s)"); nullopt when it agrees or nothing is expected.
std::optional<std::string> duration_difference(std::optional<double> expected, std::optional<double> actual);

// The demuxer that reads back an output written as `container` ("mp4" -> "mov", "mkv" -> "matroska"),
// for a pinned ffprobe of the output; empty for an unknown container.
std::string output_demuxer(const std::string& container);

}  // namespace distconv::media
