//! Reviewers' verdicts on near-duplicate pairs: "the same product" or "not the same", one per
//! pair (the newest replaces the older), with who decided and when.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::relabel::check_actor;
use crate::runs::ensure_image_exists;
use crate::sql::now_millis;

/// What a reviewer said about two photos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicateVerdict {
    /// The same product: the next similarity run treats the two as one design.
    Same,
    /// Not the same product.
    Different,
}

impl DuplicateVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            DuplicateVerdict::Same => "same",
            DuplicateVerdict::Different => "different",
        }
    }

    fn from_db(text: &str) -> Result<Self, CatalogError> {
        match text {
            "same" => Ok(DuplicateVerdict::Same),
            "different" => Ok(DuplicateVerdict::Different),
            other => Err(CatalogError::Damaged {
                context: "reading duplicate verdicts",
                reason: format!("unknown verdict {other:?}"),
            }),
        }
    }
}

/// One stored verdict; `image_a` is the smaller id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateDecision {
    pub image_a: String,
    pub image_b: String,
    pub verdict: DuplicateVerdict,
    pub actor: String,
    pub decided_at: i64,
}

impl Catalog {
    /// Stores `actor`'s verdict on two different catalogue images (in either order), replacing
    /// any earlier verdict on the pair.
    pub async fn decide_duplicate(
        &self,
        first: &str,
        second: &str,
        verdict: DuplicateVerdict,
        actor: &str,
    ) -> Result<DuplicateDecision, CatalogError> {
        check_actor(actor)?;
        if first == second {
            return Err(CatalogError::InvalidDuplicate(format!(
                "both sides are image {first}; name two different images"
            )));
        }
        let (a, b) = if first < second {
            (first, second)
        } else {
            (second, first)
        };
        let context = "storing a duplicate verdict";
        let mut tx = self.begin_write().await?;
        for image in [a, b] {
            ensure_image_exists(&mut tx, image, context).await?;
        }
        let now = now_millis();
        sqlx::query(
            "INSERT INTO duplicate_verdicts (image_a, image_b, verdict, actor, decided_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (image_a, image_b) DO UPDATE SET \
             verdict = excluded.verdict, actor = excluded.actor, \
             decided_at = excluded.decided_at",
        )
        .bind(a)
        .bind(b)
        .bind(verdict.as_str())
        .bind(actor)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db(context))?;
        tx.commit().await.map_err(db(context))?;
        Ok(DuplicateDecision {
            image_a: a.to_string(),
            image_b: b.to_string(),
            verdict,
            actor: actor.to_string(),
            decided_at: now,
        })
    }

    /// Every stored verdict, oldest first.
    pub async fn duplicate_decisions(&self) -> Result<Vec<DuplicateDecision>, CatalogError> {
        let context = "reading duplicate verdicts";
        let rows = sqlx::query(
            "SELECT image_a, image_b, verdict, actor, decided_at FROM duplicate_verdicts \
             ORDER BY decided_at, image_a, image_b",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        rows.iter()
            .map(|row| {
                let get = db(context);
                let verdict: String = row.try_get("verdict").map_err(&get)?;
                Ok(DuplicateDecision {
                    image_a: row.try_get("image_a").map_err(&get)?,
                    image_b: row.try_get("image_b").map_err(&get)?,
                    verdict: DuplicateVerdict::from_db(&verdict)?,
                    actor: row.try_get("actor").map_err(&get)?,
                    decided_at: row.try_get("decided_at").map_err(&get)?,
                })
            })
            .collect()
    }
}
