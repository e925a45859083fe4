-- Reviewers' dress boxes and near-duplicate verdicts (SQLite).

-- A reviewer's box is a `boxes` row with source 'review', at most one per image, and it wins
-- over the imported one; `version` starts at 1 and grows by
-- one on every change (the optimistic check of an edit), `actor` and `updated_at` say who
-- changed it last and when. Imported rows keep version 1.
ALTER TABLE boxes ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE boxes ADD COLUMN actor TEXT;
ALTER TABLE boxes ADD COLUMN updated_at INTEGER;
CREATE UNIQUE INDEX boxes_review_dress ON boxes (image_id)
    WHERE kind = 'dress' AND source = 'review';

-- One row per box change: the box before (NULL when the image had none) and after.
CREATE TABLE box_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id TEXT   NOT NULL REFERENCES images (id),
    old_x0  REAL,
    old_y0  REAL,
    old_x1  REAL,
    old_y1  REAL,
    new_x0  REAL    NOT NULL,
    new_y0  REAL    NOT NULL,
    new_x1  REAL    NOT NULL,
    new_y1  REAL    NOT NULL,
    actor   TEXT    NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX box_events_image ON box_events (image_id, id);

-- Where a similarity run's model located the dress in each photo, in the photo's pixels, and
-- how sure it was: `foreground` is the foreground classifier's mean probability inside the box
-- (NULL for a model without the classifier), `agreement` the IoU of the regressor's box with
-- the final (combined) one (NULL likewise).
CREATE TABLE located_boxes (
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    image_id   TEXT    NOT NULL REFERENCES images (id),
    x0         REAL    NOT NULL,
    y0         REAL    NOT NULL,
    x1         REAL    NOT NULL,
    y1         REAL    NOT NULL,
    foreground REAL,
    agreement  REAL,
    PRIMARY KEY (run_id, image_id)
);

-- Reviewers' verdicts on near-duplicate pairs: 'same' (the same product: the next similarity
-- run treats the two photos as one design) or 'different'. One row per pair, the smaller id
-- first; a new verdict replaces the old one.
CREATE TABLE duplicate_verdicts (
    image_a    TEXT    NOT NULL REFERENCES images (id),
    image_b    TEXT    NOT NULL REFERENCES images (id),
    verdict    TEXT    NOT NULL CHECK (verdict IN ('same', 'different')),
    actor      TEXT    NOT NULL,
    decided_at INTEGER NOT NULL,
    PRIMARY KEY (image_a, image_b),
    CHECK (image_a < image_b)
);
