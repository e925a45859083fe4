-- Dress similarity (PostgreSQL): which designs vary which, the similarity triplets that measure
-- a search, and the image embeddings it searches.

-- A design may vary another one in one facet (a synthetic variant: the same dress with another
-- neckline, say). Both NULL for a design that varies none.
ALTER TABLE designs ADD COLUMN variant_of TEXT REFERENCES designs (id);
ALTER TABLE designs ADD COLUMN varied_facet TEXT;

-- "`reference` looks more like `similar` than like `dissimilar`": three different images,
-- each triplet stored once. `source` is 'import' (a triplets CSV) or 'review' (the web app's
-- editor); `actor` is who added it. Ids are identity columns so that an id is never reused.
CREATE TABLE triplets (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference_id  TEXT    NOT NULL REFERENCES images (id),
    similar_id    TEXT    NOT NULL REFERENCES images (id),
    dissimilar_id TEXT    NOT NULL REFERENCES images (id),
    source        TEXT    NOT NULL CHECK (source IN ('import', 'review')),
    actor         TEXT,
    created_at    BIGINT  NOT NULL,
    UNIQUE (reference_id, similar_id, dissimilar_id),
    CHECK (reference_id <> similar_id AND reference_id <> dissimilar_id
           AND similar_id <> dissimilar_id)
);

-- One vector per (model, image). `model` is an opaque key its writer chooses (a model
-- reference and a content hash, say); `vector` holds `dim` little-endian f32 values.
CREATE TABLE embeddings (
    model      TEXT    NOT NULL,
    image_id   TEXT    NOT NULL REFERENCES images (id),
    dim        BIGINT  NOT NULL CHECK (dim > 0),
    vector     BYTEA   NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (model, image_id),
    CHECK (length(vector) = 4 * dim)
);
