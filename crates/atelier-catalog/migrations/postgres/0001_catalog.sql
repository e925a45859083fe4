-- Catalogue schema (PostgreSQL). Timestamps are UTC unix milliseconds (BIGINT).
-- Integer ids (facets, facet_labels, label_events, boxes) are identity columns so that an id is
-- never reused: later tables (predictions, embeddings) will reference them.

CREATE TABLE designs (
    id         TEXT    PRIMARY KEY NOT NULL,
    created_at BIGINT  NOT NULL
);

CREATE TABLE images (
    id                TEXT    PRIMARY KEY NOT NULL,          -- lowercase hex sha256 of the bytes
    uri               TEXT    NOT NULL,                      -- absolute path of the file
    width             BIGINT,                                -- NULL until checked
    height            BIGINT,
    byte_size         BIGINT,                                -- NULL when the file could not be read
    split             TEXT    NOT NULL CHECK (split IN ('train', 'test')),
    status            TEXT    NOT NULL CHECK (status IN ('active', 'quarantined', 'removed')),
    quarantine_reason TEXT,
    source            TEXT    NOT NULL,                      -- canonical path of the import source
    design            TEXT    REFERENCES designs (id),
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    checked_at        BIGINT
);
CREATE INDEX images_source_id ON images (source, id);
CREATE INDEX images_status_split ON images (status, split);
CREATE INDEX images_design ON images (design);

CREATE TABLE facets (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at BIGINT  NOT NULL
);

CREATE TABLE facet_labels (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    facet_id BIGINT  NOT NULL REFERENCES facets (id),
    label    TEXT    NOT NULL,
    position BIGINT  NOT NULL,                               -- display/training order, 0-based
    UNIQUE (facet_id, label)
);

-- One row per (image, facet) once a label was ever set; label_id NULL means "cleared".
-- The row is kept when cleared so that `version` keeps counting (optimistic concurrency).
CREATE TABLE labels (
    image_id   TEXT    NOT NULL REFERENCES images (id),
    facet_id   BIGINT  NOT NULL REFERENCES facets (id),
    label_id   BIGINT  REFERENCES facet_labels (id),
    source     TEXT    NOT NULL,
    version    BIGINT  NOT NULL CHECK (version >= 1),
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (image_id, facet_id)
);
CREATE INDEX labels_facet_label ON labels (facet_id, label_id);

CREATE TABLE label_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id     TEXT    NOT NULL REFERENCES images (id),
    facet_id     BIGINT  NOT NULL REFERENCES facets (id),
    old_label_id BIGINT  REFERENCES facet_labels (id),
    new_label_id BIGINT  REFERENCES facet_labels (id),
    actor        TEXT    NOT NULL,
    source       TEXT    NOT NULL,                           -- 'import', 'review', ...
    reason       TEXT,
    run_id       BIGINT,                                    -- training run, once runs exist
    at           BIGINT  NOT NULL
);
CREATE INDEX label_events_image ON label_events (image_id, id);

CREATE TABLE boxes (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id TEXT    NOT NULL REFERENCES images (id),
    x0       DOUBLE PRECISION NOT NULL,
    y0       DOUBLE PRECISION NOT NULL,
    x1       DOUBLE PRECISION NOT NULL,
    y1       DOUBLE PRECISION NOT NULL,
    kind     TEXT    NOT NULL,
    source   TEXT    NOT NULL
);
CREATE INDEX boxes_image ON boxes (image_id);
