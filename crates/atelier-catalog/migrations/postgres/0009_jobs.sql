-- Jobs (PostgreSQL): work that any process pointed at this catalogue may take (`atelier
-- worker`, or the worker inside `atelier serve`). A job is queued, then taken by one worker
-- (`FOR UPDATE SKIP LOCKED`) under a lease that the worker renews while it works; it ends
-- succeeded, failed or cancelled. A running job whose lease has expired (its worker died) is
-- taken again by another worker, which resumes it: a training job goes on from its run's last
-- checkpoint. Queuing a job sends NOTIFY atelier_jobs, which wakes waiting workers.
CREATE TABLE jobs (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             TEXT    NOT NULL,                -- 'train', 'index', 'check', 'import'
    params           TEXT    NOT NULL,                -- JSON: what the job works on
    run_id           BIGINT  REFERENCES runs (id),    -- the run a training job trains
    status           TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    requested_by     TEXT    NOT NULL,                -- a user name, or 'cli'
    device           TEXT,                            -- the device it needs ('cpu', 'vulkan'); NULL: any
    worker           TEXT,                            -- owner id of the worker holding it
    lease_expires_at BIGINT,                          -- UTC unix ms
    attempts         BIGINT  NOT NULL DEFAULT 0,      -- times a worker took it
    cancel_requested BIGINT  NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    progress         TEXT,                            -- JSON, rewritten by the worker
    result           TEXT,                            -- JSON, once succeeded
    error            TEXT,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX jobs_queue ON jobs (status, id);
CREATE INDEX jobs_run ON jobs (run_id);
