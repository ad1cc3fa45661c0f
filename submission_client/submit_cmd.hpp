#pragma once
// `distconv submit`: upload each file resumably, follow the jobs, download and check the results.

#include "submission_client/core.hpp"
#include "submission_client/session.hpp"

#include <string>
#include <vector>

namespace distconv::client {

struct SubmitOptions {
    std::vector<std::string> files;
    std::string output;
    std::string output_dir;
    TranscodeFlags flags;
    bool wait = false;
    bool detach = false;
    bool force = false;
};

int run_submit(Session& s, SubmitOptions& o);

}  // namespace distconv::client
