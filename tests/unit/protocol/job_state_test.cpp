#include "protocol/job_state.hpp"

#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace distconv::protocol {
namespace {

using S = JobState;

// The table docs/protocol.md draws. Every pair not listed here must be forbidden.
const std::set<std::pair<S, S>>& allowed() {
    static const std::set<std::pair<S, S>> edges{
        {S::AwaitingUpload, S::Queued}, {S::AwaitingUpload, S::Failed}, {S::AwaitingUpload, S::Canceled},
        {S::Queued, S::Assigned},       {S::Queued, S::Failed},         {S::Queued, S::Canceled},
        {S::Assigned, S::Running},      {S::Assigned, S::Completed},    {S::Assigned, S::Failed},
        {S::Assigned, S::Queued},       {S::Assigned, S::Canceling},    {S::Running, S::Completed},
        {S::Running, S::Failed},        {S::Running, S::Queued},        {S::Running, S::Canceling},
        {S::Canceling, S::Canceled},    {S::Failed, S::Queued},         {S::Canceled, S::Queued},
        {S::Queued, S::Running},  // split mode: the job's segment tasks exist
    };
    return edges;
}

TEST(JobState, NamesRoundTrip) {
    for (auto s : k_all_job_states) {
        auto parsed = parse_job_state(to_string(s));
        ASSERT_TRUE(parsed.has_value()) << to_string(s);
        EXPECT_EQ(*parsed, s);
    }
    EXPECT_EQ(to_string(S::AwaitingUpload), "awaiting_upload");
    EXPECT_EQ(to_string(S::Canceling), "canceling");
    EXPECT_FALSE(parse_job_state("Queued").has_value());
    EXPECT_FALSE(parse_job_state("cancelled").has_value());
    EXPECT_FALSE(parse_job_state("").has_value());
}

TEST(JobState, TerminalStates) {
    std::set<S> terminal;
    for (auto s : k_all_job_states)
        if (is_terminal(s)) terminal.insert(s);
    EXPECT_EQ(terminal, (std::set<S>{S::Completed, S::Failed, S::Canceled}));
}

TEST(JobState, EveryPairMatchesTheTable) {
    int allowed_count = 0;
    for (auto from : k_all_job_states) {
        for (auto to : k_all_job_states) {
            const bool expected = allowed().count({from, to}) > 0;
            EXPECT_EQ(can_transition(from, to), expected) << to_string(from) << " -> " << to_string(to);
            allowed_count += can_transition(from, to) ? 1 : 0;
        }
    }
    EXPECT_EQ(allowed_count, 19);
}

TEST(JobState, ForbiddenTransitionsThatMatter) {
    // A completed job never changes: a late engine cannot reopen it.
    for (auto to : k_all_job_states) EXPECT_FALSE(can_transition(S::Completed, to)) << to_string(to);
    // No state goes to itself.
    for (auto s : k_all_job_states) EXPECT_FALSE(can_transition(s, s)) << to_string(s);
    // Queued -> running is split mode's edge alone (the job's tasks exist); a job an engine runs is
    // claimed first: Store::claim_job moves it to assigned.
    EXPECT_FALSE(can_transition(S::Queued, S::Completed));
    EXPECT_FALSE(can_transition(S::Canceling, S::Completed));  // cancel wins over a late complete
    EXPECT_FALSE(can_transition(S::Canceling, S::Queued));
    EXPECT_FALSE(can_transition(S::Running, S::Canceled));  // goes through canceling
    EXPECT_FALSE(can_transition(S::Running, S::Assigned));
    EXPECT_FALSE(can_transition(S::Failed, S::Running));
    EXPECT_FALSE(can_transition(S::Queued, S::AwaitingUpload));
}

TEST(JobState, TerminalStatesOnlyLeaveByRetry) {
    for (auto from : k_all_job_states) {
        if (!is_terminal(from)) continue;
        for (auto to : k_all_job_states) {
            if (can_transition(from, to)) {
                EXPECT_EQ(to, S::Queued) << to_string(from);
            }
        }
    }
}

TEST(JobState, EveryNonTerminalStateCanReachATerminalOne) {
    for (auto s : k_all_job_states) {
        if (is_terminal(s)) continue;
        std::set<S> seen{s};
        std::vector<S> todo{s};
        bool reaches = false;
        while (!todo.empty()) {
            auto cur = todo.back();
            todo.pop_back();
            for (auto next : k_all_job_states) {
                if (!can_transition(cur, next) || seen.count(next)) continue;
                reaches = reaches || is_terminal(next);
                seen.insert(next);
                todo.push_back(next);
            }
        }
        EXPECT_TRUE(reaches) << to_string(s);
    }
}

}  // namespace
}  // namespace distconv::protocol
