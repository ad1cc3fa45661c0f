#pragma once
// `distconv library`: normalizing a media library from the machine that holds it. The parts that
// touch no server: walking the tree, probing files locally, deciding per file (transcode, skip or
// unreadable, each with its reason), checking a downloaded result against its plan, and placing it
// (a mirror tree, or in place with the original moved to a trash) so that no original is lost.

#include "common/error.hpp"
#include "common/media/ffprobe.hpp"
#include "common/media/options.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace distconv::client::library {

// The media extensions the walk takes (lower case, without the dot).
bool is_media_extension(const std::filesystem::path& path);

struct Found {
    std::filesystem::path path;  // absolute
    std::filesystem::path root;  // the root it was found under
    std::string relative;        // path relative to root, with '/'
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
};

// Every media file under the roots: hidden files and directories, the tool's own temporary and
// trash files, and symlinks are skipped (a link is never followed out of the tree). A root that
// cannot be read is an error, not an empty library.
Result<std::vector<Found>> walk(const std::vector<std::filesystem::path>& roots);

enum class Verdict { Transcode, Skip, Unreadable };
std::string_view to_string(Verdict v);

// What counts as already done. Each is a rule people can switch off.
struct Rules {
    bool skip_same_codec = true;       // the video is already in the target codec family...
    bool require_container = true;     // ...and in the target container...
    double max_bits_per_pixel = 0.12;  // ...at or below this many bits per pixel per frame (0: any)
    double settle_seconds = 5;         // changed more recently than this: still being copied
};
// Rules from a JSON file: {"skip_same_codec":bool,"require_container":bool,"max_bits_per_pixel":n,
// "settle_seconds":n}; unknown keys and wrong types are INVALID_ARGUMENT naming the key.
Result<Rules> parse_rules(const nlohmann::json& j);

struct Decision {
    Verdict verdict = Verdict::Transcode;
    std::string reason;
    std::optional<double> estimated_output_bytes;
};

// `resolved`: the job's options with the preset applied. `age_seconds`: since the file last changed.
Decision decide(const Result<media::ProbeInfo>& probe, const media::JobOptions& resolved, const Rules& rules,
                const Found& file, double age_seconds);

// The result (downloaded to `result`) against the plan made from the source's probe: duration within
// max(0.5 s, 1 %) and every planned stream there. OUTPUT_MISMATCH says what differs.
Status verify_result(const std::string& ffprobe, const std::filesystem::path& result,
                     const media::ProbeInfo& source, const media::JobOptions& resolved);

// Where a result goes: the mirror (<output_dir>/<relative with the container's extension>) or, for
// --replace, beside the original (its name with the container's extension).
std::filesystem::path mirror_path(const std::filesystem::path& output_dir, const std::string& relative,
                                  const std::string& container);
std::filesystem::path replace_path(const std::filesystem::path& original, const std::string& container);

// --replace's default trash: <root>/.distconv-trash (skipped by walk()).
std::string default_trash(const std::filesystem::path& root);

// The temporary name a result is downloaded to beside its destination (skipped by walk()).
std::filesystem::path temporary_path(const std::filesystem::path& destination);

// Moves the verified result at `temp` to `dest` (fsynced, one rename). With `trash`, the original at
// `original` is first moved to <trash>/<relative> (kept, never deleted) unless `delete_original`.
// Nothing is overwritten that is not the original itself.
Status place(const std::filesystem::path& temp, const std::filesystem::path& dest,
             const std::optional<std::filesystem::path>& original,
             const std::optional<std::filesystem::path>& trash, const std::string& relative,
             bool delete_original);

// The Idempotency-Key of a file's submit: the same file (content hash) with the same options is the
// same server job, however often the run is restarted.
std::string idempotency_key(const std::string& content_sha256, const nlohmann::json& job);

}  // namespace distconv::client::library
