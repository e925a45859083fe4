-- Indexes that let the review web app's pages answer from an index alone (PostgreSQL); measured
-- with benches/review.rs on 100 000 images.

-- The review pages read one facet of one run's predictions in the order they show them (most
-- confident first, ties by image id), each through one index that holds every column they
-- need, so that neither the table nor a per-row look-up is touched: by label at training time,
-- then prediction (false negatives, confusion-matrix cells), or by prediction (false
-- positives). They replace predictions_confusion and predictions_false_positive (0003), whose
-- columns they start with.
DROP INDEX predictions_confusion;
DROP INDEX predictions_false_positive;
CREATE INDEX predictions_by_label
    ON predictions (run_id, facet_id, label_id, predicted_label_id, confidence DESC, image_id, split);
CREATE INDEX predictions_by_prediction
    ON predictions (run_id, facet_id, predicted_label_id, confidence DESC, image_id, label_id, split);

-- The review app reads every current label of one facet at once, grouped by label and version;
-- with both and the image in the index, that is one ordered scan of the index alone. Replaces
-- labels_facet_label (facet_id, label_id), whose columns it starts with.
DROP INDEX labels_facet_label;
CREATE INDEX labels_facet_label ON labels (facet_id, label_id, version, image_id);
