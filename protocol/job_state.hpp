#pragma once
// The job state machine (docs/protocol.md draws it). can_transition() is the single source of the
// allowed edges; the store guards every transition with it.

#include <array>
#include <optional>
#include <string_view>

namespace distconv::protocol {

enum class JobState {
    AwaitingUpload,  // created by a JSON submit; the source bytes are not complete yet
    Queued,          // waiting for an engine
    Assigned,        // an engine claimed it; no progress yet
    Running,         // the engine reports progress
    Canceling,       // cancel requested while an engine holds it; waiting for the engine to stop
    Completed,       // terminal: the output is stored
    Failed,          // terminal (retry possible): permanent failure, attempts exhausted, expired
    Canceled,        // terminal (retry possible)
};

inline constexpr std::array<JobState, 8> k_all_job_states{
    JobState::AwaitingUpload, JobState::Queued,    JobState::Assigned, JobState::Running,
    JobState::Canceling,      JobState::Completed, JobState::Failed,   JobState::Canceled,
};

std::string_view to_string(JobState state);  // "awaiting_upload", "queued", ...
std::optional<JobState> parse_job_state(std::string_view text);

// completed, failed and canceled: nothing happens to the job unless a user retries it.
bool is_terminal(JobState state);

// True when the server may move a job from `from` to `to` in one step. Self-transitions are not
// transitions (false).
bool can_transition(JobState from, JobState to);

}  // namespace distconv::protocol
