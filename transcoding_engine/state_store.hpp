#pragma once
// The engine's local state file (<work-dir>/engine.db): its engine id, and every assignment it took,
// recorded before the engine acts on it, so a restart after a crash can report and clean them up.

#include "common/error.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace distconv::engine {

struct AssignmentRecord {
    std::string assignment_id;
    std::string job_id;
    std::int64_t fencing_token = 0;
    std::string state;  // received | downloading | transcoding | uploading | completing | failing
    std::string dir;    // the assignment's files
    std::int64_t updated_at_ms = 0;
};

class StateStore {
  public:
    static Result<std::unique_ptr<StateStore>> open(const std::filesystem::path& path);
    ~StateStore();
    StateStore(const StateStore&) = delete;
    StateStore& operator=(const StateStore&) = delete;

    std::optional<std::string> engine_id();
    Status set_engine_id(const std::string& id);
    Status clear_engine_id();

    // Inserts (or replaces) the record; durable when it returns.
    Status record_assignment(const AssignmentRecord& record);
    Status update_state(const std::string& assignment_id, const std::string& state);
    // The assignment is finished and reported: forget it.
    Status remove_assignment(const std::string& assignment_id);
    // Assignments still recorded: after a restart, those a crash interrupted.
    Result<std::vector<AssignmentRecord>> assignments();

  private:
    explicit StateStore(sqlite3* db) : m_db(db) {}
    Status exec(const std::string& sql);
    std::mutex m_mutex;
    sqlite3* m_db;
};

}  // namespace distconv::engine
