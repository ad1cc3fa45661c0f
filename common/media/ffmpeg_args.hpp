#pragma once
// Resolved job options -> the ffmpeg argument vector. Never a shell string: the engine execs argv
// directly. Input and output come from the system (a local path, a placeholder such as "{input}",
// or an http URL); the options themselves can only add allow-listed encoder settings, never another
// input, file, protocol, device or filter-graph source. The muxer is always named with -f, so an
// output name cannot choose one.

#include "common/error.hpp"
#include "common/media/options.hpp"
#include "common/media/stream_plan.hpp"

#include <optional>
#include <string>
#include <vector>

namespace distconv::media {

struct ArgvSettings {
    std::string ffmpeg = "ffmpeg";  // program path (argv[0])
    bool progress = true;           // -progress pipe:1 -nostats: machine-readable progress on stdout
    bool streamable = false;        // output goes to a non-seekable sink: fragmented mp4 instead of faststart
    std::optional<int> threads;     // the engine's limit; wins over an extra_args -threads
    std::string loglevel = "error";  // quiet|panic|fatal|error|warning|info
    // The input is pinned (input_policy.hpp): -protocol_whitelist before -i always, and, when the
    // source's demuxer is known, -format_whitelist D -f D. The demuxer must be an allowed one.
    std::string input_format{};
    std::string input_protocols = "file";
    // The source's stream plan (stream_plan.hpp): exactly its kept streams are mapped, each with its
    // encoder, and chapters, colour tags, HDR10 metadata and deinterlacing as it says. Without one
    // (the source's streams unknown), the first video and first audio stream only.
    const StreamPlan* plan = nullptr;
    // A video segment of a split job (split mode): the plan's one video stream only, encoded so the
    // pieces join (closed GOPs, every frame passed through with its timestamp), written as NUT
    // (exact timestamps in any timebase) whatever the job's container.
    bool video_segment = false;
};

// The container of encoded video segments (and of the cut source segments): NUT keeps every
// timestamp exactly, for any codec.
inline constexpr std::string_view k_segment_muxer = "nut";

// `resolved` should come from resolve_options(); it is validated again here, so an unchecked
// JobOptions can never reach ffmpeg. Fails with INVALID_ARGUMENT for bad options or settings.
Result<std::vector<std::string>> build_ffmpeg_argv(const JobOptions& resolved, const std::string& input,
                                                   const std::string& output,
                                                   const ArgvSettings& settings = {});

// The POSIX-shell-quoted form of argv, for display (the job's `ffmpeg_command`) and reproduction.
std::string quote_command(const std::vector<std::string>& argv);

}  // namespace distconv::media
