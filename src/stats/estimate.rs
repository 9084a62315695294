//! Criterion, element, component and index estimates of one group of respondents, computed from
//! tallies exactly as the definition's measurement model says, optionally post-stratified to
//! population counts per weighting cell. Pure functions.

use crate::intake::tally::{MeasureSums, Tally, TallyLayout, slots_of};
use crate::survey::model::{Combine, QuestionKind, SurveyDefinition};

use super::interval::{Confidence, IntervalKind, normal, wilson};

/// One estimate, in percent (0–100), with what its interval needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The value.
    pub value: f64,
    /// Its sampling variance (percent²).
    pub variance: f64,
    /// Answers (criteria) or respondents with a score (other measures) behind it.
    pub n: u64,
    /// Kish's effective sample size (equal to `n` without weights).
    pub effective_n: f64,
    /// Answers counted as satisfied (criteria only; unweighted count).
    pub satisfied: Option<u64>,
    /// How its interval is formed.
    pub interval: IntervalKind,
}

impl Estimate {
    /// The confidence interval.
    pub fn interval(&self, confidence: Confidence) -> (f64, f64) {
        match self.interval {
            IntervalKind::Wilson => wilson(self.value, self.effective_n, confidence.z)
                .unwrap_or_else(|| normal(self.value, self.variance, confidence.z)),
            IntervalKind::Normal => normal(self.value, self.variance, confidence.z),
        }
    }
}

/// A criterion: a scale question, the element it belongs to, and which of its count slots are
/// "satisfied".
#[derive(Debug, Clone, PartialEq)]
pub struct CriterionSpec {
    /// Question id.
    pub id: String,
    /// Its first count slot in a tally.
    pub offset: usize,
    /// Number of scale points.
    pub points: usize,
    /// Slots (relative to `offset`) of the satisfied values.
    pub satisfied_slots: Vec<usize>,
}

/// An element of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementSpec {
    /// Element id.
    pub id: String,
    /// Position of its component, if any.
    pub component: Option<usize>,
    /// Positions (in [`Model::criteria`]) of its criteria.
    pub criteria: Vec<usize>,
    /// Position of its "in general" statement, if any.
    pub general: Option<usize>,
    /// Mean of criteria or the general statement.
    pub combine: Combine,
}

/// The measurement model in the shape the estimators use.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Criteria: each element's criteria, then its general statement, element by element.
    pub criteria: Vec<CriterionSpec>,
    /// Elements in definition order.
    pub elements: Vec<ElementSpec>,
    /// Component ids in definition order.
    pub components: Vec<String>,
    /// Index id.
    pub index: String,
    /// Position in the tally's measures of the index (0), each component and each element.
    component_measures: Vec<usize>,
    element_measures: Vec<usize>,
}

impl Model {
    /// The model of a definition, with slots from its tally layout.
    pub fn new(definition: &SurveyDefinition, layout: &TallyLayout) -> Self {
        let m = &definition.measurement;
        let mut criteria: Vec<CriterionSpec> = Vec::new();
        let criterion_of = |question_id: &str, satisfied: &[i64], criteria: &mut Vec<CriterionSpec>| {
            if let Some(existing) = criteria.iter().position(|c| c.id == question_id) {
                return Some(existing);
            }
            let index = definition.questions.iter().position(|q| q.id == question_id)?;
            let question = &definition.questions[index];
            if question.kind != QuestionKind::Scale {
                return None;
            }
            let min = question.min?;
            let points = slots_of(question.kind, question.min, question.max, 0);
            let satisfied_slots =
                satisfied.iter().filter_map(|v| usize::try_from(v - min).ok()).filter(|s| *s < points).collect();
            criteria.push(CriterionSpec {
                id: question_id.to_owned(),
                offset: layout.question_offsets[index],
                points,
                satisfied_slots,
            });
            Some(criteria.len() - 1)
        };
        let mut elements = Vec::with_capacity(m.elements.len());
        for element in &m.elements {
            let satisfied = element.satisfied.as_deref().unwrap_or(&m.satisfied);
            let own: Vec<usize> =
                element.criteria.iter().filter_map(|c| criterion_of(c, satisfied, &mut criteria)).collect();
            let general = element.general.as_deref().and_then(|g| criterion_of(g, satisfied, &mut criteria));
            elements.push(ElementSpec {
                id: element.id.clone(),
                component: element.component.as_deref().and_then(|c| m.components.iter().position(|x| x.id == c)),
                criteria: own,
                general,
                combine: element.combine,
            });
        }
        let measure = |id: &str| layout.measures.iter().position(|m| m == id).unwrap_or(0);
        Self {
            component_measures: m.components.iter().map(|c| measure(&c.id)).collect(),
            element_measures: m.elements.iter().map(|e| measure(&e.id)).collect(),
            components: m.components.iter().map(|c| c.id.clone()).collect(),
            index: m.index.id.clone(),
            criteria,
            elements,
        }
    }
}

/// Every estimate of one group of respondents; `None` where nobody answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Respondents counted (in cells with population, when weighted).
    pub respondents: u64,
    /// The overall index.
    pub index: Option<Estimate>,
    /// Per component, in [`Model::components`] order.
    pub components: Vec<Option<Estimate>>,
    /// Per element, in [`Model::elements`] order.
    pub elements: Vec<Option<Estimate>>,
    /// Per criterion, in [`Model::criteria`] order.
    pub criteria: Vec<Option<Estimate>>,
}

impl Figures {
    /// Figures with no estimates.
    pub fn empty(model: &Model, respondents: u64) -> Self {
        Self {
            respondents,
            index: None,
            components: vec![None; model.components.len()],
            elements: vec![None; model.elements.len()],
            criteria: vec![None; model.criteria.len()],
        }
    }
}

/// One post-stratification cell: its respondents' tally and its population (1 for every cell
/// when unweighted, which makes the estimators below the plain ones).
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    /// The cell's tally.
    pub tally: &'a Tally,
    /// Its population count.
    pub population: f64,
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Sample variance of scores from their sums, `None` below two scores.
fn sample_variance(sums: &MeasureSums) -> Option<f64> {
    (sums.n >= 2).then(|| {
        let n = sums.n as f64;
        ((sums.sum_sq - sums.sum * sums.sum / n) / (n - 1.0)).max(0.0)
    })
}

/// Post-stratified proportion over cells: `(value, variance, n, effective n, satisfied)` from
/// each cell's (satisfied, valid) counts; cells without answers or population drop out and the
/// remaining population shares are renormalised.
fn stratified_proportion(parts: &[(u64, u64, f64)]) -> Option<Estimate> {
    let used: Vec<&(u64, u64, f64)> = parts.iter().filter(|(_, valid, pop)| *valid > 0 && *pop > 0.0).collect();
    let total: f64 = used.iter().map(|(_, _, pop)| pop).sum();
    if used.is_empty() || total <= 0.0 {
        return None;
    }
    let mut value = 0.0;
    let mut variance = 0.0;
    let mut inverse = 0.0;
    for (satisfied, valid, pop) in &used {
        let share = pop / total;
        let p = 100.0 * *satisfied as f64 / *valid as f64;
        value += share * p;
        variance += share * share * p * (100.0 - p) / *valid as f64;
        inverse += pop * pop / *valid as f64;
    }
    Some(Estimate {
        value,
        variance,
        n: used.iter().map(|(_, valid, _)| valid).sum(),
        effective_n: total * total / inverse,
        satisfied: Some(used.iter().map(|(satisfied, _, _)| satisfied).sum()),
        interval: IntervalKind::Wilson,
    })
}

/// Variance and sample size of a measure's respondent-level scores over the cells, for an
/// estimate whose value comes from the model: `Σ W_c² s_c² / n_c`. A cell with one score borrows
/// the variance of all cells together.
fn measure_spread(cells: &[Cell], measure: usize) -> Option<(f64, u64, f64)> {
    let used: Vec<(&MeasureSums, f64)> = cells
        .iter()
        .map(|c| (&c.tally.measures[measure], c.population))
        .filter(|(sums, pop)| sums.n > 0 && *pop > 0.0)
        .collect();
    let total: f64 = used.iter().map(|(_, pop)| pop).sum();
    if used.is_empty() || total <= 0.0 {
        return None;
    }
    let mut all = MeasureSums::default();
    for (sums, _) in &used {
        all.n += sums.n;
        all.sum += sums.sum;
        all.sum_sq += sums.sum_sq;
    }
    let fallback = sample_variance(&all).unwrap_or(0.0);
    let mut variance = 0.0;
    let mut inverse = 0.0;
    for (sums, pop) in &used {
        let share = pop / total;
        variance += share * share * sample_variance(sums).unwrap_or(fallback) / sums.n as f64;
        inverse += pop * pop / sums.n as f64;
    }
    Some((variance, all.n, total * total / inverse))
}

/// The estimates of a group of respondents split into cells (one cell, population 1, for plain
/// estimates): criteria are (post-stratified) shares satisfied; elements, components and the
/// index combine their children's values as the model says, with variances from the
/// respondent-level scores in the tallies.
pub fn estimate(model: &Model, cells: &[Cell]) -> Figures {
    let respondents = cells.iter().filter(|c| c.population > 0.0).map(|c| c.tally.respondents).sum();
    let criteria: Vec<Option<Estimate>> = model
        .criteria
        .iter()
        .map(|criterion| {
            let parts: Vec<(u64, u64, f64)> = cells
                .iter()
                .map(|cell| {
                    let counts = &cell.tally.counts[criterion.offset..criterion.offset + criterion.points];
                    let valid = counts.iter().sum();
                    let satisfied = criterion.satisfied_slots.iter().map(|s| counts[*s]).sum();
                    (satisfied, valid, cell.population)
                })
                .collect();
            stratified_proportion(&parts)
        })
        .collect();
    let combined = |value: Option<f64>, measure: usize| -> Option<Estimate> {
        let value = value?;
        let (variance, n, effective_n) = measure_spread(cells, measure)?;
        Some(Estimate { value, variance, n, effective_n, satisfied: None, interval: IntervalKind::Normal })
    };
    let elements: Vec<Option<Estimate>> = model
        .elements
        .iter()
        .zip(&model.element_measures)
        .map(|(element, measure)| match element.combine {
            Combine::General => element.general.and_then(|g| criteria[g]),
            Combine::Mean => {
                let values: Vec<f64> = element.criteria.iter().filter_map(|c| criteria[*c].map(|e| e.value)).collect();
                combined(mean(&values), *measure)
            }
        })
        .collect();
    let components: Vec<Option<Estimate>> = (0..model.components.len())
        .map(|component| {
            let values: Vec<f64> = model
                .elements
                .iter()
                .zip(&elements)
                .filter(|(spec, _)| spec.component == Some(component))
                .filter_map(|(_, e)| e.map(|e| e.value))
                .collect();
            combined(mean(&values), model.component_measures[component])
        })
        .collect();
    let children: Vec<f64> = if model.components.is_empty() {
        elements.iter().flatten().map(|e| e.value).collect()
    } else {
        components.iter().flatten().map(|e| e.value).collect()
    };
    let index = combined(mean(&children), 0);
    Figures { respondents, index, components, elements, criteria }
}

/// The unweighted estimates of one tally.
pub fn plain(model: &Model, tally: &Tally) -> Figures {
    estimate(model, &[Cell { tally, population: 1.0 }])
}

/// The unweighted mean of several units' estimates, measure by measure, over the units that have
/// one (the official national rule). Units are independent samples, so the variance is
/// `Σ var_i / k²`; intervals are normal.
pub fn mean_of_units(model: &Model, units: &[&Figures]) -> Figures {
    let combine = |pick: &dyn Fn(&Figures) -> Option<Estimate>| -> Option<Estimate> {
        let present: Vec<Estimate> = units.iter().filter_map(|u| pick(u)).collect();
        if present.is_empty() {
            return None;
        }
        let k = present.len() as f64;
        Some(Estimate {
            value: present.iter().map(|e| e.value).sum::<f64>() / k,
            variance: present.iter().map(|e| e.variance).sum::<f64>() / (k * k),
            n: present.iter().map(|e| e.n).sum(),
            effective_n: present.iter().map(|e| e.effective_n).sum(),
            satisfied: present.iter().map(|e| e.satisfied).sum(),
            interval: IntervalKind::Normal,
        })
    };
    Figures {
        respondents: units.iter().map(|u| u.respondents).sum(),
        index: combine(&|u| u.index),
        components: (0..model.components.len()).map(|i| combine(&|u| u.components[i])).collect(),
        elements: (0..model.elements.len()).map(|i| combine(&|u| u.elements[i])).collect(),
        criteria: (0..model.criteria.len()).map(|i| combine(&|u| u.criteria[i])).collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::intake::tally::response_tally;
    use crate::survey::answers::check_answers;
    use crate::survey::defaults::embedded_definitions;

    fn definition(id: &str) -> SurveyDefinition {
        embedded_definitions().unwrap().into_iter().find(|d| d.id == id).unwrap()
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    struct Fixture {
        definition: SurveyDefinition,
        layout: TallyLayout,
        model: Model,
    }

    impl Fixture {
        fn new(id: &str) -> Self {
            let definition = definition(id);
            let layout = TallyLayout::new(&definition);
            let model = Model::new(&definition, &layout);
            Self { definition, layout, model }
        }

        fn tally(&self, responses: &[serde_json::Value]) -> Tally {
            let mut total = self.layout.empty();
            for body in responses {
                let answers = check_answers(&self.definition, body).unwrap();
                total.add(&response_tally(&self.definition, &self.layout, &answers));
            }
            total
        }

        fn criterion(&self, id: &str) -> usize {
            self.model.criteria.iter().position(|c| c.id == id).unwrap()
        }

        fn element(&self, id: &str) -> usize {
            self.model.elements.iter().position(|e| e.id == id).unwrap()
        }
    }

    #[test]
    fn no_answers_give_no_estimates() {
        let f = Fixture::new("sipas-2017");
        let figures = plain(&f.model, &f.layout.empty());
        assert_eq!(figures.respondents, 0);
        assert!(figures.index.is_none());
        assert!(figures.criteria.iter().all(Option::is_none));
        assert!(figures.elements.iter().all(Option::is_none));
    }

    #[test]
    fn one_answer() {
        let f = Fixture::new("sipas-2017");
        let figures = plain(&f.model, &f.tally(&[json!({"c01": 4})]));
        let c01 = figures.criteria[f.criterion("c01")].unwrap();
        assert_eq!((c01.value, c01.n, c01.satisfied), (100.0, 1, Some(1)));
        assert_eq!(c01.variance, 0.0);
        let (low, high) = c01.interval(Confidence::default());
        close(low, 20.65493143772374); // statsmodels wilson 1/1
        close(high, 100.0);
        assert!(figures.criteria[f.criterion("c02")].is_none(), "a criterion nobody answered");
        let access = figures.elements[f.element("access")].unwrap();
        assert_eq!((access.value, access.n), (100.0, 1));
        assert_eq!(figures.index.unwrap().value, 100.0, "the index is the mean of the elements with a value");
    }

    /// Hand computation: four respondents on `sipas-2017`, access element (c01–c04).
    /// c01: 5,4,2,1 → 2/4 = 50; c02: 4,4,3,— → 2/3 = 66.67; c03: 1,—,—,— → 0; c04 unanswered.
    /// access = mean(50, 66.67, 0) = 38.89; respondent scores (share of own answers satisfied):
    /// r1 (5,4,1) 66.67, r2 (4,4) 100, r3 (2,3) 0, r4 (1) 0 → variance from these.
    #[test]
    fn criteria_and_elements_by_hand() {
        let f = Fixture::new("sipas-2017");
        let tally = f.tally(&[
            json!({"c01": 5, "c02": 4, "c03": 1}),
            json!({"c01": 4, "c02": 4}),
            json!({"c01": 2, "c02": 3}),
            json!({"c01": 1}),
        ]);
        let figures = plain(&f.model, &tally);
        let c02 = figures.criteria[f.criterion("c02")].unwrap();
        close(c02.value, 200.0 / 3.0);
        close(c02.variance, (200.0 / 3.0) * (100.0 / 3.0) / 3.0);
        let access = figures.elements[f.element("access")].unwrap();
        close(access.value, (50.0 + 200.0 / 3.0 + 0.0) / 3.0);
        let scores = [200.0 / 3.0, 100.0, 0.0, 0.0];
        let m = scores.iter().sum::<f64>() / 4.0;
        let s2 = scores.iter().map(|s| (s - m).powi(2)).sum::<f64>() / 3.0;
        close(access.variance, s2 / 4.0);
        assert_eq!(access.n, 4);
        let (low, high) = access.interval(Confidence::default());
        close(low, (access.value - 1.959963984540054 * (s2 / 4.0).sqrt()).max(0.0));
        close(high, access.value + 1.959963984540054 * (s2 / 4.0).sqrt());
        assert_eq!(figures.index.unwrap().value, access.value, "only one element has answers");
    }

    #[test]
    fn all_and_none_satisfied() {
        let f = Fixture::new("sipas-2017");
        let all = plain(&f.model, &f.tally(&[json!({"c01": 5}), json!({"c01": 4}), json!({"c01": 5})]));
        let c01 = all.criteria[f.criterion("c01")].unwrap();
        assert_eq!(c01.value, 100.0);
        let (low, high) = c01.interval(Confidence::default());
        close(low, 43.850296824495445); // statsmodels wilson 3/3
        assert_eq!(high, 100.0);
        let none = plain(&f.model, &f.tally(&[json!({"c01": 1}), json!({"c01": 3})]));
        let c01 = none.criteria[f.criterion("c01")].unwrap();
        assert_eq!((c01.value, c01.satisfied), (0.0, Some(0)));
        assert_eq!(c01.interval(Confidence::default()).0, 0.0);
    }

    /// sipas-individual: components average their elements; the index averages the components.
    #[test]
    fn components_and_index_follow_the_model() {
        let f = Fixture::new("sipas-individual");
        let figures = plain(&f.model, &f.tally(&[json!({"p01": 5, "p02": 1, "p03": 4, "s01": 1})]));
        let at = |id: &str| figures.elements[f.element(id)].map(|e| e.value);
        assert_eq!(at("accountability"), Some(50.0));
        assert_eq!(at("participation"), Some(100.0));
        let policy = f.model.components.iter().position(|c| c == "policy").unwrap();
        let services = f.model.components.iter().position(|c| c == "services").unwrap();
        assert_eq!(figures.components[policy].unwrap().value, 75.0);
        assert_eq!(figures.components[services].unwrap().value, 0.0);
        assert_eq!(figures.index.unwrap().value, 37.5);
    }

    /// Two cells with populations 300 and 100; cell A: 3 of 4 satisfied, cell B: 0 of 2.
    /// p = 0.75 × 75 + 0.25 × 0 = 56.25; var = 0.75² × 75×25/4 + 0.25² × 0; Kish n = 400² /
    /// (300²/4 + 100²/2) = 160000 / 27500. An empty cell with population drops out (reported by the caller).
    #[test]
    fn post_stratified_criterion() {
        let f = Fixture::new("sipas-2017");
        let a = f.tally(&[json!({"c01": 5}), json!({"c01": 4}), json!({"c01": 4}), json!({"c01": 2})]);
        let b = f.tally(&[json!({"c01": 1}), json!({"c01": 3})]);
        let empty = f.layout.empty();
        let cells = [
            Cell { tally: &a, population: 300.0 },
            Cell { tally: &b, population: 100.0 },
            Cell { tally: &empty, population: 1000.0 },
        ];
        let figures = estimate(&f.model, &cells);
        let c01 = figures.criteria[f.criterion("c01")].unwrap();
        close(c01.value, 56.25);
        close(c01.variance, 0.5625 * 75.0 * 25.0 / 4.0);
        close(c01.effective_n, 160_000.0 / 27_500.0);
        assert_eq!(c01.n, 6);
        let (low, high) = c01.interval(Confidence::default());
        let (l, h) = wilson(56.25, 160_000.0 / 27_500.0, Confidence::default().z).unwrap();
        assert_eq!((low, high), (l, h));
        // Element access = c01 alone here; its variance comes from respondent scores per cell:
        // cell A scores 100,100,100,0 (s² = 2500), cell B 0,0 (s² = 0).
        let access = figures.elements[f.element("access")].unwrap();
        close(access.value, 56.25);
        close(access.variance, 0.5625 * 2500.0 / 4.0);
        assert_eq!(figures.respondents, 6);
    }

    #[test]
    fn equal_populations_of_one_cell_give_the_plain_estimates() {
        let f = Fixture::new("sipas-2017");
        let tally = f.tally(&[json!({"c01": 5, "c05": 2}), json!({"c01": 2, "c05": 4, "c10": 5})]);
        let weighted = estimate(&f.model, &[Cell { tally: &tally, population: 5000.0 }]);
        assert_eq!(weighted, plain(&f.model, &tally));
    }

    #[test]
    fn mean_of_units_is_unweighted() {
        let f = Fixture::new("sipas-2017");
        let big = plain(&f.model, &f.tally(&vec![json!({"c01": 5}); 9]));
        let small = plain(&f.model, &f.tally(&[json!({"c01": 1})]));
        let nobody = plain(&f.model, &f.layout.empty());
        let parent = mean_of_units(&f.model, &[&big, &small, &nobody]);
        let c01 = parent.criteria[f.criterion("c01")].unwrap();
        assert_eq!(c01.value, 50.0, "the mean of 100 and 0, not the pooled 90");
        assert_eq!(c01.n, 10);
        assert_eq!(c01.interval, IntervalKind::Normal);
        assert_eq!(parent.respondents, 10);
    }
}
