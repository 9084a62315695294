//! Demo data: campaigns on `sipas-individual` filled with synthetic responses, calibrated so that
//! the national figures come out near the published SIPAS results of 2022, 2023 and 2024, so that
//! a newcomer sees the dashboard with believable numbers. Every campaign it makes is marked
//! `synthetic`, and every page, report and export says so.
//!
//! The agency registry holds communes only from the 2025 reorganisation on, so the three rounds
//! are laid on today's map (34 provinces and a sample of their communes), opening one after the
//! other from 1 July 2025; their titles name the year they are calibrated to.
//!
//! Answers are allocated, not drawn: for each commune and statement, exactly the target share of
//! the valid answers is "satisfied", given to the respondents whose latent satisfaction (plus
//! noise) is highest, so that answers correlate within a respondent as real ones do, and the
//! published figures are reproduced to a few hundredths rather than within sampling error.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::agency::store::{self as agency_store, AgencyFilter, AgencyId};
use crate::campaign::context::CampaignCache;
use crate::campaign::{self, Campaign, CampaignError, Channel, NewCampaign};
use crate::db::schema::campaigns;
use crate::db::{DbConnection, DbError};
use crate::intake::writer::{ItemOutcome, write_now};
use crate::intake::{self, Idempotency, Origin, Refusal, parse_submission};
use crate::survey::model::{LocalizedText, SurveyDefinition};

/// The survey the demo campaigns use.
pub const DEMO_SURVEY: &str = "sipas-individual";
/// Communes sampled per province.
const COMMUNES_PER_PROVINCE: usize = 4;
/// Responses written per transaction.
const CHUNK: usize = 1_000;

/// One synthetic round and the published figures it is calibrated to.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// Campaign id.
    pub id: &'static str,
    /// The SIPAS year the round imitates.
    pub year: u16,
    /// Published national index.
    pub index: f64,
    /// Published policy component minus the services component.
    pub policy_minus_services: f64,
    /// Lowest and highest published province values, where published.
    pub provinces: Option<(f64, f64)>,
    /// Opening day (the rounds follow each other from the reorganisation on).
    pub opens: (i32, u32, u32),
    /// Closing day.
    pub closes: (i32, u32, u32),
}

/// The rounds `sipas demo` makes, oldest first. 2022: national 80.08 from policy 79.72 and
/// services 80.43; 2023: 82.66 with policy 82.49 and provinces from 75.03 to 90.61; 2024: 83.94
/// with policy 83.84 and services 84.09 (the published index is not the mean of those two: the
/// index is kept and their difference is).
pub const ROUNDS: [Round; 3] = [
    Round {
        id: "demo-2022",
        year: 2022,
        index: 80.075,
        policy_minus_services: 79.72 - 80.43,
        provinces: None,
        opens: (2025, 7, 1),
        closes: (2025, 8, 31),
    },
    Round {
        id: "demo-2023",
        year: 2023,
        index: 82.66,
        policy_minus_services: 2.0 * (82.49 - 82.66),
        provinces: Some((75.03, 90.61)),
        opens: (2025, 9, 1),
        closes: (2025, 10, 31),
    },
    Round {
        id: "demo-2024",
        year: 2024,
        index: 83.94,
        policy_minus_services: 83.84 - 84.09,
        provinces: None,
        opens: (2025, 11, 1),
        closes: (2025, 12, 31),
    },
];

/// Offsets of the service elements from their component, from the published 2023 figures
/// (access 83.00, procedures 83.02, civil servants 83.12, results 83.03, complaints 82.27).
const SERVICE_ELEMENTS: [(&str, f64); 5] =
    [("access", 83.00), ("procedures", 83.02), ("civil_servants", 83.12), ("results", 83.03), ("complaints", 82.27)];
/// Offsets of the policy elements from their component (not published: an invented pattern).
const POLICY_ELEMENTS: [(&str, f64); 4] =
    [("accountability", -1.2), ("participation", -2.0), ("policy_quality", 1.4), ("policy_impact", 1.8)];

/// Why the demo data could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A campaign with a demo id exists and holds real responses.
    #[error("campaign `{0}` exists and is not synthetic: remove it or use another database")]
    NotSynthetic(String),
    /// The survey the demo needs is not published.
    #[error("survey `{DEMO_SURVEY}` is not published")]
    SurveyMissing,
    /// The registry lacks the provinces or communes the demo spreads over.
    #[error("the agency registry has no provinces with communes on {0}")]
    NoAgencies(NaiveDate),
    /// A generated response was refused: the generator and the definition disagree.
    #[error("a synthetic response was refused: {0}")]
    Refused(String),
    /// Creating a campaign failed.
    #[error("campaign: {0}")]
    Campaign(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for DemoError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error.into())
    }
}

/// What [`load`] did for one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundOutcome {
    /// Campaign id.
    pub campaign: String,
    /// Responses written now.
    pub written: usize,
    /// Responses the round holds in all.
    pub total: i64,
}

/// Creates the demo campaigns and fills them, idempotently: a complete round is left alone, an
/// interrupted one is completed (every synthetic response carries an idempotency key).
/// `per_province` responses go to each province, spread over its sampled communes.
pub fn load(
    conn: &mut DbConnection,
    cache: &CampaignCache,
    secret: &[u8],
    per_province: usize,
) -> Result<Vec<RoundOutcome>, DemoError> {
    let mut outcomes = Vec::new();
    for round in ROUNDS {
        outcomes.push(load_round(conn, cache, secret, &round, per_province)?);
    }
    Ok(outcomes)
}

fn day(date: (i32, u32, u32)) -> DateTime<Utc> {
    // Midnight in Vietnam (UTC+7), the day the round opens.
    Utc.with_ymd_and_hms(date.0, date.1, date.2, 0, 0, 0).single().unwrap_or_default() - Duration::hours(7)
}

/// The sampled communes of each province, the same for every round.
fn sample(conn: &mut DbConnection, date: NaiveDate) -> Result<Vec<(String, Vec<String>)>, DemoError> {
    let filter = |parent: Option<AgencyId>, level: &str| AgencyFilter {
        at: date,
        parent,
        level: Some(level.to_owned()),
        text: None,
        after: None,
        limit: 10_000,
    };
    let provinces = agency_store::list(conn, &filter(None, "province"))?;
    let mut rng = StdRng::seed_from_u64(2025);
    let mut sampled = Vec::new();
    for province in provinces {
        let mut communes: Vec<String> = agency_store::list(conn, &filter(Some(province.agency_id()), "commune"))?
            .into_iter()
            .map(|c| c.code)
            .collect();
        if communes.is_empty() {
            continue;
        }
        // A partial Fisher–Yates shuffle picks the sample.
        let take = COMMUNES_PER_PROVINCE.min(communes.len());
        for i in 0..take {
            let j = rng.random_range(i..communes.len());
            communes.swap(i, j);
        }
        communes.truncate(take);
        communes.sort();
        sampled.push((province.code, communes));
    }
    if sampled.is_empty() {
        return Err(DemoError::NoAgencies(date));
    }
    Ok(sampled)
}

fn title(round: &Round) -> LocalizedText {
    LocalizedText(BTreeMap::from([
        ("vi".to_owned(), format!("Dữ liệu mô phỏng: SIPAS {} (hiệu chỉnh theo kết quả công bố)", round.year)),
        ("en".to_owned(), format!("Synthetic data: SIPAS {} (calibrated to the published results)", round.year)),
    ]))
}

fn ensure_campaign(conn: &mut DbConnection, round: &Round, communes: Vec<String>) -> Result<Campaign, DemoError> {
    if let Some(existing) = campaign::get(conn, round.id)? {
        if !existing.synthetic {
            return Err(DemoError::NotSynthetic(round.id.to_owned()));
        }
        return Ok(existing);
    }
    let new = NewCampaign {
        id: round.id.to_owned(),
        survey: DEMO_SURVEY.to_owned(),
        version: None,
        title: title(round),
        agencies: communes,
        opens_at: day(round.opens),
        closes_at: day(round.closes),
        channels: Some(vec![Channel::Api]),
        min_n: None,
        mail: None,
    };
    match campaign::create(conn, &new) {
        Ok(_) | Err(CampaignError::AlreadyExists(_)) => {}
        Err(error) => return Err(DemoError::Campaign(error.to_string())),
    }
    diesel::update(campaigns::table.find(round.id))
        .set((campaigns::synthetic.eq(true), campaigns::results_public.eq(true)))
        .execute(conn)?;
    campaign::get(conn, round.id)?.ok_or_else(|| DemoError::Campaign(format!("`{}` vanished", round.id)))
}

fn load_round(
    conn: &mut DbConnection,
    cache: &CampaignCache,
    secret: &[u8],
    round: &Round,
    per_province: usize,
) -> Result<RoundOutcome, DemoError> {
    let opens = day(round.opens);
    let date = opens.with_timezone(&crate::agency::vietnam()).date_naive();
    let sampled = sample(conn, date)?;
    let communes: Vec<String> = sampled.iter().flat_map(|(_, c)| c.iter().cloned()).collect();
    let existing = ensure_campaign(conn, round, communes)?;
    let planned =
        (sampled.iter().map(|(_, c)| c.len()).sum::<usize>() * per_province.div_ceil(COMMUNES_PER_PROVINCE)) as i64;
    if existing.responses >= planned {
        return Ok(RoundOutcome { campaign: round.id.to_owned(), written: 0, total: existing.responses });
    }
    cache.forget(round.id);
    let context = cache.get(conn, round.id)?.ok_or(DemoError::SurveyMissing)?;
    let generator = Generator::new(&context.definition, round, sampled.len());
    let origin = Origin { channel: Channel::Api, principal: None };
    let closes = day(round.closes);
    let mut rng = StdRng::seed_from_u64(u64::from(round.year));
    let mut written = 0;
    let mut pending = Vec::with_capacity(CHUNK);
    let mut serial = 0usize;
    let per_commune = per_province.div_ceil(COMMUNES_PER_PROVINCE);
    let span = (closes - opens).num_seconds().max(1);
    for (rank, (_, communes)) in generator.province_order(&sampled).into_iter().enumerate() {
        let target = generator.province_targets[rank];
        let offsets = zero_mean(&mut rng, communes.len(), 2.0);
        for (commune, offset) in communes.iter().zip(offsets) {
            for answers in generator.commune(&mut rng, target + offset, per_commune) {
                serial += 1;
                let completed = opens + Duration::seconds(rng.random_range(0..span));
                let language = if rng.random::<f64>() < 0.97 { "vi" } else { "en" };
                let request = json!({
                    "campaign": round.id,
                    "agency": commune,
                    "respondent_type": "individual",
                    "language": language,
                    "answers": answers,
                    "completed_at": completed.to_rfc3339(),
                });
                let submission = parse_submission(request, &[]).map_err(|problems| {
                    DemoError::Refused(problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("; "))
                })?;
                let mut prepared = intake::prepare(context.clone(), submission, &origin, completed, secret, None)
                    .map_err(|refusal| match refusal {
                        Refusal::Invalid(problems) => DemoError::Refused(
                            problems
                                .iter()
                                .map(|p| format!("{}: {}", p.field, p.message))
                                .collect::<Vec<_>>()
                                .join("; "),
                        ),
                        other => DemoError::Refused(format!("{other:?}")),
                    })?;
                prepared.idempotency = Some(Idempotency {
                    scope: "demo".to_owned(),
                    key: format!("{}-{serial:07}", round.id),
                    request_hash: prepared.content_hash(),
                });
                pending.push(prepared);
                if pending.len() == CHUNK {
                    written += flush(conn, &mut pending)?;
                }
            }
        }
    }
    written += flush(conn, &mut pending)?;
    cache.forget(round.id);
    let total = campaign::get(conn, round.id)?.map_or(0, |c| c.responses);
    Ok(RoundOutcome { campaign: round.id.to_owned(), written, total })
}

fn flush(conn: &mut DbConnection, pending: &mut Vec<intake::Prepared>) -> Result<usize, DemoError> {
    if pending.is_empty() {
        return Ok(0);
    }
    let items: Vec<&intake::Prepared> = pending.iter().collect();
    let outcomes = write_now(conn, &items)?;
    pending.clear();
    Ok(outcomes.iter().filter(|o| matches!(o, ItemOutcome::Created { .. })).count())
}

/// `count` offsets with standard deviation about `sd` and a mean of exactly zero.
fn zero_mean(rng: &mut StdRng, count: usize, sd: f64) -> Vec<f64> {
    let draws: Vec<f64> = (0..count).map(|_| sd * standard_normal(rng)).collect();
    let mean = draws.iter().sum::<f64>() / count.max(1) as f64;
    draws.into_iter().map(|d| d - mean).collect()
}

/// A standard normal draw (Box–Muller; one uniform pair per draw keeps the stream simple).
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// One satisfaction statement and its offset from the respondent's commune target.
struct Statement {
    id: String,
    offset: f64,
    skip: f64,
}

/// Makes the answers of one round.
struct Generator {
    statements: Vec<Statement>,
    /// Province targets, highest first; provinces take them in [`Generator::province_order`].
    province_targets: Vec<f64>,
    /// Distributions of the choice questions: (question, option values, weights, skip share).
    choices: Vec<(String, Vec<String>, Vec<f64>, f64)>,
    year: u16,
}

impl Generator {
    fn new(definition: &SurveyDefinition, round: &Round, provinces: usize) -> Self {
        let m = &definition.measurement;
        let mut rng = StdRng::seed_from_u64(17);
        let mut statements = Vec::new();
        for element in &m.elements {
            let component = if element.component.as_deref() == Some("policy") {
                round.policy_minus_services / 2.0
            } else {
                -round.policy_minus_services / 2.0
            };
            let within = SERVICE_ELEMENTS
                .iter()
                .map(|(id, value)| (*id, value - SERVICE_ELEMENTS.iter().map(|e| e.1).sum::<f64>() / 5.0))
                .chain(POLICY_ELEMENTS.iter().copied())
                .find(|(id, _)| *id == element.id)
                .map_or(0.0, |(_, offset)| offset);
            let criteria = zero_mean(&mut rng, element.criteria.len(), 1.5);
            let skip = if element.component.as_deref() == Some("policy") { 0.03 } else { 0.08 };
            for (criterion, offset) in element.criteria.iter().zip(criteria) {
                statements.push(Statement { id: criterion.clone(), offset: component + within + offset, skip });
            }
            if let Some(general) = &element.general {
                statements.push(Statement { id: general.clone(), offset: component + within + 0.4, skip });
            }
        }
        Self {
            statements,
            province_targets: province_targets(round, provinces),
            choices: choice_distributions(definition, round.year),
            year: round.year,
        }
    }

    /// Provinces in the order they take the targets: a fixed ranking with a little movement from
    /// year to year, as in the published series.
    fn province_order<'a>(&self, sampled: &'a [(String, Vec<String>)]) -> Vec<&'a (String, Vec<String>)> {
        let mut base = StdRng::seed_from_u64(34);
        let mut drift = StdRng::seed_from_u64(u64::from(self.year) * 7);
        let mut keyed: Vec<(f64, &(String, Vec<String>))> =
            sampled.iter().map(|p| (standard_normal(&mut base) + 0.35 * standard_normal(&mut drift), p)).collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
        keyed.into_iter().map(|(_, p)| p).collect()
    }

    /// The answers of `count` respondents of one commune whose index should come out at `target`.
    fn commune(&self, rng: &mut StdRng, target: f64, count: usize) -> Vec<Value> {
        let latent: Vec<f64> = (0..count).map(|_| standard_normal(rng)).collect();
        let mut answers: Vec<Map<String, Value>> = vec![Map::new(); count];
        for statement in &self.statements {
            let share = (target + statement.offset).clamp(5.0, 99.5) / 100.0;
            let mut valid: Vec<(f64, usize)> = Vec::with_capacity(count);
            for (respondent, level) in latent.iter().enumerate() {
                if rng.random::<f64>() >= statement.skip {
                    valid.push((level + standard_normal(rng), respondent));
                }
            }
            valid.sort_by(|a, b| b.0.total_cmp(&a.0));
            let satisfied = (share * valid.len() as f64).round() as usize;
            for (position, (_, respondent)) in valid.into_iter().enumerate() {
                let u: f64 = rng.random();
                let value = if position < satisfied {
                    if u < 0.36 { 5 } else { 4 }
                } else if u < 0.6 {
                    3
                } else if u < 0.88 {
                    2
                } else {
                    1
                };
                answers[respondent].insert(statement.id.clone(), json!(value));
            }
        }
        for (question, options, weights, skip) in &self.choices {
            for respondent in &mut answers {
                if rng.random::<f64>() < *skip {
                    continue;
                }
                let total: f64 = weights.iter().sum();
                let mut u = rng.random::<f64>() * total;
                let mut chosen = options.len() - 1;
                for (i, w) in weights.iter().enumerate() {
                    if u < *w {
                        chosen = i;
                        break;
                    }
                    u -= w;
                }
                respondent.insert(question.clone(), json!(options[chosen]));
            }
        }
        answers.into_iter().map(Value::Object).collect()
    }
}

/// Province targets, highest first, with the round's mean exactly; where the lowest and highest
/// province were published they are kept too.
fn province_targets(round: &Round, count: usize) -> Vec<f64> {
    let normal = Normal::standard();
    let quantile = |k: usize| normal.inverse_cdf((count - k) as f64 / (count + 1) as f64);
    let spread = 3.2;
    let mut targets: Vec<f64> = (0..count).map(|k| round.index + spread * quantile(k)).collect();
    if let (Some((low, high)), true) = (round.provinces, count >= 3) {
        targets[0] = high;
        targets[count - 1] = low;
    }
    // Shift the free values so that the mean is the published index.
    let fixed = if round.provinces.is_some() && count >= 3 { 2 } else { 0 };
    let free = count - fixed;
    let gap = round.index * count as f64 - targets.iter().sum::<f64>();
    let range = if fixed == 2 { 1..count - 1 } else { 0..count };
    for target in &mut targets[range] {
        *target += gap / free.max(1) as f64;
    }
    targets
}

/// How the choice questions are answered: published shares where there are some (2024: 90.06%
/// report no harassment), plausible ones elsewhere.
fn choice_distributions(definition: &SurveyDefinition, year: u16) -> Vec<(String, Vec<String>, Vec<f64>, f64)> {
    let harassment_none = match year {
        2024 => 90.06,
        2023 => 88.5,
        _ => 86.9,
    };
    let known: BTreeMap<&str, Vec<f64>> = BTreeMap::from([
        ("gender", vec![48.0, 52.0]),
        ("age_band", vec![11.0, 21.0, 31.0, 21.0, 16.0]),
        ("ethnicity", vec![85.0, 15.0]),
        ("education", vec![4.0, 15.0, 28.0, 27.0, 11.0, 15.0]),
        ("occupation", vec![34.0, 18.0, 8.0, 16.0, 3.0, 10.0, 11.0]),
        ("residence", vec![36.0, 64.0]),
        ("terrain", vec![24.0, 73.0, 3.0]),
        ("a_info_channel", vec![30.0, 5.0, 26.0, 8.0, 12.0, 6.0, 6.0, 5.0, 2.0]),
        ("a_willing_opinion", vec![24.0, 36.0, 16.0, 15.0, 9.0]),
        ("a_harassment", vec![harassment_none, (100.0 - harassment_none) * 0.85, (100.0 - harassment_none) * 0.15]),
        ("a_informal_payment", vec![93.0, 6.0, 1.0]),
        ("a_submit_preference", vec![44.0, 31.0, 25.0]),
        ("a_receive_preference", vec![40.0, 33.0, 27.0]),
        ("a_exp_resubmit", vec![12.0, 88.0]),
        ("a_exp_many_places", vec![8.0, 92.0]),
        ("a_exp_late", vec![10.0, 90.0]),
        ("a_exp_apology", vec![5.0, 95.0]),
        ("a_exp_online", vec![36.0, 64.0]),
        ("a_exp_online_payment", vec![21.0, 79.0]),
        ("a_exp_feedback", vec![9.0, 91.0]),
    ]);
    // What people want prioritised "very much", area by area (e01 … e10).
    let priorities = [46.0, 38.0, 52.0, 55.0, 41.0, 49.0, 44.0, 36.0, 50.0, 42.0];
    let mut expectation = 0;
    definition
        .questions
        .iter()
        .filter(|q| q.kind == crate::survey::model::QuestionKind::SingleChoice)
        .map(|q| {
            let options: Vec<String> = q.options.iter().map(|o| o.value.clone()).collect();
            let weights = match known.get(q.id.as_str()) {
                Some(weights) if weights.len() == options.len() => weights.clone(),
                _ if definition.measurement.expectations.contains(&q.id) && options.len() == 3 => {
                    let very_much = priorities[expectation % priorities.len()];
                    expectation += 1;
                    vec![very_much, (100.0 - very_much) * 0.7, (100.0 - very_much) * 0.3]
                }
                // Interest in a policy area and anything else: falling shares.
                _ => (0..options.len()).map(|i| 1.0 / (i as f64 + 1.5)).collect(),
            };
            let skip = if definition.measurement.expectations.contains(&q.id) { 0.04 } else { 0.02 };
            (q.id.clone(), options, weights, skip)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn province_targets_keep_the_published_mean_and_range() {
        let round = ROUNDS[1];
        let targets = province_targets(&round, 34);
        let mean = targets.iter().sum::<f64>() / 34.0;
        assert!((mean - 82.66).abs() < 1e-9, "{mean}");
        assert_eq!(targets[0], 90.61);
        assert_eq!(targets[33], 75.03);
        assert!(targets.windows(2).all(|w| w[0] >= w[1]), "{targets:?}");
        let round = ROUNDS[0];
        let targets = province_targets(&round, 34);
        assert!((targets.iter().sum::<f64>() / 34.0 - 80.075).abs() < 1e-9);
    }

    #[test]
    fn offsets_have_mean_zero() {
        let mut rng = StdRng::seed_from_u64(1);
        let offsets = zero_mean(&mut rng, 7, 2.0);
        assert!(offsets.iter().sum::<f64>().abs() < 1e-12);
        assert!(offsets.iter().any(|o| o.abs() > 0.1));
    }
}
