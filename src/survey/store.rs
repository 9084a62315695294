//! Published definition versions in the database. A version, once written, never changes.

use chrono::Utc;
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::check::parse_definition_json;
use super::model::{LocalizedText, SurveyDefinition};
use crate::db::schema::survey_versions;
use crate::db::{DbConnection, DbError};

/// What publishing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PublishOutcome {
    /// The version was new and is now published.
    Published,
    /// The same content was already published under this version: nothing changed.
    Unchanged,
}

/// Why a definition could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// This (survey, version) is already published with different content.
    #[error(
        "survey `{survey}` version {version} is already published with different content; publish it as a new version"
    )]
    VersionConflict {
        /// Survey id.
        survey: String,
        /// Version number.
        version: i32,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for PublishError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error.into())
    }
}

/// The canonical stored form of a definition and its SHA-256, so that equal content compares equal
/// whatever the file's formatting.
fn canonical(definition: &SurveyDefinition) -> Result<(String, String), DbError> {
    let json = serde_json::to_string(definition)
        .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
    let hash = hex::encode(Sha256::digest(json.as_bytes()));
    Ok((json, hash))
}

/// Publishes a checked definition. Publishing identical content again is a no-op.
pub fn publish(conn: &mut DbConnection, definition: &SurveyDefinition) -> Result<PublishOutcome, PublishError> {
    let (json, hash) = canonical(definition)?;
    let existing = |conn: &mut DbConnection| {
        survey_versions::table
            .filter(survey_versions::survey_id.eq(&definition.id))
            .filter(survey_versions::version.eq(definition.version))
            .select(survey_versions::content_hash)
            .first::<String>(conn)
            .optional()
    };
    let judge = |stored_hash: String| {
        if stored_hash == hash {
            Ok(PublishOutcome::Unchanged)
        } else {
            Err(PublishError::VersionConflict { survey: definition.id.clone(), version: definition.version })
        }
    };
    if let Some(stored_hash) = existing(conn)? {
        return judge(stored_hash);
    }
    let inserted = diesel::insert_into(survey_versions::table)
        .values((
            survey_versions::survey_id.eq(&definition.id),
            survey_versions::version.eq(definition.version),
            survey_versions::definition.eq(&json),
            survey_versions::content_hash.eq(&hash),
            survey_versions::published_at.eq(Utc::now().naive_utc()),
        ))
        .execute(conn)
        .map_err(DbError::from);
    match inserted {
        Ok(_) => Ok(PublishOutcome::Published),
        // Another instance published the same version between our read and our write.
        Err(error) if error.is_unique_violation() => match existing(conn)? {
            Some(stored_hash) => judge(stored_hash),
            None => Err(error.into()),
        },
        Err(error) => Err(error.into()),
    }
}

/// A published survey as listed: its latest version and the versions it has.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SurveySummary {
    /// Survey id.
    pub id: String,
    /// Latest published version.
    pub version: i32,
    /// Every published version, ascending.
    pub versions: Vec<i32>,
    /// Title of the latest version.
    pub title: LocalizedText,
    /// Languages of the latest version.
    pub languages: Vec<String>,
}

/// Every published survey with its latest version.
pub fn list(conn: &mut DbConnection) -> Result<Vec<SurveySummary>, DbError> {
    let rows: Vec<(String, i32)> = survey_versions::table
        .select((survey_versions::survey_id, survey_versions::version))
        .order((survey_versions::survey_id, survey_versions::version))
        .load(conn)?;
    let mut summaries: Vec<SurveySummary> = Vec::new();
    for (id, version) in rows {
        match summaries.last_mut() {
            Some(last) if last.id == id => {
                last.version = version;
                last.versions.push(version);
            }
            _ => summaries.push(SurveySummary {
                id,
                version,
                versions: vec![version],
                title: LocalizedText::default(),
                languages: Vec::new(),
            }),
        }
    }
    for summary in &mut summaries {
        if let Some(definition) = get(conn, &summary.id, Some(summary.version))? {
            summary.title = definition.title;
            summary.languages = definition.languages;
        }
    }
    Ok(summaries)
}

/// A published version of a survey, or its latest when `version` is `None`.
pub fn get(conn: &mut DbConnection, id: &str, version: Option<i32>) -> Result<Option<SurveyDefinition>, DbError> {
    let mut query = survey_versions::table
        .filter(survey_versions::survey_id.eq(id))
        .select(survey_versions::definition)
        .order(survey_versions::version.desc())
        .into_boxed();
    if let Some(version) = version {
        query = query.filter(survey_versions::version.eq(version));
    }
    let Some(json) = query.first::<String>(conn).optional()? else {
        return Ok(None);
    };
    // A stored definition was checked when published; failing to read it back is a server fault.
    parse_definition_json(&json)
        .map(Some)
        .map_err(|e| DbError::Query(diesel::result::Error::DeserializationError(Box::new(e))))
}
