//! Campaigns: one survey round on one published survey version, over a set of agencies (each with
//! its subtree), open between two instants, on chosen channels.

pub mod context;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::agency::store as agency_store;
use crate::db::schema::{agencies, campaign_agencies, campaigns, tallies};
use crate::db::{DbConnection, DbError};
use crate::survey::model::LocalizedText;
use crate::survey::store as survey_store;

/// Respondents below this count get no estimates, unless the campaign says otherwise.
pub const DEFAULT_MIN_N: i32 = 30;

/// A way responses come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Partner systems through the REST API.
    Api,
    /// The open web link or QR code.
    Link,
    /// Personal one-time links sent by email.
    Invitation,
}

impl Channel {
    /// The channel's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Link => "link",
            Self::Invitation => "invitation",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "api" => Some(Self::Api),
            "link" => Some(Self::Link),
            "invitation" => Some(Self::Invitation),
            _ => None,
        }
    }
}

/// How a campaign's invitations are worded and when non-responders are reminded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// Days after the invitation on which those who have not answered are reminded, each
    /// reminder at most once (for example `[3, 7]`).
    #[serde(default)]
    pub reminders: Vec<u32>,
    /// Subject of the mails per language (default: the campaign's title).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<LocalizedText>,
    /// Greeting that opens the mails per language (default: a polite formula).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<LocalizedText>,
}

/// A campaign as shown by the API.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Campaign {
    /// Slug identifying the campaign.
    pub id: String,
    /// Survey id.
    pub survey: String,
    /// Survey version the campaign uses.
    pub version: i32,
    /// Title per language.
    pub title: LocalizedText,
    /// Codes of the agencies named (each with its subtree), resolved at the opening date.
    pub agencies: Vec<String>,
    /// When responses are first accepted.
    pub opens_at: DateTime<Utc>,
    /// When responses stop being accepted.
    pub closes_at: DateTime<Utc>,
    /// Channels responses may come through.
    pub channels: Vec<Channel>,
    /// Respondents a unit needs before its estimates are shown.
    pub min_n: i32,
    /// Whether the results pages are public.
    pub results_public: bool,
    /// Whether its responses are synthetic (made by `sipas demo`), not real.
    pub synthetic: bool,
    /// Invitation wording and reminders.
    pub mail: MailSettings,
    /// Responses received so far.
    pub responses: i64,
    /// When the campaign was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Campaign {
    /// Whether responses are accepted at `now`.
    pub fn is_open_at(&self, now: DateTime<Utc>) -> bool {
        self.opens_at <= now && now < self.closes_at
    }
}

/// The body of `POST /api/v1/campaigns`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// Slug: lowercase letters, digits and '-', 1–64 characters, starting with a letter or digit.
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9][a-z0-9-]*$")]
    pub id: String,
    /// Survey id.
    #[schema(min_length = 1)]
    pub survey: String,
    /// Survey version (default: the latest).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub version: Option<i32>,
    /// Title per language.
    pub title: LocalizedText,
    /// Agency codes, each bringing its subtree.
    #[schema(min_items = 1)]
    pub agencies: Vec<String>,
    /// When responses are first accepted (RFC 3339).
    pub opens_at: DateTime<Utc>,
    /// When responses stop being accepted (RFC 3339).
    pub closes_at: DateTime<Utc>,
    /// Channels (default: all three).
    #[serde(default)]
    pub channels: Option<Vec<Channel>>,
    /// Minimum respondents per unit for estimates, 1 to 100,000 (default 30).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100_000)]
    pub min_n: Option<i32>,
    /// Invitation wording and reminders.
    #[serde(default)]
    pub mail: Option<MailSettings>,
}

/// The body of `PATCH /api/v1/campaigns/{id}`: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    /// New title.
    pub title: Option<LocalizedText>,
    /// New survey version (only while the campaign has no responses).
    #[schema(minimum = 1)]
    pub version: Option<i32>,
    /// New agency list (only while the campaign has no responses).
    #[schema(min_items = 1)]
    pub agencies: Option<Vec<String>>,
    /// New opening instant.
    pub opens_at: Option<DateTime<Utc>>,
    /// New closing instant.
    pub closes_at: Option<DateTime<Utc>>,
    /// New channels.
    pub channels: Option<Vec<Channel>>,
    /// New minimum respondents, 1 to 100,000.
    #[schema(minimum = 1, maximum = 100_000)]
    pub min_n: Option<i32>,
    /// Publish (or withdraw) the results pages.
    pub results_public: Option<bool>,
    /// New invitation wording and reminders.
    pub mail: Option<MailSettings>,
}

impl CampaignPatch {
    /// The fields given, as JSON (for the audit log).
    pub fn changes(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = value.as_object_mut() {
            fields.retain(|_, v| !v.is_null());
        }
        value
    }
}

/// One field at fault in a campaign request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignProblem {
    /// The field.
    pub field: String,
    /// Stable code.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Why a campaign could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// No such campaign.
    #[error("no campaign `{0}`")]
    NotFound(String),
    /// A campaign with this id exists.
    #[error("campaign `{0}` already exists")]
    AlreadyExists(String),
    /// The request is not coherent.
    #[error("{} problem(s)", .0.len())]
    Invalid(Vec<CampaignProblem>),
    /// The survey version or agencies cannot change once responses exist.
    #[error("campaign `{0}` has responses: its survey version and agencies can no longer change")]
    HasResponses(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for CampaignError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error.into())
    }
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> CampaignProblem {
    CampaignProblem { field: field.to_owned(), code, message: message.into() }
}

fn is_slug(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn utc(naive: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(naive, Utc)
}

/// Resolves agency codes at the opening date, reporting unknown ones.
fn resolve_agencies(
    conn: &mut DbConnection,
    codes: &[String],
    opens_at: DateTime<Utc>,
    problems: &mut Vec<CampaignProblem>,
) -> Result<Vec<i64>, DbError> {
    let date = opens_at.with_timezone(&vietnam()).date_naive();
    if codes.is_empty() {
        problems.push(invalid("agencies", "required", "name at least one agency"));
    }
    let mut ids = BTreeSet::new();
    for (index, code) in codes.iter().enumerate() {
        match agency_store::resolve(conn, code, date)? {
            Some(agency) => {
                ids.insert(agency.id);
            }
            None => problems.push(invalid(
                &format!("agencies[{index}]"),
                "unknown_agency",
                format!("no agency `{code}` on the opening date {date}"),
            )),
        }
    }
    Ok(ids.into_iter().collect())
}

use crate::agency::vietnam;

fn check_common(
    title: &LocalizedText,
    opens_at: DateTime<Utc>,
    closes_at: DateTime<Utc>,
    channels: &[Channel],
    min_n: i32,
    languages: &[String],
    problems: &mut Vec<CampaignProblem>,
) {
    for language in languages {
        if title.0.get(language).is_none_or(|t| t.trim().is_empty()) {
            problems.push(invalid(
                &format!("title.{language}"),
                "required",
                "a title in each of the survey's languages",
            ));
        }
    }
    if closes_at <= opens_at {
        problems.push(invalid("closes_at", "before_opening", "must be after opens_at"));
    }
    if channels.is_empty() {
        problems.push(invalid("channels", "required", "name at least one channel"));
    }
    if !(1..=100_000).contains(&min_n) {
        problems.push(invalid("min_n", "out_of_range", "must be from 1 to 100000"));
    }
}

fn check_mail(mail: &MailSettings, problems: &mut Vec<CampaignProblem>) {
    if mail.reminders.len() > 5 {
        problems.push(invalid("mail.reminders", "too_many", "at most 5 reminders"));
    }
    for (index, days) in mail.reminders.iter().enumerate() {
        if !(1..=365).contains(days) {
            problems.push(invalid(&format!("mail.reminders[{index}]"), "out_of_range", "days from 1 to 365"));
        }
    }
}

/// Creates a campaign.
pub fn create(conn: &mut DbConnection, new: &NewCampaign) -> Result<Campaign, CampaignError> {
    crate::db::write_transaction(conn, |conn| {
        let mut problems = Vec::new();
        if !is_slug(&new.id) {
            problems.push(invalid("id", "invalid", "1–64 lowercase letters, digits or '-'"));
        }
        let definition = survey_store::get(conn, &new.survey, new.version)?;
        let languages = match &definition {
            Some(d) => d.languages.clone(),
            None => {
                let field = if new.version.is_some() { "version" } else { "survey" };
                problems.push(invalid(
                    field,
                    "unknown_survey",
                    format!("no published survey `{}` in that version", new.survey),
                ));
                Vec::new()
            }
        };
        let channels = new.channels.clone().unwrap_or_else(|| vec![Channel::Api, Channel::Link, Channel::Invitation]);
        let min_n = new.min_n.unwrap_or(DEFAULT_MIN_N);
        check_common(&new.title, new.opens_at, new.closes_at, &channels, min_n, &languages, &mut problems);
        let mail = new.mail.clone().unwrap_or_default();
        check_mail(&mail, &mut problems);
        let agency_ids = resolve_agencies(conn, &new.agencies, new.opens_at, &mut problems)?;
        if !problems.is_empty() {
            return Err(CampaignError::Invalid(problems));
        }
        let Some(definition) = definition else { return Err(CampaignError::Invalid(problems)) };
        if campaigns::table.find(&new.id).count().get_result::<i64>(conn)? > 0 {
            return Err(CampaignError::AlreadyExists(new.id.clone()));
        }
        let now = Utc::now().trunc_subsecs(6).naive_utc();
        diesel::insert_into(campaigns::table)
            .values((
                campaigns::id.eq(&new.id),
                campaigns::survey_id.eq(&definition.id),
                campaigns::survey_version.eq(definition.version),
                campaigns::title.eq(serde_json::to_string(&new.title).unwrap_or_default()),
                campaigns::opens_at.eq(new.opens_at.naive_utc()),
                campaigns::closes_at.eq(new.closes_at.naive_utc()),
                campaigns::channels.eq(channel_text(&channels)),
                campaigns::min_n.eq(min_n),
                campaigns::results_public.eq(false),
                campaigns::created_at.eq(now),
                campaigns::updated_at.eq(now),
                campaigns::mail_settings.eq(serde_json::to_string(&mail).unwrap_or_else(|_| "{}".to_owned())),
            ))
            .execute(conn)
            .map_err(|e| match DbError::from(e) {
                error if error.is_unique_violation() => CampaignError::AlreadyExists(new.id.clone()),
                error => CampaignError::Db(error),
            })?;
        for agency_id in agency_ids {
            diesel::insert_into(campaign_agencies::table)
                .values((campaign_agencies::campaign_id.eq(&new.id), campaign_agencies::agency_id.eq(agency_id)))
                .execute(conn)?;
        }
        get(conn, &new.id)?.ok_or_else(|| CampaignError::NotFound(new.id.clone()))
    })
}

fn channel_text(channels: &[Channel]) -> String {
    let set: BTreeSet<Channel> = channels.iter().copied().collect();
    set.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
}

/// A campaign as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = campaigns)]
struct CampaignRow {
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

fn from_row(conn: &mut DbConnection, row: CampaignRow) -> Result<Campaign, DbError> {
    let CampaignRow {
        id,
        survey_id: survey,
        survey_version: version,
        title,
        opens_at,
        closes_at,
        channels,
        min_n,
        results_public,
        created_at,
        updated_at,
        mail_settings,
        synthetic,
    } = row;
    let agencies: Vec<String> = campaign_agencies::table
        .inner_join(agencies::table)
        .filter(campaign_agencies::campaign_id.eq(&id))
        .select(agencies::code)
        .order(agencies::code)
        .load(conn)?;
    // Every response is tallied once at the root of its agency's chain (cell `*`), or is still
    // listed as pending: summing those few rows and counting that short list is exact and, unlike
    // counting the responses, costs the same at ten million responses as at ten. Both are read in
    // one snapshot, so that a response being moved from one to the other is counted once.
    let responses = crate::db::read_snapshot(conn, |conn| -> Result<i64, DbError> {
        let at_roots: Vec<i64> = tallies::table
            .filter(tallies::campaign_id.eq(&id))
            .filter(tallies::cell.eq(crate::intake::tally::ALL_CELL))
            .filter(
                tallies::agency_id.eq_any(agencies::table.filter(agencies::parent_id.is_null()).select(agencies::id)),
            )
            .select(tallies::respondents)
            .load(conn)?;
        Ok(at_roots.iter().sum::<i64>() + crate::intake::pending::pending_count(conn, &id)?)
    })?;
    Ok(Campaign {
        title: serde_json::from_str(&title).unwrap_or_default(),
        channels: channels.split(',').filter_map(Channel::parse).collect(),
        opens_at: utc(opens_at),
        closes_at: utc(closes_at),
        created_at: utc(created_at),
        updated_at: utc(updated_at),
        id,
        survey,
        version,
        agencies,
        min_n,
        results_public,
        synthetic,
        mail: serde_json::from_str(&mail_settings).unwrap_or_default(),
        responses,
    })
}

/// One campaign.
pub fn get(conn: &mut DbConnection, id: &str) -> Result<Option<Campaign>, DbError> {
    let row: Option<CampaignRow> = campaigns::table.find(id).select(CampaignRow::as_select()).first(conn).optional()?;
    row.map(|row| from_row(conn, row)).transpose()
}

/// Every campaign, newest opening first.
pub fn list(conn: &mut DbConnection) -> Result<Vec<Campaign>, DbError> {
    let rows: Vec<CampaignRow> =
        campaigns::table.select(CampaignRow::as_select()).order(campaigns::opens_at.desc()).load(conn)?;
    rows.into_iter().map(|row| from_row(conn, row)).collect()
}

/// Changes a campaign. The survey version and agencies are fixed once it has responses.
pub fn update(conn: &mut DbConnection, id: &str, patch: &CampaignPatch) -> Result<Campaign, CampaignError> {
    crate::db::write_transaction(conn, |conn| {
        let current = get(conn, id)?.ok_or_else(|| CampaignError::NotFound(id.to_owned()))?;
        let structural = patch.version.is_some_and(|v| v != current.version) || patch.agencies.is_some();
        if structural && current.responses > 0 {
            return Err(CampaignError::HasResponses(id.to_owned()));
        }
        let mut problems = Vec::new();
        let version = patch.version.unwrap_or(current.version);
        let definition = survey_store::get(conn, &current.survey, Some(version))?;
        if definition.is_none() {
            problems.push(invalid(
                "version",
                "unknown_survey",
                format!("survey `{}` has no version {version}", current.survey),
            ));
        }
        let languages = definition.map(|d| d.languages).unwrap_or_default();
        let title = patch.title.clone().unwrap_or(current.title.clone());
        let opens_at = patch.opens_at.unwrap_or(current.opens_at);
        let closes_at = patch.closes_at.unwrap_or(current.closes_at);
        let channels = patch.channels.clone().unwrap_or(current.channels.clone());
        let min_n = patch.min_n.unwrap_or(current.min_n);
        check_common(&title, opens_at, closes_at, &channels, min_n, &languages, &mut problems);
        let mail = patch.mail.clone().unwrap_or(current.mail.clone());
        check_mail(&mail, &mut problems);
        let agency_ids = match &patch.agencies {
            Some(codes) => Some(resolve_agencies(conn, codes, opens_at, &mut problems)?),
            None => None,
        };
        if !problems.is_empty() {
            return Err(CampaignError::Invalid(problems));
        }
        diesel::update(campaigns::table.find(id))
            .set((
                campaigns::survey_version.eq(version),
                campaigns::title.eq(serde_json::to_string(&title).unwrap_or_default()),
                campaigns::opens_at.eq(opens_at.naive_utc()),
                campaigns::closes_at.eq(closes_at.naive_utc()),
                campaigns::channels.eq(channel_text(&channels)),
                campaigns::min_n.eq(min_n),
                campaigns::results_public.eq(patch.results_public.unwrap_or(current.results_public)),
                campaigns::mail_settings.eq(serde_json::to_string(&mail).unwrap_or_else(|_| "{}".to_owned())),
                campaigns::updated_at.eq(Utc::now().trunc_subsecs(6).naive_utc()),
            ))
            .execute(conn)?;
        if let Some(agency_ids) = agency_ids {
            diesel::delete(campaign_agencies::table.filter(campaign_agencies::campaign_id.eq(id))).execute(conn)?;
            for agency_id in agency_ids {
                diesel::insert_into(campaign_agencies::table)
                    .values((campaign_agencies::campaign_id.eq(id), campaign_agencies::agency_id.eq(agency_id)))
                    .execute(conn)?;
            }
        }
        get(conn, id)?.ok_or_else(|| CampaignError::NotFound(id.to_owned()))
    })
}
