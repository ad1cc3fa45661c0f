#include "submission_client/library_state.hpp"

#include <sqlite3.h>

#include <chrono>
#include <cstdlib>

namespace distconv::client::library {
namespace {

Error db_error(sqlite3* db, const std::string& what) {
    return Error(ErrorCode::Internal, "the library state database: " + what + ": " + sqlite3_errmsg(db));
}

// One prepared statement, finalized on scope exit.
struct Stmt {
    sqlite3_stmt* s = nullptr;
    ~Stmt() { sqlite3_finalize(s); }
};

std::string text(sqlite3_stmt* s, int col) {
    const auto* t = sqlite3_column_text(s, col);
    return t ? reinterpret_cast<const char*>(t) : "";
}

constexpr const char* k_columns =
    "path, size, mtime_ns, sha256, options_key, job_id, state, output, reason, output_size, updated_at_ms";

FileRecord read_row(sqlite3_stmt* s) {
    FileRecord r;
    r.path = text(s, 0);
    r.size = static_cast<std::uint64_t>(sqlite3_column_int64(s, 1));
    r.mtime_ns = sqlite3_column_int64(s, 2);
    r.sha256 = text(s, 3);
    r.options_key = text(s, 4);
    r.job_id = text(s, 5);
    r.state = text(s, 6);
    r.output = text(s, 7);
    r.reason = text(s, 8);
    r.output_size = static_cast<std::uint64_t>(sqlite3_column_int64(s, 9));
    r.updated_at_ms = sqlite3_column_int64(s, 10);
    return r;
}

}  // namespace

Result<std::unique_ptr<StateDb>> StateDb::open(const std::filesystem::path& file) {
    std::error_code ec;
    if (!file.parent_path().empty()) std::filesystem::create_directories(file.parent_path(), ec);
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
        Error e(ErrorCode::Internal, "cannot open the library state database " + file.string() + ": " +
                                         (db ? sqlite3_errmsg(db) : "out of memory"));
        sqlite3_close(db);
        return e;
    }
    sqlite3_busy_timeout(db, 5000);
    const char* schema =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS library_files ("
        " path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL,"
        " options_key TEXT NOT NULL, job_id TEXT NOT NULL, state TEXT NOT NULL, output TEXT NOT NULL,"
        " reason TEXT NOT NULL, output_size INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL)";
    char* err = nullptr;
    if (sqlite3_exec(db, schema, nullptr, nullptr, &err) != SQLITE_OK) {
        Error e(ErrorCode::Internal, "the library state database " + file.string() +
                                         " cannot be used: " + (err ? err : "unknown error"));
        sqlite3_free(err);
        sqlite3_close(db);
        return e;
    }
    return std::unique_ptr<StateDb>(new StateDb(db));
}

StateDb::~StateDb() {
    sqlite3_close(m_db);
}

Result<std::optional<FileRecord>> StateDb::get(const std::string& path) {
    Stmt st;
    const std::string sql = std::string("SELECT ") + k_columns + " FROM library_files WHERE path = ?";
    if (sqlite3_prepare_v2(m_db, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK) return db_error(m_db, "read");
    sqlite3_bind_text(st.s, 1, path.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st.s);
    if (rc == SQLITE_DONE) return std::optional<FileRecord>();
    if (rc != SQLITE_ROW) return db_error(m_db, "read");
    return std::optional<FileRecord>(read_row(st.s));
}

Status StateDb::put(const FileRecord& r) {
    Stmt st;
    const std::string sql = std::string("INSERT OR REPLACE INTO library_files (") + k_columns +
                            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    if (sqlite3_prepare_v2(m_db, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK)
        return db_error(m_db, "write");
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    sqlite3_bind_text(st.s, 1, r.path.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st.s, 2, static_cast<sqlite3_int64>(r.size));
    sqlite3_bind_int64(st.s, 3, r.mtime_ns);
    sqlite3_bind_text(st.s, 4, r.sha256.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 5, r.options_key.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 6, r.job_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 7, r.state.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 8, r.output.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 9, r.reason.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st.s, 10, static_cast<sqlite3_int64>(r.output_size));
    sqlite3_bind_int64(st.s, 11, now);
    if (sqlite3_step(st.s) != SQLITE_DONE) return db_error(m_db, "write");
    return {};
}

Result<std::vector<FileRecord>> StateDb::under(const std::string& root) {
    Stmt st;
    const std::string sql =
        std::string("SELECT ") + k_columns + " FROM library_files WHERE substr(path, 1, ?) = ? ORDER BY path";
    if (sqlite3_prepare_v2(m_db, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK) return db_error(m_db, "read");
    const std::string prefix = root.empty() || root.back() == '/' ? root : root + "/";
    sqlite3_bind_int(st.s, 1, static_cast<int>(prefix.size()));
    sqlite3_bind_text(st.s, 2, prefix.c_str(), -1, SQLITE_TRANSIENT);
    std::vector<FileRecord> out;
    for (int rc; (rc = sqlite3_step(st.s)) != SQLITE_DONE;) {
        if (rc != SQLITE_ROW) return db_error(m_db, "read");
        out.push_back(read_row(st.s));
    }
    return out;
}

std::filesystem::path default_state_file() {
    if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x)
        return std::filesystem::path(x) / "distconv/library.sqlite";
    const char* home = std::getenv("HOME");
    return std::filesystem::path(home && *home ? home : ".") / ".local/state/distconv/library.sqlite";
}

}  // namespace distconv::client::library
