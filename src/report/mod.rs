//! Statistics reports: loads a campaign's tallies (and an earlier campaign's, and population
//! counts), feeds them to the pure functions in `stats`, and shapes the result for the API, the
//! command line and exports.

pub mod export;
pub mod microdata;
pub mod output;
pub mod population;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use diesel::prelude::*;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::campaign::context::{CampaignCache, CampaignContext, CampaignTree, Node};
use crate::db::schema::{agency_successions, tallies};
use crate::db::{DbConnection, DbError};
use crate::intake::pending::pending_deltas;
use crate::intake::tally::{ALL_CELL, NO_ANSWER, Tally, TallyLayout};
use crate::stats::interval::{normal_difference, proportion_difference};
use crate::stats::{Cell, Confidence, Estimate, Figures, IntervalKind, Model, Suppression, estimate, mean_of_units};
use crate::survey::model::QuestionKind;
use output::*;
use population::Populations;

/// Which units a report lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The agency itself, compared with its parent.
    #[serde(rename = "self")]
    Itself,
    /// The agency's children, with the agency as their parent.
    #[default]
    Children,
}

/// How a parent's figures are formed from its children.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rollup {
    /// Unweighted mean of the children's values (the official national rule).
    #[default]
    MeanOfUnits,
    /// Over all respondents of the parent's subtree.
    Pooled,
}

impl Rollup {
    /// The name in the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MeanOfUnits => "mean_of_units",
            Self::Pooled => "pooled",
        }
    }
}

/// Whether estimates are weighted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weights {
    /// Every respondent counts the same.
    #[default]
    None,
    /// Post-stratified to the uploaded population per weighting cell.
    Cells,
}

impl Weights {
    /// The name in the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Cells => "cells",
        }
    }
}

/// The breakdown by respondent type rather than by a question.
pub const RESPONDENT_TYPE: &str = "respondent_type";

/// What a report is asked for.
#[derive(Debug, Clone)]
pub struct StatsRequest {
    /// Agency code (default: the top of the campaign's tree).
    pub agency: Option<String>,
    /// The agency itself or its children.
    pub scope: Scope,
    /// How parents are formed.
    pub rollup: Rollup,
    /// Weights.
    pub weights: Weights,
    /// A breakdown question id, or `respondent_type`.
    pub breakdown: Option<String>,
    /// An earlier campaign to compare with.
    pub compare: Option<String>,
    /// Interval level.
    pub confidence: Confidence,
    /// Language of labels (`vi` or `en`).
    pub language: String,
    /// Agencies (each with its subtree) the reader is limited to; `None` for no limit. The
    /// agency asked about must lie within them; its parent's figures still appear as the line it
    /// is compared with, an aggregate that names no other unit.
    pub limited_to: Option<Vec<i64>>,
}

/// Why a report can't be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No such campaign.
    #[error("no campaign `{0}`")]
    CampaignNotFound(String),
    /// The agency is not in the campaign's tree.
    #[error("agency `{0}` is not part of campaign `{1}`")]
    AgencyNotInCampaign(String, String),
    /// A parameter does not fit the campaign.
    #[error("parameter `{field}`: {message}")]
    InvalidParameter {
        /// The parameter.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Weights were asked for without population counts.
    #[error("campaign `{0}` has no population counts: upload them with PUT /api/v1/campaigns/{0}/population")]
    PopulationMissing(String),
    /// The earlier campaign is of another survey.
    #[error("campaign `{0}` is of survey `{1}`, not `{2}`")]
    NotComparable(String, String, String),
    /// The reader's key is limited to other agencies.
    #[error(
        "`{agency}` is outside the agencies this key is limited to (of this campaign's: {})",
        if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") }
    )]
    OutsideKeyScope {
        /// The agency asked about (empty when none was named and the top of the tree is outside).
        agency: String,
        /// Codes of the key's agencies that are in this campaign.
        allowed: Vec<String>,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What kind of measure a position of [`flatten`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Index,
    Component,
    Element,
    Criterion,
}

/// (kind, id) of every measure, in the order [`flatten`] lists them.
fn measure_keys(model: &Model) -> Vec<(Kind, String)> {
    std::iter::once((Kind::Index, model.index.clone()))
        .chain(model.components.iter().map(|c| (Kind::Component, c.clone())))
        .chain(model.elements.iter().map(|e| (Kind::Element, e.id.clone())))
        .chain(model.criteria.iter().map(|c| (Kind::Criterion, c.id.clone())))
        .collect()
}

fn flatten(figures: &Figures) -> Vec<Option<Estimate>> {
    std::iter::once(figures.index)
        .chain(figures.components.iter().copied())
        .chain(figures.elements.iter().copied())
        .chain(figures.criteria.iter().copied())
        .collect()
}

/// A campaign's tally rows of one agency, by (respondent type, cell).
#[derive(Debug, Clone, Default)]
struct AgencyTallies {
    rows: BTreeMap<(String, String), Tally>,
}

impl AgencyTallies {
    fn merge(&mut self, other: &AgencyTallies) {
        for (key, tally) in &other.rows {
            match self.rows.get_mut(key) {
                Some(existing) => existing.add(tally),
                None => {
                    self.rows.insert(key.clone(), tally.clone());
                }
            }
        }
    }

    /// One cell summed over respondent types (or of one type).
    fn cell(&self, layout: &TallyLayout, cell: &str, respondent_type: Option<&str>) -> Tally {
        let mut total = layout.empty();
        for ((kind, key), tally) in &self.rows {
            if key == cell && respondent_type.is_none_or(|t| t == kind) {
                total.add(tally);
            }
        }
        total
    }

    /// Weighting cells (`w:…`) summed over respondent types (or of one type).
    fn weighting_cells(&self, layout: &TallyLayout, respondent_type: Option<&str>) -> BTreeMap<String, Tally> {
        let mut cells: BTreeMap<String, Tally> = BTreeMap::new();
        for ((kind, key), tally) in &self.rows {
            if key.starts_with("w:") && respondent_type.is_none_or(|t| t == kind) {
                cells.entry(key.clone()).or_insert_with(|| layout.empty()).add(tally);
            }
        }
        cells
    }

    fn respondent_types(&self) -> BTreeSet<String> {
        self.rows.keys().map(|(kind, _)| kind.clone()).collect()
    }
}

/// Loads the tallies of `agencies` in a campaign, only the cells a report needs, with the
/// responses not yet added to the tally rows (read in the caller's snapshot).
fn load_tallies(
    conn: &mut DbConnection,
    context: &CampaignContext,
    agencies: &[i64],
    extra_cells: Option<&str>,
) -> Result<HashMap<i64, AgencyTallies>, DbError> {
    let campaign = context.campaign.id.as_str();
    let layout = &context.layout;
    let wanted_cell = |cell: &str| cell == ALL_CELL || extra_cells.is_some_and(|prefix| cell.starts_with(prefix));
    let mut result: HashMap<i64, AgencyTallies> = HashMap::new();
    for chunk in agencies.chunks(500) {
        let query = tallies::table
            .filter(tallies::campaign_id.eq(campaign))
            .filter(tallies::agency_id.eq_any(chunk))
            .select((tallies::agency_id, tallies::respondent_type, tallies::cell, tallies::data))
            .into_boxed();
        let query = match extra_cells {
            Some(prefix) => query.filter(tallies::cell.eq(ALL_CELL).or(tallies::cell.like(format!("{prefix}%")))),
            None => query.filter(tallies::cell.eq(ALL_CELL)),
        };
        let rows: Vec<(i64, String, String, Vec<u8>)> = query.load(conn)?;
        for (agency, respondent_type, cell, data) in rows {
            // LIKE also matches `_` and `%` as wildcards: keep only the cells asked for.
            if !wanted_cell(&cell) {
                continue;
            }
            let tally = Tally::decode(layout, &data).map_err(|e| DbError::Corrupt(e.to_string()))?;
            result.entry(agency).or_default().rows.insert((respondent_type, cell), tally);
        }
    }
    let asked: HashSet<i64> = agencies.iter().copied().collect();
    for ((agency, respondent_type, cell), tally) in pending_deltas(conn, context)? {
        if asked.contains(&agency) && wanted_cell(&cell) {
            result
                .entry(agency)
                .or_default()
                .rows
                .entry((respondent_type, cell))
                .or_insert_with(|| layout.empty())
                .add(&tally);
        }
    }
    Ok(result)
}

/// One campaign's inputs for a report.
struct Side {
    context: Arc<CampaignContext>,
    model: Model,
    tallies: HashMap<i64, AgencyTallies>,
    populations: Option<Populations>,
}

/// Figures of one group with, when weighted, what the weighting did.
struct Group {
    figures: Figures,
    all: Tally,
    weighting: Option<WeightingReport>,
}

impl Side {
    fn group(&self, tallies: &AgencyTallies, population: Option<&BTreeMap<String, f64>>, kind: Option<&str>) -> Group {
        let layout = &self.context.layout;
        let all = tallies.cell(layout, ALL_CELL, kind);
        let Some(population) = population else {
            let weighting = self.populations.as_ref().map(|_| WeightingReport {
                weighted: false,
                population: 0.0,
                cells: 0,
                empty_cells: Vec::new(),
                respondents_without_population: 0,
                effective_n: None,
            });
            return Group { figures: estimate(&self.model, &[Cell { tally: &all, population: 1.0 }]), all, weighting };
        };
        let observed = tallies.weighting_cells(layout, kind);
        let empty = layout.empty();
        let mut keys: BTreeSet<&String> = observed.keys().collect();
        keys.extend(population.keys());
        let mut cells = Vec::new();
        let mut empty_cells = Vec::new();
        let mut outside = 0;
        let mut inverse = 0.0;
        let mut total = 0.0;
        for key in keys {
            let tally = observed.get(key).unwrap_or(&empty);
            let pop = population.get(key).copied().unwrap_or(0.0);
            if pop <= 0.0 {
                outside += tally.respondents;
                continue;
            }
            if tally.respondents == 0 {
                empty_cells.push(EmptyCell { cell: key.clone(), population: pop });
                continue;
            }
            total += pop;
            inverse += pop * pop / tally.respondents as f64;
            cells.push(Cell { tally, population: pop });
        }
        let weighting = WeightingReport {
            weighted: true,
            population: population.values().sum(),
            cells: cells.len(),
            empty_cells,
            respondents_without_population: outside,
            effective_n: (inverse > 0.0).then(|| total * total / inverse),
        };
        Group { figures: estimate(&self.model, &cells), all, weighting: Some(weighting) }
    }

    /// The figures of several agencies' respondents together (predecessors under a successor).
    fn pooled_over(&self, agencies: &[i64]) -> Group {
        let mut merged = AgencyTallies::default();
        for id in agencies {
            if let Some(tallies) = self.tallies.get(id) {
                merged.merge(tallies);
            }
        }
        self.group(&merged, self.population_of(agencies).as_ref(), None)
    }

    fn population_of(&self, agencies: &[i64]) -> Option<BTreeMap<String, f64>> {
        let table = self.populations.as_ref()?;
        let mut total: BTreeMap<String, f64> = BTreeMap::new();
        let mut any = false;
        for agency in agencies {
            if let Some(cells) = population::resolve(&self.context, table, *agency) {
                any = true;
                for (cell, n) in cells {
                    *total.entry(cell).or_default() += n;
                }
            }
        }
        any.then_some(total)
    }
}

/// A unit's figures and standing among its siblings.
struct UnitCalc {
    node: i64,
    group: Group,
    suppression: Option<Suppression>,
}

/// The parent's figures and how they were formed.
struct ParentCalc {
    node: i64,
    group: Group,
    rollup: Rollup,
    suppression: Option<Suppression>,
    /// Per flat measure: how many units the mean is over (mean of units only).
    units_in_mean: Vec<usize>,
}

/// Forms a parent from its children (suppressed children are left out of a mean of units).
fn parent_calc(side: &Side, node: i64, siblings: &[UnitCalc], rollup: Rollup, min_n: u64) -> ParentCalc {
    let empty = AgencyTallies::default();
    let tallies = side.tallies.get(&node).unwrap_or(&empty);
    let pooled = side.group(tallies, side.population_of(&[node]).as_ref(), None);
    let suppression = (pooled.all.respondents < min_n).then_some(Suppression::TooFew);
    let included: Vec<&Figures> =
        siblings.iter().filter(|u| u.suppression.is_none()).map(|u| &u.group.figures).collect();
    if rollup == Rollup::MeanOfUnits && !included.is_empty() {
        let figures = mean_of_units(&side.model, &included);
        let flat: Vec<Vec<Option<Estimate>>> = included.iter().map(|f| flatten(f)).collect();
        let units_in_mean =
            (0..flatten(&figures).len()).map(|i| flat.iter().filter(|f| f[i].is_some()).count()).collect();
        let group = Group { figures, all: pooled.all, weighting: pooled.weighting };
        return ParentCalc { node, group, rollup, suppression, units_in_mean };
    }
    ParentCalc { node, group: pooled, rollup: Rollup::Pooled, suppression, units_in_mean: Vec::new() }
}

/// Units of one level with their parent.
fn level(
    side: &Side,
    parent: Option<i64>,
    siblings: &[i64],
    rollup: Rollup,
    min_n: u64,
) -> (Vec<UnitCalc>, Option<ParentCalc>) {
    let empty = AgencyTallies::default();
    let groups: Vec<Group> = siblings
        .iter()
        .map(|id| side.group(side.tallies.get(id).unwrap_or(&empty), side.population_of(&[*id]).as_ref(), None))
        .collect();
    let respondents: Vec<u64> = groups.iter().map(|g| g.all.respondents).collect();
    let suppression = crate::stats::suppress(&respondents, min_n, rollup == Rollup::Pooled);
    let units: Vec<UnitCalc> = siblings
        .iter()
        .zip(groups)
        .zip(suppression)
        .map(|((node, group), suppression)| UnitCalc { node: *node, group, suppression })
        .collect();
    let parent = parent.map(|p| parent_calc(side, p, &units, rollup, min_n));
    (units, parent)
}

/// The agency a report is about: the one named, or else the top of the campaign's tree. A reader
/// limited to some agencies may only name those or agencies below them; naming none, such a
/// reader gets the one agency of theirs that is in the campaign when the top is outside their
/// limit.
pub fn readable_agency(
    tree: &CampaignTree,
    campaign: &str,
    code: Option<&str>,
    limited_to: Option<&[i64]>,
) -> Result<i64, ReportError> {
    let named = match code {
        Some(code) => Some(
            tree.find(code).ok_or_else(|| ReportError::AgencyNotInCampaign(code.to_owned(), campaign.to_owned()))?.id,
        ),
        None => None,
    };
    let Some(limit) = limited_to else {
        return named.or(tree.root).ok_or_else(|| ReportError::AgencyNotInCampaign(String::new(), campaign.to_owned()));
    };
    match (named, tree.root) {
        (Some(id), _) if tree.within(id, limit) => Ok(id),
        (Some(id), _) => Err(ReportError::outside_key_scope(tree, id, limit)),
        (None, Some(root)) if tree.within(root, limit) => Ok(root),
        (None, root) => match own_agencies(tree, limit).as_slice() {
            [only] => Ok(only.id),
            _ => Err(ReportError::outside_key_scope(tree, root.unwrap_or_default(), limit)),
        },
    }
}

/// The nodes of a key's agencies that are in this tree, by code.
fn own_agencies<'t>(tree: &'t CampaignTree, limit: &[i64]) -> Vec<&'t Node> {
    let mut own: Vec<&Node> = limit.iter().filter_map(|id| tree.node(*id)).collect();
    own.sort_by(|a, b| a.code.cmp(&b.code));
    own
}

impl ReportError {
    /// `agency` (a node of `tree`) lies outside the agencies a key is limited to.
    pub fn outside_key_scope(tree: &CampaignTree, agency: i64, limit: &[i64]) -> Self {
        Self::OutsideKeyScope {
            agency: tree.node(agency).map(|n| n.code.clone()).unwrap_or_default(),
            allowed: own_agencies(tree, limit).into_iter().map(|n| n.code.clone()).collect(),
        }
    }
}

/// Builds a statistics report, from one snapshot of the database.
pub fn stats(
    conn: &mut DbConnection,
    cache: &CampaignCache,
    campaign: &str,
    request: &StatsRequest,
) -> Result<StatsReport, ReportError> {
    crate::db::read_snapshot(conn, |conn| stats_in_snapshot(conn, cache, campaign, request))
}

fn stats_in_snapshot(
    conn: &mut DbConnection,
    cache: &CampaignCache,
    campaign: &str,
    request: &StatsRequest,
) -> Result<StatsReport, ReportError> {
    let context = cache.get(conn, campaign)?.ok_or_else(|| ReportError::CampaignNotFound(campaign.to_owned()))?;
    let tree = context.tree.clone();
    let target = readable_agency(&tree, campaign, request.agency.as_deref(), request.limited_to.as_deref())?;
    let definition = context.definition.clone();
    let breakdown = match request.breakdown.as_deref() {
        None => None,
        Some(RESPONDENT_TYPE) => Some(RESPONDENT_TYPE.to_owned()),
        Some(question) if definition.measurement.breakdowns.iter().any(|b| b == question) => {
            if request.weights == Weights::Cells {
                return Err(ReportError::InvalidParameter {
                    field: "breakdown",
                    message: "weighted estimates can be broken down by respondent_type only: the tallies hold \
                              weighting cells per respondent type, not per breakdown question"
                        .to_owned(),
                });
            }
            Some(question.to_owned())
        }
        Some(other) => {
            return Err(ReportError::InvalidParameter {
                field: "breakdown",
                message: format!(
                    "`{other}` is not a breakdown of survey `{}`; use respondent_type or one of: {}",
                    definition.id,
                    definition.measurement.breakdowns.join(", ")
                ),
            });
        }
    };
    let (parent, siblings): (Option<i64>, Vec<i64>) = match request.scope {
        Scope::Children => (Some(target), tree.node(target).map(|n| n.children.clone()).unwrap_or_default()),
        Scope::Itself => match tree.node(target).and_then(|n| n.parent) {
            Some(parent) => (Some(parent), tree.node(parent).map(|n| n.children.clone()).unwrap_or_default()),
            None => (None, vec![target]),
        },
    };
    let mut needed: Vec<i64> = siblings.clone();
    needed.extend(parent);
    let extra = match (&breakdown, request.weights) {
        (_, Weights::Cells) => Some("w:".to_owned()),
        (Some(question), _) if question != RESPONDENT_TYPE => Some(format!("b:{question}=")),
        _ => None,
    };
    let populations = match request.weights {
        Weights::None => None,
        Weights::Cells => {
            let table = population::load(conn, campaign)?;
            if table.is_empty() {
                return Err(ReportError::PopulationMissing(campaign.to_owned()));
            }
            Some(table)
        }
    };
    let side = Side {
        context: context.clone(),
        model: Model::new(&definition, &context.layout),
        tallies: load_tallies(conn, &context, &needed, extra.as_deref())?,
        populations,
    };
    let min_n = u64::try_from(context.campaign.min_n).unwrap_or(0);
    let (units, parent_calc) = level(&side, parent, &siblings, request.rollup, min_n);

    let earlier = match &request.compare {
        Some(other) => Some(earlier_side(conn, cache, &context, other, &needed, extra.as_deref(), request.weights)?),
        None => None,
    };
    let earlier_figures = earlier.as_ref().map(|(side, mapping, _)| {
        let min_n = u64::try_from(side.context.campaign.min_n).unwrap_or(0);
        let mapped: Vec<Option<Group>> = siblings
            .iter()
            .map(|node| {
                let group = side.pooled_over(mapping.get(node)?);
                (group.all.respondents >= min_n).then_some(group)
            })
            .collect();
        let parent_group = parent.and_then(|p| {
            let pooled = side.pooled_over(mapping.get(&p)?);
            if pooled.all.respondents < min_n {
                return None;
            }
            let included: Vec<&Figures> = mapped.iter().flatten().map(|g| &g.figures).collect();
            if request.rollup == Rollup::MeanOfUnits && !included.is_empty() {
                return Some(mean_of_units(&side.model, &included));
            }
            Some(pooled.figures)
        });
        (mapped.into_iter().map(|g| g.map(|g| g.figures)).collect::<Vec<_>>(), parent_group)
    });

    let keys = measure_keys(&side.model);
    let earlier_keys = earlier.as_ref().map(|(side, _, _)| measure_keys(&side.model));
    let change_of = |now: &Figures, then: Option<&Figures>| -> Option<Vec<Option<ChangeReport>>> {
        let earlier_keys = earlier_keys.as_ref()?;
        let then_flat = then.map(flatten);
        Some(
            flatten(now)
                .iter()
                .zip(&keys)
                .map(|(now, key)| {
                    let now = (*now)?;
                    let at = earlier_keys.iter().position(|k| k == key)?;
                    let then = then_flat.as_ref()?[at]?;
                    Some(change(now, then, request.confidence))
                })
                .collect(),
        )
    };

    let labels = Labels::new(&context, &side.model, &request.language);
    let ranks = crate::stats::ranks(
        &units
            .iter()
            .map(|u| u.group.figures.index.filter(|_| u.suppression.is_none()).map(|e| e.value))
            .collect::<Vec<_>>(),
    );
    let parent_report = parent_calc.as_ref().map(|p| {
        let changes = earlier_figures.as_ref().and_then(|(_, then)| change_of(&p.group.figures, then.as_ref()));
        let mut report =
            unit_report(&side, &labels, request, p.node, &p.group, p.suppression, None, changes, &breakdown);
        report.rollup = Some(p.rollup.as_str().to_owned());
        report.rank = None;
        if p.rollup == Rollup::MeanOfUnits && !report.scale.is_empty() {
            let spreads: Vec<Vec<ScaleReport>> = units
                .iter()
                .filter(|u| u.suppression.is_none())
                .map(|u| scale_spread(&side, &labels, &u.group.all))
                .collect();
            report.scale = mean_of_spreads(&report.scale, &spreads);
        }
        report
    });
    let listed: Vec<usize> = match request.scope {
        Scope::Children => (0..units.len()).collect(),
        Scope::Itself => units.iter().position(|u| u.node == target).into_iter().collect(),
    };
    let unit_reports = listed
        .into_iter()
        .map(|i| {
            let unit = &units[i];
            let vs_parent = parent_calc.as_ref().and_then(|p| vs_parent(unit, p, request.confidence));
            let changes = earlier_figures
                .as_ref()
                .and_then(|(mapped, _)| change_of(&unit.group.figures, mapped.get(i).and_then(Option::as_ref)));
            let mut report = unit_report(
                &side,
                &labels,
                request,
                unit.node,
                &unit.group,
                unit.suppression,
                vs_parent,
                changes,
                &breakdown,
            );
            report.rank = ranks[i];
            report
        })
        .collect();

    let comparison = earlier.as_ref().map(|(side, mapping, title)| {
        let mut mapped: Vec<MappedUnit> = mapping
            .iter()
            .filter(|(node, from)| from.as_slice() != [**node])
            .filter_map(|(node, from)| {
                let agency = tree.node(*node)?.code.clone();
                let mut from: Vec<String> =
                    from.iter().filter_map(|id| side.context.tree.node(*id).map(|n| n.code.clone())).collect();
                from.sort();
                Some(MappedUnit { agency, from })
            })
            .collect();
        mapped.sort_by(|a, b| a.agency.cmp(&b.agency));
        let note = if mapped.is_empty() {
            "the earlier campaign's respondents are those of the same agencies".to_owned()
        } else {
            "agencies reorganised since the earlier campaign: the earlier respondents of their predecessors are \
             pooled under today's successor units (listed in `mapped`)"
                .to_owned()
        };
        ComparisonReport {
            campaign: side.context.campaign.id.clone(),
            title: title.clone(),
            version: side.context.campaign.version,
            mapped,
            note,
        }
    });
    Ok(StatsReport {
        campaign: context.campaign.id.clone(),
        title: context.campaign.title.get(&request.language).to_owned(),
        survey: context.campaign.survey.clone(),
        version: context.campaign.version,
        synthetic: context.campaign.synthetic,
        computed_at: Utc::now(),
        method: MethodReport {
            rollup: request.rollup.as_str().to_owned(),
            weights: request.weights.as_str().to_owned(),
            confidence: request.confidence.level,
            intervals: IntervalsReport {
                criteria: if request.weights == Weights::Cells {
                    "Wilson score interval with Kish's effective sample size".to_owned()
                } else {
                    "Wilson score interval".to_owned()
                },
                measures: "normal approximation from the respondent-level scores kept in the tallies".to_owned(),
                mean_of_units: "normal approximation, variance of a mean of independent units".to_owned(),
                differences: "campaign against campaign: Newcombe's hybrid score interval for criteria, normal \
                              approximation otherwise, with a two-sided p-value; unit against parent: normal \
                              approximation allowing for the unit being part of its parent"
                    .to_owned(),
            },
            min_n: i64::from(context.campaign.min_n),
            suppression: "a unit with fewer than min_n respondents shows no estimates; with the pooled rollup, \
                          when exactly one sibling is withheld another is withheld with it so that neither can be \
                          derived by subtraction; a mean of units leaves withheld units out"
                .to_owned(),
            breakdown,
            comparison,
            note: "intervals, weights and suppression are sipas's additions; the official SIPAS method \
                   publishes point estimates only"
                .to_owned(),
        },
        parent: parent_report,
        units: unit_reports,
    })
}

type Mapping = BTreeMap<i64, Vec<i64>>;

/// Loads the earlier campaign and maps today's units to its agencies: the same agency where it
/// took part, otherwise the predecessors it succeeded (the 2025 reorganisation).
fn earlier_side(
    conn: &mut DbConnection,
    cache: &CampaignCache,
    context: &CampaignContext,
    other: &str,
    needed: &[i64],
    extra: Option<&str>,
    weights: Weights,
) -> Result<(Side, Mapping, String), ReportError> {
    let other_context = cache
        .get(conn, other)?
        .ok_or_else(|| ReportError::InvalidParameter { field: "compare", message: format!("no campaign `{other}`") })?;
    if other_context.campaign.survey != context.campaign.survey {
        return Err(ReportError::NotComparable(
            other.to_owned(),
            other_context.campaign.survey.clone(),
            context.campaign.survey.clone(),
        ));
    }
    let successions: Vec<(i64, i64)> = agency_successions::table
        .filter(agency_successions::successor_id.eq_any(needed))
        .select((agency_successions::predecessor_id, agency_successions::successor_id))
        .load(conn)
        .map_err(DbError::from)?;
    let mut mapping = Mapping::new();
    for node in needed {
        if other_context.tree.node(*node).is_some() {
            mapping.insert(*node, vec![*node]);
            continue;
        }
        let from: Vec<i64> = successions
            .iter()
            .filter(|(pred, succ)| succ == node && other_context.tree.node(*pred).is_some())
            .map(|(pred, _)| *pred)
            .collect();
        if !from.is_empty() {
            mapping.insert(*node, from);
        }
    }
    let ids: Vec<i64> = mapping.values().flatten().copied().collect::<BTreeSet<_>>().into_iter().collect();
    let populations = match weights {
        Weights::Cells => Some(population::load(conn, other)?).filter(|t| !t.is_empty()),
        Weights::None => None,
    };
    let title = other_context.campaign.title.get("vi").to_owned();
    let tallies = load_tallies(conn, &other_context, &ids, extra)?;
    let model = Model::new(&other_context.definition, &other_context.layout);
    Ok((Side { model, context: other_context, tallies, populations }, mapping, title))
}

/// Labels of measures, questions and options in one language.
struct Labels {
    measures: Vec<String>,
    language: String,
}

impl Labels {
    fn new(context: &CampaignContext, model: &Model, language: &str) -> Self {
        let definition = &context.definition;
        let m = &definition.measurement;
        let measures = measure_keys(model)
            .into_iter()
            .map(|(kind, id)| {
                let text = match kind {
                    Kind::Index => Some(&m.index.label),
                    Kind::Component => m.components.iter().find(|c| c.id == id).map(|c| &c.label),
                    Kind::Element => m.elements.iter().find(|e| e.id == id).map(|e| &e.label),
                    Kind::Criterion => definition.question(&id).map(|q| &q.text),
                };
                text.map(|t| t.get(language).to_owned()).unwrap_or(id)
            })
            .collect();
        Self { measures, language: language.to_owned() }
    }
}

fn difference_report(d: crate::stats::Difference) -> DifferenceReport {
    DifferenceReport { difference: d.difference, ci_low: d.ci_low, ci_high: d.ci_high, p_value: d.p_value }
}

/// Now against then, two independent samples.
fn change(now: Estimate, then: Estimate, confidence: Confidence) -> ChangeReport {
    let both_proportions = now.interval == IntervalKind::Wilson && then.interval == IntervalKind::Wilson;
    let d = both_proportions
        .then(|| proportion_difference(now.value, now.effective_n, then.value, then.effective_n, confidence.z))
        .flatten()
        .unwrap_or_else(|| normal_difference(now.value, now.variance, then.value, then.variance, 0.0, confidence.z));
    ChangeReport {
        previous: then.value,
        previous_ci_low: then.interval(confidence).0,
        previous_ci_high: then.interval(confidence).1,
        difference: d.difference,
        ci_low: d.ci_low,
        ci_high: d.ci_high,
        p_value: d.p_value,
    }
}

/// A unit against its parent, per measure. The unit is part of the parent (a share λ of it), so
/// `cov(unit, parent) = λ var(unit)`: λ is 1/k for a mean of k units, the unit's share of the
/// answers when pooled.
fn vs_parent(unit: &UnitCalc, parent: &ParentCalc, confidence: Confidence) -> Option<Vec<Option<DifferenceReport>>> {
    if unit.suppression.is_some() || parent.suppression.is_some() {
        return None;
    }
    let own = flatten(&unit.group.figures);
    let theirs = flatten(&parent.group.figures);
    Some(
        own.iter()
            .zip(&theirs)
            .enumerate()
            .map(|(i, (c, p))| {
                let (c, p) = ((*c)?, (*p)?);
                let share = match parent.rollup {
                    Rollup::MeanOfUnits => 1.0 / parent.units_in_mean.get(i).copied().unwrap_or(1).max(1) as f64,
                    Rollup::Pooled => (c.effective_n / p.effective_n).min(1.0),
                };
                let d = normal_difference(c.value, c.variance, p.value, p.variance, share * c.variance, confidence.z);
                Some(difference_report(d))
            })
            .collect(),
    )
}

fn measure_reports(
    side: &Side,
    labels: &Labels,
    request: &StatsRequest,
    figures: &Figures,
    suppressed: bool,
    vs_parent: Option<&Vec<Option<DifferenceReport>>>,
    changes: Option<&Vec<Option<ChangeReport>>>,
) -> Vec<MeasureReport> {
    let keys = measure_keys(&side.model);
    flatten(figures)
        .into_iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (estimate, (kind, id)))| {
            let shown = estimate.filter(|_| !suppressed);
            let interval = shown.map(|e| e.interval(request.confidence));
            MeasureReport {
                label: labels.measures.get(i).cloned().unwrap_or_else(|| id.clone()),
                id,
                estimate: shown.map(|e| e.value),
                ci_low: interval.map(|i| i.0),
                ci_high: interval.map(|i| i.1),
                n: shown.map(|e| e.n),
                satisfied: (kind == Kind::Criterion).then(|| shown.and_then(|e| e.satisfied)),
                effective_n: (request.weights == Weights::Cells).then(|| shown.map(|e| e.effective_n)).flatten(),
                vs_parent: vs_parent.and_then(|v| v.get(i).copied().flatten()),
                change: changes.map(|c| c.get(i).copied().flatten().filter(|_| !suppressed)),
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn figures_report(
    side: &Side,
    labels: &Labels,
    request: &StatsRequest,
    figures: &Figures,
    respondents: u64,
    suppression: Option<Suppression>,
    vs_parent: Option<&Vec<Option<DifferenceReport>>>,
    changes: Option<&Vec<Option<ChangeReport>>>,
) -> FiguresReport {
    let suppressed = suppression.is_some();
    let mut measures = measure_reports(side, labels, request, figures, suppressed, vs_parent, changes).into_iter();
    let index = measures.next().unwrap_or_else(|| MeasureReport {
        id: side.model.index.clone(),
        label: side.model.index.clone(),
        estimate: None,
        ci_low: None,
        ci_high: None,
        n: None,
        satisfied: None,
        effective_n: None,
        vs_parent: None,
        change: None,
    });
    let components = measures.by_ref().take(side.model.components.len()).collect();
    let elements = measures.by_ref().take(side.model.elements.len()).collect();
    let criteria = measures.collect();
    FiguresReport {
        n: respondents,
        suppressed,
        suppression: suppression.map(|s| s.as_str().to_owned()),
        index,
        components,
        elements,
        criteria,
    }
}

/// Shares of the options of choice questions, from a group's tally.
fn choices(
    side: &Side,
    labels: &Labels,
    tally: &Tally,
    questions: &[String],
    confidence: Confidence,
) -> Vec<ChoiceReport> {
    let definition = &side.context.definition;
    questions
        .iter()
        .filter_map(|id| {
            let index = definition.questions.iter().position(|q| &q.id == id)?;
            let question = &definition.questions[index];
            let offset = side.context.layout.question_offsets[index];
            let options: Vec<String> = question.options.iter().map(|o| o.value.clone()).collect();
            let counts = &tally.counts[offset..offset + options.len()];
            let answered = match question.kind {
                QuestionKind::MultiChoice => tally.counts[offset + options.len()],
                _ => counts.iter().sum(),
            };
            let shares = crate::stats::shares::option_shares(&options, counts, answered, confidence);
            Some(ChoiceReport {
                id: id.clone(),
                label: question.text.get(&labels.language).to_owned(),
                n: answered,
                options: shares
                    .into_iter()
                    .map(|s| ShareReport {
                        label: question
                            .options
                            .iter()
                            .find(|o| o.value == s.value)
                            .map(|o| o.label.get(&labels.language).to_owned())
                            .unwrap_or_default(),
                        value: s.value,
                        count: s.count,
                        estimate: s.estimate,
                        ci_low: s.ci_low,
                        ci_high: s.ci_high,
                    })
                    .collect(),
            })
        })
        .collect()
}

/// How the answers to each criterion spread over its scale, from a group's tally.
fn scale_spread(side: &Side, labels: &Labels, tally: &Tally) -> Vec<ScaleReport> {
    let definition = &side.context.definition;
    side.model
        .criteria
        .iter()
        .filter_map(|criterion| {
            let question = definition.question(&criterion.id)?;
            let min = question.min?;
            let counts = tally.counts.get(criterion.offset..criterion.offset + criterion.points)?;
            let n: u64 = counts.iter().sum();
            let points = counts
                .iter()
                .enumerate()
                .map(|(slot, count)| {
                    let value = min + slot as i64;
                    PointReport {
                        value,
                        label: question
                            .labels
                            .iter()
                            .find(|l| l.value == value)
                            .map(|l| l.label.get(&labels.language).to_owned())
                            .unwrap_or_else(|| value.to_string()),
                        satisfied: criterion.satisfied_slots.contains(&slot),
                        count: *count,
                        share: if n == 0 { 0.0 } else { 100.0 * *count as f64 / n as f64 },
                    }
                })
                .collect();
            Some(ScaleReport {
                id: criterion.id.clone(),
                label: question.text.get(&labels.language).to_owned(),
                n,
                points,
            })
        })
        .collect()
}

/// A parent's spreads as the mean of its units' shares (units without answers to a criterion
/// left out), as its criteria are the mean of its units' estimates: the satisfied points then add
/// up to the criterion's estimate. Counts and `n` stay those of all the parent's answers.
fn mean_of_spreads(pooled: &[ScaleReport], units: &[Vec<ScaleReport>]) -> Vec<ScaleReport> {
    pooled
        .iter()
        .enumerate()
        .map(|(i, spread)| {
            let answered: Vec<&ScaleReport> = units.iter().filter_map(|u| u.get(i)).filter(|s| s.n > 0).collect();
            if answered.is_empty() {
                return spread.clone();
            }
            let mut spread = spread.clone();
            for (p, point) in spread.points.iter_mut().enumerate() {
                point.share = answered.iter().map(|s| s.points.get(p).map_or(0.0, |x| x.share)).sum::<f64>()
                    / answered.len() as f64;
            }
            spread
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn unit_report(
    side: &Side,
    labels: &Labels,
    request: &StatsRequest,
    node: i64,
    group: &Group,
    suppression: Option<Suppression>,
    vs_parent: Option<Vec<Option<DifferenceReport>>>,
    changes: Option<Vec<Option<ChangeReport>>>,
    breakdown: &Option<String>,
) -> UnitReport {
    let tree = &side.context.tree;
    let agency = tree
        .node(node)
        .map(|n| AgencyRef { code: n.code.clone(), name: n.name(&request.language).to_owned(), level: n.level.clone() })
        .unwrap_or(AgencyRef { code: node.to_string(), name: String::new(), level: String::new() });
    let suppressed = suppression.is_some();
    let figures = figures_report(
        side,
        labels,
        request,
        &group.figures,
        group.all.respondents,
        suppression,
        vs_parent.as_ref(),
        changes.as_ref(),
    );
    let m = &side.context.definition.measurement;
    let (mut expectations, assessments, scale) = if suppressed {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        (
            choices(side, labels, &group.all, &m.expectations, request.confidence),
            choices(side, labels, &group.all, &m.assessments, request.confidence),
            scale_spread(side, labels, &group.all),
        )
    };
    let first_share = |c: &ChoiceReport| {
        let question = side.context.definition.question(&c.id);
        let first = question.and_then(|q| q.options.first()).map(|o| o.value.as_str());
        c.options.iter().find(|o| Some(o.value.as_str()) == first).map_or(0.0, |o| o.estimate)
    };
    expectations.sort_by(|a, b| first_share(b).total_cmp(&first_share(a)));
    let breakdown = breakdown.as_ref().map(|by| {
        if suppressed {
            return Vec::new();
        }
        breakdown_cells(side, labels, request, node, by)
    });
    UnitReport {
        agency,
        figures,
        rank: None,
        rollup: None,
        weighting: group.weighting.clone(),
        expectations,
        assessments,
        scale,
        breakdown,
    }
}

/// One entry per value of a breakdown, each with its own n, intervals and suppression (with a
/// complement: the unit's total is shown, so one withheld cell could otherwise be derived).
fn breakdown_cells(side: &Side, labels: &Labels, request: &StatsRequest, node: i64, by: &str) -> Vec<BreakdownCell> {
    let empty = AgencyTallies::default();
    let tallies = side.tallies.get(&node).unwrap_or(&empty);
    let layout = &side.context.layout;
    let language = labels.language.as_str();
    let no_answer = if language == "vi" { "Không trả lời" } else { "No answer" };
    let groups: Vec<(String, String, Group)> = if by == RESPONDENT_TYPE {
        tallies
            .respondent_types()
            .into_iter()
            .map(|kind| {
                let label = match (kind.as_str(), language) {
                    ("individual", "vi") => "Cá nhân".to_owned(),
                    ("individual", _) => "Individual".to_owned(),
                    ("organization", "vi") => "Tổ chức".to_owned(),
                    ("organization", _) => "Organization".to_owned(),
                    (other, _) => other.to_owned(),
                };
                let population = side.population_of(&[node]);
                let group = side.group(tallies, population.as_ref(), Some(&kind));
                (kind, label, group)
            })
            .collect()
    } else {
        let question = side.context.definition.question(by);
        let mut values: Vec<(String, String)> = question
            .map(|q| q.options.iter().map(|o| (o.value.clone(), o.label.get(language).to_owned())).collect())
            .unwrap_or_default();
        values.push((NO_ANSWER.to_owned(), no_answer.to_owned()));
        values
            .into_iter()
            .map(|(value, label)| {
                let tally = tallies.cell(layout, &crate::intake::tally::breakdown_cell(by, &value), None);
                let figures = estimate(&side.model, &[Cell { tally: &tally, population: 1.0 }]);
                (value, label, Group { figures, all: tally, weighting: None })
            })
            .collect()
    };
    let min_n = u64::try_from(side.context.campaign.min_n).unwrap_or(0);
    let respondents: Vec<u64> = groups.iter().map(|(_, _, g)| g.all.respondents).collect();
    let suppression = crate::stats::suppress(&respondents, min_n, true);
    groups
        .into_iter()
        .zip(suppression)
        .map(|((value, label, group), suppression)| BreakdownCell {
            value,
            label,
            figures: figures_report(
                side,
                labels,
                request,
                &group.figures,
                group.all.respondents,
                suppression,
                None,
                None,
            ),
        })
        .collect()
}
