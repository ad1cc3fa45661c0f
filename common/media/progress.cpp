#include "common/media/progress.hpp"

#include "common/media/ffprobe.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace distconv::media {
namespace {

// A line longer than this is not ffmpeg progress output; drop it rather than grow without bound.
constexpr size_t k_max_line = 4096;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::optional<double> non_negative(std::optional<double> v) {
    if (v && *v >= 0) return v;
    return std::nullopt;
}

// A count (frame, total_size): non-negative and small enough for an int64 (frame=1e30 is junk).
std::optional<std::int64_t> count(std::optional<double> v) {
    if (!v || *v < 0 || *v > 9e18) return std::nullopt;
    return static_cast<std::int64_t>(*v);
}

// "1.5x" -> 1.5, "136.0kbits/s" -> 136.0: a number followed by a known unit.
std::optional<double> parse_with_suffix(std::string_view text, std::string_view suffix) {
    text = trim(text);
    if (text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix)
        text.remove_suffix(suffix.size());
    return non_negative(parse_ffmpeg_number(text));
}

}  // namespace

std::optional<double> parse_clock_time(std::string_view text) {
    text = trim(text);
    if (text.empty() || text.front() == '-') return std::nullopt;
    double parts[3] = {0, 0, 0};
    int n = 0;
    while (n < 3) {
        auto colon = text.find(':');
        auto piece = colon == std::string_view::npos ? text : text.substr(0, colon);
        auto v = parse_ffmpeg_number(piece);
        if (!v || *v < 0) return std::nullopt;
        parts[n++] = *v;
        if (colon == std::string_view::npos) break;
        text.remove_prefix(colon + 1);
        if (n == 3) return std::nullopt;  // more than three fields
    }
    if (n != 3) return std::nullopt;
    const double seconds = parts[0] * 3600 + parts[1] * 60 + parts[2];  // "1e306:00:00" overflows
    if (!std::isfinite(seconds)) return std::nullopt;
    return seconds;
}

ProgressParser::ProgressParser(std::optional<double> duration_seconds) {
    if (duration_seconds && std::isfinite(*duration_seconds) && *duration_seconds > 0)
        m_duration = duration_seconds;
}

std::vector<ProgressUpdate> ProgressParser::feed(std::string_view chunk) {
    std::vector<ProgressUpdate> out;
    while (!chunk.empty()) {
        auto nl = chunk.find('\n');
        if (nl == std::string_view::npos) {
            if (!m_discarding) m_partial.append(chunk);
            if (m_partial.size() > k_max_line) {
                // Too long to be progress output: drop the whole line, up to its newline.
                m_partial.clear();
                m_discarding = true;
            }
            break;
        }
        if (m_discarding) {
            m_discarding = false;
        } else if (m_partial.empty()) {
            if (nl <= k_max_line) handle_line(chunk.substr(0, nl), out);
        } else {
            m_partial.append(chunk.substr(0, nl));
            std::string line = std::move(m_partial);
            m_partial.clear();
            if (line.size() <= k_max_line) handle_line(line, out);
        }
        chunk.remove_prefix(nl + 1);
    }
    return out;
}

void ProgressParser::handle_line(std::string_view line, std::vector<ProgressUpdate>& out) {
    line = trim(line);
    auto eq = line.find('=');
    if (line.empty() || eq == std::string_view::npos) return;
    auto key = trim(line.substr(0, eq));
    auto value = trim(line.substr(eq + 1));

    if (key == "progress") {
        finish_block(value == "end", out);
    } else if (key == "out_time_us") {
        m_out_time_us = non_negative(parse_ffmpeg_number(value));
    } else if (key == "out_time_ms") {
        // Despite its name, ffmpeg writes microseconds here too (same value as out_time_us).
        m_out_time_ms = non_negative(parse_ffmpeg_number(value));
    } else if (key == "out_time") {
        m_out_time_text = parse_clock_time(value);
    } else if (key == "frame") {
        if (auto v = count(parse_ffmpeg_number(value))) m_block.frame = *v;
    } else if (key == "fps") {
        m_block.fps = non_negative(parse_ffmpeg_number(value));
    } else if (key == "speed") {
        m_block.speed = parse_with_suffix(value, "x");
    } else if (key == "bitrate") {
        m_block.bitrate_kbps = parse_with_suffix(value, "kbits/s");
    } else if (key == "total_size") {
        if (auto v = count(parse_ffmpeg_number(value))) m_block.total_size = *v;
    }
    // Unknown keys (stream_0_0_q, dup_frames, drop_frames, ...) are ignored.
}

void ProgressParser::finish_block(bool done, std::vector<ProgressUpdate>& out) {
    ProgressUpdate u = m_block;
    std::optional<double> t;
    if (m_out_time_us)
        t = *m_out_time_us / 1e6;
    else if (m_out_time_ms)
        t = *m_out_time_ms / 1e6;
    else if (m_out_time_text)
        t = m_out_time_text;
    m_last_out_time = std::max(m_last_out_time, t.value_or(0));
    u.out_time_seconds = m_last_out_time;
    u.done = done;
    if (m_duration) {
        double pct = done ? 100.0 : std::clamp(u.out_time_seconds / *m_duration * 100.0, 0.0, 100.0);
        u.percent = pct;
        if (done) {
            u.eta_seconds = 0;
        } else if (u.speed && *u.speed > 0) {
            u.eta_seconds = std::max(0.0, *m_duration - u.out_time_seconds) / *u.speed;
        }
    } else if (done) {
        u.eta_seconds = 0;
    }
    out.push_back(u);
    m_block = ProgressUpdate{};
    m_out_time_us.reset();
    m_out_time_ms.reset();
    m_out_time_text.reset();
}

std::optional<double> expected_output_duration(std::optional<double> input_duration,
                                               const JobOptions& options) {
    std::optional<double> d = input_duration;
    if (d && (!std::isfinite(*d) || *d <= 0)) d.reset();
    if (d && options.trim.start) d = std::max(0.0, *d - *options.trim.start);
    if (options.trim.duration) d = d ? std::min(*d, *options.trim.duration) : *options.trim.duration;
    if (d && *d <= 0) return std::nullopt;
    return d;
}

}  // namespace distconv::media
