#pragma once
// Internal to the store: the numbered schema migrations, oldest first. Each runs once, in its own
// transaction, and is recorded in schema_version. Never edit a released migration; add a new one.

#include <vector>

namespace distconv::dispatch::detail {

struct Migration {
    int version;
    const char* sql;  // one or more statements, run with sqlite3_exec
};

const std::vector<Migration>& store_migrations();

}  // namespace distconv::dispatch::detail
