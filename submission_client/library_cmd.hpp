#pragma once
// `distconv library plan|run|watch|status`: the commands over library.hpp (walk, decide, place) and
// library_state.hpp (the resumable state), talking to the server through the session.

#include "submission_client/core.hpp"
#include "submission_client/session.hpp"

#include <optional>
#include <string>
#include <vector>

namespace distconv::client {

struct LibraryOptions {
    std::vector<std::string> dirs;
    TranscodeFlags flags;
    std::string rules_file;
    std::optional<double> settle_seconds;
    std::string output_dir;
    bool replace = false;
    std::string trash;
    bool delete_originals = false;
    bool allow_bigger = false;
    int max_in_flight = 0;  // 0: the online engines' slots
    std::string state_file;
    std::string ffprobe = "ffprobe";
};

int run_library_plan(Session& s, const LibraryOptions& o);
// One pass over the library. `watching`: a pass of `library watch`, which says nothing when the
// pass did nothing.
int run_library_run(Session& s, LibraryOptions& o, bool watching = false);
// Watches the library's directories (inotify; a rescan every `interval_seconds` as the fallback, and
// for whatever inotify missed) and runs a pass after changes have settled, until Ctrl-C.
int run_library_watch(Session& s, LibraryOptions& o, double interval_seconds);
int run_library_status(Session& s, const LibraryOptions& o);

}  // namespace distconv::client
