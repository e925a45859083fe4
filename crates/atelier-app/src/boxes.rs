//! Dress boxes: an image's current box, where the newest similarity model located the dress,
//! reviewers' edits with their history, and the queue of boxes the locator was least sure of.

use atelier_catalog::{BoxEdit, BoxEvent, Catalog, DressBox, ImageRecord, LocatedBox, UnsureBox};
use atelier_train::dress_boxes::SureBox;
use serde::Serialize;

use crate::error::AppError;
use crate::runner::newest_completed;
use crate::similarity::{SIMILARITY_RUN, similarity_run};

/// Everything the box editor shows of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageBoxes {
    pub image: String,
    /// The current dress box (a reviewer's, else the imported one).
    pub current: Option<DressBox>,
    /// The newest completed similarity run, which `located` comes from.
    pub run: Option<i64>,
    /// Where that run's model located the dress.
    pub located: Option<LocatedBox>,
    /// Reviewers' changes, oldest first.
    pub events: Vec<BoxEvent>,
}

/// The box editor's view of the image `record`, with where similarity run `run` located the
/// dress (the image page passes the newest completed one it has already read).
pub async fn image_boxes(
    catalog: &Catalog,
    record: &ImageRecord,
    run: Option<i64>,
) -> Result<ImageBoxes, AppError> {
    let located = match run {
        Some(run) => catalog.located_box(run, &record.id).await?,
        None => None,
    };
    Ok(ImageBoxes {
        image: record.id.clone(),
        current: DressBox::current_of(&record.boxes),
        run,
        located,
        events: catalog.box_events(&record.id).await?,
    })
}

/// The newest completed similarity run, if any.
pub async fn newest_similarity_run(catalog: &Catalog) -> Result<Option<i64>, AppError> {
    let runs = catalog.runs().await?;
    Ok(newest_completed(&runs, SIMILARITY_RUN).map(|r| r.id))
}

/// Sets an image's dress box as a reviewer (see [`Catalog::set_dress_box`]): the next
/// similarity run's locator learns from it.
pub async fn set_box(catalog: &Catalog, edit: &BoxEdit) -> Result<(BoxEvent, DressBox), AppError> {
    Ok(catalog.set_dress_box(edit).await?)
}

/// One page of the boxes a similarity run's locator was least sure of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnsureQueue {
    pub run: i64,
    pub page: usize,
    pub per_page: usize,
    /// Whether a next page has entries.
    pub more: bool,
    pub entries: Vec<UnsureBox>,
}

/// Page `page` (from 1) of the boxes `run`'s locator (the newest similarity run's without
/// one) was least sure of: low foreground confidence, or a regressor that disagrees with the
/// final box. Boxes a reviewer has set are left out.
pub async fn least_sure(
    catalog: &Catalog,
    run: Option<i64>,
    page: usize,
    per_page: usize,
) -> Result<UnsureQueue, AppError> {
    if page == 0 || per_page == 0 {
        return Err(AppError::Invalid(
            "page and per-page count from 1; ask for page 1 or more".into(),
        ));
    }
    let record = similarity_run(catalog, run).await?;
    let offset = (page - 1) * per_page;
    let mut entries = catalog
        .least_sure_boxes(record.id, per_page + 1, offset)
        .await?;
    let more = entries.len() > per_page;
    entries.truncate(per_page);
    Ok(UnsureQueue {
        run: record.id,
        page,
        per_page,
        more,
        entries,
    })
}

/// Stores where a run's model located each photo's dress.
pub(crate) async fn store_located(
    catalog: &Catalog,
    run: i64,
    photos: impl Iterator<Item = (String, SureBox)>,
) -> Result<(), AppError> {
    let boxes: Vec<LocatedBox> = photos
        .map(|(image, sure)| LocatedBox {
            image,
            coords: sure.pixels.map(f64::from),
            foreground: Some(f64::from(sure.foreground)),
            agreement: Some(f64::from(sure.agreement)),
        })
        .collect();
    catalog.store_located_boxes(run, &boxes).await?;
    Ok(())
}
