-- Reviewers' dress boxes and near-duplicate verdicts (PostgreSQL).

-- A reviewer's box is a `boxes` row with source 'review', at most one per image, and it wins
-- over the imported one; `version` starts at 1 and grows by
-- one on every change (the optimistic check of an edit), `actor` and `updated_at` say who
-- changed it last and when. Imported rows keep version 1.
ALTER TABLE boxes ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE boxes ADD COLUMN actor TEXT;
ALTER TABLE boxes ADD COLUMN updated_at BIGINT;
CREATE UNIQUE INDEX boxes_review_dress ON boxes (image_id)
    WHERE kind = 'dress' AND source = 'review';

-- One row per box change: the box before (NULL when the image had none) and after.
CREATE TABLE box_events (
    id      BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id TEXT   NOT NULL REFERENCES images (id),
    old_x0  DOUBLE PRECISION,
    old_y0  DOUBLE PRECISION,
    old_x1  DOUBLE PRECISION,
    old_y1  DOUBLE PRECISION,
    new_x0  DOUBLE PRECISION    NOT NULL,
    new_y0  DOUBLE PRECISION    NOT NULL,
    new_x1  DOUBLE PRECISION    NOT NULL,
    new_y1  DOUBLE PRECISION    NOT NULL,
    actor   TEXT    NOT NULL,
    at      BIGINT  NOT NULL
);
CREATE INDEX box_events_image ON box_events (image_id, id);

-- Where a similarity run's model located the dress in each photo, in the photo's pixels, and
-- how sure it was: `foreground` is the foreground classifier's mean probability inside the box
-- (NULL for a model without the classifier), `agreement` the IoU of the regressor's box with
-- the final (combined) one (NULL likewise).
CREATE TABLE located_boxes (
    run_id     BIGINT  NOT NULL REFERENCES runs (id),
    image_id   TEXT    NOT NULL REFERENCES images (id),
    x0         DOUBLE PRECISION    NOT NULL,
    y0         DOUBLE PRECISION    NOT NULL,
    x1         DOUBLE PRECISION    NOT NULL,
    y1         DOUBLE PRECISION    NOT NULL,
    foreground DOUBLE PRECISION,
    agreement  DOUBLE PRECISION,
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
    decided_at BIGINT  NOT NULL,
    PRIMARY KEY (image_a, image_b),
    CHECK (image_a < image_b)
);
