-- Crowd retagging (SQLite): batches of labelling tasks exported for crowd workers (one image
-- and one facet each), and the workers' votes on them.
CREATE TABLE crowd_batches (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         INTEGER REFERENCES runs (id),     -- the run whose predictions chose the tasks
    source         TEXT    NOT NULL,                 -- mistags, false-negatives, false-positives, all
    votes_per_task INTEGER NOT NULL CHECK (votes_per_task >= 1),
    created_by     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
);

-- `token` is the task id workers see: random, so that task ids cannot be enumerated.
-- `label_version` is the image's label version for the facet at export (0: no label row).
CREATE TABLE crowd_tasks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id      INTEGER NOT NULL REFERENCES crowd_batches (id),
    token         TEXT    NOT NULL UNIQUE,
    image_id      TEXT    NOT NULL REFERENCES images (id),
    facet_id      INTEGER NOT NULL REFERENCES facets (id),
    label_version INTEGER NOT NULL,
    gold_label_id INTEGER REFERENCES facet_labels (id)  -- a trusted answer: a gold question
);
CREATE INDEX crowd_tasks_batch ON crowd_tasks (batch_id);

-- One vote per worker and task: importing the same answers again adds nothing.
CREATE TABLE crowd_votes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id    INTEGER NOT NULL REFERENCES crowd_tasks (id),
    worker     TEXT    NOT NULL,                    -- a crowd worker id, or `review:NAME`
    label_id   INTEGER NOT NULL REFERENCES facet_labels (id),
    assignment TEXT,                                -- the crowd platform's assignment id
    at         INTEGER NOT NULL,
    UNIQUE (task_id, worker)
);
