//! The one write path for responses: every channel (partner API, citizen form, invitation link)
//! parses its input into a [`Submission`], [`prepare`]s it against the campaign (checks that need
//! no lock), and hands it to the [`writer::Writer`], which commits groups of submissions in one
//! transaction each (group commit) and answers each submission only after that commit.

pub mod pending;
pub mod store;
pub mod tally;
pub mod verify;
pub mod writer;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::{Principal, Role};
use crate::campaign::Channel;
use crate::campaign::context::CampaignContext;
use crate::survey::answers::{AnswerId, AnswerPairs, BorrowedKey, RawAnswer, check_answers, check_pairs};
use tally::{Tally, response_cells, response_tally};

/// Longest accepted idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Longest accepted service (procedure) code and dossier identifier.
const MAX_REFERENCE_LENGTH: usize = 128;

/// One field at fault in a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionProblem {
    /// `campaign`, `agency`, `answers.q12`, …
    pub field: String,
    /// Stable code.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

fn fault(field: &str, code: &'static str, message: impl Into<String>) -> SubmissionProblem {
    SubmissionProblem { field: field.to_owned(), code, message: message.into() }
}

/// Who is submitting, through which channel.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The channel.
    pub channel: Channel,
    /// The API key, for the partner API (kept as provenance, and the idempotency scope).
    pub principal: Option<Principal>,
}

impl Origin {
    /// The namespace idempotency keys live in.
    pub fn idempotency_scope(&self) -> String {
        match &self.principal {
            Some(principal) => format!("key:{}", principal.key_id),
            None => format!("channel:{}", self.channel.as_str()),
        }
    }
}

/// A submission's fields, read from a JSON object (its answers' ids may borrow from the request
/// body: `'a`).
#[derive(Debug, Clone, PartialEq)]
pub struct Submission<'a> {
    /// Campaign id.
    pub campaign: String,
    /// Agency code (resolved at the campaign's opening date).
    pub agency: String,
    /// `individual` or `organization`.
    pub respondent_type: String,
    /// Language the respondent answered in.
    pub language: Option<String>,
    /// The answers object.
    pub answers: SubmittedAnswers<'a>,
    /// Administrative procedure code.
    pub service: Option<String>,
    /// Dossier identifier (stored only as a keyed hash).
    pub dossier: Option<String>,
    /// When the respondent finished.
    pub completed_at: Option<DateTime<Utc>>,
}

/// A submission's answers as received.
#[derive(Debug, Clone, PartialEq)]
pub enum SubmittedAnswers<'a> {
    /// A parsed JSON value (an object when well formed).
    Parsed(Value),
    /// An object read as (id, answer) pairs in the order given ([`RawSubmission`]).
    Pairs(AnswerPairs<'a>),
}

/// The members a response's body may have (a batch item: these and `client_id`).
pub const SUBMISSION_FIELDS: [&str; 8] =
    ["campaign", "agency", "respondent_type", "language", "answers", "service", "dossier", "completed_at"];

/// Reads a submission from a JSON value, listing every field at fault. `extra` names fields the
/// caller handles itself (a batch item's `client_id`). The value is taken, so that its answers
/// are moved, not copied.
pub fn parse_submission(value: Value, extra: &[&str]) -> Result<Submission<'static>, Vec<SubmissionProblem>> {
    RawSubmission::from_value(value)?.parse(extra)
}

/// A submission read from JSON text without building JSON objects: its other fields as (name,
/// value) pairs, each name once with its last value, names and plain strings borrowed from the
/// body; its answers as (id, answer) pairs. It parses exactly as the same JSON read as a value
/// ([`parse_submission`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RawSubmission<'a> {
    fields: Vec<(AnswerId<'a>, RawAnswer<'a>)>,
    answers: Option<SubmittedAnswers<'a>>,
}

impl<'a> RawSubmission<'a> {
    /// Reads a request body; `None` when it is not a well-formed JSON object (the caller then
    /// reads it as a value, which says what is wrong).
    pub fn from_slice(body: &'a [u8]) -> Option<Self> {
        read_json_text(body)
    }

    /// A submission already read as a value (its answers moved, not copied); refused unless it
    /// is an object.
    pub fn from_value(value: Value) -> Result<Self, Vec<SubmissionProblem>> {
        let Value::Object(mut object) = value else {
            return Err(vec![fault("", "wrong_type", "the body must be a JSON object")]);
        };
        let answers = object.remove("answers").map(SubmittedAnswers::Parsed);
        let fields = object.into_iter().map(|(name, value)| (AnswerId::Owned(name), RawAnswer::from(value))).collect();
        Ok(Self { fields, answers })
    }

    /// A field other than `answers`, if it is a string.
    pub fn text_field(&self, name: &str) -> Option<&str> {
        match field_of(&self.fields, name) {
            Some(RawAnswer::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// Reads its fields, listing every one at fault (`extra`: fields the caller handles itself).
    pub fn parse(self, extra: &[&str]) -> Result<Submission<'a>, Vec<SubmissionProblem>> {
        let Self { fields, answers } = self;
        let mut problems = Vec::new();
        let mut unknown: Vec<&str> = fields
            .iter()
            .map(|(key, _)| key.as_ref())
            .filter(|key| !SUBMISSION_FIELDS.contains(key) && !extra.contains(key))
            .collect();
        // Listed as a parsed object's keys would be: in order.
        unknown.sort_unstable();
        for key in unknown {
            problems.push(fault(key, "unknown_field", format!("`{key}` is not a field of a response")));
        }
        let text = |name: &str, required: bool, problems: &mut Vec<SubmissionProblem>| -> Option<String> {
            match field_of(&fields, name) {
                None | Some(RawAnswer::Other(Value::Null)) => {
                    if required {
                        problems.push(fault(name, "required", "this field is required"));
                    }
                    None
                }
                Some(RawAnswer::Text(s)) if s.chars().count() <= MAX_REFERENCE_LENGTH => Some(s.trim().to_owned()),
                Some(RawAnswer::Text(_)) => {
                    problems.push(fault(name, "too_long", format!("at most {MAX_REFERENCE_LENGTH} characters")));
                    None
                }
                Some(_) => {
                    problems.push(fault(name, "wrong_type", "must be a string"));
                    None
                }
            }
        };
        let campaign = text("campaign", true, &mut problems);
        let agency = text("agency", true, &mut problems);
        let respondent_type = text("respondent_type", true, &mut problems);
        if let Some(kind) = &respondent_type
            && kind != "individual"
            && kind != "organization"
        {
            problems.push(fault("respondent_type", "invalid", "must be `individual` or `organization`"));
        }
        let language = text("language", false, &mut problems);
        let service = text("service", false, &mut problems).filter(|s| !s.is_empty());
        let dossier = text("dossier", false, &mut problems).filter(|s| !s.is_empty());
        let completed_at =
            text("completed_at", false, &mut problems).and_then(|raw| match DateTime::parse_from_rfc3339(&raw) {
                Ok(at) => Some(at.with_timezone(&Utc)),
                Err(_) => {
                    problems.push(fault("completed_at", "invalid", "must be an RFC 3339 date-time"));
                    None
                }
            });
        let answers = match answers {
            None | Some(SubmittedAnswers::Parsed(Value::Null)) => {
                problems.push(fault("answers", "required", "this field is required"));
                SubmittedAnswers::Parsed(Value::Object(Map::new()))
            }
            Some(answers @ (SubmittedAnswers::Parsed(Value::Object(_)) | SubmittedAnswers::Pairs(_))) => answers,
            Some(_) => {
                problems.push(fault("answers", "wrong_type", "must be an object of question id → answer"));
                SubmittedAnswers::Parsed(Value::Object(Map::new()))
            }
        };
        match (campaign, agency, respondent_type) {
            (Some(campaign), Some(agency), Some(respondent_type)) if problems.is_empty() => {
                Ok(Submission { campaign, agency, respondent_type, language, answers, service, dossier, completed_at })
            }
            _ => Err(problems),
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawSubmission<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;

        impl<'de> serde::de::Visitor<'de> for RawVisitor {
            type Value = RawSubmission<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawSubmission<'de>, A::Error> {
                let mut submission =
                    RawSubmission { fields: Vec::with_capacity(SUBMISSION_FIELDS.len()), answers: None };
                while let Some(BorrowedKey(key)) = map.next_key()? {
                    // A repeated key keeps its last value, as in a parsed object.
                    if key == "answers" {
                        submission.answers = Some(map.next_value()?);
                    } else {
                        let value = map.next_value()?;
                        match submission.fields.iter_mut().find(|(name, _)| *name == key) {
                            Some((_, earlier)) => *earlier = value,
                            None => submission.fields.push((key, value)),
                        }
                    }
                }
                Ok(submission)
            }
        }

        deserializer.deserialize_map(RawVisitor)
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for SubmittedAnswers<'a> {
    /// An object as [`AnswerPairs`]; anything else as the value it is (to be refused).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnswersVisitor;

        impl<'de> serde::de::Visitor<'de> for AnswersVisitor {
            type Value = SubmittedAnswers<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("any JSON value")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<SubmittedAnswers<'de>, A::Error> {
                AnswerPairs::from_map(map).map(SubmittedAnswers::Pairs)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<SubmittedAnswers<'de>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                Ok(SubmittedAnswers::Parsed(Value::Array(items)))
            }

            fn visit_bool<E>(self, value: bool) -> Result<SubmittedAnswers<'de>, E> {
                Ok(SubmittedAnswers::Parsed(Value::Bool(value)))
            }

            fn visit_i64<E>(self, value: i64) -> Result<SubmittedAnswers<'de>, E> {
                Ok(SubmittedAnswers::Parsed(Value::from(value)))
            }

            fn visit_u64<E>(self, value: u64) -> Result<SubmittedAnswers<'de>, E> {
                Ok(SubmittedAnswers::Parsed(Value::from(value)))
            }

            fn visit_f64<E>(self, value: f64) -> Result<SubmittedAnswers<'de>, E> {
                Ok(SubmittedAnswers::Parsed(Value::from(value)))
            }

            fn visit_str<E>(self, value: &str) -> Result<SubmittedAnswers<'de>, E> {
                Ok(SubmittedAnswers::Parsed(Value::from(value)))
            }

            fn visit_string<E>(self, value: String) -> Result<SubmittedAnswers<'de>, E> {
                Ok(SubmittedAnswers::Parsed(Value::String(value)))
            }

            fn visit_unit<E>(self) -> Result<SubmittedAnswers<'de>, E> {
                Ok(SubmittedAnswers::Parsed(Value::Null))
            }
        }

        deserializer.deserialize_any(AnswersVisitor)
    }
}

/// A submission's field other than `answers`.
fn field_of<'f, 'a>(fields: &'f [(AnswerId<'a>, RawAnswer<'a>)], name: &str) -> Option<&'f RawAnswer<'a>> {
    fields.iter().find(|(key, _)| key == name).map(|(_, value)| value)
}

/// Reads JSON from a body checked as UTF-8 once, as a whole: read as bytes, each string would be
/// checked on its own (a hundred short ones per response, 2% of a batch's time).
fn read_json_text<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    serde_json::from_str(std::str::from_utf8(body).ok()?).ok()
}

/// A batch body read without building JSON objects of its items' answers.
#[derive(Debug, serde::Deserialize)]
pub struct RawBatch<'a> {
    /// The items.
    #[serde(borrow)]
    pub items: Vec<RawSubmission<'a>>,
}

impl<'a> RawBatch<'a> {
    /// Reads a batch body; `None` when it is not `{"items": [object, …]}` of well-formed JSON
    /// (the caller then reads it as a value, which says what is wrong).
    pub fn from_slice(body: &'a [u8]) -> Option<Self> {
        read_json_text(body)
    }
}

/// A submission checked against its campaign, ready to be written.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The campaign it belongs to.
    pub context: Arc<CampaignContext>,
    /// The agency, resolved.
    pub agency_id: i64,
    /// The agency and its ancestors (tally rows).
    pub path: Vec<i64>,
    /// `individual` or `organization`.
    pub respondent_type: String,
    /// Language answered in.
    pub language: String,
    /// Checked answers in their compact stored form ([`crate::survey::answers::Answers::encode`]), encoded here so that
    /// the writer, which every submission waits for, does not.
    pub answers: String,
    /// Procedure code.
    pub service: Option<String>,
    /// Keyed hash of the dossier identifier.
    pub dossier_hash: Option<String>,
    /// When the respondent finished.
    pub completed_at: Option<DateTime<Utc>>,
    /// Channel it came through.
    pub channel: Channel,
    /// Key that posted it.
    pub key_id: Option<i64>,
    /// The idempotency key, when the client gave one.
    pub idempotency: Option<Idempotency>,
    /// The response's contribution to its tallies.
    pub tally: Tally,
    /// The tally cells it counts in.
    pub cells: Vec<String>,
    /// The invitation whose one-time link this came through: claimed in the same transaction
    /// (and never stored with the response).
    pub invitation: Option<String>,
}

/// An idempotency key in its scope, with the hash of the request it came with (to tell a retry
/// from a different request under the same key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The namespace: the API key, or the channel.
    pub scope: String,
    /// The client's key.
    pub key: String,
    /// Hash of the request's content ([`Prepared::content_hash`]).
    pub request_hash: String,
}

/// Prefix of the hashes [`Prepared::content_hash`] gives. Records written before it (a hash of
/// the request's canonical JSON, without prefix) cannot be compared with it: see [`same_request`].
const CONTENT_HASH_PREFIX: &str = "c1:";

/// Whether a request with hash `request_hash` is the one recorded with `recorded` under the same
/// idempotency key. A record without [`CONTENT_HASH_PREFIX`] hashed the request's JSON, which is
/// no longer kept; it is taken as the same request (a retry gets its first result rather than a
/// refusal), and such records are gone once the retention period has passed.
pub fn same_request(recorded: &str, request_hash: &str) -> bool {
    recorded == request_hash || !recorded.starts_with(CONTENT_HASH_PREFIX)
}

/// Why a submission was refused before reaching the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong content (422).
    Invalid(Vec<SubmissionProblem>),
    /// The key may not post here (403).
    Forbidden(String),
    /// A request that is right in every other way, but outside the campaign's window (422 unless
    /// it is a retry): if its idempotency key already holds the result of the same request, sent
    /// while the campaign was open, that result is the answer.
    OutsideWindow {
        /// Why the window refuses it.
        problems: Vec<SubmissionProblem>,
        /// The key and content hash to look the first result up with.
        idempotency: Idempotency,
    },
}

impl Refusal {
    /// The reason as counted in the metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) | Self::OutsideWindow { .. } => "invalid",
            Self::Forbidden(_) => "forbidden",
        }
    }
}

/// Keyed hash of a dossier identifier: the identifier itself is never stored.
pub fn dossier_hash(secret: &[u8], campaign: &str, agency_id: i64, dossier: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(campaign.as_bytes());
    mac.update(&[0]);
    mac.update(&agency_id.to_le_bytes());
    mac.update(&[0]);
    mac.update(dossier.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a submission against its campaign (everything that needs no database lock): the
/// campaign is open on this channel, the agency belongs to it and to the key's scope, the answers
/// fit the definition.
pub fn prepare(
    context: Arc<CampaignContext>,
    submission: Submission<'_>,
    origin: &Origin,
    now: DateTime<Utc>,
    dossier_secret: &[u8],
    idempotency_key: Option<String>,
) -> Result<Prepared, Refusal> {
    let campaign = &context.campaign;
    let definition = &context.definition;
    // The window is kept apart: a retry sent after the close is answered from its first result.
    let mut window = Vec::new();
    let mut problems = Vec::new();
    if !campaign.channels.contains(&origin.channel) {
        problems.push(fault(
            "campaign",
            "channel_not_enabled",
            format!("campaign `{}` does not accept responses through `{}`", campaign.id, origin.channel.as_str()),
        ));
    }
    if now < campaign.opens_at {
        window.push(fault(
            "campaign",
            "campaign_not_open",
            format!("campaign `{}` opens at {}", campaign.id, campaign.opens_at.to_rfc3339()),
        ));
    } else if now >= campaign.closes_at {
        window.push(fault(
            "campaign",
            "campaign_closed",
            format!("campaign `{}` closed at {}", campaign.id, campaign.closes_at.to_rfc3339()),
        ));
    }
    let member = context.members.get(&submission.agency);
    if member.is_none() {
        problems.push(fault(
            "agency",
            "agency_not_in_campaign",
            format!("agency `{}` is not part of campaign `{}`", submission.agency, campaign.id),
        ));
    }
    let language =
        submission.language.clone().unwrap_or_else(|| definition.languages.first().cloned().unwrap_or_default());
    if !definition.languages.contains(&language) {
        problems.push(fault("language", "invalid", format!("must be one of {}", definition.languages.join(", "))));
    }
    if submission.completed_at.is_some_and(|at| at > now + chrono::Duration::minutes(10)) {
        problems.push(fault("completed_at", "in_future", "must not be in the future"));
    }
    let checked = match &submission.answers {
        SubmittedAnswers::Parsed(answers) => check_answers(definition, answers),
        SubmittedAnswers::Pairs(answers) => check_pairs(definition, &context.layout.positions, answers),
    };
    let answers = match checked {
        Ok(answers) => Some(answers),
        Err(answer_problems) => {
            problems.extend(answer_problems.into_iter().map(|p| SubmissionProblem {
                field: p.field,
                code: p.code,
                message: p.message,
            }));
            None
        }
    };
    // Scope comes after content: a partner learns nothing about another agency's campaign.
    if let (Some(member), Some(principal)) = (member, &origin.principal)
        && principal.role == Role::Partner
        && !principal.scope.iter().any(|s| member.path.contains(&s.0))
    {
        return Err(Refusal::Forbidden(format!("this key may not post responses for agency `{}`", submission.agency)));
    }
    // Outside the window only a retry is answered, and only a request with a key can be one.
    let answerable = problems.is_empty() && (window.is_empty() || idempotency_key.is_some());
    let (Some(member), Some(answers), true) = (member, answers, answerable) else {
        window.extend(problems);
        return Err(Refusal::Invalid(window));
    };
    let tally = response_tally(definition, &context.layout, &answers);
    let cells = response_cells(&context.layout, &answers);
    let dossier_hash =
        submission.dossier.as_deref().map(|d| dossier_hash(dossier_secret, &campaign.id, member.agency_id, d));
    let mut prepared = Prepared {
        agency_id: member.agency_id,
        path: member.path.clone(),
        respondent_type: submission.respondent_type,
        language,
        answers: answers.encode(),
        service: submission.service,
        dossier_hash,
        completed_at: submission.completed_at,
        channel: origin.channel,
        key_id: origin.principal.as_ref().map(|p| p.key_id),
        idempotency: None,
        tally,
        cells,
        context,
        invitation: None,
    };
    prepared.idempotency = idempotency_key.map(|key| Idempotency {
        scope: origin.idempotency_scope(),
        key,
        request_hash: prepared.content_hash(),
    });
    if window.is_empty() {
        return Ok(prepared);
    }
    match prepared.idempotency {
        Some(idempotency) => Err(Refusal::OutsideWindow { problems: window, idempotency }),
        None => Err(Refusal::Invalid(window)),
    }
}

impl Prepared {
    /// Hash of what this submission stores: its campaign, agency, fields and checked answers in
    /// their stored form, so that a retry matches its first request however its JSON was
    /// written (key order, spacing, escapes, a default spelled out), and a request that would
    /// store anything else does not. Not its channel or key, which scope the idempotency key.
    pub fn content_hash(&self) -> String {
        /// One field, unambiguously: absent, or its length and bytes.
        fn field(hash: &mut Sha256, value: Option<&[u8]>) {
            match value {
                None => hash.update([0]),
                Some(bytes) => {
                    hash.update([1]);
                    hash.update((bytes.len() as u64).to_le_bytes());
                    hash.update(bytes);
                }
            }
        }
        let completed_at = self.completed_at.map(|at| {
            let mut bytes = [0; 12];
            bytes[..8].copy_from_slice(&at.timestamp().to_le_bytes());
            bytes[8..].copy_from_slice(&at.timestamp_subsec_nanos().to_le_bytes());
            bytes
        });
        let mut hash = Sha256::new();
        field(&mut hash, Some(self.context.campaign.id.as_bytes()));
        field(&mut hash, Some(&self.agency_id.to_le_bytes()));
        field(&mut hash, Some(self.respondent_type.as_bytes()));
        field(&mut hash, Some(self.language.as_bytes()));
        field(&mut hash, Some(self.answers.as_bytes()));
        field(&mut hash, self.service.as_deref().map(str::as_bytes));
        field(&mut hash, self.dossier_hash.as_deref().map(str::as_bytes));
        field(&mut hash, completed_at.as_ref().map(|bytes| &bytes[..]));
        let mut text = String::with_capacity(CONTENT_HASH_PREFIX.len() + 64);
        text.push_str(CONTENT_HASH_PREFIX);
        text.push_str(&hex::encode(hash.finalize()));
        text
    }
}

/// Checks an `Idempotency-Key` value: 1–255 printable ASCII characters.
pub fn valid_idempotency_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY && key.chars().all(|c| c.is_ascii_graphic() || c == ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a body both ways and checks its answers against `sipas-individual`: read as a
    /// value, and read as a [`RawSubmission`].
    fn both_ways(body: &str) -> (CheckedBody, CheckedBody) {
        let definition = crate::survey::defaults::embedded_definitions()
            .unwrap()
            .into_iter()
            .find(|d| d.id == "sipas-individual")
            .unwrap();
        let layout = tally::TallyLayout::new(&definition);
        let check = |parsed: Result<Submission, Vec<SubmissionProblem>>| {
            parsed.map(|submission| {
                let answers = match &submission.answers {
                    SubmittedAnswers::Parsed(value) => check_answers(&definition, value),
                    SubmittedAnswers::Pairs(pairs) => check_pairs(&definition, &layout.positions, pairs),
                };
                // In their stored form: the checked answers borrow from the definition here.
                let answers = answers.map(|answers| answers.encode());
                (submission.campaign, submission.agency, submission.language, answers)
            })
        };
        let value: Value = serde_json::from_str(body).unwrap();
        let raw = RawSubmission::from_slice(body.as_bytes()).expect("a JSON object");
        let as_value = check(parse_submission(value, &[]));
        let as_text = check(raw.parse(&[]));
        (as_value, as_text)
    }

    type CheckedBody = Result<
        (String, String, Option<String>, Result<String, Vec<crate::survey::answers::AnswerProblem>>),
        Vec<SubmissionProblem>,
    >;

    #[test]
    fn submissions_read_as_text_check_exactly_as_parsed_values() {
        let envelope = |answers: &str| {
            format!(r#"{{"campaign":"c","agency":"01","respondent_type":"individual","answers":{answers}}}"#)
        };
        let bodies = [
            envelope(r#"{"s01": 5, "gender": "female", "age_band": "25_34", "e01": "much"}"#),
            envelope(r#"{"s01": 5, "zz": 1, "aa": [1], "zz": 2, "s01": 4}"#),
            envelope(r#"{"\u0073\u0030\u0031": 3, "p01": 9, "gender": 4}"#),
            envelope(r#"{}"#),
            envelope("null"),
            envelope("[1, 2]"),
            envelope(r#""text""#),
            envelope("3.5"),
            envelope("-2"),
            envelope("18446744073709551615"),
            envelope("true"),
            envelope(r#"{"s01": {"deep": [[[1]]]}}"#),
            r#"{"agency":"01","zeta":[1,{"b":1,"a":2}],"answers":{"s01":1},"campaign":"c","client_id":"k","respondent_type":"individual"}"#.to_owned(),
            r#"{"b":1,"answers":{"s01":2},"a":0}"#.to_owned(),
            r#"{"z":1,"answers":null}"#.to_owned(),
            r#"{"answers":"x","a":1}"#.to_owned(),
            r#"{"campaign": 7, "agency": "01", "respondent_type": "robot", "colour": "red"}"#.to_owned(),
            // Other fields: a repeated one keeps its last value, unknown ones are listed sorted,
            // an escaped string is read as the value it stands for.
            r#"{"zeta":1,"campaign":"x","agency":"01","respondent_type":"individual","answers":{"s01":1},"campaign":"c","alpha":[2],"language":"v\u0069"}"#.to_owned(),
            r#"{"campaign":"c","agency":"01","respondent_type":"individual","answers":{"s01":1},"language":"vi","service":null,"dossier":" HS-1 "}"#.to_owned(),
            r#"{"campaign":"c","agency":"01","respondent_type":"individual","answers":{"s01":1},"answers":{"s01":2}}"#
                .to_owned(),
            // The same ids with other answers, then in another order, then repeated (the last
            // answer to an id counts).
            envelope(r#"{"s02": 1, "s10": 2, "s01": 3}"#),
            envelope(r#"{"s02": 4, "s10": 5, "s01": "x"}"#),
            envelope(r#"{"s01": 4, "s02": 5, "s10": 1}"#),
            envelope(r#"{"s01": 4, "s02": 5, "s01": 1}"#),
            envelope(r#"{"s01": 2, "s02": 3, "s01": 5}"#),
            envelope(r#"{"s01": 2, "s02": 3, "s02": 5}"#),
        ];
        for body in &bodies {
            let (as_value, as_text) = both_ways(body);
            assert_eq!(as_value, as_text, "{body}");
        }
        let repeated = bodies.iter().find(|b| b.starts_with(r#"{"zeta""#)).unwrap();
        let problems = both_ways(repeated).1.unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["alpha", "zeta"]);
        let (checked, _) = both_ways(&bodies[1]);
        let problems = checked.unwrap().3.unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields[..2], ["answers.aa", "answers.zz"], "unknown keys sorted, once each");
        assert!(RawSubmission::from_slice(b"[1, 2]").is_none(), "not an object: read as a value instead");
        assert!(RawSubmission::from_slice(b"{\"campaign\": ").is_none());
        let deep = format!(r#"{{"answers": {{"s01": {}{}}}}}"#, "[".repeat(5_000), "]".repeat(5_000));
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert!(RawSubmission::from_slice(deep.as_bytes()).is_none(), "too deep for a value, too deep here");
        let batch = format!(r#"{{"note": 1, "items": [{}, {}]}}"#, bodies[0], bodies[1]);
        assert_eq!(RawBatch::from_slice(batch.as_bytes()).map(|b| b.items.len()), Some(2));
        for refused in [r#"{"items": [1]}"#, r#"{"items": {}}"#, "{}", "[]"] {
            assert!(RawBatch::from_slice(refused.as_bytes()).is_none(), "{refused}: read as a value instead");
        }
    }

    #[test]
    fn a_record_hashed_before_content_hashes_matches_any_request_under_its_key() {
        let new = format!("{CONTENT_HASH_PREFIX}{}", "ab".repeat(32));
        let other = format!("{CONTENT_HASH_PREFIX}{}", "cd".repeat(32));
        assert!(same_request(&new, &new));
        assert!(!same_request(&new, &other), "another request under the same key");
        // Written by an earlier version: the hash of the request's JSON, which cannot be compared.
        let legacy = hex::encode(Sha256::digest(b"{}"));
        assert!(same_request(&legacy, &new));
    }
}
