#pragma once
// The library runs' local state: one SQLite file (default $XDG_STATE_HOME/distconv/library.sqlite)
// with a row per source file, keyed by its absolute path and checked against its size, mtime and
// content hash, holding its server job and how far it got. A killed CLI, a reboot or a restarted
// server resume from it: no file is transcoded twice, no job submitted twice. The only SQL of the CLI.

#include "common/error.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace distconv::client::library {

struct FileRecord {
    std::string path;  // absolute
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
    std::string sha256;
    std::string options_key;  // which options it was run with (the submit's Idempotency-Key)
    std::string job_id;
    std::string state;  // submitted, done, failed, bigger
    std::string output;
    std::string reason;
    std::uint64_t output_size = 0;
    std::int64_t updated_at_ms = 0;
};

class StateDb {
  public:
    // Opens (creating it and its directory) the state file. An unreadable or foreign file is an error.
    static Result<std::unique_ptr<StateDb>> open(const std::filesystem::path& file);
    ~StateDb();
    StateDb(const StateDb&) = delete;
    StateDb& operator=(const StateDb&) = delete;

    // nullopt when the file has no row; an error when the database cannot be read.
    Result<std::optional<FileRecord>> get(const std::string& path);
    Status put(const FileRecord& record);
    // Every row whose path is under `root` (a directory, absolute).
    Result<std::vector<FileRecord>> under(const std::string& root);

  private:
    explicit StateDb(sqlite3* db) : m_db(db) {}
    sqlite3* m_db;
};

// $XDG_STATE_HOME/distconv/library.sqlite, else ~/.local/state/distconv/library.sqlite.
std::filesystem::path default_state_file();

}  // namespace distconv::client::library
