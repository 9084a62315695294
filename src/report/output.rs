//! The shape of a statistics report, as JSON (and the source of its CSV and XLSX forms).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// The answer of `GET /api/v1/campaigns/{id}/stats`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsReport {
    /// Campaign id.
    pub campaign: String,
    /// Campaign title in the chosen language.
    pub title: String,
    /// Survey id.
    pub survey: String,
    /// Survey version.
    pub version: i32,
    /// Whether the campaign's responses are synthetic (demo data), not real.
    pub synthetic: bool,
    /// When the figures were computed.
    pub computed_at: DateTime<Utc>,
    /// How the figures were computed.
    pub method: MethodReport,
    /// The parent the units are compared with (`null` for the top of the tree with `scope=self`).
    pub parent: Option<UnitReport>,
    /// The units asked for.
    pub units: Vec<UnitReport>,
}

/// How the figures were computed, so that nobody has to guess.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MethodReport {
    /// `mean_of_units` (the parent is the unweighted mean of its children that are not
    /// suppressed) or `pooled` (the parent is computed over all its respondents).
    pub rollup: String,
    /// `none` or `cells` (post-stratified to the uploaded population per weighting cell).
    pub weights: String,
    /// Confidence level of every interval.
    pub confidence: f64,
    /// How each kind of interval is formed.
    pub intervals: IntervalsReport,
    /// Respondents a unit needs before its estimates are shown.
    pub min_n: i64,
    /// How suppression works.
    pub suppression: String,
    /// The breakdown asked for, if any.
    pub breakdown: Option<String>,
    /// The campaign compared with, if any.
    pub comparison: Option<ComparisonReport>,
    /// Added by sipas, not part of the official method: intervals, weights, suppression.
    pub note: String,
}

/// How intervals are formed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IntervalsReport {
    /// Criteria of a unit.
    pub criteria: String,
    /// Elements, components and the index of a unit.
    pub measures: String,
    /// Every figure of a parent computed as a mean of units.
    pub mean_of_units: String,
    /// Differences.
    pub differences: String,
}

/// The earlier campaign compared with and how its respondents were matched to today's units.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComparisonReport {
    /// Earlier campaign id.
    pub campaign: String,
    /// Its title.
    pub title: String,
    /// Its survey version.
    pub version: i32,
    /// Units whose earlier respondents were those of other agencies (predecessors before a
    /// reorganisation), pooled under today's unit.
    pub mapped: Vec<MappedUnit>,
    /// What the mapping means.
    pub note: String,
}

/// A unit whose earlier figures pool the respondents of its predecessors.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MappedUnit {
    /// Today's agency code.
    pub agency: String,
    /// Codes of the earlier agencies pooled under it.
    pub from: Vec<String>,
}

/// An agency as shown in a report.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ReportAgency)]
pub struct AgencyRef {
    /// Official code.
    pub code: String,
    /// Name in the chosen language.
    pub name: String,
    /// Level (`nation`, `province`, `commune`, …).
    pub level: String,
}

/// One unit (an agency with its subtree) and its figures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnitReport {
    /// The agency.
    pub agency: AgencyRef,
    /// Its figures.
    #[serde(flatten)]
    pub figures: FiguresReport,
    /// Rank among its siblings by the index (1 = highest; ties share a rank); `null` when
    /// suppressed.
    pub rank: Option<u32>,
    /// For the parent: how its figures were actually formed (`pooled` when no child had
    /// estimates to average).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollup: Option<String>,
    /// With `weights=cells`: what the weighting used and left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weighting: Option<WeightingReport>,
    /// Expectations, highest priority first (by the share of the first option).
    pub expectations: Vec<ChoiceReport>,
    /// Assessments, in the definition's order.
    pub assessments: Vec<ChoiceReport>,
    /// How the answers to each criterion spread over the scale, unweighted: over the unit's
    /// respondents, or for a parent formed as a mean of units the mean of its units' shares, so
    /// that the satisfied points add up to the criterion's unweighted estimate (empty when
    /// suppressed).
    pub scale: Vec<ScaleReport>,
    /// With `breakdown=`: one entry per value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Vec<BreakdownCell>>,
}

/// The estimates of one group of respondents.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FiguresReport {
    /// Respondents.
    pub n: u64,
    /// Whether estimates are withheld.
    pub suppressed: bool,
    /// Why: `too_few_respondents` or `complementary` (withheld so that a small sibling can't be
    /// derived by subtraction).
    pub suppression: Option<String>,
    /// The overall index.
    pub index: MeasureReport,
    /// Components.
    pub components: Vec<MeasureReport>,
    /// Elements.
    pub elements: Vec<MeasureReport>,
    /// Criteria (ids are question ids).
    pub criteria: Vec<MeasureReport>,
}

/// One estimate with its interval.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MeasureReport {
    /// The definition's id.
    pub id: String,
    /// Its label in the chosen language.
    pub label: String,
    /// Percentage 0–100, full precision; `null` when suppressed or nobody answered.
    pub estimate: Option<f64>,
    /// Lower bound of the interval.
    pub ci_low: Option<f64>,
    /// Upper bound of the interval.
    pub ci_high: Option<f64>,
    /// Answers (criteria) or respondents with a score behind the estimate.
    pub n: Option<u64>,
    /// Criteria only: answers counted as satisfied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub satisfied: Option<Option<u64>>,
    /// Kish's effective sample size, with weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_n: Option<f64>,
    /// This unit minus its parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_parent: Option<DifferenceReport>,
    /// This campaign minus the earlier one (`compare=`); `null` when either has no estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Option<ChangeReport>>,
}

/// A difference with its interval and two-sided p-value.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct DifferenceReport {
    /// In percentage points.
    pub difference: f64,
    /// Lower bound.
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// Two-sided p-value of "no difference".
    pub p_value: f64,
}

/// The change since an earlier campaign.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ChangeReport {
    /// The earlier estimate.
    pub previous: f64,
    /// Lower bound of the earlier estimate's interval.
    pub previous_ci_low: f64,
    /// Upper bound of the earlier estimate's interval.
    pub previous_ci_high: f64,
    /// Now minus then, in percentage points.
    pub difference: f64,
    /// Lower bound.
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// Two-sided p-value of "no change".
    pub p_value: f64,
}

/// What post-stratification used for one unit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WeightingReport {
    /// Whether estimates are weighted (false when no population covers the unit: its estimates
    /// are then unweighted).
    pub weighted: bool,
    /// Total population of the cells.
    pub population: f64,
    /// Cells with population and respondents.
    pub cells: usize,
    /// Cells with population but no respondents: left out, the other cells' shares renormalised.
    pub empty_cells: Vec<EmptyCell>,
    /// Respondents in cells without population (for example gender not answered): not counted.
    pub respondents_without_population: u64,
    /// Kish's effective sample size of the unit's respondents.
    pub effective_n: Option<f64>,
}

/// A weighting cell with population but no respondents.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EmptyCell {
    /// Cell key (`w:gender=female,age_band=18_24`).
    pub cell: String,
    /// Its population.
    pub population: f64,
}

/// Shares of the options of one choice question.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChoiceReport {
    /// Question id.
    pub id: String,
    /// Question text in the chosen language.
    pub label: String,
    /// Respondents who answered.
    pub n: u64,
    /// Options, most chosen first.
    pub options: Vec<ShareReport>,
}

/// One option's share.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShareReport {
    /// Option value.
    pub value: String,
    /// Option label in the chosen language.
    pub label: String,
    /// Respondents who chose it.
    pub count: u64,
    /// Percentage of those who answered.
    pub estimate: f64,
    /// Wilson interval, lower bound.
    pub ci_low: f64,
    /// Wilson interval, upper bound.
    pub ci_high: f64,
}

/// How the answers to one criterion spread over the points of its scale.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScaleReport {
    /// Question id.
    pub id: String,
    /// Question text in the chosen language.
    pub label: String,
    /// Valid answers.
    pub n: u64,
    /// One entry per point, lowest first.
    pub points: Vec<PointReport>,
}

/// One point of a scale.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PointReport {
    /// The point's value.
    pub value: i64,
    /// Its label in the chosen language.
    pub label: String,
    /// Whether it counts as satisfied.
    pub satisfied: bool,
    /// Answers.
    pub count: u64,
    /// Percentage of the valid answers.
    pub share: f64,
}

/// One value of a breakdown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BreakdownCell {
    /// The value (an option of the question, `_` for no answer, or a respondent type).
    pub value: String,
    /// Its label in the chosen language.
    pub label: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: FiguresReport,
}
