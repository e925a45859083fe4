//! Browsing the catalogue a page at a time: every image that passes filters on its current
//! labels (with or without a label), split, status (quarantined images with their reasons),
//! design and whether a reviewer changed it. Facet and label names are checked against the
//! catalogue's vocabulary first, so a typo is an error that lists the names, while a filter of
//! known names that no image passes is an empty page.

use std::collections::BTreeMap;

use atelier_catalog::{BrowsedImage, Catalog, ImageFilter, LabelCondition};
use serde::Serialize;

use crate::error::AppError;

/// One page of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowseQuery {
    pub filter: ImageFilter,
    /// From 1.
    pub page: u64,
    /// Images per page, at most [`BrowseQuery::MAX_PER_PAGE`].
    pub per_page: u64,
}

impl BrowseQuery {
    pub const MAX_PER_PAGE: u64 = 500;
}

impl Default for BrowseQuery {
    fn default() -> Self {
        BrowseQuery {
            filter: ImageFilter::default(),
            page: 1,
            per_page: 48,
        }
    }
}

/// The answer to a [`BrowseQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrowseAnswer {
    /// Images that pass the filter.
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
    /// Pages in all (at least 1).
    pub pages: u64,
    pub images: Vec<BrowsedImage>,
}

/// The page of images `query` asks for.
pub async fn browse(catalog: &Catalog, query: &BrowseQuery) -> Result<BrowseAnswer, AppError> {
    if query.page == 0 {
        return Err(AppError::Invalid("page: pages count from 1".into()));
    }
    if !(1..=BrowseQuery::MAX_PER_PAGE).contains(&query.per_page) {
        return Err(AppError::Invalid(format!(
            "per_page {}: give 1 to {}",
            query.per_page,
            BrowseQuery::MAX_PER_PAGE
        )));
    }
    check_label_conditions(catalog, &query.filter.labels).await?;
    let offset = (query.page - 1).saturating_mul(query.per_page);
    let found = catalog
        .browse(&query.filter, offset, query.per_page)
        .await?;
    Ok(BrowseAnswer {
        pages: found.total.div_ceil(query.per_page).max(1),
        total: found.total,
        page: query.page,
        per_page: query.per_page,
        images: found.images,
    })
}

/// Every facet's labels in the catalogue's order.
pub async fn vocabulary(catalog: &Catalog) -> Result<BTreeMap<String, Vec<String>>, AppError> {
    let names = catalog.facet_names().await?;
    Ok(catalog
        .facet_label_orders(&names)
        .await?
        .into_iter()
        .collect())
}

/// Refuses a condition whose facet or label the catalogue does not know, naming the ones it
/// does.
pub async fn check_label_conditions(
    catalog: &Catalog,
    conditions: &[LabelCondition],
) -> Result<(), AppError> {
    if conditions.is_empty() {
        return Ok(());
    }
    let known = vocabulary(catalog).await?;
    for condition in conditions {
        let Some(labels) = known.get(&condition.facet) else {
            let facets: Vec<&str> = known.keys().map(String::as_str).collect();
            return Err(AppError::Invalid(format!(
                "{}={}: the catalogue has no facet `{}`; its facets are {}",
                condition.facet,
                condition.label,
                condition.facet,
                facets.join(", ")
            )));
        };
        if !labels.contains(&condition.label) {
            return Err(AppError::Invalid(format!(
                "{}={}: `{}` is not a label of {}; its labels are {}",
                condition.facet,
                condition.label,
                condition.label,
                condition.facet,
                labels.join(", ")
            )));
        }
    }
    Ok(())
}
