-- The review web app (SQLite): users and their login sessions, the known clean labels of
-- synthetic catalogues, and an index for "predicted L but labelled otherwise" pages.

-- `password_hash` is a PHC string (argon2) written by the web app; the catalogue never sees a
-- password.
CREATE TABLE users (
    name          TEXT    PRIMARY KEY NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Only a hash of the session token is stored, so a leaked database cannot log anyone in.
CREATE TABLE sessions (
    token_hash TEXT    PRIMARY KEY NOT NULL,
    user_name  TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_token TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);

-- The clean label of each (image, facet) of a synthetic catalogue (`truth.csv` of
-- `atelier synth`), to measure how well mistagged images are found.
CREATE TABLE truth_labels (
    image_id TEXT    NOT NULL REFERENCES images (id),
    facet_id INTEGER NOT NULL REFERENCES facets (id),
    label_id INTEGER NOT NULL REFERENCES facet_labels (id),
    PRIMARY KEY (image_id, facet_id)
);
CREATE INDEX truth_labels_facet ON truth_labels (facet_id);

-- "Images that run R predicted as L for facet F but that are labelled otherwise, most
-- confident first" (false positives); predictions_confusion serves the other review pages.
CREATE INDEX predictions_false_positive
    ON predictions (run_id, facet_id, predicted_label_id, confidence);
