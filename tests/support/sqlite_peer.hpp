#pragma once
// Another process's connection to a SQLite database file, to make real database faults: hold its
// write lock (BEGIN IMMEDIATE), hide its tables (ALTER TABLE ... RENAME), and undo them.

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

    // The dispatch store's tables, renamed away (no read of them succeeds) and back.
    bool hide_store_tables() { return rename_store_tables("", "hidden_"); }
    bool restore_store_tables() { return rename_store_tables("hidden_", ""); }

private:
    bool rename_store_tables(const std::string& from, const std::string& to) {
        bool ok = true;
        for (const char* t : {"jobs", "api_keys", "engines", "attempts", "job_events"})
            ok = exec("ALTER TABLE " + from + t + " RENAME TO " + to + t) && ok;
        return ok;
    }

    sqlite3* m_db = nullptr;
};

}  // namespace distconv::test
