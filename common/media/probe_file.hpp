#pragma once
// Probing one local media file the way distconv trusts: its format detected and opened only if it is
// one distconv reads (input_policy.hpp: libavformat's format whitelist, checked before the demuxer
// starts), its streams read from that file only in the same run, a refusal explained by a detecting
// run that opens no demuxer, and for an HDR picture the first frame's HDR10 metadata. The
// dispatch probes every source with it; the CLI probes a library with it, so both plan alike.

#include "common/error.hpp"
#include "common/media/ffprobe.hpp"

#include <filesystem>
#include <string>

namespace distconv::media {

// UNSUPPORTED_MEDIA_TYPE with ffprobe's reason (the file's path shown as "source") when the file is
// not media distconv reads; another error when ffprobe cannot be run.
Result<ProbeInfo> probe_media_file(const std::string& ffprobe, const std::filesystem::path& file);

}  // namespace distconv::media
