// Fuzzes the `ffmpeg -progress pipe:1` parser (common/media/progress.hpp).
// Input: the bytes ffmpeg would print; the last byte picks the expected duration and where the
// stream is split into chunks.
// Invariants: the updates do not depend on how the stream is chunked; percent is within 0..100;
// out_time never goes backwards and every number is finite and non-negative.

#include "common/media/progress.hpp"
#include "fuzz_check.hpp"

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

using distconv::media::ProgressParser;
using distconv::media::ProgressUpdate;

namespace {

bool finite_non_negative(const std::optional<double>& v) {
    return !v || (std::isfinite(*v) && *v >= 0);
}

bool same(const ProgressUpdate& a, const ProgressUpdate& b) {
    return a.out_time_seconds == b.out_time_seconds && a.frame == b.frame && a.fps == b.fps &&
           a.speed == b.speed && a.bitrate_kbps == b.bitrate_kbps && a.total_size == b.total_size &&
           a.percent == b.percent && a.eta_seconds == b.eta_seconds && a.done == b.done;
}

void check_updates(const std::vector<ProgressUpdate>& updates, std::optional<double> duration) {
    double last = 0;
    for (const auto& u : updates) {
        FUZZ_CHECK(std::isfinite(u.out_time_seconds) && u.out_time_seconds >= 0, "out_time finite and >= 0");
        FUZZ_CHECK(u.out_time_seconds >= last, "out_time never goes backwards");
        last = u.out_time_seconds;
        FUZZ_CHECK(!u.frame || *u.frame >= 0, "frame >= 0");
        FUZZ_CHECK(!u.total_size || *u.total_size >= 0, "total_size >= 0");
        FUZZ_CHECK(finite_non_negative(u.fps), "fps finite and >= 0");
        FUZZ_CHECK(finite_non_negative(u.speed), "speed finite and >= 0");
        FUZZ_CHECK(finite_non_negative(u.bitrate_kbps), "bitrate finite and >= 0");
        FUZZ_CHECK(finite_non_negative(u.eta_seconds), "eta finite and >= 0");
        const bool known = duration && std::isfinite(*duration) && *duration > 0;
        FUZZ_CHECK(known == u.percent.has_value(), "percent exactly when the duration is known");
        if (u.percent) {
            FUZZ_CHECK(std::isfinite(*u.percent) && *u.percent >= 0 && *u.percent <= 100,
                       "percent in 0..100");
            if (u.done) FUZZ_CHECK(*u.percent == 100, "percent is 100 at progress=end");
        }
        if (u.done) FUZZ_CHECK(u.eta_seconds == 0.0, "eta is 0 at progress=end");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t control = data[size - 1];
    const std::string_view text(reinterpret_cast<const char*>(data), size - 1);

    static const std::array<std::optional<double>, 8> k_durations = {
        std::nullopt, 0.0, 1.0, 10.5, 3600.0, 1e-9, -5.0, std::numeric_limits<double>::infinity()};
    const std::optional<double> duration = k_durations[control % k_durations.size()];

    ProgressParser whole(duration);
    const auto all = whole.feed(text);
    check_updates(all, duration);

    // The same bytes in chunks of 1..32 bytes.
    const std::size_t step = 1 + (control >> 3);
    ProgressParser chunked(duration);
    std::vector<ProgressUpdate> pieces;
    for (std::size_t pos = 0; pos < text.size(); pos += step) {
        auto part = chunked.feed(text.substr(pos, step));
        pieces.insert(pieces.end(), part.begin(), part.end());
    }
    FUZZ_CHECK(pieces.size() == all.size(), "the same number of updates however the stream is chunked");
    for (std::size_t i = 0; i < all.size(); ++i)
        FUZZ_CHECK(same(pieces[i], all[i]), "the same updates however the stream is chunked");
    return 0;
}
