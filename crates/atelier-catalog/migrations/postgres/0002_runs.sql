-- Training runs, their per-facet results and per-image predictions (PostgreSQL).
-- Run ids are identity columns so that an id is never reused: models, reports and label events
-- refer to runs by id. JSON columns are TEXT holding one JSON document each.

CREATE TABLE runs (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT    NOT NULL,                            -- 'facets'
    status      TEXT    NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    finished_at BIGINT,                                      -- NULL while running
    config      TEXT    NOT NULL,                            -- JSON
    progress    TEXT,                                        -- JSON, rewritten during training
    summary     TEXT,                                        -- JSON
    model_ref   TEXT,
    error       TEXT,
    parent_run  BIGINT  REFERENCES runs (id)
);
CREATE INDEX runs_parent ON runs (parent_run);

-- One row per facet a run trained; `position` is the facet's place in the run (its head order).
CREATE TABLE run_facets (
    run_id        BIGINT  NOT NULL REFERENCES runs (id),
    facet_id      BIGINT  NOT NULL REFERENCES facets (id),
    position      BIGINT  NOT NULL,
    labels        TEXT    NOT NULL,                          -- JSON array: label order of the run
    class_weights TEXT    NOT NULL,                          -- JSON array of numbers, same order
    train_metrics TEXT,                                      -- JSON
    test_metrics  TEXT,                                      -- JSON
    PRIMARY KEY (run_id, facet_id)
);

-- label_id is the image's label when the run was trained (NULL: it had none); scores are in the
-- order of run_facets.labels, which later label reorderings do not touch.
CREATE TABLE predictions (
    run_id             BIGINT  NOT NULL,
    image_id           TEXT    NOT NULL REFERENCES images (id),
    facet_id           BIGINT  NOT NULL,
    split              TEXT    NOT NULL CHECK (split IN ('train', 'test')),
    label_id           BIGINT  REFERENCES facet_labels (id),
    predicted_label_id BIGINT  NOT NULL REFERENCES facet_labels (id),
    confidence         DOUBLE PRECISION NOT NULL,         -- probability of the predicted label
    scores             TEXT    NOT NULL,                     -- JSON array of probabilities
    out_of_fold        BIGINT  NOT NULL DEFAULT 0 CHECK (out_of_fold IN (0, 1)),
    PRIMARY KEY (run_id, facet_id, image_id),
    FOREIGN KEY (run_id, facet_id) REFERENCES run_facets (run_id, facet_id)
);
-- "Images of class L that run R predicted as something else for facet F, most confident first".
CREATE INDEX predictions_confusion
    ON predictions (run_id, facet_id, label_id, predicted_label_id, confidence);
