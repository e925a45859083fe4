-- no-transaction
-- Run leases and the catalogue's own settings (SQLite).
--
-- A run is held by a lease: the process that trains it (or queued it) writes its owner id and
-- renews `lease_expires_at` while it lives. A `running` run whose lease has expired lost its
-- process; it becomes `interrupted`, from where it can be resumed or marked failed. SQLite
-- cannot change a CHECK constraint in place, so `runs` is rebuilt (the documented way: foreign
-- keys off, copy, drop, rename, check), keeping every id and the AUTOINCREMENT counter.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE runs_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    status           TEXT    NOT NULL
                     CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    config           TEXT    NOT NULL,
    progress         TEXT,
    summary          TEXT,
    model_ref        TEXT,
    error            TEXT,
    parent_run       INTEGER REFERENCES runs (id),
    lease_owner      TEXT,                                   -- NULL: nobody holds the run
    lease_expires_at INTEGER                                 -- unix ms; renewed by the holder
);
INSERT INTO runs_new (id, kind, status, created_at, updated_at, finished_at, config, progress,
                      summary, model_ref, error, parent_run)
    SELECT id, kind, status, created_at, updated_at, finished_at, config, progress, summary,
           model_ref, error, parent_run
    FROM runs;
-- The copy started runs_new's counter at the highest id left; carry on from the old counter.
DELETE FROM sqlite_sequence WHERE name = 'runs_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'runs_new', seq FROM sqlite_sequence WHERE name = 'runs';
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_parent ON runs (parent_run);

-- Settings the catalogue keeps for itself: its id (which names its checkpoint folder), and the
-- web app's secrets. Written once by whoever needs a value first.
CREATE TABLE catalog_settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
COMMIT;
PRAGMA foreign_keys = ON;
