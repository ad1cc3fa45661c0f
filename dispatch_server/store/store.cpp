#include "dispatch_server/store/store.hpp"

#include "common/ulid.hpp"
#include "dispatch_server/store/migrations.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <variant>

namespace distconv::dispatch {

// Names, parsing and is_terminal() of the enums are the protocol's (found by ADL for to_string).
using protocol::parse_job_state;
using protocol::parse_role;

// --- SQLite helpers ------------------------------------------------------------------------------

namespace {

// Thrown only inside this file and turned into an Error (or logged) at each public method, so the
// SQL code reads straight through without checking every return code by hand.
struct SqlError : std::runtime_error {
    int rc;
    SqlError(int code, const std::string& what) : std::runtime_error(what), rc(code) {}
};

using Value = std::variant<std::nullptr_t, int64_t, double, std::string>;

Value to_value(int v) {
    return int64_t{v};
}
Value to_value(int64_t v) {
    return v;
}
Value to_value(uint64_t v) {
    return static_cast<int64_t>(v);
}
Value to_value(double v) {
    return v;
}
Value to_value(bool v) {
    return int64_t{v ? 1 : 0};
}
Value to_value(const std::string& v) {
    return v;
}
// The protocol's enums are stored by name, as TEXT.
Value to_value(EngineState v) {
    return std::string(to_string(v));
}
Value to_value(AttemptState v) {
    return std::string(to_string(v));
}
Value to_value(TransferMode v) {
    return std::string(to_string(v));
}
Value to_value(const nlohmann::json& v) {
    if (v.is_null()) return nullptr;  // NULL reads back as null
    return v.dump();
}
template <typename T>
Value to_value(const std::optional<T>& v) {
    if (!v) return nullptr;
    return to_value(*v);
}

// A cached prepared statement in use: binds by position, steps, reads columns; resets and clears
// its bindings when it goes out of scope so the cache can hand it out again.
class Stmt {
  public:
    Stmt(sqlite3* db, sqlite3_stmt* stmt) : m_db(db), m_stmt(stmt) {}
    ~Stmt() {
        sqlite3_reset(m_stmt);
        sqlite3_clear_bindings(m_stmt);
    }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& bind(const Value& v) {
        const int i = ++m_bound;
        int rc = SQLITE_OK;
        if (std::holds_alternative<std::nullptr_t>(v)) {
            rc = sqlite3_bind_null(m_stmt, i);
        } else if (const auto* n = std::get_if<int64_t>(&v)) {
            rc = sqlite3_bind_int64(m_stmt, i, *n);
        } else if (const auto* d = std::get_if<double>(&v)) {
            rc = sqlite3_bind_double(m_stmt, i, *d);
        } else {
            const auto& s = std::get<std::string>(v);
            rc = sqlite3_bind_text(m_stmt, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
        }
        if (rc != SQLITE_OK) throw SqlError(rc, std::string("bind: ") + sqlite3_errmsg(m_db));
        return *this;
    }
    template <typename T>
    Stmt& operator<<(const T& v) {
        return bind(to_value(v));
    }
    Stmt& operator<<(const char* v) { return bind(std::string(v)); }
    Stmt& operator<<(std::string_view v) { return bind(std::string(v)); }
    Stmt& operator<<(std::nullptr_t) { return bind(nullptr); }

    // True when a row is available, false when done.
    bool step() {
        const int rc = sqlite3_step(m_stmt);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        throw SqlError(rc, sqlite3_errmsg(m_db));
    }
    void run() {
        while (step()) {
        }
    }

    bool is_null(int c) const { return sqlite3_column_type(m_stmt, c) == SQLITE_NULL; }
    int64_t i64(int c) const { return sqlite3_column_int64(m_stmt, c); }
    uint64_t u64(int c) const { return static_cast<uint64_t>(std::max<int64_t>(0, i64(c))); }
    int i32(int c) const { return sqlite3_column_int(m_stmt, c); }
    double dbl(int c) const { return sqlite3_column_double(m_stmt, c); }
    bool boolean(int c) const { return i64(c) != 0; }
    std::string text(int c) const {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, c));
        return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(m_stmt, c))) : std::string();
    }
    std::optional<int64_t> opt_i64(int c) const { return is_null(c) ? std::nullopt : std::optional(i64(c)); }
    std::optional<uint64_t> opt_u64(int c) const { return is_null(c) ? std::nullopt : std::optional(u64(c)); }
    std::optional<double> opt_dbl(int c) const { return is_null(c) ? std::nullopt : std::optional(dbl(c)); }
    std::optional<std::string> opt_text(int c) const {
        return is_null(c) ? std::nullopt : std::optional(text(c));
    }
    // NULL or unparsable text reads as json null.
    nlohmann::json json(int c) const {
        if (is_null(c)) return nullptr;
        auto j = nlohmann::json::parse(text(c), nullptr, false);
        return j.is_discarded() ? nlohmann::json() : j;
    }

  private:
    sqlite3* m_db;
    sqlite3_stmt* m_stmt;
    int m_bound = 0;
};

// Every column of jobs in the order read_job() reads and job_values() writes them.
constexpr const char* k_job_columns =
    "id, owner_key_id, state, priority, options, resolved, ffmpeg_command, output_filename, requirements, "
    "max_attempts, attempt_count, ttl_ms, idempotency_key, source_filename, source_size, source_sha256, "
    "source_url, source_pool, source_path, source_reserved, source_received, source_probe, duration_seconds, "
    "source_deleted, output_pool, output_path, output_reserved, output_size, output_sha256, "
    "output_expires_at, "
    "output_deleted, progress_percent, progress, message, failure_code, failure_reason, created_at, "
    "updated_at, "
    "queued_at, started_at, finished_at, not_before, version, parent_id, task, split, split_state";

std::vector<Value> job_values(const JobRecord& j) {
    return {
        j.id,
        j.owner_key_id,
        std::string(to_string(j.state)),
        to_value(j.priority),
        to_value(j.options),
        to_value(j.resolved),
        j.ffmpeg_command,
        j.output_filename,
        to_value(j.requirements),
        to_value(j.max_attempts),
        to_value(j.attempt_count),
        to_value(j.ttl_ms),
        to_value(j.idempotency_key),
        j.source_filename,
        to_value(j.source_size),
        to_value(j.source_sha256),
        to_value(j.source_url),
        j.source_pool,
        j.source_path,
        to_value(j.source_reserved),
        to_value(j.source_received),
        to_value(j.source_probe),
        to_value(j.duration_seconds),
        to_value(j.source_deleted),
        j.output_pool,
        j.output_path,
        to_value(j.output_reserved),
        to_value(j.output_size),
        to_value(j.output_sha256),
        to_value(j.output_expires_at),
        to_value(j.output_deleted),
        to_value(j.progress_percent),
        to_value(j.progress),
        j.message,
        j.failure_code,
        j.failure_reason,
        to_value(j.created_at),
        to_value(j.updated_at),
        to_value(j.queued_at),
        to_value(j.started_at),
        to_value(j.finished_at),
        to_value(j.not_before),
        to_value(j.version),
        to_value(j.parent_id),
        to_value(j.task),
        to_value(j.split),
        j.split_state.empty() ? Value(nullptr) : Value(j.split_state),
    };
}

// A stored name that does not parse (a newer program's, or a hand edit) fails the read like a corrupt
// database would: a guessed state could hand work to an offline engine or end an attempt twice.
template <typename E>
E read_enum(const Stmt& s, int c, std::optional<E> (*parse)(std::string_view), const char* table,
            const std::string& id, const char* column) {
    std::string text = s.text(c);
    if (auto v = parse(text)) return *v;
    throw SqlError(SQLITE_CORRUPT, std::string(table) + "." + column + " of '" + id + "' is '" + text +
                                       "', which this program does not know");
}

JobRecord read_job(const Stmt& s) {
    JobRecord j;
    int c = 0;
    j.id = s.text(c++);
    j.owner_key_id = s.text(c++);
    j.state = read_enum(s, c++, protocol::parse_job_state, "jobs", j.id, "state");
    j.priority = s.i32(c++);
    j.options = s.json(c++);
    j.resolved = s.json(c++);
    j.ffmpeg_command = s.text(c++);
    j.output_filename = s.text(c++);
    j.requirements = s.json(c++);
    j.max_attempts = s.i32(c++);
    j.attempt_count = s.i32(c++);
    j.ttl_ms = s.opt_i64(c++);
    j.idempotency_key = s.opt_text(c++);
    j.source_filename = s.text(c++);
    j.source_size = s.opt_u64(c++);
    j.source_sha256 = s.opt_text(c++);
    j.source_url = s.opt_text(c++);
    j.source_pool = s.text(c++);
    j.source_path = s.text(c++);
    j.source_reserved = s.u64(c++);
    j.source_received = s.u64(c++);
    j.source_probe = s.json(c++);
    j.duration_seconds = s.opt_dbl(c++);
    j.source_deleted = s.boolean(c++);
    j.output_pool = s.text(c++);
    j.output_path = s.text(c++);
    j.output_reserved = s.u64(c++);
    j.output_size = s.opt_u64(c++);
    j.output_sha256 = s.opt_text(c++);
    j.output_expires_at = s.opt_i64(c++);
    j.output_deleted = s.boolean(c++);
    j.progress_percent = s.dbl(c++);
    j.progress = s.json(c++);
    j.message = s.text(c++);
    j.failure_code = s.text(c++);
    j.failure_reason = s.text(c++);
    j.created_at = s.i64(c++);
    j.updated_at = s.i64(c++);
    j.queued_at = s.opt_i64(c++);
    j.started_at = s.opt_i64(c++);
    j.finished_at = s.opt_i64(c++);
    j.not_before = s.opt_i64(c++);
    j.version = s.i64(c++);
    j.parent_id = s.opt_text(c++);
    j.task = s.json(c++);
    j.split = s.json(c++);
    j.split_state = s.is_null(c) ? std::string() : s.text(c);
    ++c;
    return j;
}

constexpr const char* k_key_columns = "id, name, role, key_hash, prefix, created_at, revoked_at";

ApiKeyRecord read_key(const Stmt& s) {
    ApiKeyRecord k;
    k.id = s.text(0);
    k.name = s.text(1);
    k.role = read_enum(s, 2, protocol::parse_role, "api_keys", k.id, "role");
    k.key_hash = s.text(3);
    k.prefix = s.text(4);
    k.created_at = s.i64(5);
    k.revoked_at = s.opt_i64(6);
    return k;
}

// The SET clauses of a JobUpdate, in a fixed order so equal shapes share one cached statement.
struct SetList {
    std::string sql;
    std::vector<Value> values;

    template <typename T>
    void add(const char* column, const std::optional<T>& v) {
        if (!v) return;
        sql += column;
        sql += " = ?, ";
        values.push_back(to_value(*v));
    }
};

SetList update_sets(const JobUpdate& u) {
    SetList s;
    s.add("priority", u.priority);
    s.add("ffmpeg_command", u.ffmpeg_command);
    s.add("attempt_count", u.attempt_count);
    s.add("source_pool", u.source_pool);
    s.add("source_path", u.source_path);
    s.add("source_reserved", u.source_reserved);
    s.add("source_received", u.source_received);
    s.add("source_size", u.source_size);
    s.add("source_sha256", u.source_sha256);
    s.add("source_probe", u.source_probe);
    s.add("duration_seconds", u.duration_seconds);
    s.add("source_deleted", u.source_deleted);
    s.add("output_pool", u.output_pool);
    s.add("output_path", u.output_path);
    s.add("output_reserved", u.output_reserved);
    s.add("output_size", u.output_size);
    s.add("output_sha256", u.output_sha256);
    s.add("output_expires_at", u.output_expires_at);
    s.add("output_deleted", u.output_deleted);
    s.add("progress_percent", u.progress_percent);
    s.add("progress", u.progress);
    s.add("message", u.message);
    s.add("failure_code", u.failure_code);
    s.add("failure_reason", u.failure_reason);
    s.add("queued_at", u.queued_at);
    s.add("started_at", u.started_at);
    s.add("finished_at", u.finished_at);
    s.add("not_before", u.not_before);  // optional<optional<int64_t>>: inner nullopt writes NULL
    s.add("split", u.split);
    s.add("split_state", u.split_state);
    return s;
}

void exec_sql(sqlite3* db, const char* sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db);
        sqlite3_free(err);
        throw SqlError(rc, msg);
    }
}

// BEGIN IMMEDIATE (the write lock up front, so a read-then-write never has to upgrade and fail);
// rolls back unless commit() was called.
class Transaction {
  public:
    explicit Transaction(sqlite3* db) : m_db(db) { exec_sql(m_db, "BEGIN IMMEDIATE"); }
    ~Transaction() {
        if (!m_done) sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit() {
        exec_sql(m_db, "COMMIT");
        m_done = true;
    }

  private:
    sqlite3* m_db;
    bool m_done = false;
};

// Every database failure (locked past the busy timeout, read-only, full, I/O, a missing table) is the
// same to a caller: the store cannot answer now. UNAVAILABLE is retryable, so clients and engines come
// back, and no caller mistakes it for "nothing there".
Error internal_error(const char* what, const SqlError& e) {
    spdlog::error("store: {} failed: {} (sqlite code {})", what, e.what(), e.rc);
    return Error(ErrorCode::Unavailable,
                 std::string("the database is unavailable (") + what + "): " + e.what(),
                 {{"sqlite_code", e.rc}});
}

}  // namespace

// --- Impl ----------------------------------------------------------------------------------------

struct Store::Impl {
    sqlite3* db = nullptr;
    const Clock& clock;
    std::mutex mutex;  // the one connection is used by one thread at a time
    std::unordered_map<std::string, sqlite3_stmt*> cache;
    int version = 0;
    int busy_timeout_ms = 5000;

    Impl(sqlite3* d, const Clock& c) : db(d), clock(c) {}
    ~Impl() {
        for (auto& [sql, stmt] : cache) sqlite3_finalize(stmt);
        cache.clear();
        sqlite3_close_v2(db);
    }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    Stmt prepare(const std::string& sql) {
        auto it = cache.find(sql);
        if (it == cache.end()) {
            sqlite3_stmt* stmt = nullptr;
            const int rc = sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size() + 1),
                                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
            if (rc != SQLITE_OK) {
                sqlite3_finalize(stmt);
                throw SqlError(rc, std::string("prepare: ") + sqlite3_errmsg(db) + " in: " + sql);
            }
            it = cache.emplace(sql, stmt).first;
        }
        return Stmt(db, it->second);
    }

    void exec(const char* sql) { exec_sql(db, sql); }

    int64_t now() const { return clock.now_ms(); }

    std::optional<JobRecord> get_job(const std::string& id) {
        auto s = prepare(std::string("SELECT ") + k_job_columns + " FROM jobs WHERE id = ?");
        s << id;
        if (!s.step()) return std::nullopt;
        return read_job(s);
    }

    std::vector<JobRecord> select_jobs(const std::string& where_and_order, const std::vector<Value>& params) {
        auto s = prepare(std::string("SELECT ") + k_job_columns + " FROM jobs " + where_and_order);
        for (const auto& v : params) s.bind(v);
        std::vector<JobRecord> out;
        while (s.step()) out.push_back(read_job(s));
        return out;
    }

    // Inserts a job row as given, with a new id when it has none, created and updated now, version 1.
    JobRecord insert_row(JobRecord r) {
        if (r.id.empty()) r.id = new_ulid();
        r.created_at = now();
        r.updated_at = r.created_at;
        r.version = 1;
        auto s = prepare(std::string("INSERT INTO jobs (") + k_job_columns +
                         ") VALUES "
                         "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?"
                         ",?,?,?,?,?,?,?,?,?,?)");
        for (const auto& v : job_values(r)) s.bind(v);
        s.run();
        return r;
    }

    void insert_event(const std::string& job_id, const char* type, std::optional<JobState> from, JobState to,
                      const std::string& message, const nlohmann::json& data) {
        auto s = prepare(
            "INSERT INTO job_events (job_id, at, type, from_state, to_state, message, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)");
        s << job_id << now() << type;
        if (from)
            s << to_string(*from);
        else
            s << nullptr;
        s << to_string(to) << message << data;
        s.run();
    }

    // UPDATE jobs SET <changes>[, state = ?], version + 1, updated_at WHERE id = ?; returns rows changed.
    int update_row(const std::string& id, const JobUpdate& changes, std::optional<JobState> state) {
        auto sets = update_sets(changes);
        if (state) {
            sets.sql += "state = ?, ";
            sets.values.emplace_back(std::string(to_string(*state)));
        }
        auto s =
            prepare("UPDATE jobs SET " + sets.sql + "version = version + 1, updated_at = ? WHERE id = ?");
        for (const auto& v : sets.values) s.bind(v);
        s << now() << id;
        s.run();
        return sqlite3_changes(db);
    }

    uint64_t reserved_in(const std::string& pool) {
        auto s = prepare(
            "SELECT COALESCE(SUM(CASE WHEN source_pool = ?1 AND source_deleted = 0 THEN source_reserved ELSE "
            "0 END), 0)"
            " + COALESCE(SUM(CASE WHEN output_pool = ?1 AND output_deleted = 0 THEN output_reserved ELSE 0 "
            "END), 0)"
            " FROM jobs WHERE source_pool = ?1 OR output_pool = ?1");
        s << pool;
        s.step();
        return s.u64(0);
    }

    void run_migrations() {
        exec(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
        {
            auto s = prepare("SELECT COALESCE(MAX(version), 0) FROM schema_version");
            s.step();
            version = s.i32(0);
        }
        const auto& migrations = detail::store_migrations();
        const int latest = migrations.empty() ? 0 : migrations.back().version;
        if (version > latest)
            throw SqlError(SQLITE_ERROR, "database schema version " + std::to_string(version) +
                                             " is newer than this program knows (" + std::to_string(latest) +
                                             ")");
        for (const auto& m : migrations) {
            if (m.version <= version) continue;
            exec("BEGIN IMMEDIATE");
            try {
                exec(m.sql);
                auto s = prepare("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)");
                s << m.version << now();
                s.run();
                exec("COMMIT");
            } catch (...) {
                sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
                throw;
            }
            spdlog::info("store: applied schema migration {}", m.version);
            version = m.version;
        }
    }
};

namespace {

std::string join_states(const std::vector<JobState>& states) {
    std::string out;
    for (auto s : states) {
        if (!out.empty()) out += ", ";
        out += to_string(s);
    }
    return out;
}

}  // namespace

// --- Store ---------------------------------------------------------------------------------------

Store::Store(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const std::filesystem::path& path, const Clock& clock,
                                           std::chrono::milliseconds busy_timeout) {
    if (path.has_parent_path()) {
        std::error_code ec;
        std::filesystem::create_directories(path.parent_path(), ec);
    }
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
        sqlite3_close_v2(db);
        return Error(ErrorCode::Internal, "cannot open database " + path.string() + ": " + msg);
    }
    auto impl = std::make_unique<Impl>(db, clock);
    impl->busy_timeout_ms = static_cast<int>(busy_timeout.count());
    try {
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, impl->busy_timeout_ms);
        {
            auto s = impl->prepare("PRAGMA journal_mode = WAL");
            const std::string mode = s.step() ? s.text(0) : "";
            if (mode != "wal" && path != ":memory:")
                return Error(ErrorCode::Internal, "cannot put database " + path.string() +
                                                      " in WAL mode (journal_mode is " + mode + ")");
        }
        impl->exec("PRAGMA synchronous = NORMAL");
        impl->exec("PRAGMA foreign_keys = ON");
        impl->run_migrations();
    } catch (const SqlError& e) {
        return Error(ErrorCode::Internal, "cannot open database " + path.string() + ": " + e.what());
    }
    return std::unique_ptr<Store>(new Store(std::move(impl)));
}

int Store::schema_version() const {
    return m_impl->version;
}

Status Store::check_writable(std::chrono::milliseconds wait) {
    std::lock_guard lock(m_impl->mutex);
    sqlite3_busy_timeout(m_impl->db, static_cast<int>(wait.count()));
    Status result;
    try {
        auto s = m_impl->prepare(
            "INSERT INTO write_check (id, checked_at) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at");
        s << m_impl->clock.now_ms();
        s.run();
    } catch (const SqlError& e) {
        result = Error(ErrorCode::Unavailable, std::string("the database does not take writes: ") + e.what());
    }
    sqlite3_busy_timeout(m_impl->db, m_impl->busy_timeout_ms);
    return result;
}

Status Store::integrity_check() {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare("PRAGMA integrity_check");
        std::vector<std::string> rows;
        while (s.step()) rows.push_back(s.text(0));
        if (rows.size() == 1 && rows[0] == "ok") return {};
        for (const auto& r : rows) spdlog::error("store: integrity check: {}", r);
        nlohmann::json problems = nlohmann::json::array();
        for (size_t i = 0; i < rows.size() && i < 10; ++i) problems.push_back(rows[i]);
        return Error(ErrorCode::Internal, "the database failed its integrity check",
                     {{"problems", problems}});
    } catch (const SqlError& e) {
        return internal_error("integrity_check", e);
    }
}

Status Store::check_readable() {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare("SELECT COUNT(*) FROM (SELECT 1 FROM jobs LIMIT 1)");
        s.step();
        return {};
    } catch (const SqlError& e) {
        return internal_error("check_readable", e);
    }
}

Status Store::backup_to(const std::filesystem::path& dest) {
    // Into a temporary name first, then renamed, so `dest` is never a half-written database.
    auto tmp = dest;
    tmp += ".tmp";
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
        auto p = tmp;
        p += suffix;
        std::filesystem::remove(p, ec);
    }
    sqlite3* out = nullptr;
    int rc = sqlite3_open_v2(tmp.c_str(), &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = out ? sqlite3_errmsg(out) : sqlite3_errstr(rc);
        sqlite3_close_v2(out);
        return Error(ErrorCode::Internal, "cannot create backup " + tmp.string() + ": " + msg);
    }
    {
        std::lock_guard lock(m_impl->mutex);
        sqlite3_backup* b = sqlite3_backup_init(out, "main", m_impl->db, "main");
        if (!b) {
            std::string msg = sqlite3_errmsg(out);
            sqlite3_close_v2(out);
            std::filesystem::remove(tmp, ec);
            return Error(ErrorCode::Internal, "cannot start backup: " + msg);
        }
        rc = sqlite3_backup_step(b, -1);
        sqlite3_backup_finish(b);
    }
    if (rc != SQLITE_DONE) {
        std::string msg = sqlite3_errstr(rc);
        sqlite3_close_v2(out);
        std::filesystem::remove(tmp, ec);
        return Error(ErrorCode::Internal, "backup failed: " + msg);
    }
    rc = sqlite3_close_v2(out);  // checkpoints and removes the copy's -wal file
    if (rc != SQLITE_OK)
        return Error(ErrorCode::Internal, std::string("backup close failed: ") + sqlite3_errstr(rc));
    std::filesystem::rename(tmp, dest, ec);
    if (ec) return Error(ErrorCode::Internal, "cannot move backup to " + dest.string() + ": " + ec.message());
    return {};
}

// --- API keys ------------------------------------------------------------------------------------

Result<ApiKeyRecord> Store::create_api_key(const std::string& name, Role role, const std::string& key_hash,
                                           const std::string& prefix) {
    std::lock_guard lock(m_impl->mutex);
    ApiKeyRecord k;
    k.id = new_ulid();
    k.name = name;
    k.role = role;
    k.key_hash = key_hash;
    k.prefix = prefix;
    k.created_at = m_impl->now();
    try {
        auto s = m_impl->prepare(
            "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)");
        s << k.id << k.name << to_string(k.role) << k.key_hash << k.prefix << k.created_at;
        s.run();
        return k;
    } catch (const SqlError& e) {
        if (e.rc == SQLITE_CONSTRAINT_UNIQUE) {
            if (std::string_view(e.what()).find("key_hash") != std::string_view::npos)
                return Error(ErrorCode::Conflict, "an API key with this secret already exists");
            return Error(ErrorCode::Conflict, "an API key named '" + name + "' already exists",
                         {{"name", name}});
        }
        return internal_error("create_api_key", e);
    }
}

Result<ApiKeyRecord> Store::find_api_key_by_hash(const std::string& key_hash) {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare(std::string("SELECT ") + k_key_columns +
                                 " FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL");
        s << key_hash;
        if (!s.step()) return Error(ErrorCode::NotFound, "no active API key with this secret");
        return read_key(s);
    } catch (const SqlError& e) {
        return internal_error("find_api_key_by_hash", e);
    }
}

Result<ApiKeyRecord> Store::get_api_key(const std::string& id) {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare(std::string("SELECT ") + k_key_columns + " FROM api_keys WHERE id = ?");
        s << id;
        if (!s.step()) return Error(ErrorCode::NotFound, "no API key with id '" + id + "'");
        return read_key(s);
    } catch (const SqlError& e) {
        return internal_error("get_api_key", e);
    }
}

Result<std::vector<ApiKeyRecord>> Store::list_api_keys(bool include_revoked) {
    std::lock_guard lock(m_impl->mutex);
    std::vector<ApiKeyRecord> out;
    try {
        auto s = m_impl->prepare(std::string("SELECT ") + k_key_columns + " FROM api_keys" +
                                 (include_revoked ? "" : " WHERE revoked_at IS NULL") +
                                 " ORDER BY created_at, id");
        while (s.step()) out.push_back(read_key(s));
    } catch (const SqlError& e) {
        return internal_error("list_api_keys", e);
    }
    return out;
}

Result<ApiKeyRecord> Store::revoke_api_key(const std::string& id_or_name) {
    std::lock_guard lock(m_impl->mutex);
    try {
        Transaction tx(m_impl->db);
        std::optional<ApiKeyRecord> key;
        {
            // An exact id wins over a key whose name happens to look like that id.
            auto s = m_impl->prepare(std::string("SELECT ") + k_key_columns +
                                     " FROM api_keys WHERE (id = ?1 OR name = ?1) AND revoked_at IS NULL"
                                     " ORDER BY (id = ?1) DESC LIMIT 1");
            s << id_or_name;
            if (s.step()) key = read_key(s);
        }
        if (!key) return Error(ErrorCode::NotFound, "no active API key with id or name '" + id_or_name + "'");
        key->revoked_at = m_impl->now();
        auto s = m_impl->prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?");
        s << key->revoked_at << key->id;
        s.run();
        tx.commit();
        return *key;
    } catch (const SqlError& e) {
        return internal_error("revoke_api_key", e);
    }
}

// --- Jobs ----------------------------------------------------------------------------------------

Result<JobRecord> Store::insert_job(const JobRecord& job) {
    std::lock_guard lock(m_impl->mutex);
    auto& impl = *m_impl;
    auto find_existing = [&]() -> std::optional<JobRecord> {
        if (!job.idempotency_key) return std::nullopt;
        auto found = impl.select_jobs("WHERE owner_key_id = ? AND idempotency_key = ?",
                                      {job.owner_key_id, *job.idempotency_key});
        if (found.empty()) return std::nullopt;
        return found.front();
    };
    try {
        Transaction tx(impl.db);
        if (auto existing = find_existing()) return *existing;  // rolls back the empty transaction

        JobRecord r = job;
        try {
            r = impl.insert_row(job);
        } catch (const SqlError& e) {
            if (e.rc == SQLITE_CONSTRAINT_UNIQUE) {
                // Another connection inserted the same idempotency key first: answer with its job.
                if (auto existing = find_existing()) return *existing;
                return Error(ErrorCode::Conflict, "job " + r.id + " already exists");
            }
            if (e.rc == SQLITE_CONSTRAINT_PRIMARYKEY)
                return Error(ErrorCode::Conflict, "job " + r.id + " already exists");
            if (e.rc == SQLITE_CONSTRAINT_FOREIGNKEY)
                return Error::invalid("owner_key_id", "no API key with id '" + r.owner_key_id + "'");
            throw;
        }
        impl.insert_event(r.id, "state", std::nullopt, r.state, "job created", nullptr);
        tx.commit();
        return r;
    } catch (const SqlError& e) {
        return internal_error("insert_job", e);
    }
}

Result<JobRecord> Store::get_job(const std::string& id) {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto job = m_impl->get_job(id);
        if (!job) return Error(ErrorCode::JobNotFound, "job " + id + " not found", {{"job_id", id}});
        return *std::move(job);
    } catch (const SqlError& e) {
        return internal_error("get_job", e);
    }
}

Result<JobPage> Store::list_jobs(const JobQuery& query) {
    std::lock_guard lock(m_impl->mutex);
    JobPage page;
    const int limit = std::clamp(query.limit, 1, 500);
    std::vector<std::string> states;
    if (query.state) states.emplace_back(to_string(*query.state));
    for (auto st : query.states) states.emplace_back(to_string(st));
    std::string where = "WHERE 1 = 1";
    std::vector<Value> params;
    if (query.owner_key_id) {
        where += " AND owner_key_id = ?";
        params.emplace_back(*query.owner_key_id);
    }
    if (!states.empty()) {
        where += " AND state IN (";
        for (size_t i = 0; i < states.size(); ++i) {
            where += i ? ", ?" : "?";
            params.emplace_back(states[i]);
        }
        where += ")";
    }
    // The owner and state conditions read the same in job_counts, which the triggers keep.
    const std::string counted_where = where;
    const std::vector<Value> counted_params = params;
    const bool counted_filters_only = query.name_contains.empty() && !query.engine_id;
    // The tasks of split jobs are not listed (their job is); job_counts does not count them either.
    where += " AND parent_id IS NULL";
    if (!query.name_contains.empty()) {
        std::string pattern = "%";
        for (char c : query.name_contains) {
            if (c == '%' || c == '_' || c == '\\') pattern += '\\';
            pattern += c;
        }
        pattern += "%";
        where += " AND output_filename LIKE ? ESCAPE '\\'";
        params.emplace_back(pattern);
        // The names are matched in an index of them, not in the rows: a tenth of the bytes to scan.
        where = std::string(query.owner_key_id ? "INDEXED BY jobs_owner_output_name "
                                               : "INDEXED BY jobs_output_name ") +
                where;
    }
    if (query.engine_id) {
        where += " AND id IN (SELECT job_id FROM attempts WHERE engine_id = ?)";
        params.emplace_back(*query.engine_id);
    }
    try {
        if (counted_filters_only) {
            // The counters the triggers keep: no scan of the jobs, however many there are.
            auto s = m_impl->prepare("SELECT COALESCE(SUM(n), 0) FROM job_counts " + counted_where);
            for (const auto& v : counted_params) s.bind(v);
            s.step();
            page.total = s.i64(0);
        } else {
            auto s = m_impl->prepare("SELECT COUNT(*) FROM jobs " + where);
            for (const auto& v : params) s.bind(v);
            s.step();
            page.total = s.i64(0);
        }
        // The cursor is the last job of the previous page; the next page starts after it in the order.
        std::string order;
        std::string after;
        switch (query.sort) {
            case JobSort::Newest:
                order = " ORDER BY id DESC";
                after = " AND id < ?";
                break;
            case JobSort::Oldest:
                order = " ORDER BY id ASC";
                after = " AND id > ?";
                break;
            case JobSort::Name:
                order = " ORDER BY output_filename ASC, id ASC";
                after = " AND (output_filename, id) > (SELECT output_filename, id FROM jobs WHERE id = ?)";
                break;
            case JobSort::NameDesc:
                order = " ORDER BY output_filename DESC, id DESC";
                after = " AND (output_filename, id) < (SELECT output_filename, id FROM jobs WHERE id = ?)";
                break;
        }
        if (query.cursor) {
            where += after;
            params.emplace_back(*query.cursor);
        }
        params.emplace_back(int64_t{limit} + 1);  // one more than asked tells whether a next page exists
        page.items = m_impl->select_jobs(where + order + " LIMIT ?", params);
        if (page.items.size() > static_cast<size_t>(limit)) {
            page.items.resize(static_cast<size_t>(limit));
            page.next_cursor = page.items.back().id;
        }
    } catch (const SqlError& e) {
        return internal_error("list_jobs", e);
    }
    return page;
}

Result<JobRecord> Store::transition(const std::string& id, const std::vector<JobState>& from, JobState to,
                                    const JobUpdate& changes, const std::string& message) {
    std::lock_guard lock(m_impl->mutex);
    auto& impl = *m_impl;
    try {
        Transaction tx(impl.db);
        std::optional<JobState> current;
        {
            auto s = impl.prepare("SELECT state FROM jobs WHERE id = ?");
            s << id;
            if (!s.step()) return Error(ErrorCode::JobNotFound, "job " + id + " not found", {{"job_id", id}});
            current = parse_job_state(s.text(0));
        }
        if (!current || std::find(from.begin(), from.end(), *current) == from.end()) {
            const std::string now_state = current ? std::string(to_string(*current)) : "unknown";
            return Error(ErrorCode::Conflict,
                         "job is " + now_state + ", expected " + (from.size() == 1 ? "" : "one of ") +
                             join_states(from),
                         {{"state", now_state}});
        }
        // The state machine's edges are the protocol's; a caller asking for another edge is refused
        // here rather than corrupting the job's history.
        if (!protocol::can_transition(*current, to))
            return Error(ErrorCode::Conflict,
                         "job is " + std::string(to_string(*current)) + " and cannot become " +
                             std::string(to_string(to)),
                         {{"state", std::string(to_string(*current))}});
        impl.update_row(id, changes, to);
        impl.insert_event(id, "state", current, to, message, nullptr);
        auto updated = impl.get_job(id);
        tx.commit();
        if (!updated) return Error(ErrorCode::Internal, "job " + id + " vanished during a transition");
        return *updated;
    } catch (const SqlError& e) {
        return internal_error("transition", e);
    }
}

Result<JobRecord> Store::update_job(const std::string& id, const JobUpdate& changes,
                                    const std::optional<nlohmann::json>& progress_event) {
    std::lock_guard lock(m_impl->mutex);
    auto& impl = *m_impl;
    try {
        Transaction tx(impl.db);
        if (impl.update_row(id, changes, std::nullopt) == 0)
            return Error(ErrorCode::JobNotFound, "job " + id + " not found", {{"job_id", id}});
        auto updated = impl.get_job(id);
        if (!updated) return Error(ErrorCode::JobNotFound, "job " + id + " not found", {{"job_id", id}});
        if (progress_event)
            impl.insert_event(id, "progress", std::nullopt, updated->state, "", *progress_event);
        tx.commit();
        return *updated;
    } catch (const SqlError& e) {
        return internal_error("update_job", e);
    }
}

namespace {
// A job_events row selected as id, job_id, at, type, from_state, to_state, message, data.
JobEvent read_event(Stmt& s) {
    JobEvent e;
    e.id = s.i64(0);
    e.job_id = s.text(1);
    e.at = s.i64(2);
    e.type = s.text(3);
    if (!s.is_null(4)) e.from_state = parse_job_state(s.text(4));
    e.to_state = read_enum(s, 5, protocol::parse_job_state, "job_events", std::to_string(e.id), "to_state");
    e.message = s.text(6);
    e.data = s.json(7);
    return e;
}
}  // namespace

Result<std::vector<JobEvent>> Store::job_events(const std::string& job_id, int64_t after_id, int limit) {
    std::lock_guard lock(m_impl->mutex);
    std::vector<JobEvent> out;
    try {
        auto s = m_impl->prepare(
            "SELECT id, job_id, at, type, from_state, to_state, message, data FROM job_events"
            " WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?");
        s << job_id << after_id << std::clamp(limit, 1, 100000);
        while (s.step()) out.push_back(read_event(s));
    } catch (const SqlError& e) {
        return internal_error("job_events", e);
    }
    return out;
}

Result<std::optional<int64_t>> Store::queue_position(const std::string& job_id) {
    std::lock_guard lock(m_impl->mutex);
    try {
        // Counts the queued jobs that come before this one in claim order, plus itself.
        auto s = m_impl->prepare(
            "SELECT COUNT(*) FROM jobs AS q, (SELECT priority, created_at, id FROM jobs"
            " WHERE id = ?1 AND state = 'queued') AS me"
            " WHERE q.state = 'queued' AND (q.priority > me.priority OR (q.priority = me.priority AND"
            " (q.created_at < me.created_at OR (q.created_at = me.created_at AND q.id <= me.id))))");
        s << job_id;
        s.step();
        const int64_t n = s.i64(0);
        if (n == 0) return std::optional<int64_t>{};  // not queued (a queued job always counts itself)
        return std::optional<int64_t>(n);
    } catch (const SqlError& e) {
        return internal_error("queue_position", e);
    }
}

Result<std::map<std::string, int64_t>> Store::queue_positions(const std::vector<std::string>& job_ids) {
    std::map<std::string, int64_t> out;
    if (job_ids.empty()) return out;
    std::lock_guard lock(m_impl->mutex);
    try {
        // One walk of the queue in claim order over its index, numbering as it goes, that stops at
        // the last of the jobs asked for.
        std::set<std::string> wanted(job_ids.begin(), job_ids.end());
        auto s = m_impl->prepare(
            "SELECT id FROM jobs INDEXED BY jobs_claim_order WHERE state = 'queued'"
            " ORDER BY priority DESC, created_at ASC, id ASC");
        int64_t position = 0;
        while (!wanted.empty() && s.step()) {
            ++position;
            if (auto it = wanted.find(s.text(0)); it != wanted.end()) {
                out[*it] = position;
                wanted.erase(it);
            }
        }
    } catch (const SqlError& e) {
        return internal_error("queue_positions", e);
    }
    return out;
}

Result<std::map<JobState, int64_t>> Store::count_by_state(const std::optional<std::string>& owner_key_id) {
    std::lock_guard lock(m_impl->mutex);
    std::map<JobState, int64_t> out;
    try {
        auto s = m_impl->prepare(owner_key_id ? "SELECT state, n FROM job_counts WHERE owner_key_id = ?"
                                              : "SELECT state, SUM(n) FROM job_counts GROUP BY state");
        if (owner_key_id) s << *owner_key_id;
        while (s.step())
            if (auto st = parse_job_state(s.text(0))) out[*st] += s.i64(1);
    } catch (const SqlError& e) {
        return internal_error("count_by_state", e);
    }
    return out;
}

Result<std::vector<Store::FeedEvent>> Store::event_feed(int64_t after_id,
                                                        const std::optional<std::string>& owner_key_id,
                                                        int limit) {
    std::lock_guard lock(m_impl->mutex);
    std::vector<FeedEvent> out;
    try {
        auto s = m_impl->prepare(
            std::string("SELECT e.id, e.job_id, e.at, e.type, e.from_state, e.to_state, e.message, e.data,"
                        " j.progress_percent FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE e.id > ?"
                        " AND j.parent_id IS NULL") +
            (owner_key_id ? " AND j.owner_key_id = ?" : "") + " ORDER BY e.id LIMIT ?");
        s << after_id;
        if (owner_key_id) s << *owner_key_id;
        s << int64_t{std::clamp(limit, 1, 10000)};
        while (s.step()) {
            FeedEvent f{read_event(s), s.dbl(8)};
            out.push_back(std::move(f));
        }
    } catch (const SqlError& e) {
        return internal_error("event_feed", e);
    }
    return out;
}

Result<int64_t> Store::last_event_id() {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare("SELECT COALESCE(MAX(id), 0) FROM job_events");
        s.step();
        return s.i64(0);
    } catch (const SqlError& e) {
        return internal_error("last_event_id", e);
    }
}

Result<Store::Throughput> Store::finished_since(int64_t since, int64_t bucket_ms, int buckets,
                                                const std::optional<std::string>& owner_key_id) {
    std::lock_guard lock(m_impl->mutex);
    Throughput out;
    out.completed.assign(static_cast<size_t>(buckets), 0);
    out.failed.assign(static_cast<size_t>(buckets), 0);
    try {
        auto s = m_impl->prepare(
            std::string("SELECT (finished_at - ?) / ?, state, COUNT(*) FROM jobs INDEXED BY jobs_finished"
                        " WHERE finished_at >= ?"
                        " AND state IN ('completed', 'failed') AND parent_id IS NULL") +
            (owner_key_id ? " AND owner_key_id = ?" : "") + " GROUP BY 1, 2");
        s << since << bucket_ms << since;
        if (owner_key_id) s << *owner_key_id;
        while (s.step()) {
            const int64_t b = s.i64(0);
            if (b < 0 || b >= buckets) continue;
            (s.text(1) == "completed" ? out.completed : out.failed)[static_cast<size_t>(b)] += s.i64(2);
        }
    } catch (const SqlError& e) {
        return internal_error("finished_since", e);
    }
    return out;
}

Result<std::vector<JobRecord>> Store::failed_since(int64_t since,
                                                   const std::optional<std::string>& owner_key_id,
                                                   int limit) {
    std::lock_guard lock(m_impl->mutex);
    try {
        std::vector<Value> params{since};
        if (owner_key_id) params.emplace_back(*owner_key_id);
        params.emplace_back(int64_t{std::clamp(limit, 1, 500)});
        return m_impl->select_jobs(std::string("INDEXED BY jobs_finished WHERE finished_at >= ? AND state = "
                                               "'failed' AND parent_id IS NULL") +
                                       (owner_key_id ? " AND owner_key_id = ?" : "") +
                                       " ORDER BY finished_at DESC LIMIT ?",
                                   params);
    } catch (const SqlError& e) {
        return internal_error("failed_since", e);
    }
}

Result<std::vector<JobRecord>> Store::jobs_past_ttl(int64_t now, std::optional<int64_t> default_ttl_ms) {
    std::lock_guard lock(m_impl->mutex);
    try {
        return m_impl->select_jobs(
            "WHERE state IN ('awaiting_upload', 'queued') AND parent_id IS NULL AND COALESCE(ttl_ms, ?) IS "
            "NOT NULL"
            " AND created_at + COALESCE(ttl_ms, ?) < ? ORDER BY id",
            {to_value(default_ttl_ms), to_value(default_ttl_ms), now});
    } catch (const SqlError& e) {
        return internal_error("jobs_past_ttl", e);
    }
}

// --- Split mode ----------------------------------------------------------------------------------

Result<std::vector<JobRecord>> Store::tasks_of(const std::string& parent_id) {
    std::lock_guard lock(m_impl->mutex);
    try {
        return m_impl->select_jobs("WHERE parent_id = ? ORDER BY rowid", {parent_id});
    } catch (const SqlError& e) {
        return internal_error("tasks_of", e);
    }
}

Result<std::vector<JobRecord>> Store::jobs_in_split_state(const std::vector<std::string>& split_states) {
    std::lock_guard lock(m_impl->mutex);
    if (split_states.empty()) return std::vector<JobRecord>{};
    std::string in;
    std::vector<Value> params;
    for (const auto& st : split_states) {
        in += in.empty() ? "?" : ", ?";
        params.emplace_back(st);
    }
    try {
        return m_impl->select_jobs(
            "INDEXED BY jobs_split_state WHERE split_state IN (" + in + ") AND parent_id IS NULL ORDER BY id",
            params);
    } catch (const SqlError& e) {
        return internal_error("jobs_in_split_state", e);
    }
}

Result<JobRecord> Store::start_split(const std::string& parent_id, const std::vector<JobRecord>& tasks,
                                     const JobUpdate& parent_changes, const std::string& message) {
    std::lock_guard lock(m_impl->mutex);
    auto& impl = *m_impl;
    try {
        Transaction tx(impl.db);
        auto parent = impl.get_job(parent_id);
        if (!parent)
            return Error(ErrorCode::JobNotFound, "job " + parent_id + " not found", {{"job_id", parent_id}});
        if (parent->state != JobState::Queued || parent->split_state != "pending")
            return Error(ErrorCode::Conflict, "job " + parent_id + " is no longer waiting to be split",
                         {{"state", std::string(to_string(parent->state))}});
        for (const auto& task : tasks) {
            JobRecord r = task;
            r.parent_id = parent_id;
            r = impl.insert_row(r);
            impl.insert_event(r.id, "state", std::nullopt, r.state, "a task of job " + parent_id, nullptr);
        }
        impl.update_row(parent_id, parent_changes, JobState::Running);
        impl.insert_event(parent_id, "state", JobState::Queued, JobState::Running, message, nullptr);
        auto updated = impl.get_job(parent_id);
        tx.commit();
        if (!updated) return Error(ErrorCode::Internal, "job " + parent_id + " vanished while it was split");
        return *updated;
    } catch (const SqlError& e) {
        return internal_error("start_split", e);
    }
}

Status Store::delete_tasks(const std::string& parent_id) {
    std::lock_guard lock(m_impl->mutex);
    auto& impl = *m_impl;
    try {
        Transaction tx(impl.db);
        {
            auto s = impl.prepare(
                "SELECT COUNT(*) FROM jobs WHERE parent_id = ? AND state NOT IN ('completed', 'failed', "
                "'canceled')");
            s << parent_id;
            s.step();
            if (s.i64(0) > 0)
                return Error(ErrorCode::Conflict, "job " + parent_id + " has tasks that have not ended");
        }
        auto s = impl.prepare("DELETE FROM jobs WHERE parent_id = ?");
        s << parent_id;
        s.run();
        tx.commit();
        return {};
    } catch (const SqlError& e) {
        return internal_error("delete_tasks", e);
    }
}

Result<std::vector<JobRecord>> Store::idle_uploads(int64_t idle_before) {
    std::lock_guard lock(m_impl->mutex);
    try {
        return m_impl->select_jobs(
            "WHERE state = 'awaiting_upload' AND source_url IS NULL AND updated_at < ? ORDER BY id",
            {idle_before});
    } catch (const SqlError& e) {
        return internal_error("idle_uploads", e);
    }
}

Result<std::vector<JobRecord>> Store::jobs_with_expired_outputs(int64_t now) {
    std::lock_guard lock(m_impl->mutex);
    try {
        return m_impl->select_jobs(
            "WHERE state = 'completed' AND parent_id IS NULL AND output_deleted = 0 AND output_expires_at IS "
            "NOT NULL"
            " AND output_expires_at < ? ORDER BY id",
            {now});
    } catch (const SqlError& e) {
        return internal_error("jobs_with_expired_outputs", e);
    }
}

Result<std::vector<JobRecord>> Store::terminal_jobs_with_sources() {
    std::lock_guard lock(m_impl->mutex);
    try {
        // Also those with only a reservation and no file yet, so the caller can release the space.
        return m_impl->select_jobs(
            "WHERE state IN ('completed', 'failed', 'canceled') AND parent_id IS NULL AND source_deleted = 0"
            " AND (source_path <> '' OR source_reserved > 0) ORDER BY id",
            {});
    } catch (const SqlError& e) {
        return internal_error("terminal_jobs_with_sources", e);
    }
}

Result<std::vector<std::pair<std::string, std::string>>> Store::referenced_files() {
    std::lock_guard lock(m_impl->mutex);
    std::vector<std::pair<std::string, std::string>> out;
    try {
        auto s = m_impl->prepare(
            "SELECT source_pool, source_path FROM jobs WHERE source_path <> '' AND source_deleted = 0"
            " UNION SELECT output_pool, output_path FROM jobs WHERE output_path <> '' AND output_deleted = 0"
            " ORDER BY 1, 2");
        while (s.step()) out.emplace_back(s.text(0), s.text(1));
    } catch (const SqlError& e) {
        return internal_error("referenced_files", e);
    }
    return out;
}

// --- Pool accounting -----------------------------------------------------------------------------

Result<uint64_t> Store::reserved_bytes(const std::string& pool) {
    std::lock_guard lock(m_impl->mutex);
    try {
        return m_impl->reserved_in(pool);
    } catch (const SqlError& e) {
        return internal_error("reserved_bytes", e);
    }
}

Result<uint64_t> Store::owner_reserved_bytes(const std::string& owner_key_id) {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare(
            "SELECT COALESCE(SUM(CASE WHEN source_deleted = 0 THEN source_reserved ELSE 0 END), 0)"
            " + COALESCE(SUM(CASE WHEN output_deleted = 0 THEN output_reserved ELSE 0 END), 0)"
            " FROM jobs WHERE owner_key_id = ?");
        s << owner_key_id;
        s.step();
        return s.u64(0);
    } catch (const SqlError& e) {
        return internal_error("owner_reserved_bytes", e);
    }
}

Result<std::string> Store::reserve_space(const std::string& job_id, FileKind kind, uint64_t bytes,
                                         const std::vector<PoolCandidate>& candidates) {
    std::lock_guard lock(m_impl->mutex);
    auto& impl = *m_impl;
    const bool source = kind == FileKind::Source;
    try {
        Transaction tx(impl.db);
        std::string own_pool;
        uint64_t own_reserved = 0;
        {
            auto s = impl.prepare(
                source ? "SELECT source_pool, source_reserved, source_deleted FROM jobs WHERE id = ?"
                       : "SELECT output_pool, output_reserved, output_deleted FROM jobs WHERE id = ?");
            s << job_id;
            if (!s.step())
                return Error(ErrorCode::JobNotFound, "job " + job_id + " not found", {{"job_id", job_id}});
            own_pool = s.text(0);
            if (!s.boolean(2)) own_reserved = s.u64(1);  // a deleted file's reservation is not counted anyway
        }
        for (const auto& c : candidates) {
            uint64_t reserved = impl.reserved_in(c.name);
            if (c.name == own_pool) reserved -= std::min(reserved, own_reserved);  // re-reserving replaces
            const bool cap_ok =
                !c.cap_bytes || (reserved <= *c.cap_bytes && *c.cap_bytes - reserved >= bytes);
            if (!cap_ok || c.disk_free_bytes < bytes) continue;
            auto s = impl.prepare(source ? "UPDATE jobs SET source_pool = ?, source_reserved = ?,"
                                           " version = version + 1, updated_at = ? WHERE id = ?"
                                         : "UPDATE jobs SET output_pool = ?, output_reserved = ?,"
                                           " version = version + 1, updated_at = ? WHERE id = ?");
            s << c.name << bytes << impl.now() << job_id;
            s.run();
            tx.commit();
            return c.name;
        }
        return Error(ErrorCode::InsufficientStorage,
                     "no storage pool has room for " + std::to_string(bytes) + " bytes",
                     {{"needed_bytes", bytes}});
    } catch (const SqlError& e) {
        return internal_error("reserve_space", e);
    }
}

Status Store::release_space(const std::string& job_id, FileKind kind) {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s =
            m_impl->prepare(kind == FileKind::Source
                                ? "UPDATE jobs SET source_reserved = 0, version = version + 1, updated_at = ?"
                                  " WHERE id = ?"
                                : "UPDATE jobs SET output_reserved = 0, version = version + 1, updated_at = ?"
                                  " WHERE id = ?");
        s << m_impl->now() << job_id;
        s.run();
        if (sqlite3_changes(m_impl->db) == 0)
            return Error(ErrorCode::JobNotFound, "job " + job_id + " not found", {{"job_id", job_id}});
        return {};
    } catch (const SqlError& e) {
        return internal_error("release_space", e);
    }
}

// --- Engines and attempts --------------------------------------------------------------------------

namespace {

constexpr const char* k_engine_columns =
    "id, key_id, hostname, version, slots, state, capabilities, tags, benchmark_score, free_disk_bytes, "
    "load, "
    "cpu_temp, memory, registered_at, last_seen_at, drain, rerun_benchmark";

EngineRecord read_engine(const Stmt& s) {
    EngineRecord e;
    int c = 0;
    e.id = s.text(c++);
    e.key_id = s.text(c++);
    e.hostname = s.text(c++);
    e.version = s.text(c++);
    e.slots = s.i32(c++);
    e.state = read_enum(s, c++, protocol::parse_engine_state, "engines", e.id, "state");
    e.capabilities = s.json(c++);
    if (!e.capabilities.is_object()) e.capabilities = nlohmann::json::object();
    auto tags = s.json(c++);
    if (tags.is_array())
        for (const auto& t : tags)
            if (t.is_string()) e.tags.push_back(t.get<std::string>());
    e.benchmark_score = s.opt_dbl(c++);
    e.free_disk_bytes = s.opt_i64(c++).value_or(0);
    e.load_average = s.opt_dbl(c++);
    e.cpu_temperature_c = s.opt_dbl(c++);
    e.memory = s.json(c++);
    e.registered_at = s.i64(c++);
    e.last_seen_at = s.i64(c++);
    e.drain = s.boolean(c++);
    e.rerun_benchmark = s.boolean(c++);
    return e;
}

constexpr const char* k_attempt_columns =
    "id, job_id, attempt_no, engine_id, fencing_token, state, transfer_mode, started_at, lease_expires_at, "
    "finished_at, exit_code, error_class, message";

AttemptRecord read_attempt(const Stmt& s) {
    AttemptRecord a;
    int c = 0;
    a.id = s.text(c++);
    a.job_id = s.text(c++);
    a.attempt_no = s.i32(c++);
    a.engine_id = s.text(c++);
    a.fencing_token = s.i64(c++);
    a.state = read_enum(s, c++, protocol::parse_attempt_state, "attempts", a.id, "state");
    a.transfer_mode = read_enum(s, c++, protocol::parse_transfer_mode, "attempts", a.id, "transfer_mode");
    a.started_at = s.i64(c++);
    a.lease_expires_at = s.opt_i64(c++);
    a.finished_at = s.opt_i64(c++);
    if (auto code = s.opt_i64(c++)) a.exit_code = static_cast<int>(*code);
    a.error_class = s.opt_text(c++);
    a.message = s.text(c++);
    return a;
}

Error lease_lost(const std::string& attempt_id) {
    return Error(
        ErrorCode::LeaseLost,
        "assignment " + attempt_id + " no longer holds its job (lease expired, job reassigned or finished)",
        {{"assignment_id", attempt_id}});
}

}  // namespace

Result<EngineRecord> Store::insert_engine(const EngineRecord& engine) {
    std::lock_guard lock(m_impl->mutex);
    try {
        EngineRecord e = engine;
        if (e.id.empty()) e.id = new_ulid();
        e.registered_at = m_impl->now();
        e.last_seen_at = e.registered_at;
        auto s = m_impl->prepare(std::string("INSERT INTO engines (") + k_engine_columns +
                                 ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        s.bind(e.id).bind(e.key_id.empty() ? Value(nullptr) : Value(e.key_id));
        s << e.hostname << e.version << e.slots << e.state << e.capabilities << nlohmann::json(e.tags)
          << e.benchmark_score << e.free_disk_bytes << e.load_average << e.cpu_temperature_c << e.memory
          << e.registered_at << e.last_seen_at << e.drain << e.rerun_benchmark;
        s.run();
        return e;
    } catch (const SqlError& e) {
        return internal_error("insert_engine", e);
    }
}

Result<EngineRecord> Store::get_engine(const std::string& id) {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare(std::string("SELECT ") + k_engine_columns + " FROM engines WHERE id = ?");
        s << id;
        if (!s.step()) return Error(ErrorCode::NotFound, "no engine with id '" + id + "'");
        return read_engine(s);
    } catch (const SqlError& e) {
        return internal_error("get_engine", e);
    }
}

Result<HeartbeatSeen> Store::record_heartbeat(const EngineHeartbeat& hb,
                                              const std::optional<std::string>& key_id) {
    std::lock_guard lock(m_impl->mutex);
    const auto not_found = [&] {
        return Error(ErrorCode::NotFound, "no engine with id '" + hb.engine_id + "'");
    };
    try {
        HeartbeatSeen seen;
        {
            auto s = m_impl->prepare("SELECT key_id, drain, rerun_benchmark FROM engines WHERE id = ?");
            s << hb.engine_id;
            if (!s.step() || (key_id && s.text(0) != *key_id)) return not_found();
            seen.drain = s.boolean(1);
            seen.rerun_benchmark = s.boolean(2);
        }
        // The mutex keeps the row as read: nothing else writes between the SELECT and the UPDATE.
        auto s = m_impl->prepare(
            "UPDATE engines SET state = CASE WHEN drain THEN 'draining' ELSE ? END, load = ?, "
            "free_disk_bytes = ?, "
            "memory = ?, cpu_temp = ?, benchmark_score = COALESCE(?, benchmark_score), last_seen_at = ?, "
            "rerun_benchmark = 0 WHERE id = ?");
        s << hb.state << hb.load_average << hb.free_disk_bytes << hb.memory << hb.cpu_temperature_c
          << hb.benchmark_score << hb.seen_at << hb.engine_id;
        s.run();
        if (sqlite3_changes(m_impl->db) == 0) return not_found();
        return seen;
    } catch (const SqlError& err) {
        return internal_error("record_heartbeat", err);
    }
}

Result<std::vector<EngineRecord>> Store::list_engines() {
    std::lock_guard lock(m_impl->mutex);
    std::vector<EngineRecord> out;
    try {
        auto s = m_impl->prepare(std::string("SELECT ") + k_engine_columns + " FROM engines ORDER BY id");
        while (s.step()) out.push_back(read_engine(s));
    } catch (const SqlError& e) {
        return internal_error("list_engines", e);
    }
    return out;
}

Result<std::vector<double>> Store::online_benchmark_scores() {
    std::lock_guard lock(m_impl->mutex);
    std::vector<double> out;
    try {
        auto s = m_impl->prepare(
            "SELECT benchmark_score FROM engines WHERE state <> 'offline' AND benchmark_score IS NOT NULL");
        while (s.step()) out.push_back(s.dbl(0));
    } catch (const SqlError& e) {
        return internal_error("online_benchmark_scores", e);
    }
    return out;
}

Result<bool> Store::any_claimable_job() {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare(
            "SELECT 1 FROM jobs WHERE state = 'queued' AND (not_before IS NULL OR not_before <= ?)"
            " AND split_state IS NOT 'pending' LIMIT 1");
        s << m_impl->now();
        return s.step();
    } catch (const SqlError& e) {
        return internal_error("any_claimable_job", e);
    }
}

Status Store::update_engine(const EngineRecord& e) {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare(
            "UPDATE engines SET hostname = ?, version = ?, slots = ?, state = ?, capabilities = ?, tags = ?, "
            "benchmark_score = ?, free_disk_bytes = ?, load = ?, cpu_temp = ?, memory = ?, last_seen_at = ?, "
            "drain = ?, "
            "rerun_benchmark = ? WHERE id = ?");
        s << e.hostname << e.version << e.slots << e.state << e.capabilities << nlohmann::json(e.tags)
          << e.benchmark_score << e.free_disk_bytes << e.load_average << e.cpu_temperature_c << e.memory
          << e.last_seen_at << e.drain << e.rerun_benchmark << e.id;
        s.run();
        if (sqlite3_changes(m_impl->db) == 0)
            return Error(ErrorCode::NotFound, "no engine with id '" + e.id + "'");
        return {};
    } catch (const SqlError& err) {
        return internal_error("update_engine", err);
    }
}

Status Store::set_engine_flags(const std::string& engine_id, std::optional<bool> drain,
                               bool rerun_benchmark) {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare(
            "UPDATE engines SET drain = COALESCE(?1, drain),"
            " state = CASE WHEN ?1 = 1 AND state <> 'offline' THEN 'draining'"
            "              WHEN ?1 = 0 AND state = 'draining' THEN 'idle' ELSE state END,"
            " rerun_benchmark = CASE WHEN ?2 = 1 THEN 1 ELSE rerun_benchmark END WHERE id = ?3");
        if (drain)
            s << int64_t{*drain ? 1 : 0};
        else
            s << nullptr;
        s << int64_t{rerun_benchmark ? 1 : 0} << engine_id;
        s.run();
        if (sqlite3_changes(m_impl->db) == 0)
            return Error(ErrorCode::NotFound, "no engine with id '" + engine_id + "'");
        return {};
    } catch (const SqlError& err) {
        return internal_error("set_engine_flags", err);
    }
}

Status Store::engine_seen(const std::string& engine_id, int64_t seen_at,
                          std::optional<int64_t> free_disk_bytes) {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare(
            "UPDATE engines SET last_seen_at = ?1, free_disk_bytes = COALESCE(?2, free_disk_bytes),"
            " state = CASE WHEN state = 'offline' THEN (CASE WHEN drain THEN 'draining' ELSE 'idle' END)"
            " ELSE state END WHERE id = ?3");
        s << seen_at;
        if (free_disk_bytes)
            s << *free_disk_bytes;
        else
            s << nullptr;
        s << engine_id;
        s.run();
        if (sqlite3_changes(m_impl->db) == 0)
            return Error(ErrorCode::NotFound, "no engine with id '" + engine_id + "'");
        return {};
    } catch (const SqlError& err) {
        return internal_error("engine_seen", err);
    }
}

Result<std::optional<std::pair<JobRecord, AttemptRecord>>> Store::claim_job(const std::string& engine_id,
                                                                            int64_t lease_ms,
                                                                            const ClaimChooser& choose,
                                                                            int max_candidates) {
    std::lock_guard lock(m_impl->mutex);
    auto& impl = *m_impl;
    using Claimed = std::optional<std::pair<JobRecord, AttemptRecord>>;
    try {
        Transaction tx(impl.db);
        const int64_t now = impl.now();
        std::vector<ClaimCandidate> candidates;
        {
            auto s =
                impl.prepare(std::string("SELECT ") + k_job_columns +
                             ", (SELECT COUNT(*) FROM jobs o WHERE o.owner_key_id = jobs.owner_key_id"
                             "   AND o.state IN ('assigned', 'running', 'canceling')"
                             "   AND o.split_state IS NOT 'split' AND o.split_state IS NOT 'joining')"
                             ", (SELECT a.engine_id FROM attempts a WHERE a.job_id = jobs.id ORDER BY "
                             "a.attempt_no DESC LIMIT 1)"
                             " FROM jobs WHERE state = 'queued' AND (not_before IS NULL OR not_before <= ?)"
                             " AND split_state IS NOT 'pending'"
                             " ORDER BY priority DESC, created_at ASC, id ASC LIMIT ?");
            s << now << int64_t{max_candidates};
            while (s.step()) {
                ClaimCandidate c;
                c.job = read_job(s);
                c.owner_running = s.i32(47);
                c.last_engine = s.opt_text(48);
                candidates.push_back(std::move(c));
            }
        }
        if (candidates.empty()) return Claimed{};
        auto choice = choose(candidates);
        if (!choice || choice->index >= candidates.size()) return Claimed{};
        const JobRecord& job = candidates[choice->index].job;

        int64_t token = 1;
        int attempt_no = 1;
        {
            auto s = impl.prepare(
                "SELECT COALESCE(MAX(fencing_token), 0) + 1, COALESCE(MAX(attempt_no), 0) + 1 FROM attempts "
                "WHERE job_id = ?");
            s << job.id;
            s.step();
            token = s.i64(0);
            attempt_no = s.i32(1);
        }
        JobUpdate u;
        u.attempt_count = job.attempt_count + 1;
        u.message = "assigned to an engine";
        u.not_before = std::optional<int64_t>{};
        if (!job.started_at || *job.started_at <= 0) u.started_at = now;
        if (impl.update_row(job.id, u, JobState::Assigned) == 0) return Claimed{};
        AttemptRecord a;
        a.id = new_ulid();
        a.job_id = job.id;
        a.attempt_no = attempt_no;
        a.engine_id = engine_id;
        a.fencing_token = token;
        a.state = AttemptState::Active;
        a.transfer_mode = choice->transfer_mode;
        a.started_at = now;
        a.lease_expires_at = now + lease_ms;
        {
            auto s = impl.prepare(std::string("INSERT INTO attempts (") + k_attempt_columns +
                                  ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
            s << a.id << a.job_id << a.attempt_no << a.engine_id << a.fencing_token << a.state
              << a.transfer_mode << a.started_at << a.lease_expires_at << a.finished_at << nullptr
              << a.error_class << a.message;
            s.run();
        }
        impl.insert_event(job.id, "state", JobState::Queued, JobState::Assigned,
                          "assigned to engine " + engine_id + " (attempt " + std::to_string(attempt_no) + ")",
                          nullptr);
        auto updated = impl.get_job(job.id);
        tx.commit();
        if (!updated) return Error(ErrorCode::Internal, "job vanished during a claim");
        return Claimed{std::make_pair(*updated, a)};
    } catch (const SqlError& e) {
        return internal_error("claim_job", e);
    }
}

Result<AttemptRecord> Store::get_attempt(const std::string& id) {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare(std::string("SELECT ") + k_attempt_columns + " FROM attempts WHERE id = ?");
        s << id;
        if (!s.step()) return Error(ErrorCode::NotFound, "no assignment with id '" + id + "'");
        return read_attempt(s);
    } catch (const SqlError& e) {
        return internal_error("get_attempt", e);
    }
}

Result<std::vector<AttemptRecord>> Store::attempts_for_job(const std::string& job_id) {
    std::lock_guard lock(m_impl->mutex);
    std::vector<AttemptRecord> out;
    try {
        auto s = m_impl->prepare(std::string("SELECT ") + k_attempt_columns +
                                 " FROM attempts WHERE job_id = ? ORDER BY attempt_no");
        s << job_id;
        while (s.step()) out.push_back(read_attempt(s));
    } catch (const SqlError& e) {
        return internal_error("attempts_for_job", e);
    }
    return out;
}

Result<std::vector<AttemptRecord>> Store::active_attempts(const std::optional<std::string>& engine_id) {
    std::lock_guard lock(m_impl->mutex);
    std::vector<AttemptRecord> out;
    try {
        auto s = m_impl->prepare(
            std::string("SELECT ") + k_attempt_columns +
            " FROM attempts WHERE state = 'active' AND (?1 IS NULL OR engine_id = ?1) ORDER BY id");
        s << engine_id;
        while (s.step()) out.push_back(read_attempt(s));
    } catch (const SqlError& e) {
        return internal_error("active_attempts", e);
    }
    return out;
}

Result<std::vector<AttemptRecord>> Store::expired_attempts(int64_t now) {
    std::lock_guard lock(m_impl->mutex);
    std::vector<AttemptRecord> out;
    try {
        auto s =
            m_impl->prepare(std::string("SELECT ") + k_attempt_columns +
                            " FROM attempts WHERE state = 'active' AND lease_expires_at < ? ORDER BY id");
        s << now;
        while (s.step()) out.push_back(read_attempt(s));
    } catch (const SqlError& e) {
        return internal_error("expired_attempts", e);
    }
    return out;
}

Result<AttemptRecord> Store::extend_lease(const std::string& attempt_id, int64_t fencing_token,
                                          int64_t lease_until) {
    std::lock_guard lock(m_impl->mutex);
    try {
        auto s = m_impl->prepare(
            "UPDATE attempts SET lease_expires_at = MAX(COALESCE(lease_expires_at, 0), ?) "
            "WHERE id = ? AND fencing_token = ? AND state = 'active'");
        s << lease_until << attempt_id << fencing_token;
        s.run();
        if (sqlite3_changes(m_impl->db) == 0) return lease_lost(attempt_id);
        auto g = m_impl->prepare(std::string("SELECT ") + k_attempt_columns + " FROM attempts WHERE id = ?");
        g << attempt_id;
        g.step();
        return read_attempt(g);
    } catch (const SqlError& e) {
        return internal_error("extend_lease", e);
    }
}

Result<JobRecord> Store::end_attempt(const std::string& attempt_id, int64_t fencing_token,
                                     const AttemptEnd& end) {
    std::lock_guard lock(m_impl->mutex);
    auto& impl = *m_impl;
    try {
        Transaction tx(impl.db);
        AttemptRecord a;
        {
            auto s = impl.prepare(std::string("SELECT ") + k_attempt_columns + " FROM attempts WHERE id = ?");
            s << attempt_id;
            if (!s.step()) return Error(ErrorCode::NotFound, "no assignment with id '" + attempt_id + "'");
            a = read_attempt(s);
        }
        if (a.state != AttemptState::Active || a.fencing_token != fencing_token)
            return lease_lost(attempt_id);
        auto job = impl.get_job(a.job_id);
        if (!job) return Error(ErrorCode::JobNotFound, "job " + a.job_id + " not found");
        // A newer attempt of the same job holds the lease: this one is stale whatever its own row says.
        {
            auto s = impl.prepare("SELECT MAX(fencing_token) FROM attempts WHERE job_id = ?");
            s << a.job_id;
            s.step();
            if (s.i64(0) != fencing_token) return lease_lost(attempt_id);
        }
        if (!protocol::can_transition(job->state, end.job_to))
            return Error(ErrorCode::Conflict,
                         "job is " + std::string(to_string(job->state)) + " and cannot become " +
                             std::string(to_string(end.job_to)),
                         {{"state", std::string(to_string(job->state))}});
        {
            auto s = impl.prepare(
                "UPDATE attempts SET state = ?, finished_at = ?, exit_code = ?, error_class = ?, message = ? "
                "WHERE id = ?");
            s << end.attempt_state << impl.now();
            if (end.exit_code)
                s << int64_t{*end.exit_code};
            else
                s << nullptr;
            s << end.error_class << end.message << attempt_id;
            s.run();
        }
        impl.update_row(a.job_id, end.job_changes, end.job_to);
        impl.insert_event(a.job_id, "state", job->state, end.job_to, end.event_message, nullptr);
        auto updated = impl.get_job(a.job_id);
        tx.commit();
        if (!updated) return Error(ErrorCode::Internal, "job vanished while ending an attempt");
        return *updated;
    } catch (const SqlError& e) {
        return internal_error("end_attempt", e);
    }
}

}  // namespace distconv::dispatch
