#pragma once
// Running child processes without a shell: argv in, exit status and captured output out.
// Used for ffprobe on the dispatch side and (through the engine's runner) ffmpeg.

#include "common/error.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace distconv::process {

struct Outcome {
    int exit_code = -1;      // exit status, or 128 + signal when killed by a signal
    bool timed_out = false;  // killed because it ran past the timeout
    std::string out;         // stdout (capped at max_output bytes)
    std::string err;         // stderr (capped; the tail is kept)
};

struct Options {
    std::chrono::milliseconds timeout{0};  // 0: none
    size_t max_output = 16 << 20;
};

// Runs argv[0] (looked up in PATH) with the given arguments. stdin is /dev/null. An Error means the
// process could not be started at all (e.g. the program does not exist).
Result<Outcome> run(const std::vector<std::string>& argv, const Options& options = {});

// From now on every child run() starts in this process gets a CPU priority this much below the
// process's own (a nice increment, 0..19; 0: the same). The dispatch server runs its ffprobe and
// ffmpeg helpers so, that media work on a saturated machine does not delay its answers.
void set_child_nice(int increment);

// The last `max_lines` non-empty lines of a text (for ffmpeg stderr summaries).
std::string tail_lines(const std::string& text, size_t max_lines = 20);

}  // namespace distconv::process
