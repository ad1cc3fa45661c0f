#include "transcoding_engine/state_store.hpp"

#include <sqlite3.h>

#include <chrono>

namespace distconv::engine {
namespace {

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Error db_error(sqlite3* db, const std::string& what) {
    return Error(ErrorCode::Internal, "state file: " + what + ": " + sqlite3_errmsg(db));
}

// A prepared statement that finalizes itself.
class Stmt {
  public:
    Stmt(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &m_stmt, nullptr); }
    ~Stmt() { sqlite3_finalize(m_stmt); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    sqlite3_stmt* get() const { return m_stmt; }
    void bind(int i, const std::string& v) { sqlite3_bind_text(m_stmt, i, v.c_str(), -1, SQLITE_TRANSIENT); }
    void bind(int i, std::int64_t v) { sqlite3_bind_int64(m_stmt, i, v); }
    std::string text(int i) const {
        auto p = sqlite3_column_text(m_stmt, i);
        return p ? reinterpret_cast<const char*>(p) : "";
    }

  private:
    sqlite3_stmt* m_stmt = nullptr;
};

}  // namespace

Result<std::unique_ptr<StateStore>> StateStore::open(const std::filesystem::path& path) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
        Error e = db_error(db, "open " + path.string());
        sqlite3_close(db);
        return e;
    }
    sqlite3_busy_timeout(db, 5000);
    std::unique_ptr<StateStore> store(new StateStore(db));
    // synchronous=FULL: a record must survive a power cut, since it is written before acting.
    DISTCONV_TRY(
        store->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                    "CREATE TABLE IF NOT EXISTS assignments(assignment_id TEXT PRIMARY KEY,"
                    " job_id TEXT NOT NULL, fencing_token INTEGER NOT NULL, state TEXT NOT NULL,"
                    " dir TEXT NOT NULL, updated_at_ms INTEGER NOT NULL);"));
    return store;
}

StateStore::~StateStore() {
    sqlite3_close(m_db);
}

Status StateStore::exec(const std::string& sql) {
    char* msg = nullptr;
    if (sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
        std::string text = msg ? msg : "unknown error";
        sqlite3_free(msg);
        return Error(ErrorCode::Internal, "state file: " + text);
    }
    return {};
}

std::optional<std::string> StateStore::engine_id() {
    std::lock_guard lock(m_mutex);
    Stmt s(m_db, "SELECT value FROM meta WHERE key='engine_id'");
    if (sqlite3_step(s.get()) == SQLITE_ROW) return s.text(0);
    return std::nullopt;
}

Status StateStore::set_engine_id(const std::string& id) {
    std::lock_guard lock(m_mutex);
    Stmt s(m_db,
           "INSERT INTO meta(key, value) VALUES('engine_id', ?1) ON CONFLICT(key) DO UPDATE SET value=?1");
    s.bind(1, id);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return db_error(m_db, "save engine id");
    return {};
}

Status StateStore::clear_engine_id() {
    std::lock_guard lock(m_mutex);
    return exec("DELETE FROM meta WHERE key='engine_id'");
}

Status StateStore::record_assignment(const AssignmentRecord& r) {
    std::lock_guard lock(m_mutex);
    Stmt s(
        m_db,
        "INSERT OR REPLACE INTO assignments(assignment_id, job_id, fencing_token, state, dir, updated_at_ms)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    s.bind(1, r.assignment_id);
    s.bind(2, r.job_id);
    s.bind(3, r.fencing_token);
    s.bind(4, r.state);
    s.bind(5, r.dir);
    s.bind(6, now_ms());
    if (sqlite3_step(s.get()) != SQLITE_DONE) return db_error(m_db, "record assignment");
    return {};
}

Status StateStore::update_state(const std::string& assignment_id, const std::string& state) {
    std::lock_guard lock(m_mutex);
    Stmt s(m_db, "UPDATE assignments SET state=?2, updated_at_ms=?3 WHERE assignment_id=?1");
    s.bind(1, assignment_id);
    s.bind(2, state);
    s.bind(3, now_ms());
    if (sqlite3_step(s.get()) != SQLITE_DONE) return db_error(m_db, "update assignment");
    return {};
}

Status StateStore::remove_assignment(const std::string& assignment_id) {
    std::lock_guard lock(m_mutex);
    Stmt s(m_db, "DELETE FROM assignments WHERE assignment_id=?1");
    s.bind(1, assignment_id);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return db_error(m_db, "remove assignment");
    return {};
}

Result<std::vector<AssignmentRecord>> StateStore::assignments() {
    std::lock_guard lock(m_mutex);
    Stmt s(m_db,
           "SELECT assignment_id, job_id, fencing_token, state, dir, updated_at_ms FROM assignments"
           " ORDER BY updated_at_ms, assignment_id");
    std::vector<AssignmentRecord> out;
    int rc = 0;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        AssignmentRecord r;
        r.assignment_id = s.text(0);
        r.job_id = s.text(1);
        r.fencing_token = sqlite3_column_int64(s.get(), 2);
        r.state = s.text(3);
        r.dir = s.text(4);
        r.updated_at_ms = sqlite3_column_int64(s.get(), 5);
        out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return db_error(m_db, "list assignments");
    return out;
}

}  // namespace distconv::engine
