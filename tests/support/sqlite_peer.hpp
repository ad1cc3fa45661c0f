#pragma once
// Another process's connection to a SQLite database file, to make real database faults: hold its
// write lock (BEGIN IMMEDIATE), hide its tables (ALTER TABLE ... RENAME), and undo them; checkpoint
// its WAL into the database and truncate it (so the next write must grow the WAL file again).

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>

namespace distconv::test {

class SqlitePeer {
  public:
    explicit SqlitePeer(const std::filesystem::path& db) {
        EXPECT_EQ(sqlite3_open_v2(db.c_str(), &m_db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK) << db;
        sqlite3_busy_timeout(m_db, 10000);
    }
    ~SqlitePeer() { sqlite3_close_v2(m_db); }
    SqlitePeer(const SqlitePeer&) = delete;
    SqlitePeer& operator=(const SqlitePeer&) = delete;

    bool exec(const std::string& sql) {
        char* err = nullptr;
        int rc = sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, &err);
        EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (err ? err : "");
        sqlite3_free(err);
        return rc == SQLITE_OK;
    }

    // The first column of the first row `sql` answers ("" when none, or on an error, which fails the test).
    std::string value(const std::string& sql) {
        sqlite3_stmt* st = nullptr;
        std::string out;
        int rc = sqlite3_prepare_v2(m_db, sql.c_str(), -1, &st, nullptr);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            if (auto t = sqlite3_column_text(st, 0)) out = reinterpret_cast<const char*>(t);
        } else if (rc != SQLITE_DONE) {
            ADD_FAILURE() << sql << ": " << sqlite3_errmsg(m_db);
        }
        sqlite3_finalize(st);
        return out;
    }

    // PRAGMA wal_checkpoint(TRUNCATE): every WAL frame copied into the database, the -wal file cut to
    // 0 bytes. False when another connection kept it from completing (its first column, "busy", is 1).
    bool checkpoint_truncate() { return value("PRAGMA wal_checkpoint(TRUNCATE)") == "0"; }

    // The dispatch store's tables, renamed away (no read of them succeeds) and back.
    bool hide_store_tables() { return rename_store_tables("", "hidden_"); }
    bool restore_store_tables() { return rename_store_tables("hidden_", ""); }

  private:
    bool rename_store_tables(const std::string& from, const std::string& to) {
        bool ok = true;
        for (const char* t : {"jobs", "api_keys", "engines", "attempts", "job_events", "job_counts"})
            ok = exec("ALTER TABLE " + from + t + " RENAME TO " + to + t) && ok;
        return ok;
    }

    sqlite3* m_db = nullptr;
};

}  // namespace distconv::test
