//! API keys, roles and agency scoping.
//!
//! A key's secret is shown once, at creation; only its SHA-256 is stored. A high-entropy random
//! token needs no slow password hash: one SHA-256 per request keeps lookups fast, and the row is
//! found by the key id carried in the token, so the secret is only ever compared in constant time.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::agency::{self, AgencyId};
use crate::db::schema::{agencies, api_key_agencies, api_keys};
use crate::db::{DbConnection, DbError};

/// Prefix of every token, so that leaked tokens are recognisable by secret scanners.
const TOKEN_PREFIX: &str = "sipas_";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Publishes surveys, manages campaigns and keys.
    Admin,
    /// Reads statistics and exports.
    Analyst,
    /// Posts responses for the agencies it names.
    Partner,
}

impl Role {
    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Analyst => "analyst",
            Self::Partner => "partner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a role.
#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`: use admin, analyst or partner")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "admin" => Ok(Self::Admin),
            "analyst" => Ok(Self::Analyst),
            "partner" => Ok(Self::Partner),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// The caller behind a valid key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id (kept as provenance on what the caller writes).
    pub key_id: i64,
    /// The key's role.
    pub role: Role,
    /// Agencies (each with its subtree) the key is limited to; empty means unlimited.
    pub scope: Vec<AgencyId>,
}

impl Principal {
    /// The agencies (each with its subtree) whose figures and rows this key may read, or `None`
    /// for all. Only analyst keys are limited in what they read: a partner key reads nothing, and
    /// an admin key could issue itself an unlimited one.
    pub fn read_limit(&self) -> Option<Vec<i64>> {
        (self.role == Role::Analyst && !self.scope.is_empty()).then(|| self.scope.iter().map(|a| a.0).collect())
    }
}

/// Why a key could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An agency code named for the scope does not exist today.
    #[error("unknown agency `{0}`")]
    UnknownAgency(String),
    /// A partner key must name the agencies it may post for.
    #[error("a partner key needs at least one --agency")]
    PartnerWithoutAgency,
    /// The name is empty or too long.
    #[error("a key needs a name of 1–200 characters")]
    BadName,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for KeyError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error.into())
    }
}

/// A key just created: the secret exists only here.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key's id.
    pub id: i64,
    /// The bearer token; shown once, never stored.
    pub secret: String,
}

/// A key as listed (never with its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyInfo {
    /// The key's id.
    pub id: i64,
    /// Who or what it was issued to.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Codes of the agencies it is limited to.
    pub agencies: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a key; the returned secret is the only copy.
pub fn create_key(
    conn: &mut DbConnection,
    name: &str,
    role: Role,
    agency_codes: &[String],
) -> Result<CreatedKey, KeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(KeyError::BadName);
    }
    if role == Role::Partner && agency_codes.is_empty() {
        return Err(KeyError::PartnerWithoutAgency);
    }
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
    crate::db::write_transaction(conn, |conn| {
        let mut scope = Vec::new();
        for code in agency_codes {
            let agency = agency::store::resolve(conn, code, agency::today())?
                .ok_or_else(|| KeyError::UnknownAgency(code.clone()))?;
            scope.push(agency.id);
        }
        let id: i64 = match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(api_keys::table)
                .values(new_key_row(name, role, &secret))
                .returning(api_keys::id)
                .get_result(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::insert_into(api_keys::table)
                .values(new_key_row(name, role, &secret))
                .returning(api_keys::id)
                .get_result(sqlite)?,
        };
        for agency_id in scope {
            diesel::insert_into(api_key_agencies::table)
                .values((api_key_agencies::key_id.eq(id), api_key_agencies::agency_id.eq(agency_id)))
                .execute(conn)?;
        }
        Ok(CreatedKey { id, secret: format!("{TOKEN_PREFIX}{id}_{secret}") })
    })
}

#[allow(clippy::type_complexity, reason = "a tuple of diesel column assignments")]
fn new_key_row(
    name: &str,
    role: Role,
    secret: &str,
) -> (
    diesel::dsl::Eq<api_keys::name, String>,
    diesel::dsl::Eq<api_keys::role, &'static str>,
    diesel::dsl::Eq<api_keys::secret_hash, String>,
    diesel::dsl::Eq<api_keys::created_at, NaiveDateTime>,
) {
    (
        api_keys::name.eq(name.to_owned()),
        api_keys::role.eq(role.as_str()),
        api_keys::secret_hash.eq(hash_secret(secret)),
        api_keys::created_at.eq(Utc::now().naive_utc()),
    )
}

/// Every key, newest first.
pub fn list_keys(conn: &mut DbConnection) -> Result<Vec<KeyInfo>, DbError> {
    type Row = (i64, String, String, NaiveDateTime, Option<NaiveDateTime>);
    let rows: Vec<Row> = api_keys::table
        .order(api_keys::id.desc())
        .select((api_keys::id, api_keys::name, api_keys::role, api_keys::created_at, api_keys::revoked_at))
        .load(conn)?;
    let scopes: Vec<(i64, String)> = api_key_agencies::table
        .inner_join(agencies::table)
        .select((api_key_agencies::key_id, agencies::code))
        .order((api_key_agencies::key_id, agencies::code))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, name, role, created_at, revoked_at)| {
            let role = role.parse().ok()?;
            let agencies = scopes.iter().filter(|(key, _)| *key == id).map(|(_, code)| code.clone()).collect();
            let utc = |at: NaiveDateTime| DateTime::from_naive_utc_and_offset(at, Utc);
            Some(KeyInfo { id, name, role, agencies, created_at: utc(created_at), revoked_at: revoked_at.map(utc) })
        })
        .collect())
}

/// Revokes a key at once. Returns false when there is no such key.
pub fn revoke_key(conn: &mut DbConnection, id: i64) -> Result<bool, DbError> {
    let updated = diesel::update(api_keys::table.find(id).filter(api_keys::revoked_at.is_null()))
        .set(api_keys::revoked_at.eq(Utc::now().naive_utc()))
        .execute(conn)?;
    if updated == 1 {
        return Ok(true);
    }
    Ok(api_keys::table.find(id).count().get_result::<i64>(conn)? == 1)
}

/// The principal of a key that exists and is not revoked (a signed-in session stays valid only
/// while its key does, and reads within the key's agencies).
pub fn active_principal(conn: &mut DbConnection, id: i64) -> Result<Option<Principal>, DbError> {
    let row: Option<(String, Option<NaiveDateTime>)> =
        api_keys::table.find(id).select((api_keys::role, api_keys::revoked_at)).first(conn).optional()?;
    let Some(role) = row.filter(|(_, revoked)| revoked.is_none()).and_then(|(role, _)| role.parse::<Role>().ok())
    else {
        return Ok(None);
    };
    Ok(Some(Principal { key_id: id, role, scope: key_scope(conn, id)? }))
}

fn key_scope(conn: &mut DbConnection, id: i64) -> Result<Vec<AgencyId>, DbError> {
    Ok(api_key_agencies::table
        .filter(api_key_agencies::key_id.eq(id))
        .select(api_key_agencies::agency_id)
        .load::<i64>(conn)?
        .into_iter()
        .map(AgencyId)
        .collect())
}

/// The principal behind a bearer token, or `None` when the token is malformed, unknown or revoked.
pub fn authenticate(conn: &mut DbConnection, token: &str) -> Result<Option<Principal>, DbError> {
    let Some((id, secret)) = token.strip_prefix(TOKEN_PREFIX).and_then(|rest| rest.split_once('_')) else {
        return Ok(None);
    };
    let Ok(id) = id.parse::<i64>() else { return Ok(None) };
    let row: Option<(String, String, Option<NaiveDateTime>)> = api_keys::table
        .find(id)
        .select((api_keys::role, api_keys::secret_hash, api_keys::revoked_at))
        .first(conn)
        .optional()?;
    let Some((role, stored_hash, revoked_at)) = row else { return Ok(None) };
    let presented = hash_secret(secret);
    let matches: bool = presented.as_bytes().ct_eq(stored_hash.as_bytes()).into();
    if !matches || revoked_at.is_some() {
        return Ok(None);
    }
    let Ok(role) = role.parse::<Role>() else { return Ok(None) };
    Ok(Some(Principal { key_id: id, role, scope: key_scope(conn, id)? }))
}
