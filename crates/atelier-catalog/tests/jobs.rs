//! The job queue: exactly one worker takes a job, leases run out and dead workers' jobs are
//! taken again, a worker that lost its job records nothing, cancel and retry; each case on
//! SQLite and on PostgreSQL.

#[allow(dead_code)] // the helpers this file does not need
mod common;

use std::collections::BTreeSet;

use atelier_catalog::{CatalogError, JobStatus, NewJob, NewRun, RunLease, RunStatus, now_millis};
use common::TestEnv;
use serde_json::json;

on_both_backends!(
    concurrent_workers_never_share_a_job,
    an_expired_or_dead_workers_job_is_taken_again,
    a_worker_that_lost_its_job_records_nothing,
    cancel_and_retry,
    kinds_and_listing,
    runs_under_jobs_are_not_interrupted,
);

fn later() -> i64 {
    now_millis() + 60_000
}

fn never_gone(_: &str) -> bool {
    false
}

fn job(kind: &str, n: i64) -> NewJob {
    NewJob {
        kind: kind.to_string(),
        params: json!({ "n": n }),
        run_id: None,
        requested_by: "tester".to_string(),
        device: None,
        run_holder: None,
    }
}

fn kinds(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn concurrent_workers_never_share_a_job(env: &TestEnv) {
    let catalog = env.open().await;
    let mut queued = BTreeSet::new();
    for n in 0..12 {
        queued.insert(catalog.enqueue_job(&job("train", n)).await.unwrap());
    }
    // Six workers ask three times each, all at once: 18 claims for 12 jobs.
    let mut tasks = Vec::new();
    for w in 0..6 {
        let catalog = catalog.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..3 {
                let worker = format!("worker-{w}");
                if let Some(job) = catalog
                    .claim_job(&worker, &kinds(&["train"]), "cpu", later(), &never_gone)
                    .await
                    .unwrap()
                {
                    assert_eq!(job.worker.as_deref(), Some(worker.as_str()));
                    assert_eq!(job.status, JobStatus::Running);
                    assert_eq!(job.attempts, 1);
                    got.push(job.id);
                }
            }
            got
        }));
    }
    let mut taken = Vec::new();
    for task in tasks {
        taken.extend(task.await.unwrap());
    }
    let distinct: BTreeSet<i64> = taken.iter().copied().collect();
    assert_eq!(taken.len(), 12, "every job taken once: {taken:?}");
    assert_eq!(distinct, queued);
    let none = catalog
        .claim_job("late", &kinds(&["train"]), "cpu", later(), &never_gone)
        .await
        .unwrap();
    assert!(none.is_none());
}

async fn an_expired_or_dead_workers_job_is_taken_again(env: &TestEnv) {
    let catalog = env.open().await;
    let first = catalog.enqueue_job(&job("train", 1)).await.unwrap();
    let second = catalog.enqueue_job(&job("train", 2)).await.unwrap();
    let train = kinds(&["train"]);
    // A lease that has already run out: the next claim takes the job again.
    let taken = catalog
        .claim_job("a", &train, "cpu", now_millis() - 1, &never_gone)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, first);
    let retaken = catalog
        .claim_job("b", &train, "cpu", later(), &never_gone)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((retaken.id, retaken.attempts), (first, 2));
    assert_eq!(retaken.worker.as_deref(), Some("b"));
    // A live lease of a worker known to be dead is given up at once.
    let held = catalog
        .claim_job("c", &train, "cpu", later(), &never_gone)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.id, second);
    let none = catalog
        .claim_job("d", &train, "cpu", later(), &never_gone)
        .await
        .unwrap();
    assert!(none.is_none(), "live leases are respected");
    let dead_c = |worker: &str| worker == "c";
    let resumed = catalog
        .claim_job("d", &train, "cpu", later(), &dead_c)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((resumed.id, resumed.attempts), (second, 2));
    assert!(
        catalog
            .job(second)
            .await
            .unwrap()
            .unwrap()
            .started_at
            .is_some()
    );
}

async fn a_worker_that_lost_its_job_records_nothing(env: &TestEnv) {
    let catalog = env.open().await;
    let id = catalog.enqueue_job(&job("index", 1)).await.unwrap();
    let index = kinds(&["index"]);
    catalog
        .claim_job("slow", &index, "cpu", now_millis() - 1, &never_gone)
        .await
        .unwrap()
        .unwrap();
    catalog
        .claim_job("fast", &index, "cpu", later(), &never_gone)
        .await
        .unwrap()
        .unwrap();
    let beat = catalog
        .renew_job(id, "slow", later(), Some(&json!({"phase": "x"})))
        .await
        .unwrap();
    assert!(!beat.held);
    let lost = catalog
        .finish_job(id, "slow", JobStatus::Succeeded, Some(&json!(1)), None)
        .await;
    assert!(matches!(lost, Err(CatalogError::JobLost { job, .. }) if job == id));
    let beat = catalog
        .renew_job(id, "fast", later(), Some(&json!({"phase": "y"})))
        .await
        .unwrap();
    assert!(beat.held && !beat.cancel_requested);
    catalog
        .finish_job(
            id,
            "fast",
            JobStatus::Succeeded,
            Some(&json!({"ok": 2})),
            None,
        )
        .await
        .unwrap();
    let done = catalog.job(id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"ok": 2})));
    assert_eq!(done.progress, Some(json!({"phase": "y"})));
    assert_eq!(done.worker.as_deref(), Some("fast"));
    assert!(done.finished_at.is_some() && done.lease_expires_at.is_none());
    // Finishing twice is refused too: results are recorded once.
    let again = catalog
        .finish_job(id, "fast", JobStatus::Failed, None, Some("late"))
        .await;
    assert!(matches!(again, Err(CatalogError::JobLost { .. })));
}

async fn cancel_and_retry(env: &TestEnv) {
    let catalog = env.open().await;
    let queued = catalog.enqueue_job(&job("check", 1)).await.unwrap();
    let running = catalog.enqueue_job(&job("check", 2)).await.unwrap();
    assert_eq!(
        catalog.cancel_job(queued, "ann").await.unwrap(),
        JobStatus::Cancelled
    );
    let check = kinds(&["check"]);
    let taken = catalog
        .claim_job("w", &check, "cpu", later(), &never_gone)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, running, "a cancelled job is never taken");
    assert_eq!(
        catalog.cancel_job(running, "ann").await.unwrap(),
        JobStatus::Running
    );
    let beat = catalog
        .renew_job(running, "w", later(), None)
        .await
        .unwrap();
    assert!(beat.held && beat.cancel_requested);
    catalog
        .finish_job(
            running,
            "w",
            JobStatus::Cancelled,
            None,
            Some("cancelled by ann"),
        )
        .await
        .unwrap();
    let refused = catalog.cancel_job(running, "ann").await;
    assert!(matches!(refused, Err(CatalogError::JobState { .. })));
    let cancelled = catalog.job(queued).await.unwrap().unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.error.as_deref(), Some("cancelled by ann"));

    catalog.retry_job(queued).await.unwrap();
    let requeued = catalog.job(queued).await.unwrap().unwrap();
    assert_eq!(requeued.status, JobStatus::Queued);
    assert!(requeued.error.is_none() && !requeued.cancel_requested);
    let again = catalog
        .claim_job("w", &check, "cpu", later(), &never_gone)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, queued);
    let not_failed = catalog.retry_job(queued).await;
    assert!(matches!(not_failed, Err(CatalogError::JobState { .. })));
    assert!(matches!(
        catalog.retry_job(9_999).await,
        Err(CatalogError::UnknownJob(9_999))
    ));
}

async fn kinds_and_listing(env: &TestEnv) {
    let catalog = env.open().await;
    let a = catalog.enqueue_job(&job("import", 1)).await.unwrap();
    let b = catalog.enqueue_job(&job("train", 2)).await.unwrap();
    let only_train = catalog
        .claim_job(
            "w",
            &kinds(&["train", "index"]),
            "cpu",
            later(),
            &never_gone,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(only_train.id, b, "a worker takes only its kinds");
    let gpu = catalog
        .enqueue_job(&NewJob {
            device: Some("vulkan".to_string()),
            ..job("train", 4)
        })
        .await
        .unwrap();
    let cpu_worker = catalog
        .claim_job("w", &kinds(&["train"]), "cpu", later(), &never_gone)
        .await
        .unwrap();
    assert!(
        cpu_worker.is_none(),
        "a job for another device waits for its worker"
    );
    let gpu_worker = catalog
        .claim_job("g", &kinds(&["train"]), "vulkan", later(), &never_gone)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (gpu_worker.id, gpu_worker.device.as_deref()),
        (gpu, Some("vulkan"))
    );
    assert!(
        catalog
            .claim_job("w", &[], "cpu", later(), &never_gone)
            .await
            .unwrap()
            .is_none()
    );
    let all = catalog.jobs(None, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![gpu, b, a]
    );
    let queued = catalog.jobs(Some(JobStatus::Queued), 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].params, json!({"n": 1}));
    assert_eq!(catalog.jobs(None, 1).await.unwrap().len(), 1);
    let missing_run = catalog
        .enqueue_job(&NewJob {
            run_id: Some(77),
            ..job("train", 3)
        })
        .await;
    assert!(matches!(missing_run, Err(CatalogError::UnknownRun(77))));
}

async fn runs_under_jobs_are_not_interrupted(env: &TestEnv) {
    let catalog = env.open().await;
    let new_run = || NewRun {
        kind: "facets".to_string(),
        config: json!({}),
        parent_run: None,
        lease: None,
    };
    let queued_run = catalog
        .create_run(&NewRun {
            lease: Some(RunLease {
                owner: "recorder".to_string(),
                expires_at: later(),
            }),
            ..new_run()
        })
        .await
        .unwrap();
    let orphan = catalog.create_run(&new_run()).await.unwrap();
    let id = catalog
        .enqueue_job(&NewJob {
            run_id: Some(queued_run),
            run_holder: Some("recorder".to_string()),
            ..job("train", 1)
        })
        .await
        .unwrap();
    let twice = catalog
        .enqueue_job(&NewJob {
            run_id: Some(queued_run),
            ..job("train", 2)
        })
        .await;
    assert!(matches!(twice, Err(CatalogError::RunQueued { job, .. }) if job == id));
    let interrupted = catalog.interrupt_orphaned_runs(&never_gone).await.unwrap();
    assert_eq!(interrupted, vec![orphan]);
    let run = catalog.run(queued_run).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert!(
        run.lease.is_none(),
        "the recorder handed the run over to the queue"
    );
    assert_eq!(
        catalog.job_of_run(queued_run).await.unwrap().unwrap().id,
        id
    );
    assert!(catalog.job_of_run(orphan).await.unwrap().is_none());
    // Cancelling the queued job ends its run, which no process holds.
    catalog.cancel_job(id, "ann").await.unwrap();
    let run = catalog.run(queued_run).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("cancelled by ann"));
}
