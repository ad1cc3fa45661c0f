#include "protocol/job_state.hpp"

#include <utility>

namespace distconv::protocol {
namespace {

constexpr std::array<std::pair<JobState, std::string_view>, 8> k_names{{
    {JobState::AwaitingUpload, "awaiting_upload"},
    {JobState::Queued, "queued"},
    {JobState::Assigned, "assigned"},
    {JobState::Running, "running"},
    {JobState::Canceling, "canceling"},
    {JobState::Completed, "completed"},
    {JobState::Failed, "failed"},
    {JobState::Canceled, "canceled"},
}};

struct Edge {
    JobState from;
    JobState to;
};

// Every allowed edge; the comment says what causes it. Keep in step with docs/protocol.md.
constexpr std::array<Edge, 19> k_edges{{
    {JobState::AwaitingUpload, JobState::Queued},    // last source byte stored, checksum and probe pass
    {JobState::AwaitingUpload, JobState::Failed},    // undecodable source, fetch failure, checksum, TTL
    {JobState::AwaitingUpload, JobState::Canceled},  // user cancel
    {JobState::Queued, JobState::Assigned},          // an engine claims it
    {JobState::Queued, JobState::Failed},            // queued past its TTL (reason "expired")
    {JobState::Queued, JobState::Canceled},          // user cancel, at once
    {JobState::Queued, JobState::Running},           // split mode: the job's segment tasks exist
    {JobState::Assigned, JobState::Running},         // first progress report
    {JobState::Assigned, JobState::Completed},       // engine finished before its first progress report
    {JobState::Assigned, JobState::Failed},          // permanent failure, or the last attempt ended
    {JobState::Assigned, JobState::Queued},          // lease expired / transient failure, attempts left
    {JobState::Assigned, JobState::Canceling},       // user cancel; the engine is told
    {JobState::Running, JobState::Completed},        // complete with a valid fencing token
    {JobState::Running, JobState::Failed},           // permanent failure, or the last attempt ended
    {JobState::Running, JobState::Queued},           // lease expired / transient failure, attempts left
    {JobState::Running, JobState::Canceling},        // user cancel; the engine is told
    {JobState::Canceling, JobState::Canceled},  // the engine stopped, failed, completed or its lease expired
    {JobState::Failed, JobState::Queued},       // POST /jobs/{id}/retry
    {JobState::Canceled, JobState::Queued},     // POST /jobs/{id}/retry
}};

}  // namespace

std::string_view to_string(JobState state) {
    for (const auto& [s, name] : k_names)
        if (s == state) return name;
    return "unknown";
}

std::optional<JobState> parse_job_state(std::string_view text) {
    for (const auto& [s, name] : k_names)
        if (name == text) return s;
    return std::nullopt;
}

bool is_terminal(JobState state) {
    return state == JobState::Completed || state == JobState::Failed || state == JobState::Canceled;
}

bool can_transition(JobState from, JobState to) {
    for (const auto& e : k_edges)
        if (e.from == from && e.to == to) return true;
    return false;
}

}  // namespace distconv::protocol
