//! Copying a whole sipas database to another backend (`sipas copy --from URL --to URL`), for
//! moving from SQLite to PostgreSQL when a deployment outgrows one machine (or back, for an
//! analyst's offline copy). Every table is copied in dependency order, streamed from the source
//! and written in chunks inside one transaction on the target, so the target holds all of it or
//! nothing. Row structs below mirror `schema.rs` column for column: a column added there without
//! being added here fails to compile (`Selectable` checks it). Their `None`s are written as NULL
//! (`treat_none_as_default_value = false`): what the source holds, and on SQLite the only way a
//! chunk is one multi-row INSERT (diesel writes rows that may take a column's default one
//! statement each there, SQLite having no `DEFAULT` in `VALUES`).

use chrono::{NaiveDate, NaiveDateTime};
use diesel::connection::DefaultLoadingMode;
use diesel::pg::PgRowByRowLoadingMode;
use diesel::prelude::*;

use super::schema;
use super::{DbConnection, DbError};

/// Rows written per INSERT (the widest table has 16 columns: 16,000 parameters, under both
/// backends' limits).
const CHUNK: usize = 1_000;

/// Why a copy was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target already holds data of its own.
    #[error("the target database already holds {0}: copy only into a fresh database")]
    TargetNotEmpty(&'static str),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for CopyError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error.into())
    }
}

/// Rows copied per table, in the order copied.
pub type CopyReport = Vec<(&'static str, usize)>;

/// A row of `survey_versions`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::survey_versions, treat_none_as_default_value = false)]
struct SurveyVersionsRow {
    survey_id: String,
    version: i32,
    definition: String,
    content_hash: String,
    published_at: NaiveDateTime,
}

/// A row of `agencies`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::agencies, treat_none_as_default_value = false)]
struct AgenciesRow {
    id: i64,
    code: String,
    name_vi: String,
    name_en: Option<String>,
    level: String,
    division_type: Option<String>,
    parent_id: Option<i64>,
    valid_from: Option<NaiveDate>,
    valid_to: Option<NaiveDate>,
    search_name: String,
}

/// A row of `agency_successions`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::agency_successions, treat_none_as_default_value = false)]
struct AgencySuccessionsRow {
    predecessor_id: i64,
    successor_id: i64,
    effective_on: NaiveDate,
}

/// A row of `api_keys`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::api_keys, treat_none_as_default_value = false)]
struct ApiKeysRow {
    id: i64,
    name: String,
    role: String,
    secret_hash: String,
    created_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
}

/// A row of `api_key_agencies`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::api_key_agencies, treat_none_as_default_value = false)]
struct ApiKeyAgenciesRow {
    key_id: i64,
    agency_id: i64,
}

/// A row of `server_secrets`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::server_secrets, treat_none_as_default_value = false)]
struct ServerSecretsRow {
    name: String,
    value: String,
    created_at: NaiveDateTime,
}

/// A row of `campaigns`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::campaigns, treat_none_as_default_value = false)]
struct CampaignsRow {
    id: String,
    survey_id: String,
    survey_version: i32,
    title: String,
    opens_at: NaiveDateTime,
    closes_at: NaiveDateTime,
    channels: String,
    min_n: i32,
    results_public: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    mail_settings: String,
    synthetic: bool,
}

/// A row of `campaign_agencies`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::campaign_agencies, treat_none_as_default_value = false)]
struct CampaignAgenciesRow {
    campaign_id: String,
    agency_id: i64,
}

/// A row of `responses`, every column (also used by the batch benchmark's baseline).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::responses, treat_none_as_default_value = false)]
pub struct ResponsesRow {
    /// Response id (ULID).
    pub id: String,
    /// Campaign id.
    pub campaign_id: String,
    /// Agency id.
    pub agency_id: i64,
    /// `individual` or `organization`.
    pub respondent_type: String,
    /// Language answered in.
    pub language: String,
    /// Channel it came through.
    pub channel: String,
    /// Key that posted it.
    pub key_id: Option<i64>,
    /// Procedure code.
    pub service: Option<String>,
    /// Keyed hash of the dossier identifier.
    pub dossier_hash: Option<String>,
    /// Compact answers.
    pub answers: String,
    /// When the respondent finished.
    pub completed_at: Option<NaiveDateTime>,
    /// When it was stored.
    pub received_at: NaiveDateTime,
}

/// A row of `idempotency_keys`, every column (also used by the batch benchmark's baseline).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::idempotency_keys, treat_none_as_default_value = false)]
pub struct IdempotencyKeysRow {
    /// The key's namespace (`key:ID` for an API key).
    pub scope: String,
    /// The client's key (a batch item's `client_id`).
    pub idempotency_key: String,
    /// Hash of the request's content.
    pub request_hash: String,
    /// Status of the first result.
    pub status: i32,
    /// The first result's record.
    pub body: String,
    /// When it was recorded.
    pub created_at: NaiveDateTime,
}

/// A row of `tallies`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::tallies, treat_none_as_default_value = false)]
struct TalliesRow {
    campaign_id: String,
    agency_id: i64,
    respondent_type: String,
    cell: String,
    respondents: i64,
    data: Vec<u8>,
}

/// A row of `pending_tallies`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::pending_tallies, treat_none_as_default_value = false)]
struct PendingTalliesRow {
    response_id: String,
    campaign_id: String,
    created_at: NaiveDateTime,
}

/// A row of `populations`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::populations, treat_none_as_default_value = false)]
struct PopulationsRow {
    campaign_id: String,
    agency_id: i64,
    cell: String,
    population: i64,
}

/// A row of `invitations`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::invitations, treat_none_as_default_value = false)]
struct InvitationsRow {
    id: String,
    campaign_id: String,
    agency_id: i64,
    email: Option<String>,
    email_hash: String,
    language: String,
    dossier: Option<String>,
    token_hash: String,
    status: String,
    used: bool,
    opted_out: bool,
    reminders_sent: i32,
    failure: Option<String>,
    created_at: NaiveDateTime,
    sent_at: Option<NaiveDateTime>,
    purged: bool,
}

/// A row of `outbox`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::outbox, treat_none_as_default_value = false)]
struct OutboxRow {
    id: String,
    invitation_id: String,
    kind: String,
    status: String,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    claimed_until: Option<NaiveDateTime>,
    last_error: Option<String>,
    created_at: NaiveDateTime,
    sent_at: Option<NaiveDateTime>,
}

/// A row of `audit_log`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::audit_log, treat_none_as_default_value = false)]
struct AuditLogRow {
    id: i64,
    at: NaiveDateTime,
    key_id: Option<i64>,
    action: String,
    target: String,
    details: String,
}
/// Streams every row of a table from `source` and inserts it into `target` in chunks.
macro_rules! copy_table {
    ($table:ident, $row:ty, $source:expr, $target:expr, $report:expr) => {{
        let mut copied = 0usize;
        let mut chunk: Vec<$row> = Vec::with_capacity(CHUNK);
        let mut flush = |chunk: &mut Vec<$row>, target: &mut DbConnection| -> Result<(), CopyError> {
            if chunk.is_empty() {
                return Ok(());
            }
            let insert = diesel::insert_into(schema::$table::table).values(&*chunk);
            match target {
                DbConnection::Sqlite(t) => insert.execute(t)?,
                DbConnection::Postgres(t) => insert.execute(t)?,
            };
            copied += chunk.len();
            chunk.clear();
            Ok(())
        };
        // One query per backend: `as_select` is bound to the backend it reads from.
        match $source {
            DbConnection::Sqlite(s) => {
                for row in schema::$table::table.select(<$row>::as_select()).load_iter::<$row, DefaultLoadingMode>(s)? {
                    chunk.push(row?);
                    if chunk.len() == CHUNK {
                        flush(&mut chunk, $target)?;
                    }
                }
            }
            DbConnection::Postgres(s) => {
                for row in
                    schema::$table::table.select(<$row>::as_select()).load_iter::<$row, PgRowByRowLoadingMode>(s)?
                {
                    chunk.push(row?);
                    if chunk.len() == CHUNK {
                        flush(&mut chunk, $target)?;
                    }
                }
            }
        }
        flush(&mut chunk, $target)?;
        $report.push((stringify!($table), copied));
    }};
}

/// Tables in the order rows are copied (referenced tables first).
pub const TABLES: [&str; 16] = [
    "survey_versions",
    "agencies",
    "agency_successions",
    "api_keys",
    "api_key_agencies",
    "server_secrets",
    "campaigns",
    "campaign_agencies",
    "responses",
    "idempotency_keys",
    "tallies",
    "pending_tallies",
    "populations",
    "invitations",
    "outbox",
    "audit_log",
];

/// Copies every row of `source` into `target`. Both must be migrated to this version. The target
/// may hold the shipped surveys and registry (they are replaced by the source's) but no
/// campaigns, keys or responses of its own.
pub fn copy_database(source: &mut DbConnection, target: &mut DbConnection) -> Result<CopyReport, CopyError> {
    for (table, what) in [("campaigns", "campaigns"), ("api_keys", "API keys"), ("responses", "responses")] {
        if count(target, table)? > 0 {
            return Err(CopyError::TargetNotEmpty(what));
        }
    }
    super::write_transaction(target, |target| {
        for table in TABLES.iter().rev() {
            diesel::sql_query(format!("DELETE FROM {table}")).execute(target)?;
        }
        let mut report = CopyReport::new();
        copy_table!(survey_versions, SurveyVersionsRow, &mut *source, target, report);
        copy_table!(agencies, AgenciesRow, &mut *source, target, report);
        copy_table!(agency_successions, AgencySuccessionsRow, &mut *source, target, report);
        copy_table!(api_keys, ApiKeysRow, &mut *source, target, report);
        copy_table!(api_key_agencies, ApiKeyAgenciesRow, &mut *source, target, report);
        copy_table!(server_secrets, ServerSecretsRow, &mut *source, target, report);
        copy_table!(campaigns, CampaignsRow, &mut *source, target, report);
        copy_table!(campaign_agencies, CampaignAgenciesRow, &mut *source, target, report);
        copy_table!(responses, ResponsesRow, &mut *source, target, report);
        copy_table!(idempotency_keys, IdempotencyKeysRow, &mut *source, target, report);
        copy_table!(tallies, TalliesRow, &mut *source, target, report);
        copy_table!(pending_tallies, PendingTalliesRow, &mut *source, target, report);
        copy_table!(populations, PopulationsRow, &mut *source, target, report);
        copy_table!(invitations, InvitationsRow, &mut *source, target, report);
        copy_table!(outbox, OutboxRow, &mut *source, target, report);
        copy_table!(audit_log, AuditLogRow, &mut *source, target, report);
        if let DbConnection::Postgres(pg) = target {
            // Ids were copied as they were: move the sequences past them.
            for table in ["agencies", "api_keys", "audit_log"] {
                diesel::sql_query(format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ))
                .execute(pg)?;
            }
        }
        Ok(report)
    })
}

/// Rows in a table.
pub fn count(conn: &mut DbConnection, table: &str) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let query = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"));
    Ok(query.get_result::<Count>(conn)?.n)
}
