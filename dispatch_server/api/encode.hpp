#pragma once
// Store records -> the protocol's wire types (protocol/): the server answers with exactly the JSON
// that clients parse.

#include "dispatch_server/store/store.hpp"
#include "protocol/admin.hpp"
#include "protocol/jobs.hpp"

#include <optional>
#include <string>
#include <vector>

namespace distconv::dispatch {

protocol::Timestamp to_timestamp(int64_t unix_ms);

protocol::JobResource to_resource(const JobRecord& job, const std::string& owner_name,
                                  std::optional<int64_t> queue_position,
                                  const std::vector<AttemptRecord>& attempts = {},
                                  const std::vector<TaskAttempts>& tasks = {});
protocol::JobStatus to_status(const JobRecord& job, std::optional<int64_t> queue_position);
protocol::JobSummary to_summary(const JobRecord& job, const std::string& owner_name,
                                std::optional<int64_t> queue_position);
// One SSE message ("id: N\nevent: state|progress\ndata: {...}\n\n").
std::string to_sse(const JobEvent& event, const JobRecord& job);

// A quoted ETag for a job resource version, and for a result (its SHA-256).
std::string job_etag(const JobRecord& job);

}  // namespace distconv::dispatch
