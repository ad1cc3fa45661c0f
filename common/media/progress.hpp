#pragma once
// Parsing `ffmpeg -progress pipe:1` output: key=value lines in blocks, each block ending with
// progress=continue or progress=end. Chunks may split lines anywhere; values may be "N/A" or,
// at the start of an encode, absurd negatives (out_time_us=-9223372036854775807).

#include "common/media/options.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace distconv::media {

struct ProgressUpdate {
    double out_time_seconds = 0;  // media time written so far (0 while unknown)
    std::optional<std::int64_t> frame;
    std::optional<double> fps;
    std::optional<double> speed;         // "1.5x" -> 1.5
    std::optional<double> bitrate_kbps;  // "136.0kbits/s" -> 136.0
    std::optional<std::int64_t> total_size;
    std::optional<double> percent;      // 0..100 against the duration; nullopt when it is unknown
    std::optional<double> eta_seconds;  // remaining media time / speed
    bool done = false;                  // progress=end
};

class ProgressParser {
  public:
    // duration_seconds: the expected OUTPUT duration (see expected_output_duration()).
    explicit ProgressParser(std::optional<double> duration_seconds);

    // Feeds the next bytes of ffmpeg's stdout; returns one update per block completed by them.
    std::vector<ProgressUpdate> feed(std::string_view chunk);

  private:
    void handle_line(std::string_view line, std::vector<ProgressUpdate>& out);
    void finish_block(bool done, std::vector<ProgressUpdate>& out);

    std::optional<double> m_duration;
    std::string m_partial;      // an unfinished line from the previous chunk
    bool m_discarding = false;  // inside an overlong line: skip to its newline
    ProgressUpdate m_block;
    std::optional<double> m_out_time_us;  // the most precise key seen in this block wins
    std::optional<double> m_out_time_ms;
    std::optional<double> m_out_time_text;
    double m_last_out_time = 0;  // out_time never goes backwards between blocks
};

// How long the output will be: the input's duration cut by trim.start/trim.duration.
std::optional<double> expected_output_duration(std::optional<double> input_duration,
                                               const JobOptions& options);

// "01:02:03.500000" -> 3723.5; "-00:00:00.040000" and garbage -> nullopt.
std::optional<double> parse_clock_time(std::string_view text);

}  // namespace distconv::media
