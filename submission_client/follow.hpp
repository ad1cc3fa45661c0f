#pragma once
// Following jobs to a terminal state: one through its events stream (polling /status when the
// stream fails), several by polling, each shown as a redrawn line or a plain line per state change.

#include "protocol/protocol.hpp"
#include "submission_client/core.hpp"
#include "submission_client/session.hpp"

#include <string>
#include <vector>

namespace distconv::client {

void apply_status(JobView& v, const protocol::JobStatus& st);
JobView make_view(const std::string& id, const std::string& label, const std::string& state);
bool is_terminal_name(const std::string& state);

// Follows one job to a terminal state: the events stream first, polling /status every second
// when the stream fails or ends early. Returns with the view unfinished when interrupted.
Result<JobView> follow_one(Session& s, JobView view);
// Follows several jobs by polling, one line each (redrawn together on a terminal).
void follow_many(Session& s, std::vector<JobView>& views);

}  // namespace distconv::client
