-- Jobs (SQLite): work that any process pointed at this catalogue may take (`atelier worker`,
-- or the worker inside `atelier serve`). A job is queued, then taken by one worker under a
-- lease that the worker renews while it works; it ends succeeded, failed or cancelled. A
-- running job whose lease has expired (its worker died) is taken again by another worker,
-- which resumes it: a training job goes on from its run's last checkpoint.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,                -- 'train', 'index', 'check', 'import'
    params           TEXT    NOT NULL,                -- JSON: what the job works on
    run_id           INTEGER REFERENCES runs (id),    -- the run a training job trains
    status           TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    requested_by     TEXT    NOT NULL,                -- a user name, or 'cli'
    device           TEXT,                            -- the device it needs ('cpu', 'vulkan'); NULL: any
    worker           TEXT,                            -- owner id of the worker holding it
    lease_expires_at INTEGER,                         -- UTC unix ms
    attempts         INTEGER NOT NULL DEFAULT 0,      -- times a worker took it
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    progress         TEXT,                            -- JSON, rewritten by the worker
    result           TEXT,                            -- JSON, once succeeded
    error            TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX jobs_queue ON jobs (status, id);
CREATE INDEX jobs_run ON jobs (run_id);
