-- Catalogue schema (SQLite). Timestamps are UTC unix milliseconds (INTEGER).
-- Integer ids (facets, facet_labels, label_events, boxes) use AUTOINCREMENT so that an id is
-- never reused: later tables (predictions, embeddings) will reference them.

CREATE TABLE designs (
    id         TEXT    PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE images (
    id                TEXT    PRIMARY KEY NOT NULL,          -- lowercase hex sha256 of the bytes
    uri               TEXT    NOT NULL,                      -- absolute path of the file
    width             INTEGER,                               -- NULL until checked
    height            INTEGER,
    byte_size         INTEGER,                               -- NULL when the file could not be read
    split             TEXT    NOT NULL CHECK (split IN ('train', 'test')),
    status            TEXT    NOT NULL CHECK (status IN ('active', 'quarantined', 'removed')),
    quarantine_reason TEXT,
    source            TEXT    NOT NULL,                      -- canonical path of the import source
    design            TEXT    REFERENCES designs (id),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    checked_at        INTEGER
);
CREATE INDEX images_source_id ON images (source, id);
CREATE INDEX images_status_split ON images (status, split);
CREATE INDEX images_design ON images (design);

CREATE TABLE facets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE facet_labels (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    facet_id INTEGER NOT NULL REFERENCES facets (id),
    label    TEXT    NOT NULL,
    position INTEGER NOT NULL,                               -- display/training order, 0-based
    UNIQUE (facet_id, label)
);

-- One row per (image, facet) once a label was ever set; label_id NULL means "cleared".
-- The row is kept when cleared so that `version` keeps counting (optimistic concurrency).
CREATE TABLE labels (
    image_id   TEXT    NOT NULL REFERENCES images (id),
    facet_id   INTEGER NOT NULL REFERENCES facets (id),
    label_id   INTEGER REFERENCES facet_labels (id),
    source     TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (image_id, facet_id)
);
CREATE INDEX labels_facet_label ON labels (facet_id, label_id);

CREATE TABLE label_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id     TEXT    NOT NULL REFERENCES images (id),
    facet_id     INTEGER NOT NULL REFERENCES facets (id),
    old_label_id INTEGER REFERENCES facet_labels (id),
    new_label_id INTEGER REFERENCES facet_labels (id),
    actor        TEXT    NOT NULL,
    source       TEXT    NOT NULL,                           -- 'import', 'review', ...
    reason       TEXT,
    run_id       INTEGER,                                    -- training run, once runs exist
    at           INTEGER NOT NULL
);
CREATE INDEX label_events_image ON label_events (image_id, id);

CREATE TABLE boxes (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id TEXT    NOT NULL REFERENCES images (id),
    x0       REAL    NOT NULL,
    y0       REAL    NOT NULL,
    x1       REAL    NOT NULL,
    y1       REAL    NOT NULL,
    kind     TEXT    NOT NULL,
    source   TEXT    NOT NULL
);
CREATE INDEX boxes_image ON boxes (image_id);
