#include "submission_client/library.hpp"

#include "common/fs.hpp"
#include "common/hash.hpp"
#include "common/media/input_policy.hpp"
#include "common/media/probe_file.hpp"
#include "common/media/progress.hpp"
#include "common/media/stream_plan.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

namespace distconv::client::library {
namespace stdfs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view k_temp_prefix = ".distconv-part-";
constexpr std::string_view k_trash_dir = ".distconv-trash";

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// The codec family ffprobe reports for what an encoder writes.
std::string family_of(const std::string& encoder) {
    if (encoder == "libx264") return "h264";
    if (encoder == "libx265") return "hevc";
    if (encoder == "libvpx-vp9") return "vp9";
    if (encoder == "libvpx") return "vp8";
    if (encoder == "libaom-av1" || encoder == "libsvtav1") return "av1";
    return encoder;
}

// The container a probed file is in, as the options name it ("mov,mp4,..." with an .mp4 name: mp4).
bool in_container(const media::ProbeInfo& p, const std::string& container, const stdfs::path& path) {
    const std::string ext = lower(path.extension().string());
    const std::string wanted = "." + media::container_extension(container);
    if (ext != wanted) return false;
    const std::string demuxer = media::demuxer_of(p.format_name);
    return demuxer == media::output_demuxer(container) || media::output_demuxer(container).empty();
}

// A typical output bitrate (bits/s) for the preset's codec at this picture size, for the estimate.
double typical_bitrate(const std::string& encoder, int width, int height, std::optional<int> crf) {
    const double pixels = static_cast<double>(std::max(1, width)) * std::max(1, height);
    double bpp = 0.10;  // H.264 at CRF 23, bits per pixel per frame at 25 fps
    if (encoder == "libx265" || encoder == "libvpx-vp9") bpp = 0.06;
    if (encoder == "libaom-av1" || encoder == "libsvtav1") bpp = 0.05;
    if (crf) bpp *= std::pow(2.0, (23.0 - *crf) / 6.0);  // ~6 CRF steps halve the rate
    return pixels * 25.0 * bpp;
}

}  // namespace

bool is_media_extension(const stdfs::path& path) {
    static const std::set<std::string> exts = {
        ".mkv",  ".mp4", ".m4v", ".mov", ".avi",  ".wmv", ".flv", ".webm", ".ts",   ".m2ts", ".mts",  ".mpg",
        ".mpeg", ".vob", ".ogv", ".3gp", ".divx", ".asf", ".m4a", ".mp3",  ".flac", ".ogg",  ".opus", ".wav"};
    return exts.count(lower(path.extension().string())) == 1;
}

Result<std::vector<Found>> walk(const std::vector<stdfs::path>& roots) {
    std::vector<Found> out;
    for (const auto& given : roots) {
        std::error_code ec;
        const auto root = stdfs::canonical(given, ec);
        if (ec || !stdfs::is_directory(root, ec))
            return Error::invalid("dir", given.string() + " is not a directory that can be read");
        stdfs::recursive_directory_iterator it(root, stdfs::directory_options::none, ec), end;
        if (ec) return Error::invalid("dir", "cannot read " + given.string() + ": " + ec.message());
        for (; it != end; it.increment(ec)) {
            if (ec)
                return Error(ErrorCode::Internal,
                             "cannot read under " + given.string() + ": " + ec.message());
            const auto& entry = *it;
            const std::string name = entry.path().filename().string();
            const bool hidden =
                !name.empty() && name.front() == '.';  // also .distconv-part-*, .distconv-trash
            if (entry.is_symlink(ec)) continue;        // never followed, in or out of the tree
            if (entry.is_directory(ec)) {
                if (hidden) it.disable_recursion_pending();
                continue;
            }
            if (hidden || !entry.is_regular_file(ec) || !is_media_extension(entry.path())) continue;
            Found f;
            f.path = entry.path();
            f.root = root;
            f.relative = entry.path().lexically_relative(root).generic_string();
            f.size = entry.file_size(ec);
            auto t = entry.last_write_time(ec);
            f.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
            out.push_back(std::move(f));
        }
    }
    std::sort(out.begin(), out.end(), [](const Found& a, const Found& b) { return a.path < b.path; });
    return out;
}

std::string_view to_string(Verdict v) {
    switch (v) {
        case Verdict::Transcode:
            return "transcode";
        case Verdict::Skip:
            return "skip";
        case Verdict::Unreadable:
            return "unreadable";
    }
    return "skip";
}

Result<Rules> parse_rules(const json& j) {
    if (!j.is_object()) return Error::invalid("rules", "the rules file must hold a JSON object");
    Rules r;
    for (const auto& [key, value] : j.items()) {
        if (key == "skip_same_codec" || key == "require_container") {
            if (!value.is_boolean()) return Error::invalid(key, key + " must be true or false");
            (key == "skip_same_codec" ? r.skip_same_codec : r.require_container) = value.get<bool>();
        } else if (key == "max_bits_per_pixel" || key == "settle_seconds") {
            if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0)
                return Error::invalid(key, key + " must be a number at least 0");
            (key == "max_bits_per_pixel" ? r.max_bits_per_pixel : r.settle_seconds) = value.get<double>();
        } else {
            return Error::invalid(key, "unknown rule '" + key +
                                           "' (skip_same_codec, require_container, max_bits_per_pixel, "
                                           "settle_seconds)");
        }
    }
    return r;
}

Decision decide(const Result<media::ProbeInfo>& probe, const media::JobOptions& resolved, const Rules& rules,
                const Found& file, double age_seconds) {
    const std::uint64_t size = file.size;
    Decision d;
    if (age_seconds < rules.settle_seconds) {
        d.verdict = Verdict::Skip;
        d.reason = "changed " + std::to_string(static_cast<int>(age_seconds)) +
                   " s ago: still being written (settle time " +
                   std::to_string(static_cast<int>(rules.settle_seconds)) + " s)";
        return d;
    }
    if (!probe) {
        d.verdict = Verdict::Unreadable;
        d.reason = probe.error().message;
        return d;
    }
    const std::string encoder = resolved.video.codec.value_or("libx264");
    const std::string container = resolved.container.value_or("mp4");
    const auto* v = probe->first_video();
    if (v && encoder != "copy" && encoder != "none") {
        const int w = v->width.value_or(0), h = v->height.value_or(0);
        const double fps = v->fps.value_or(25);
        const double seconds = probe->duration_seconds.value_or(0);
        const double rate = probe->bit_rate ? static_cast<double>(*probe->bit_rate)
                            : seconds > 0   ? static_cast<double>(size) * 8 / seconds
                                            : 0;
        const double bpp = w > 0 && h > 0 && fps > 0 ? rate / (static_cast<double>(w) * h * fps) : 0;
        const bool same_codec = v->codec_name == family_of(encoder);
        const bool container_ok = !rules.require_container || in_container(*probe, container, file.path);
        if (rules.skip_same_codec && same_codec && container_ok &&
            (rules.max_bits_per_pixel <= 0 || bpp <= rules.max_bits_per_pixel)) {
            d.verdict = Verdict::Skip;
            char buf[160];
            std::snprintf(buf, sizeof buf, "already %s at %.3f bits per pixel", v->codec_name.c_str(), bpp);
            d.reason = buf;
            return d;
        }
        d.reason = !same_codec     ? v->codec_name + " to " + family_of(encoder)
                   : !container_ok ? "already " + v->codec_name + ", into " + container
                                   : "already " + v->codec_name + " but above the bitrate rule";
        if (seconds > 0)
            d.estimated_output_bytes = typical_bitrate(encoder, w, h, resolved.video.crf) * seconds / 8;
    } else {
        d.reason = v ? "video " + encoder : "audio only";
    }
    d.verdict = Verdict::Transcode;
    return d;
}

Status verify_result(const std::string& ffprobe, const stdfs::path& result, const media::ProbeInfo& source,
                     const media::JobOptions& resolved) {
    auto out = media::probe_media_file(ffprobe, result);
    if (!out) return Error(ErrorCode::OutputMismatch, "the result does not open: " + out.error().message);
    auto plan = media::plan_streams(resolved, source);
    if (!plan) return plan.error();
    return media::verify_output(*plan, media::expected_output_duration(source.duration_seconds, resolved),
                                *out);
}

stdfs::path mirror_path(const stdfs::path& output_dir, const std::string& relative,
                        const std::string& container) {
    stdfs::path rel(relative);
    rel.replace_extension("." + media::container_extension(container));
    return output_dir / rel;
}

stdfs::path replace_path(const stdfs::path& original, const std::string& container) {
    stdfs::path p = original;
    p.replace_extension("." + media::container_extension(container));
    return p;
}

stdfs::path temporary_path(const stdfs::path& destination) {
    return destination.parent_path() / (std::string(k_temp_prefix) + destination.filename().string());
}

Status place(const stdfs::path& temp, const stdfs::path& dest, const std::optional<stdfs::path>& original,
             const std::optional<stdfs::path>& trash, const std::string& relative, bool delete_original) {
    std::error_code ec;
    DISTCONV_TRY(fs::fsync_path(temp));
    if (original) {
        // In place: the original goes first to the trash (or away, when asked), then the result takes
        // its name. A crash between the two leaves the original in the trash and the result beside it.
        if (stdfs::exists(*original, ec)) {
            if (delete_original) {
                if (!stdfs::remove(*original, ec) || ec)
                    return Error(ErrorCode::Internal,
                                 "cannot remove " + original->string() + ": " + ec.message());
            } else {
                const stdfs::path kept = *trash / relative;
                stdfs::create_directories(kept.parent_path(), ec);
                if (stdfs::exists(kept, ec))
                    return Error(ErrorCode::Conflict,
                                 kept.string() + " is already in the trash: not overwritten");
                stdfs::rename(*original, kept, ec);
                if (ec)
                    return Error(ErrorCode::Internal, "cannot move " + original->string() + " to the trash " +
                                                          kept.string() + ": " + ec.message());
                DISTCONV_TRY(fs::fsync_path(kept.parent_path()));
            }
        }
    } else if (stdfs::exists(dest, ec)) {
        return Error(ErrorCode::Conflict, dest.string() + " already exists: not overwritten");
    }
    stdfs::create_directories(dest.parent_path(), ec);
    return fs::durable_rename(temp, dest);
}

std::string default_trash(const stdfs::path& root) {
    return (root / std::string(k_trash_dir)).string();
}

std::string idempotency_key(const std::string& content_sha256, const json& job) {
    return "library-" + sha256_hex(content_sha256 + "\n" + job.dump()).substr(0, 48);
}

}  // namespace distconv::client::library
