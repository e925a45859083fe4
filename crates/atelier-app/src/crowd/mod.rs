//! Crowd retagging's export and import: a batch of labelling tasks chosen from a run's
//! predictions (its mistag queue, its disagreements with the labels, or all), with gold
//! questions whose answers reviewers set, written as a Mechanical Turk bulk-upload CSV and an
//! HTML question template; signed, expiring image URLs that `atelier serve` answers without a
//! login; and Mechanical Turk's batch-results CSV read back into votes, every bad row named by
//! its line. [`aggregate`] turns a batch's votes into labels (Dawid–Skene, with majority vote
//! beside it) and [`apply`] writes the confident ones.

use std::collections::HashSet;
use std::time::Duration;

use atelier_catalog::{Catalog, NewCrowdBatch, NewCrowdTask, NewCrowdVote, VotesStored};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::error::AppError;
use crate::mistags::mistag_queue;

mod aggregate;

pub use aggregate::{Aggregation, ApplyReport, TaskAggregate, WorkerAggregate, aggregate, apply};

/// The catalogue setting that holds the key image URLs are signed with.
const URL_KEY_SETTING: &str = "crowd_url_key";

/// Where an export takes its tasks from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskSource {
    /// The run's suspected mistags, likeliest first.
    Mistags,
    /// Images labelled `label` (any label: `None`) that the run predicted otherwise, most
    /// confident first.
    FalseNegatives(Option<String>),
    /// Images the run predicted as `label` (any: `None`) that are labelled otherwise, most
    /// confident first.
    FalsePositives(Option<String>),
    /// Every image the run predicted out of sample, by image id.
    All,
}

impl TaskSource {
    fn name(&self) -> &'static str {
        match self {
            TaskSource::Mistags => "mistags",
            TaskSource::FalseNegatives(_) => "false-negatives",
            TaskSource::FalsePositives(_) => "false-positives",
            TaskSource::All => "all",
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub run: i64,
    /// Only this facet (default: every facet of the run).
    pub facet: Option<String>,
    pub from: TaskSource,
    /// Most tasks besides the gold questions.
    pub limit: usize,
    /// Workers asked per task.
    pub votes: i64,
    /// Share of the batch's tasks that are gold questions (0 to under 1).
    pub gold: f64,
    /// The address workers reach `atelier serve` at (`https://atelier.example.com`): image
    /// links are the app's signed links below it...
    pub base_url: Option<String>,
    /// ... or, instead, copies of the photos in this S3 store (`s3://bucket/prefix`), shown
    /// through presigned links.
    pub publish_images: Option<String>,
    /// How long the image URLs stay valid.
    pub expires_in: Duration,
    pub created_by: String,
}

/// An exported batch: the Mechanical Turk files and what went into them.
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    pub batch: i64,
    pub tasks: usize,
    pub gold: usize,
    /// `tasks.csv`: `task_id,facet,labels,image_url`, the labels joined by `|` in the facet's
    /// order.
    #[serde(skip)]
    pub csv: String,
    /// `question.html`: the question template, showing the image and the labels as buttons.
    #[serde(skip)]
    pub template: String,
    /// When the image URLs stop working (UTC unix seconds).
    pub expires_at: i64,
}

/// Chooses the tasks, records the batch and writes its files' contents.
pub async fn export(catalog: &Catalog, request: &ExportRequest) -> Result<Export, AppError> {
    check_request(request)?;
    let chosen = choose_tasks(catalog, request).await?;
    let taken: HashSet<(String, String)> = chosen.iter().cloned().collect();
    let gold_wanted =
        ((chosen.len() as f64) * request.gold / (1.0 - request.gold)).round() as usize;
    let gold: Vec<NewCrowdTask> = catalog
        .reviewed_labels(request.facet.as_deref())
        .await?
        .into_iter()
        .filter(|(image, facet, _)| !taken.contains(&(image.clone(), facet.clone())))
        .take(gold_wanted)
        .map(|(image_id, facet, label)| NewCrowdTask {
            image_id,
            facet,
            gold_label: Some(label),
        })
        .collect();
    let gold_count = gold.len();
    let mut tasks: Vec<NewCrowdTask> = chosen
        .into_iter()
        .map(|(image_id, facet)| NewCrowdTask {
            image_id,
            facet,
            gold_label: None,
        })
        .collect();
    // Gold questions spread among the others, so that workers cannot tell them by place.
    for (n, task) in gold.into_iter().enumerate() {
        let at = ((n + 1) * tasks.len()) / (gold_count + 1) + n;
        tasks.insert(at.min(tasks.len()), task);
    }
    let batch = catalog
        .create_crowd_batch(&NewCrowdBatch {
            run_id: Some(request.run),
            source: request.from.name().into(),
            votes_per_task: request.votes,
            created_by: request.created_by.clone(),
            tasks,
        })
        .await?;
    let expires_at = unix_seconds() + request.expires_in.as_secs() as i64;
    let stored = catalog.crowd_tasks(batch).await?;
    let urls = task_urls(catalog, request, batch, &stored, expires_at).await?;
    let mut csv = String::from("task_id,facet,labels,image_url\n");
    for (task, url) in stored.iter().zip(urls) {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            task.token,
            csv_field(&task.facet),
            csv_field(&task.labels.join("|")),
            url
        ));
    }
    Ok(Export {
        batch,
        tasks: stored.len(),
        gold: gold_count,
        csv,
        template: QUESTION_TEMPLATE.to_string(),
        expires_at,
    })
}

/// Each task's image link: the app's signed link, or a presigned link to a copy in S3.
async fn task_urls(
    catalog: &Catalog,
    request: &ExportRequest,
    batch: i64,
    tasks: &[atelier_catalog::CrowdTask],
    expires_at: i64,
) -> Result<Vec<String>, AppError> {
    let Some(store) = &request.publish_images else {
        let key = url_key(catalog).await?;
        let base = request.base_url.as_deref().unwrap_or_default();
        return Ok(tasks
            .iter()
            .map(|task| image_url(&key, base, &task.token, expires_at))
            .collect());
    };
    let store = crate::models::open_store(store)?;
    let images: Vec<(&str, &str)> = tasks
        .iter()
        .map(|t| (t.uri.as_str(), t.image_id.as_str()))
        .collect();
    let paths = crate::images::resolver().resolve(&images).await?;
    let mut urls = Vec::with_capacity(tasks.len());
    for (task, path) in tasks.iter().zip(paths) {
        let path = path.map_err(|e| AppError::Invalid(format!("{}: {e}", task.uri)))?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| AppError::io(&path, e))?;
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("img");
        let key = format!("crowd/batch-{batch}/{}.{extension}", task.token);
        urls.push(store.share(&key, bytes, request.expires_in).await?);
    }
    Ok(urls)
}

fn check_request(request: &ExportRequest) -> Result<(), AppError> {
    if !(0.0..1.0).contains(&request.gold) {
        return Err(AppError::Invalid(format!(
            "gold share {} is outside [0, 1): give e.g. 0.1 for a tenth of gold questions",
            request.gold
        )));
    }
    if request.votes < 1 {
        return Err(AppError::Invalid(
            "votes per task must be at least 1".into(),
        ));
    }
    match (&request.base_url, &request.publish_images) {
        (Some(base), None) => {
            let base = base.trim_end_matches('/');
            if !(base.starts_with("https://") || base.starts_with("http://")) || base.contains('?')
            {
                return Err(AppError::Invalid(format!(
                    "base URL {base:?}: give the address workers reach the app at, such as \
                     https://atelier.example.com"
                )));
            }
        }
        (None, Some(store)) if store.starts_with("s3://") => {}
        (None, Some(store)) => {
            return Err(AppError::Invalid(format!(
                "images can be published to an S3 store only ({store:?}): give \
                 s3://bucket/prefix, or a base URL for the app's signed links"
            )));
        }
        _ => {
            return Err(AppError::Invalid(
                "give a base URL for the app's signed image links, or an S3 store to publish \
                 the photos to (one of the two)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// The (image, facet) pairs of the tasks, in the source's order, at most `limit`.
async fn choose_tasks(
    catalog: &Catalog,
    request: &ExportRequest,
) -> Result<Vec<(String, String)>, AppError> {
    let facet = request.facet.as_deref();
    let mut pairs: Vec<(String, String, f64)> = match &request.from {
        TaskSource::Mistags => mistag_queue(catalog, request.run, facet)
            .await?
            .items
            .into_iter()
            .map(|item| (item.image_id, item.facet, 0.0))
            .collect(),
        source => catalog
            .out_of_sample_predictions(request.run, facet)
            .await?
            .into_iter()
            .filter(|p| match source {
                TaskSource::FalseNegatives(label) => {
                    p.label.as_deref() != Some(p.predicted.as_str())
                        && p.label.is_some()
                        && label.as_ref().is_none_or(|l| p.label.as_ref() == Some(l))
                }
                TaskSource::FalsePositives(label) => {
                    p.label.as_deref() != Some(p.predicted.as_str())
                        && label.as_ref().is_none_or(|l| &p.predicted == l)
                }
                _ => true,
            })
            .map(|p| (p.image_id, p.facet, -p.confidence))
            .collect(),
    };
    if matches!(
        request.from,
        TaskSource::FalseNegatives(_) | TaskSource::FalsePositives(_)
    ) {
        pairs.sort_by(|a, b| a.2.total_cmp(&b.2));
    }
    Ok(pairs
        .into_iter()
        .take(request.limit)
        .map(|(image, facet, _)| (image, facet))
        .collect())
}

/// Quotes a CSV field when it needs it.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The catalogue's URL-signing key (drawn the first time).
async fn url_key(catalog: &Catalog) -> Result<Vec<u8>, AppError> {
    let candidate = hex::encode(rand::random::<[u8; 32]>());
    let stored = catalog
        .setting_or_insert(URL_KEY_SETTING, &candidate)
        .await?;
    hex::decode(stored.trim()).map_err(|_| {
        AppError::Invalid(format!(
            "the catalogue setting {URL_KEY_SETTING} is not hex; delete it to draw a new key"
        ))
    })
}

fn signature(key: &[u8], token: &str, expires: i64) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(format!("{token}.{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `BASE/crowd/images/TOKEN?expires=T&sig=HMAC(key, TOKEN.T)`.
fn image_url(key: &[u8], base: &str, token: &str, expires: i64) -> String {
    format!(
        "{}/crowd/images/{token}?expires={expires}&sig={}",
        base.trim_end_matches('/'),
        signature(key, token, expires)
    )
}

/// The catalogue image a signed URL shows, when its signature is right and it has not expired
/// at `now` (UTC unix seconds); `None` otherwise, whatever the reason (the answer tells a
/// prober nothing).
pub async fn signed_image(
    catalog: &Catalog,
    token: &str,
    expires: i64,
    sig: &str,
    now: i64,
) -> Result<Option<String>, AppError> {
    if expires < now || token.len() != 32 {
        return Ok(None);
    }
    let key = url_key(catalog).await?;
    let expected = signature(&key, token, expires);
    if !constant_time_eq(expected.as_bytes(), sig.as_bytes()) {
        return Ok(None);
    }
    Ok(catalog.crowd_task(token).await?.map(|task| task.image_id))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unix_seconds() -> i64 {
    atelier_catalog::now_millis() / 1000
}

/// A row of a results file that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    /// The line in the file (the header is line 1).
    pub line: usize,
    pub reason: String,
}

/// What reading a results file did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultsImport {
    pub rows: usize,
    pub added: usize,
    pub already_stored: usize,
    /// Assignments the requester rejected (not counted as votes).
    pub rejected: usize,
    pub problems: Vec<RowProblem>,
}

/// Reads Mechanical Turk's batch-results CSV (`HITId`, `WorkerId`, `AssignmentId`,
/// `AssignmentStatus`, `Input.task_id`, `Answer.label`) and stores its votes; rows for unknown
/// tasks, labels outside the task's facet and malformed lines are reported by line and not
/// stored. A file without the columns is refused whole. Reading the same file again adds
/// nothing.
pub async fn import_results(catalog: &Catalog, text: &str) -> Result<ResultsImport, AppError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| AppError::Invalid(format!("the results file has no header row: {e}")))?
        .clone();
    let columns = ResultColumns::find(&headers)?;
    let mut report = ResultsImport {
        rows: 0,
        added: 0,
        already_stored: 0,
        rejected: 0,
        problems: Vec::new(),
    };
    let mut votes = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        report.rows += 1;
        let vote = match record {
            Err(error) => Err(format!("not a CSV row ({error})")),
            Ok(record) if record.len() != headers.len() => Err(format!(
                "a malformed line: {} fields where the header has {}",
                record.len(),
                headers.len()
            )),
            Ok(record) => Ok(columns.vote(&record)),
        };
        let reason = match vote {
            Ok(None) => {
                report.rejected += 1;
                continue;
            }
            Ok(Some(vote)) => match check_vote(catalog, &vote).await? {
                None => {
                    votes.push(vote);
                    continue;
                }
                Some(reason) => reason,
            },
            Err(reason) => reason,
        };
        report.problems.push(RowProblem { line, reason });
    }
    let VotesStored {
        added,
        already_stored,
    } = catalog.add_crowd_votes(&votes).await?;
    report.added = added;
    report.already_stored = already_stored;
    Ok(report)
}

/// Where a results file keeps what a vote needs.
struct ResultColumns {
    worker: usize,
    status: usize,
    task: usize,
    answer: usize,
    assignment: Option<usize>,
}

impl ResultColumns {
    /// The columns, or an error naming the missing ones.
    fn find(headers: &csv::StringRecord) -> Result<ResultColumns, AppError> {
        let column = |name: &str| headers.iter().position(|h| h == name);
        let needed = [
            "WorkerId",
            "AssignmentStatus",
            "Input.task_id",
            "Answer.label",
        ];
        let found: Vec<Option<usize>> = needed.iter().map(|c| column(c)).collect();
        let missing: Vec<&str> = needed
            .iter()
            .zip(&found)
            .filter(|(_, at)| at.is_none())
            .map(|(name, _)| *name)
            .collect();
        match found[..] {
            [Some(worker), Some(status), Some(task), Some(answer)] => Ok(ResultColumns {
                worker,
                status,
                task,
                answer,
                assignment: column("AssignmentId"),
            }),
            _ => Err(AppError::Invalid(format!(
                "the results file lacks the column(s) {}: give Mechanical Turk's batch \
                 results CSV of a batch made from `atelier crowd export`'s files",
                missing.join(", ")
            ))),
        }
    }

    /// The vote of a row; `None` for an assignment the requester rejected.
    fn vote(&self, record: &csv::StringRecord) -> Option<NewCrowdVote> {
        let field = |i: usize| record.get(i).map(str::trim).unwrap_or("");
        if field(self.status).eq_ignore_ascii_case("Rejected") {
            return None;
        }
        Some(NewCrowdVote {
            token: field(self.task).to_string(),
            worker: field(self.worker).to_string(),
            label: field(self.answer).to_string(),
            assignment: self
                .assignment
                .map(|i| field(i).to_string())
                .filter(|a| !a.is_empty()),
            at: atelier_catalog::now_millis(),
        })
    }
}

/// Why a vote cannot be stored, if it cannot.
async fn check_vote(catalog: &Catalog, vote: &NewCrowdVote) -> Result<Option<String>, AppError> {
    if vote.worker.is_empty() {
        return Ok(Some("no WorkerId".into()));
    }
    if vote.worker == aggregate::CATALOGUE_WORKER {
        return Ok(Some(format!(
            "WorkerId {:?} is reserved for the current labels",
            aggregate::CATALOGUE_WORKER
        )));
    }
    let Some(task) = catalog.crowd_task(&vote.token).await? else {
        return Ok(Some(format!("no task {:?} in the catalogue", vote.token)));
    };
    if !task.labels.contains(&vote.label) {
        return Ok(Some(format!(
            "answer {:?} is not a label of {} ({})",
            vote.label,
            task.facet,
            task.labels.join(", ")
        )));
    }
    Ok(None)
}

/// The next task of batch `batch` for `worker` to answer: one they have not answered, with
/// the fewest votes so far (then the oldest); `None` when they answered every task.
pub async fn next_task_for(
    catalog: &Catalog,
    batch: i64,
    worker: &str,
) -> Result<Option<atelier_catalog::CrowdTask>, AppError> {
    let tasks = catalog.crowd_tasks(batch).await?;
    let votes = catalog.crowd_votes(batch).await?;
    let mut counts: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut answered = HashSet::new();
    for vote in &votes {
        *counts.entry(vote.task_id).or_default() += 1;
        if vote.worker == worker {
            answered.insert(vote.task_id);
        }
    }
    Ok(tasks
        .into_iter()
        .filter(|t| !answered.contains(&t.id))
        .min_by_key(|t| (counts.get(&t.id).copied().unwrap_or(0), t.id)))
}

/// The worker name a reviewer's answers are stored under.
pub fn reviewer_worker(user: &str) -> String {
    format!("review:{user}")
}

/// Stores reviewer `user`'s answer `label` to the task `token` as a vote like any worker's;
/// how many votes it added (0: they had answered it already).
pub async fn answer(
    catalog: &Catalog,
    token: &str,
    user: &str,
    label: &str,
) -> Result<usize, AppError> {
    let stored = catalog
        .add_crowd_votes(&[NewCrowdVote {
            token: token.to_string(),
            worker: reviewer_worker(user),
            label: label.to_string(),
            assignment: None,
            at: atelier_catalog::now_millis(),
        }])
        .await?;
    Ok(stored.added)
}

/// A results file as Mechanical Turk would return it for batch `batch`, answered by the
/// simulated crowd of `atelier_train::crowd::simulation` (30 workers, two spammers and an
/// adversary among them) from the catalogue's clean labels (`atelier import --truth`), with
/// `votes_per_task` workers a task: how the crowd loop is measured and tested without
/// Mechanical Turk. Tasks without a clean label are left unanswered.
pub async fn simulated_results(
    catalog: &Catalog,
    batch: i64,
    votes_per_task: usize,
    seed: u64,
) -> Result<String, AppError> {
    let tasks = catalog.crowd_tasks(batch).await?;
    let mut out =
        String::from("HITId,AssignmentId,WorkerId,AssignmentStatus,Input.task_id,Answer.label\n");
    let mut facets: Vec<&str> = tasks.iter().map(|t| t.facet.as_str()).collect();
    facets.sort();
    facets.dedup();
    for facet in facets {
        let truth = catalog.truth_labels(facet).await?;
        let known: Vec<(&atelier_catalog::CrowdTask, usize)> = tasks
            .iter()
            .filter(|t| t.facet == facet)
            .filter_map(|t| {
                let label = truth.get(&t.image_id)?;
                Some((t, t.labels.iter().position(|l| l == label)?))
            })
            .collect();
        let Some((first, _)) = known.first() else {
            continue;
        };
        let truths: Vec<usize> = known.iter().map(|(_, label)| *label).collect();
        let votes = atelier_train::crowd::simulation::crowd_answers(
            &truths,
            first.labels.len(),
            votes_per_task,
            seed,
        )
        .map_err(|e| AppError::Invalid(format!("cannot simulate the crowd: {e}")))?;
        for (n, vote) in votes.iter().enumerate() {
            let task = known[vote.task].0;
            out.push_str(&format!(
                "{},{}-{n},sim-{},Submitted,{},{}\n",
                task.token,
                task.token,
                vote.worker,
                task.token,
                csv_field(&task.labels[vote.label])
            ));
        }
    }
    Ok(out)
}

/// The question template for Mechanical Turk: the image, and one button per label of the
/// task's facet; the chosen label is the answer `label`.
const QUESTION_TEMPLATE: &str = include_str!("question.html");
