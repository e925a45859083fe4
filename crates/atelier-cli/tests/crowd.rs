//! `atelier crowd` from the command line: export a batch (Mechanical Turk's bulk-upload CSV
//! and question template, gold questions from reviewers' labels), read simulated batch
//! results back (bad rows named by line, rejected assignments left out), and reading them
//! twice adds nothing.

mod common;

use std::collections::HashMap;

use atelier_catalog::{Catalog, LabelEdit};
use common::{Workspace, json_of, tiny_training};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_batch_results() {
    let workspace = Workspace::synthetic(80, &[], &[]);
    json_of(&workspace.run(&tiny_training("1", &["--seed", "3"])));
    // Two labels a reviewer set: the candidates for gold questions.
    let catalog = Catalog::open(&workspace.db).await.unwrap();
    let images =
        json_of(&workspace.run(&["images", "--split", "train", "--per-page", "2", "--json"]));
    let facets = catalog.facets().await.unwrap();
    let silhouette = facets.iter().find(|f| f.name == "silhouette").unwrap();
    let names = silhouette.label_names();
    for image in images["images"].as_array().unwrap() {
        let id = image["id"].as_str().unwrap();
        let given = image["labels"]["silhouette"].as_str().unwrap();
        let label = names.iter().find(|l| **l != given).unwrap();
        retag(&catalog, id, label, 1).await;
    }

    let out = workspace.root.join("batch");
    let out_arg = out.to_str().unwrap();
    let exported = json_of(&workspace.run(&[
        "crowd",
        "export",
        "--run",
        "1",
        "--facet",
        "silhouette",
        "--from",
        "all",
        "--limit",
        "8",
        "--gold",
        "0.2",
        "--base-url",
        "https://crowd.example",
        "--out",
        out_arg,
        "--json",
    ]));
    assert_eq!(exported["export"]["tasks"], 10, "{exported}");
    assert_eq!(exported["export"]["gold"], 2, "a fifth of the batch");
    let csv = std::fs::read_to_string(out.join("tasks.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("task_id,facet,labels,image_url"));
    let tasks: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(tasks.len(), 10);
    for task in &tasks {
        assert_eq!(task[1], "silhouette");
        assert!(task[3].starts_with(&format!(
            "https://crowd.example/crowd/images/{}?expires=",
            task[0]
        )));
    }
    let template = std::fs::read_to_string(out.join("question.html")).unwrap();
    for field in ["${task_id}", "${image_url}", "${labels}", "name=\"label\""] {
        assert!(template.contains(field), "the template reads {field}");
    }

    // Three workers answer every task; then a rejected assignment, an unknown task, a label
    // outside the facet, a row without a worker, one in the name kept for the current labels,
    // and a malformed line.
    let mut results = String::from(
        "HITId,AssignmentId,WorkerId,AssignmentStatus,Input.task_id,Input.facet,Answer.label\n",
    );
    for (n, task) in tasks.iter().enumerate() {
        let labels: Vec<&str> = task[2].split('|').collect();
        for worker in ["W1", "W2", "W3"] {
            let label = labels[(n + worker.len()) % labels.len()];
            results.push_str(&format!(
                "H{n},A{n}{worker},{worker},Approved,{},silhouette,{label}\n",
                task[0]
            ));
        }
    }
    let first = &tasks[0][0];
    results.push_str(&format!("H0,AX,W9,Rejected,{first},silhouette,sheath\n"));
    results.push_str("H9,AY,W9,Submitted,0123456789abcdef0123456789abcdef,silhouette,sheath\n");
    results.push_str(&format!(
        "H0,AZ,W9,Submitted,{first},silhouette,ballgown-xl\n"
    ));
    results.push_str(&format!("H0,AW,,Submitted,{first},silhouette,sheath\n"));
    results.push_str(&format!(
        "H0,AV,(catalogue),Submitted,{first},silhouette,sheath\n"
    ));
    results.push_str("\"unterminated,quote\n");
    let file = workspace.root.join("results.csv");
    std::fs::write(&file, &results).unwrap();
    let file_arg = file.to_str().unwrap();
    let imported = json_of(&workspace.run(&["crowd", "import", file_arg, "--json"]));
    assert_eq!(imported["added"], 30, "{imported}");
    assert_eq!(imported["rejected"], 1);
    let lines: Vec<u64> = imported["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [33, 34, 35, 36, 37], "{imported}");
    let reserved = imported["problems"][3]["reason"].as_str().unwrap();
    assert!(reserved.contains("reserved"), "{reserved}");
    let malformed = imported["problems"][4]["reason"].as_str().unwrap();
    assert!(malformed.contains("malformed"), "{malformed}");
    let again = json_of(&workspace.run(&["crowd", "import", file_arg, "--json"]));
    assert_eq!(
        (again["added"].as_u64(), again["already_stored"].as_u64()),
        (Some(0), Some(30))
    );
    let batches = json_of(&workspace.run(&["crowd", "batches", "--json"]));
    assert_eq!(batches["batches"][0]["votes"], 30, "{batches}");

    // A reviewer retags one task's image after the export: the crowd must not overwrite it.
    let aggregated = json_of(&workspace.run(&["crowd", "aggregate", "1", "--json"]));
    let answered = aggregated["tasks"].as_array().unwrap();
    assert_eq!(answered.len(), 10, "{aggregated}");
    // The three workers, and the current labels counted as one more.
    let workers: Vec<&str> = aggregated["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["worker"].as_str().unwrap())
        .collect();
    assert_eq!(workers, ["(catalogue)", "W1", "W2", "W3"], "{aggregated}");
    let retagged = answered
        .iter()
        .find(|t| {
            t["gold_label"].is_null()
                && t["label"] != t["current_label"]
                && t["posterior"].as_f64().unwrap() >= 0.5
        })
        .expect("a task the crowd would change");
    let image = retagged["image_id"].as_str().unwrap();
    let other = names
        .iter()
        .find(|l| **l != retagged["label"] && **l != retagged["current_label"])
        .unwrap();
    let version = retagged["label_version"].as_i64().unwrap();
    retag(&catalog, image, other, version).await;
    // Three workers on ten tasks: a low bar, so that most answers count.
    let apply = ["crowd", "apply", "1", "--min-posterior", "0.5", "--json"];
    let applied = json_of(&workspace.run(&apply));
    let count = |field: &str| applied[field].as_u64().unwrap();
    let disputed = applied["disputed"].as_array().unwrap().len() as u64;
    assert_eq!(count("gold"), 2, "{applied}");
    assert_eq!(
        count("changed_since_export"),
        1,
        "the reviewer's label stands"
    );
    assert_eq!(
        count("changed") + count("confirmed") + disputed + count("changed_since_export") + 2,
        10,
        "{applied}"
    );
    assert!(count("changed") >= 1, "{applied}");
    for task in answered
        .iter()
        .filter(|t| t["image_id"] != image && t["gold_label"].is_null())
    {
        let page = json_of(&workspace.run(&["images", "--per-page", "100", "--json"]));
        let now = page["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == task["image_id"])
            .unwrap()["labels"]["silhouette"]
            .clone();
        if task["posterior"].as_f64().unwrap() >= 0.5 {
            assert_eq!(now, task["label"], "the crowd's confident label is applied");
        }
    }
    let kept = json_of(&workspace.run(&["images", "--per-page", "100", "--json"]));
    let kept = kept["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == image)
        .unwrap();
    assert_eq!(kept["labels"]["silhouette"], other.to_string());
    let again = json_of(&workspace.run(&apply));
    assert_eq!(
        again["changed"], 0,
        "applying twice changes nothing more: {again}"
    );

    let missing_columns = workspace.root.join("other.csv");
    std::fs::write(&missing_columns, "HITId,WorkerId\nH1,W1\n").unwrap();
    let refused = workspace.run(&["crowd", "import", missing_columns.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Answer.label"));
}

/// The whole loop on a catalogue with a fifth of its silhouette labels flipped: export every
/// out-of-sample prediction, a simulated crowd answers from the renderer's clean labels
/// (5 votes a task), import, apply the confident changes, and retrain on the fixed labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crowd_fixes_flipped_labels_and_the_run_retrains() {
    let workspace = Workspace::synthetic(200, &["--label-noise", "0.2"], &[]);
    let truth = workspace.root.join("synth/truth.csv");
    json_of(&workspace.run(&["import", "--truth", truth.to_str().unwrap(), "--json"]));
    json_of(&workspace.run(&tiny_training("1", &["--seed", "3", "--folds", "2"])));
    let catalog = Catalog::open(&workspace.db).await.unwrap();
    let clean = catalog.truth_labels("silhouette").await.unwrap();
    let wrong = |labels: &HashMap<String, Option<String>>| {
        labels
            .iter()
            .filter(|(id, label)| label.as_ref() != clean.get(*id))
            .count()
    };
    let before = silhouettes(&catalog).await;
    let wrong_before = wrong(&before);
    assert!(
        wrong_before >= 20,
        "the noise flipped labels: {wrong_before}"
    );

    let out = workspace.root.join("batch");
    let exported = json_of(&workspace.run(&[
        "crowd",
        "export",
        "--run",
        "1",
        "--facet",
        "silhouette",
        "--from",
        "all",
        "--gold",
        "0",
        "--base-url",
        "https://crowd.example",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]));
    assert!(
        exported["export"]["tasks"].as_u64().unwrap() >= 150,
        "{exported}"
    );
    let results = workspace.root.join("results.csv");
    json_of(&workspace.run(&[
        "crowd",
        "simulate",
        "1",
        "--votes",
        "5",
        "--out",
        results.to_str().unwrap(),
        "--json",
    ]));
    json_of(&workspace.run(&["crowd", "import", results.to_str().unwrap(), "--json"]));
    let applied = json_of(&workspace.run(&["crowd", "apply", "1", "--json"]));
    let changed = applied["changed"].as_u64().unwrap() as usize;
    assert!(changed >= wrong_before / 2, "{applied}");

    // Precision of the changes against the renderer's truth, and fewer wrong labels.
    let after = silhouettes(&catalog).await;
    let changes: Vec<&String> = after
        .keys()
        .filter(|id| after[*id] != before[*id])
        .collect();
    assert_eq!(changes.len(), changed);
    let right = changes
        .iter()
        .filter(|id| after[**id].as_ref() == clean.get(**id))
        .count();
    assert!(
        right as f64 >= 0.9 * changed as f64,
        "{right} of {changed} changes match the truth"
    );
    let wrong_after = wrong(&after);
    assert!(
        wrong_after < wrong_before / 2,
        "{wrong_before} -> {wrong_after}"
    );

    let retrained = json_of(&workspace.run(&["retrain", "1", "--json"]));
    assert_eq!(retrained["run"], 2, "{retrained}");
}

/// Every active image's silhouette label.
async fn silhouettes(catalog: &Catalog) -> HashMap<String, Option<String>> {
    catalog
        .training_images(&["silhouette".into()])
        .await
        .unwrap()
        .into_iter()
        .map(|image| (image.id, image.labels[0].clone()))
        .collect()
}

/// `--publish-images s3://...`: the photos are copied to the bucket (moto) and the tasks link
/// them with presigned URLs that read the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_can_be_published_to_s3_with_presigned_links() {
    use sha2::Digest;
    use std::io::{Read, Write};
    let endpoint = match std::env::var("ATELIER_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => endpoint,
        _ if std::env::var_os("CI").is_some() => panic!("ATELIER_TEST_S3_ENDPOINT must be set"),
        _ => return eprintln!("skipped: ATELIER_TEST_S3_ENDPOINT not set"),
    };
    let host = endpoint.trim_start_matches("http://").to_string();
    let http = |request: String| -> Vec<u8> {
        let mut stream = std::net::TcpStream::connect(&host).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        response
    };
    let bucket = format!("crowd-{}", std::process::id());
    let made = http(format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ));
    assert!(made.starts_with(b"HTTP/1.1 200"));
    let workspace = Workspace::synthetic(60, &[], &[]);
    json_of(&workspace.run(&tiny_training("1", &["--seed", "3"])));
    let out = workspace.root.join("batch");
    let store = format!("s3://{bucket}/shared");
    let exported = workspace
        .command(&[
            "crowd",
            "export",
            "--run",
            "1",
            "--from",
            "all",
            "--limit",
            "2",
            "--gold",
            "0",
            "--publish-images",
            &store,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    json_of(&exported);
    let csv = std::fs::read_to_string(out.join("tasks.csv")).unwrap();
    let catalog = Catalog::open(&workspace.db).await.unwrap();
    for row in csv.lines().skip(1) {
        let fields: Vec<&str> = row.splitn(4, ',').collect();
        let url = fields[3];
        let path = url
            .strip_prefix(&endpoint)
            .unwrap_or_else(|| panic!("a link to the bucket: {url}"));
        assert!(path.starts_with(&format!("/{bucket}/shared/crowd/batch-1/{}", fields[0])));
        assert!(url.contains("X-Amz-Signature="), "{url}");
        let response = http(format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ));
        assert!(
            response.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&response)
        );
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let task = catalog.crowd_task(fields[0]).await.unwrap().unwrap();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&response[split..])),
            task.image_id
        );
    }
    // A folder store cannot share: a clear refusal.
    let refused = workspace.run(&[
        "crowd",
        "export",
        "--run",
        "1",
        "--from",
        "all",
        "--publish-images",
        "file:///tmp/x",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
}

/// Reviewer rita sets image `image`'s silhouette to `label`, from label version `version`.
async fn retag(catalog: &Catalog, image: &str, label: &str, version: i64) {
    catalog
        .set_labels(&[LabelEdit {
            image: image.into(),
            facet: "silhouette".into(),
            label: Some(label.to_string()),
            expected_version: version,
            actor: "rita".into(),
            reason: None,
            run_id: None,
        }])
        .await
        .unwrap();
}
