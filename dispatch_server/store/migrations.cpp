#include "dispatch_server/store/migrations.hpp"

namespace distconv::dispatch::detail {

namespace {

// 1: keys, jobs and their events, plus the engine and attempt tables the engine issue fills in
// (created now so later migrations only add columns).
constexpr const char* k_migration_1 = R"sql(
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'user', 'engine')),
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys(name) WHERE revoked_at IS NULL;

CREATE TABLE jobs (
    id                 TEXT PRIMARY KEY,
    owner_key_id       TEXT NOT NULL REFERENCES api_keys(id),
    state              TEXT NOT NULL CHECK (state IN ('awaiting_upload', 'queued', 'assigned', 'running',
                                                      'canceling', 'completed', 'failed', 'canceled')),
    priority           INTEGER NOT NULL DEFAULT 0,
    options            TEXT,
    resolved           TEXT,
    ffmpeg_command     TEXT NOT NULL DEFAULT '',
    output_filename    TEXT NOT NULL DEFAULT '',
    requirements       TEXT,
    max_attempts       INTEGER NOT NULL DEFAULT 3,
    attempt_count      INTEGER NOT NULL DEFAULT 0,
    ttl_ms             INTEGER,
    idempotency_key    TEXT,
    source_filename    TEXT NOT NULL DEFAULT '',
    source_size        INTEGER,
    source_sha256      TEXT,
    source_url         TEXT,
    source_pool        TEXT NOT NULL DEFAULT '',
    source_path        TEXT NOT NULL DEFAULT '',
    source_reserved    INTEGER NOT NULL DEFAULT 0,
    source_received    INTEGER NOT NULL DEFAULT 0,
    source_probe       TEXT,
    duration_seconds   REAL,
    source_deleted     INTEGER NOT NULL DEFAULT 0,
    output_pool        TEXT NOT NULL DEFAULT '',
    output_path        TEXT NOT NULL DEFAULT '',
    output_reserved    INTEGER NOT NULL DEFAULT 0,
    output_size        INTEGER,
    output_sha256      TEXT,
    output_expires_at  INTEGER,
    output_deleted     INTEGER NOT NULL DEFAULT 0,
    progress_percent   REAL NOT NULL DEFAULT 0,
    progress           TEXT,
    message            TEXT NOT NULL DEFAULT '',
    failure_code       TEXT NOT NULL DEFAULT '',
    failure_reason     TEXT NOT NULL DEFAULT '',
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    queued_at          INTEGER,
    started_at         INTEGER,
    finished_at        INTEGER,
    not_before         INTEGER,
    version            INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX jobs_owner_idempotency ON jobs(owner_key_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_claim_order ON jobs(state, priority DESC, created_at, id);
CREATE INDEX jobs_owner ON jobs(owner_key_id, id);
CREATE INDEX jobs_source_pool ON jobs(source_pool) WHERE source_pool <> '';
CREATE INDEX jobs_output_pool ON jobs(output_pool) WHERE output_pool <> '';

CREATE TABLE job_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    type        TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    message     TEXT NOT NULL DEFAULT '',
    data        TEXT
);
CREATE INDEX job_events_job ON job_events(job_id, id);

CREATE TABLE engines (
    id               TEXT PRIMARY KEY,
    key_id           TEXT REFERENCES api_keys(id),
    hostname         TEXT NOT NULL DEFAULT '',
    version          TEXT NOT NULL DEFAULT '',
    slots            INTEGER NOT NULL DEFAULT 1,
    state            TEXT NOT NULL DEFAULT 'online',
    capabilities     TEXT,
    tags             TEXT,
    benchmark_score  REAL,
    free_disk_bytes  INTEGER,
    load             REAL,
    cpu_temp         REAL,
    memory           TEXT,
    registered_at    INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    drain            INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE attempts (
    id                TEXT PRIMARY KEY,
    job_id            TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt_no        INTEGER NOT NULL,
    engine_id         TEXT REFERENCES engines(id),
    fencing_token     INTEGER NOT NULL,
    state             TEXT NOT NULL,
    transfer_mode     TEXT NOT NULL DEFAULT 'file',
    started_at        INTEGER NOT NULL,
    lease_expires_at  INTEGER,
    finished_at       INTEGER,
    exit_code         INTEGER,
    error_class       TEXT,
    message           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX attempts_job ON attempts(job_id, attempt_no);
CREATE INDEX attempts_engine_state ON attempts(engine_id, state);
CREATE INDEX attempts_lease ON attempts(state, lease_expires_at);
)sql";

// 2: an admin can ask an engine to re-run its benchmark; the next heartbeat answer carries it.
constexpr const char* k_migration_2 = R"sql(
ALTER TABLE engines ADD COLUMN rerun_benchmark INTEGER NOT NULL DEFAULT 0;
)sql";

// 3: /readyz proves the database takes writes by updating this one row.
constexpr const char* k_migration_3 = R"sql(
CREATE TABLE write_check (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at  INTEGER NOT NULL
);
)sql";

// 4: counts and lists that stay fast on a big database. Per-owner, per-state job counters kept by
// triggers (a list's total and the overview read them instead of counting rows), and indexes for
// the dashboard's filters and sorts and for the last hour's throughput.
constexpr const char* k_migration_4 = R"sql(
CREATE TABLE job_counts (
    owner_key_id  TEXT NOT NULL,
    state         TEXT NOT NULL,
    n             INTEGER NOT NULL,
    PRIMARY KEY (owner_key_id, state)
) WITHOUT ROWID;
INSERT INTO job_counts (owner_key_id, state, n)
    SELECT owner_key_id, state, COUNT(*) FROM jobs GROUP BY owner_key_id, state;
CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT OR IGNORE INTO job_counts (owner_key_id, state, n) VALUES (NEW.owner_key_id, NEW.state, 0);
    UPDATE job_counts SET n = n + 1 WHERE owner_key_id = NEW.owner_key_id AND state = NEW.state;
END;
CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE owner_key_id = OLD.owner_key_id AND state = OLD.state;
END;
CREATE TRIGGER job_counts_update AFTER UPDATE OF state, owner_key_id ON jobs
    WHEN OLD.state IS NOT NEW.state OR OLD.owner_key_id IS NOT NEW.owner_key_id BEGIN
    UPDATE job_counts SET n = n - 1 WHERE owner_key_id = OLD.owner_key_id AND state = OLD.state;
    INSERT OR IGNORE INTO job_counts (owner_key_id, state, n) VALUES (NEW.owner_key_id, NEW.state, 0);
    UPDATE job_counts SET n = n + 1 WHERE owner_key_id = NEW.owner_key_id AND state = NEW.state;
END;
CREATE INDEX jobs_state_id ON jobs(state, id);
CREATE INDEX jobs_owner_state ON jobs(owner_key_id, state, id);
CREATE INDEX jobs_output_name ON jobs(output_filename, id);
CREATE INDEX jobs_owner_output_name ON jobs(owner_key_id, output_filename, id);
CREATE INDEX jobs_finished ON jobs(finished_at, state, owner_key_id) WHERE finished_at IS NOT NULL;
)sql";

// 5: split mode. A split job's tasks are jobs with a parent (never listed, never counted in
// job_counts: the triggers skip them), the parent keeps its split state and details.
constexpr const char* k_migration_5 = R"sql(
ALTER TABLE jobs ADD COLUMN parent_id TEXT REFERENCES jobs(id);
ALTER TABLE jobs ADD COLUMN task TEXT;
ALTER TABLE jobs ADD COLUMN split TEXT;
ALTER TABLE jobs ADD COLUMN split_state TEXT;
CREATE INDEX jobs_parent ON jobs(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_split_state ON jobs(split_state) WHERE split_state IS NOT NULL;
DROP TRIGGER job_counts_insert;
DROP TRIGGER job_counts_delete;
DROP TRIGGER job_counts_update;
CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs WHEN NEW.parent_id IS NULL BEGIN
    INSERT OR IGNORE INTO job_counts (owner_key_id, state, n) VALUES (NEW.owner_key_id, NEW.state, 0);
    UPDATE job_counts SET n = n + 1 WHERE owner_key_id = NEW.owner_key_id AND state = NEW.state;
END;
CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs WHEN OLD.parent_id IS NULL BEGIN
    UPDATE job_counts SET n = n - 1 WHERE owner_key_id = OLD.owner_key_id AND state = OLD.state;
END;
CREATE TRIGGER job_counts_update AFTER UPDATE OF state, owner_key_id ON jobs
    WHEN NEW.parent_id IS NULL AND (OLD.state IS NOT NEW.state OR OLD.owner_key_id IS NOT NEW.owner_key_id)
    BEGIN
    UPDATE job_counts SET n = n - 1 WHERE owner_key_id = OLD.owner_key_id AND state = OLD.state;
    INSERT OR IGNORE INTO job_counts (owner_key_id, state, n) VALUES (NEW.owner_key_id, NEW.state, 0);
    UPDATE job_counts SET n = n + 1 WHERE owner_key_id = NEW.owner_key_id AND state = NEW.state;
END;
)sql";

}  // namespace

const std::vector<Migration>& store_migrations() {
    static const std::vector<Migration> migrations = {
        {1, k_migration_1}, {2, k_migration_2}, {3, k_migration_3}, {4, k_migration_4}, {5, k_migration_5},
    };
    return migrations;
}

}  // namespace distconv::dispatch::detail
