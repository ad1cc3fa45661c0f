// Fuzzes the ffprobe JSON parser (common/media/ffprobe.hpp) and the number helpers it uses.
// Input: ffprobe's stdout. Invariants: a parse that succeeds found an audio or video stream;
// durations, rates and frame rates are finite and positive; sizes and dimensions are not negative;
// the stored form round-trips; the stream plan of every preset from it is either a plan that names
// each source stream once (kept ones mapped in range) or UNPROCESSABLE, and its argv and the output
// check of the file against that plan run without failing any other way.

#include "common/media/ffmpeg_args.hpp"
#include "common/media/ffprobe.hpp"
#include "common/media/stream_plan.hpp"
#include "fuzz_check.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace distconv::media;

namespace {

bool finite_positive(const std::optional<double>& v) {
    return !v || (std::isfinite(*v) && *v > 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    if (auto n = parse_ffmpeg_number(text)) FUZZ_CHECK(std::isfinite(*n), "parse_ffmpeg_number is finite");
    FUZZ_CHECK(finite_positive(parse_rational(text)), "parse_rational is finite and positive");

    auto info = parse_ffprobe_json(text);
    if (!info) {
        const auto code = info.error().code;
        FUZZ_CHECK(
            code == distconv::ErrorCode::InvalidArgument || code == distconv::ErrorCode::UnsupportedMediaType,
            "errors are INVALID_ARGUMENT or UNSUPPORTED_MEDIA_TYPE");
        return 0;
    }
    FUZZ_CHECK(info->has_video() || info->has_audio(), "a parsed file has audio or video");
    FUZZ_CHECK(finite_positive(info->duration_seconds), "duration finite and positive");
    FUZZ_CHECK(!info->size || *info->size >= 0, "size >= 0");
    FUZZ_CHECK(!info->bit_rate || *info->bit_rate >= 0, "bit_rate >= 0");
    for (const auto& s : info->streams) {
        FUZZ_CHECK(!s.width || *s.width >= 0, "width >= 0");
        FUZZ_CHECK(!s.height || *s.height >= 0, "height >= 0");
        FUZZ_CHECK(!s.channels || *s.channels >= 0, "channels >= 0");
        FUZZ_CHECK(!s.sample_rate || *s.sample_rate >= 0, "sample_rate >= 0");
        FUZZ_CHECK(!s.bit_rate || *s.bit_rate >= 0, "stream bit_rate >= 0");
        FUZZ_CHECK(finite_positive(s.fps), "fps finite and positive");
        FUZZ_CHECK(finite_positive(s.duration_seconds), "stream duration finite and positive");
    }
    const auto stored = to_json(*info);
    FUZZ_CHECK(to_json(probe_from_json(stored)) == stored, "the stored probe round-trips");
    const auto& presets = builtin_presets();
    const auto& preset = presets[size % presets.size()];
    auto options = parse_and_resolve(nlohmann::json{{"preset", preset.name}});
    FUZZ_CHECK(options.ok(), "every preset resolves");
    auto plan = plan_streams(*options, *info);
    if (!plan) {
        FUZZ_CHECK(plan.error().code == distconv::ErrorCode::Unprocessable,
                   "a refused plan is UNPROCESSABLE");
        return 0;
    }
    FUZZ_CHECK(plan->streams.size() == info->streams.size(), "the plan names every source stream");
    for (int i : plan->output_order)
        FUZZ_CHECK(i >= 0 && static_cast<size_t>(i) < plan->streams.size() &&
                       plan->streams[static_cast<size_t>(i)].action != StreamAction::Drop,
                   "only kept streams are mapped");
    ArgvSettings settings;
    settings.plan = &*plan;
    auto argv = build_ffmpeg_argv(*options, "in", "out", settings);
    FUZZ_CHECK(argv.ok(), "a plan always gives an argv");
    auto verified = verify_output(*plan, info->duration_seconds, *info);
    FUZZ_CHECK(verified.ok() || verified.error().code == distconv::ErrorCode::OutputMismatch,
               "an output check fails only as OUTPUT_MISMATCH");
    return 0;
}
