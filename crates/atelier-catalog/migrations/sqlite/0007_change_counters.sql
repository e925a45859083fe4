-- Counters that writers bump in the same transaction as their change, so that a process
-- keeping copies of what searches read (labels of active images, a model's vectors) can tell
-- with one cheap read whether its copy is still current. `name` is 'labels' (labels or image
-- status changed) or 'embeddings:' + a model key.
CREATE TABLE change_counters (
    name  TEXT   PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
