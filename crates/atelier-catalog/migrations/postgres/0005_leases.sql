-- Run leases and the catalogue's own settings (PostgreSQL).
--
-- A run is held by a lease: the process that trains it (or queued it) writes its owner id and
-- renews `lease_expires_at` while it lives. A `running` run whose lease has expired lost its
-- process; it becomes `interrupted`, from where it can be resumed or marked failed.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'interrupted'));
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_expires_at BIGINT;

-- Settings the catalogue keeps for itself: its id (which names its checkpoint folder), and the
-- web app's secrets. Written once by whoever needs a value first.
CREATE TABLE catalog_settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
