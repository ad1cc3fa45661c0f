#pragma once
// Probing one local media file the way distconv trusts: the format detected without starting any
// demuxer, refused unless it is one distconv reads (input_policy.hpp), then the streams read as that
// format only, from that file only, and for an HDR picture the first frame's HDR10 metadata. The
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
