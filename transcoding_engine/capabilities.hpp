#pragma once
// What this machine's ffmpeg can do (parsed from -encoders/-decoders/-hwaccels/-version) and how
// fast it is (a short reference encode).

#include "common/error.hpp"
#include "protocol/engines.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace distconv::engine {

// The names in `ffmpeg -hide_banner -encoders` / `-decoders` output (the rows after " ------").
std::vector<std::string> parse_codec_list(std::string_view text);
// The names in `ffmpeg -hide_banner -hwaccels` output (the lines after the header).
std::vector<std::string> parse_hwaccels(std::string_view text);
// "ffmpeg version 5.1.6-0+deb12u1 Copyright ..." -> "5.1.6-0+deb12u1"; "" when not found.
std::string parse_ffmpeg_version(std::string_view text);

// Runs the four ffmpeg queries. Fails when ffmpeg cannot run or lists no encoder.
Result<protocol::Capabilities> probe_capabilities(const std::string& ffmpeg);

// Encodes 2 s of 320x240 testsrc2 with libx264 ultrafast and returns frames per second.
Result<double> run_benchmark(const std::string& ffmpeg);

}  // namespace distconv::engine
