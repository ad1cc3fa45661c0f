#pragma once
// What an uploaded source may be: one self-contained media file, read by a demuxer that never opens
// anything but its own input. Every upload is attacker-controlled input to ffprobe (dispatch) and
// ffmpeg (engines), and some of ffmpeg's demuxers are instructions rather than media: an HLS or
// DASH playlist, a concat list or an SDP file makes ffmpeg fetch URLs or read other local files,
// an image2 pattern expands to other files. So the format is detected once at submit, checked
// against an allow-list here, recorded, and every later ffmpeg/ffprobe run is pinned to it with -f,
// -format_whitelist and -protocol_whitelist.

#include "common/error.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace distconv::media {

// The -protocol_whitelist for reading a local source file (ffprobe, file mode, the dispatch side).
inline constexpr std::string_view k_file_protocols = "file";
// ... and for stream mode, where ffmpeg reads the engine's relay on the loopback address over HTTP.
inline constexpr std::string_view k_relay_protocols = "http,tcp";

// The demuxer name ffmpeg takes with -f for a format_name as ffprobe prints it
// ("mov,mp4,m4a,3gp,3g2,mj2" -> "mov", "matroska,webm" -> "matroska"): its first component.
std::string demuxer_of(std::string_view format_name);

// Whether a demuxer (first-component name) is one distconv reads sources with.
bool demuxer_allowed(std::string_view demuxer);

// The allowed demuxers, comma-separated (for documentation and the fuzz/corpus tests).
std::string allowed_demuxers();

// OK for an allowed demuxer; UNSUPPORTED_MEDIA_TYPE naming the format otherwise, with
// details.format, and a message that says why (a playlist or list names other files or URLs).
Status check_source_format(std::string_view format_name);

// The format ffprobe detected, from its stderr at -v debug ("Format hls probed with size=2048 and
// score=100"); nullopt when it detected none.
std::optional<std::string> parse_probed_format(std::string_view ffprobe_stderr);

}  // namespace distconv::media
