//! A similarity run from the catalogue, and searching with it: filters read the current labels
//! (a retag changes the next answer), photos that stop being active never come back, `--swap`
//! answers only with the wanted label, and `index` keeps the stored embeddings in step.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use atelier_app::ann::IndexFiles;
use atelier_app::similar::{self, LabelFilter, QueryPhoto, SearchEngine, SimilarQuery};
use atelier_app::similarity::{
    bias_key, create_similarity_run, embedding_key, execute_similarity_run,
    stored_similarity_config,
};
use atelier_catalog::{CheckOutcome, CheckedImage, LabelEdit, RunStatus};
use atelier_search::HnswParams;
use atelier_train::progress::Silent;
use atelier_train::similarity::SimilarityConfig;
use atelier_train::similarity_run::SimilarityRunConfig;
use atelier_train::{BackboneChoice, DeviceChoice};
use atelier_vision::synth::SynthOptions;

fn tiny_config() -> SimilarityRunConfig {
    SimilarityRunConfig {
        backbone: BackboneChoice::Tiny,
        weights: Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../atelier-models/fixtures/tiny_cnn.safetensors"),
        ),
        image_size: 48,
        feature_stage: None,
        batch_size: 16,
        similarity: SimilarityConfig {
            embedding_dim: 8,
            hidden: 16,
            epochs: 2,
            designs_per_batch: 4,
            eval_fraction: 0.3,
            ..SimilarityConfig::default()
        },
        ..SimilarityRunConfig::default()
    }
}

fn query(id: &str, k: usize) -> SimilarQuery {
    SimilarQuery {
        run: None,
        photo: QueryPhoto::Image(id.to_string()),
        k,
        filters: Vec::new(),
        swap: None,
        off_the_shelf: false,
        explain: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_similarity_run_answers_filtered_queries_that_follow_the_catalogue() {
    let setup = common::setup(
        SynthOptions {
            out_dir: PathBuf::new(),
            count: 60,
            seed: 4,
            size: 64,
            label_noise: 0.0,
        },
        false,
    )
    .await;
    let catalog = &setup.catalog;

    // Bad settings record nothing.
    let mut bad = tiny_config();
    bad.similarity.margin = 0.0;
    assert!(
        create_similarity_run(catalog, &bad, &setup.paths, None)
            .await
            .is_err()
    );
    assert!(catalog.runs().await.unwrap().is_empty());

    let run = create_similarity_run(catalog, &tiny_config(), &setup.paths, None)
        .await
        .unwrap();
    let finished = execute_similarity_run(catalog, run, &setup.paths, Box::new(Silent))
        .await
        .unwrap();
    let record = catalog.run(run).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(stored_similarity_config(&record).unwrap(), tiny_config());
    assert!(finished.model_dir.join("model.json").is_file());
    let stored = catalog.embeddings(&embedding_key(run)).await.unwrap();
    assert_eq!(stored.len(), 60);
    assert_eq!(finished.summary.photos, 60);
    // Where the run's locator put every dress, least sure first: a page of the queue.
    let queue = atelier_app::boxes::least_sure(catalog, None, 1, 100)
        .await
        .unwrap();
    assert_eq!((queue.run, queue.entries.len()), (run, 60));
    let sureness = |b: &atelier_catalog::UnsureBox| {
        let located = &b.located;
        located.foreground.unwrap().min(located.agreement.unwrap())
    };
    assert!(
        queue
            .entries
            .windows(2)
            .all(|w| sureness(&w[0]) <= sureness(&w[1]))
    );
    assert!(queue.entries.iter().all(|b| {
        let [x0, y0, x1, y1] = b.located.coords;
        let sure = [b.located.foreground.unwrap(), b.located.agreement.unwrap()];
        x1 > x0 && y1 > y0 && sure.iter().all(|p| (0.0..=1.0).contains(p))
    }));

    // A catalogue photo's neighbours: k of them, never itself, best first.
    let first = stored[0].0.clone();
    let answer = similar::similar(catalog, &query(&first, 5), None)
        .await
        .unwrap();
    assert_eq!(answer.results.len(), 5);
    assert!(answer.results.iter().all(|r| r.image_id != first));
    assert!(answer.results.windows(2).all(|w| w[0].score >= w[1].score));
    // Every photo has a hubness bias, centred on the catalogue's mean; a result's score is its
    // cosine with the query plus its bias.
    let biases: HashMap<String, f32> = catalog
        .embeddings(&bias_key(&embedding_key(run)))
        .await
        .unwrap()
        .into_iter()
        .map(|(id, bias)| (id, bias[0]))
        .collect();
    assert_eq!(biases.len(), 60);
    assert!(biases.values().sum::<f32>().abs() < 1e-3, "{biases:?}");
    assert!(biases.values().any(|b| b.abs() > 1e-4), "{biases:?}");
    let vectors: HashMap<String, Vec<f32>> = stored.iter().cloned().collect();
    let cosine = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (norm(a) * norm(b))
    };
    for result in &answer.results {
        let want = cosine(&vectors[&first], &vectors[&result.image_id]) + biases[&result.image_id];
        assert!((result.score - want).abs() < 1e-4, "{result:?} {want}");
    }

    // A filter on the current labels, and a retag that changes the next answer.
    let labels = catalog.active_labels().await.unwrap();
    let wanted = labels[&first]["neckline"].clone();
    let mut filtered = query(&first, 60);
    filtered.filters.push(LabelFilter {
        facet: "neckline".into(),
        label: wanted.clone(),
        keep: true,
    });
    let answer = similar::similar(catalog, &filtered, None).await.unwrap();
    // A searcher that keeps its copies of vectors and labels between queries (as the web app
    // does) must see every later change too.
    let kept = similar::Searcher::new(None);
    assert_eq!(kept.similar(catalog, &filtered).await.unwrap(), answer);
    assert!(
        answer
            .results
            .iter()
            .all(|r| r.labels["neckline"] == wanted)
    );
    let expected = labels
        .iter()
        .filter(|(id, l)| **id != first && l.get("neckline") == Some(&wanted))
        .count();
    assert_eq!(answer.results.len(), expected);
    let other = labels
        .iter()
        .find(|(_, l)| l.get("neckline") != Some(&wanted))
        .map(|(id, _)| id.clone())
        .unwrap();
    let version = catalog
        .image(&other)
        .await
        .unwrap()
        .unwrap()
        .labels
        .iter()
        .find(|l| l.facet == "neckline")
        .unwrap()
        .version;
    catalog
        .set_labels(&[LabelEdit {
            image: other.clone(),
            facet: "neckline".into(),
            label: Some(wanted.clone()),
            expected_version: version,
            actor: "test".into(),
            reason: None,
            run_id: None,
        }])
        .await
        .unwrap();
    let retagged = similar::similar(catalog, &filtered, None).await.unwrap();
    assert_eq!(retagged.results.len(), expected + 1);
    assert_eq!(kept.similar(catalog, &filtered).await.unwrap(), retagged);
    assert!(retagged.results.iter().any(|r| r.image_id == other));

    // "The same dress, another neckline": only photos with the wanted label.
    let mut swap = query(&first, 60);
    swap.swap = Some(("neckline".into(), wanted.clone()));
    let swapped = similar::similar(catalog, &swap, None).await.unwrap();
    assert!(
        swapped
            .results
            .iter()
            .all(|r| r.labels["neckline"] == wanted)
    );

    // The approximate index (here from one vector on, and walked whatever the filter leaves)
    // answers like the scan. Built on one thread its graph is the same on every run; a walk
    // that misses a photo no edge leads to is replaced by the scan (the unit tests of the
    // search cache check that), so the filtered answer is the scan's either way.
    let index_dir = tempfile::tempdir().unwrap();
    let files = IndexFiles {
        ann_threshold: 1,
        exact_below: 0,
        hnsw: HnswParams {
            build_threads: 1,
            ..HnswParams::default()
        },
        ..IndexFiles::new(index_dir.path().to_path_buf())
    };
    let ids = |answer: &similar::SimilarAnswer| -> Vec<String> {
        answer.results.iter().map(|r| r.image_id.clone()).collect()
    };
    let nearest = similar::similar(catalog, &query(&first, 5), Some(&files))
        .await
        .unwrap();
    assert_eq!(nearest.engine, SearchEngine::Hnsw);
    assert_eq!(nearest.results.len(), 5);
    let approximate = similar::similar(catalog, &filtered, Some(&files))
        .await
        .unwrap();
    assert_eq!(approximate.candidates, retagged.candidates);
    assert_eq!(ids(&approximate), ids(&retagged));
    // With the default, a filter that leaves few candidates scores them exactly from the
    // index's vectors instead of walking the graph.
    let narrow = IndexFiles {
        ann_threshold: 1,
        ..IndexFiles::new(index_dir.path().to_path_buf())
    };
    assert!(retagged.candidates <= narrow.exact_below);
    let exact = similar::similar(catalog, &filtered, Some(&narrow))
        .await
        .unwrap();
    assert_eq!(exact.engine, SearchEngine::Scan);
    assert_eq!(exact.candidates, retagged.candidates);
    assert_eq!(ids(&exact), ids(&retagged));

    // A quarantined photo never comes back, and `index` drops its embeddings.
    catalog
        .record_checks(&[CheckOutcome {
            id: other.clone(),
            result: Err("unreadable".into()),
        }])
        .await
        .unwrap();
    let after = similar::similar(catalog, &filtered, None).await.unwrap();
    assert!(after.results.iter().all(|r| r.image_id != other));
    assert_eq!(kept.similar(catalog, &filtered).await.unwrap(), after);
    let approximate = similar::similar(catalog, &filtered, Some(&files))
        .await
        .unwrap();
    assert_eq!(ids(&approximate), ids(&after));
    let report = similar::index(catalog, None, Some(&files), DeviceChoice::Cpu)
        .await
        .unwrap();
    assert_eq!((report.added, report.removed, report.kept), (0, 1, 59));
    assert!(report.approximate_index);
    // The saved index followed the removal.
    let keys =
        std::fs::read_to_string(index_dir.path().join(format!("run_{run}.ids.json"))).unwrap();
    assert!(keys.contains(&first) && !keys.contains(&other), "{keys}");

    // A photo file is embedded with the saved model and searched the same way.
    let path = PathBuf::from(&catalog.image(&first).await.unwrap().unwrap().uri);
    let mut from_file = query(&first, 3);
    from_file.photo = QueryPhoto::File(path.clone());
    let answer = similar::similar(catalog, &from_file, None).await.unwrap();
    assert_eq!(answer.results.len(), 3);
    // The file is the catalogue photo itself, so it is its own best match (cosine 1).
    assert_eq!(answer.results[0].image_id, first);
    assert!(
        (answer.results[0].score - (1.0 + biases[&first])).abs() < 1e-3,
        "{} {}",
        answer.results[0].score,
        biases[&first]
    );

    // An upload: the same bytes embedded from memory answer the same way, through its vector.
    let record = catalog.run(run).await.unwrap().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let photo = similar::decode_upload(bytes).await.unwrap();
    let uploaded = similar::embed_photo(&record, photo).await.unwrap();
    let mut by_vector = query(&first, 3);
    by_vector.photo = QueryPhoto::Embedding(uploaded.embedding.clone());
    let answer_by_vector = similar::similar(catalog, &by_vector, None).await.unwrap();
    assert_eq!(answer_by_vector.query, "an uploaded photo");
    assert_eq!(ids(&answer_by_vector), ids(&answer));
    // A vector of another length, and bytes that are no photo, are refused with the reason.
    by_vector.photo = QueryPhoto::Embedding(uploaded.embedding[1..].to_vec());
    let error = similar::similar(catalog, &by_vector, None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), atelier_app::ErrorKind::Invalid);
    assert!(
        error.to_string().contains("embed the photo again"),
        "{error}"
    );
    let error = similar::decode_upload(b"<html>not a photo</html>".to_vec())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), atelier_app::ErrorKind::Invalid);
    assert!(
        error
            .to_string()
            .contains("the uploaded file cannot be used"),
        "{error}"
    );
    // A filter with a name the catalogue does not know is an error that lists the names.
    let mut typo = query(&first, 3);
    typo.filters.push(LabelFilter {
        facet: "neckline".into(),
        label: "vneck".into(),
        keep: true,
    });
    let error = similar::similar(catalog, &typo, None).await.unwrap_err();
    assert!(error.to_string().contains("its labels are"), "{error}");
    // A change of the stored vectors, made through another connection to the catalogue.
    let elsewhere = atelier_catalog::Catalog::open(&setup.url).await.unwrap();
    let nearest = &kept.similar(catalog, &filtered).await.unwrap().results[0].image_id;
    let moved: Vec<f32> = catalog
        .embedding(&embedding_key(run), &first)
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|v| -v)
        .collect();
    elsewhere
        .put_embeddings(&embedding_key(run), &[(nearest.clone(), moved)])
        .await
        .unwrap();
    let pushed_away = similar::similar(catalog, &filtered, None).await.unwrap();
    assert_eq!(pushed_away.results.last().unwrap().image_id, *nearest);
    assert_eq!(kept.similar(catalog, &filtered).await.unwrap(), pushed_away);

    // Back from quarantine, a photo is embedded again by `index`, which also stores where the
    // model located its dress (as the model itself answers for the file).
    catalog
        .record_checks(&[CheckOutcome {
            id: other.clone(),
            result: Ok(CheckedImage {
                width: 64,
                height: 64,
            }),
        }])
        .await
        .unwrap();
    let report = similar::index(catalog, None, None, DeviceChoice::Cpu)
        .await
        .unwrap();
    assert_eq!(report.added, 1);
    // Its hubness bias: its mean cosine with its nearest active photos against the mean the
    // run measured, as the saved model states them.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(finished.model_dir.join("model.json")).unwrap(),
    )
    .unwrap();
    let hubness = &manifest["hubness"];
    let neighbours = hubness["neighbours"].as_u64().unwrap() as usize;
    let mean = hubness["trained_mean"].as_f64().unwrap() as f32;
    let now = catalog.embeddings(&embedding_key(run)).await.unwrap();
    let own = &now.iter().find(|(id, _)| *id == other).unwrap().1;
    let mut cosines: Vec<f32> = now
        .iter()
        .filter(|(id, _)| *id != other)
        .map(|(_, vector)| cosine(own, vector))
        .collect();
    cosines.sort_by(|a, b| b.total_cmp(a));
    let want = -(cosines[..neighbours].iter().sum::<f32>() / neighbours as f32 - mean) / 2.0;
    let got = catalog
        .embedding(&bias_key(&embedding_key(run)), &other)
        .await
        .unwrap()
        .unwrap()[0];
    assert!((got - want).abs() < 1e-4, "{got} {want}");
    let other_path = PathBuf::from(&catalog.image(&other).await.unwrap().unwrap().uri);
    let photo = similar::embed_file(&record, &other_path).await.unwrap();
    let located = catalog.located_box(run, &other).await.unwrap().unwrap();
    assert_eq!(located.coords, photo.dress_box.map(f64::from));
    assert_eq!(located.foreground, photo.foreground.map(f64::from));
    assert!(located.agreement.is_some());
}
