//! Sufficient statistics kept with every response, so that statistics never scan the answers.
//!
//! A tally row holds, for one (campaign, agency, respondent type, cell): counts per answer value of
//! every scale and choice question, the number of respondents answering each other question, and
//! for each measure (index, components, elements) the number of respondents with a score, the sum
//! and the sum of squares of their scores. Its layout follows the campaign's definition. Pure code:
//! no database here.

use std::collections::BTreeMap;

use super::super::survey::answers::{AnswerValue, Answers};
use super::super::survey::model::{Combine, QuestionKind, SurveyDefinition};

/// The cell holding every respondent.
pub const ALL_CELL: &str = "*";
/// The value recorded in a cell key for an unanswered breakdown question.
pub const NO_ANSWER: &str = "_";

/// Where each question's counts and each measure's sums sit in a tally row, and the measurement
/// model resolved to question positions (so that scoring a response looks nothing up by name).
#[derive(Debug, Clone, PartialEq)]
pub struct TallyLayout {
    /// First count slot of each question, in definition order.
    pub question_offsets: Vec<usize>,
    /// Number of count slots.
    pub count_slots: usize,
    /// Measure ids: the index, then components, then elements.
    pub measures: Vec<String>,
    /// Position of each question in the definition, by id (answers are read into positions; a
    /// fast hasher, since every answer of every response is looked up here).
    pub positions: foldhash::HashMap<String, usize>,
    scoring: Scoring,
}

/// The measurement model with question ids replaced by their positions.
#[derive(Debug, Clone, PartialEq)]
struct Scoring {
    elements: Vec<ElementScoring>,
    /// Per component, the positions (among the elements) of its elements.
    components: Vec<Vec<usize>>,
    /// Breakdown questions: id and position.
    breakdowns: Vec<(String, Option<usize>)>,
    /// Weighting questions: id and position.
    weighting: Vec<(String, Option<usize>)>,
}

#[derive(Debug, Clone, PartialEq)]
struct ElementScoring {
    combine: Combine,
    general: Option<usize>,
    criteria: Vec<usize>,
    satisfied: Vec<i64>,
}

impl Scoring {
    fn new(definition: &SurveyDefinition) -> Self {
        let m = &definition.measurement;
        let position: std::collections::HashMap<&str, usize> =
            definition.questions.iter().enumerate().map(|(i, q)| (q.id.as_str(), i)).collect();
        let at = |id: &str| position.get(id).copied();
        let elements = m
            .elements
            .iter()
            .map(|element| ElementScoring {
                combine: element.combine,
                general: element.general.as_deref().and_then(at),
                // A criterion the definition does not ask is never answered; leaving it out
                // scores the same.
                criteria: element.criteria.iter().filter_map(|c| at(c)).collect(),
                satisfied: element.satisfied.clone().unwrap_or_else(|| m.satisfied.clone()),
            })
            .collect();
        let components = m
            .components
            .iter()
            .map(|component| {
                m.elements
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.component.as_deref() == Some(component.id.as_str()))
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        let resolve = |ids: &[String]| ids.iter().map(|id| (id.clone(), at(id))).collect();
        Self { elements, components, breakdowns: resolve(&m.breakdowns), weighting: resolve(&m.weighting) }
    }
}

/// Which measure a position in [`TallyLayout::measures`] is.
fn measure_ids(definition: &SurveyDefinition) -> Vec<String> {
    let m = &definition.measurement;
    std::iter::once(m.index.id.clone())
        .chain(m.components.iter().map(|c| c.id.clone()))
        .chain(m.elements.iter().map(|e| e.id.clone()))
        .collect()
}

/// Count slots a question takes: one per scale point or option; a multi-choice question adds one
/// for "answered"; integer and text questions have only "answered".
pub fn slots_of(kind: QuestionKind, min: Option<i64>, max: Option<i64>, options: usize) -> usize {
    match kind {
        QuestionKind::Scale => match (min, max) {
            (Some(min), Some(max)) if max >= min => (max - min + 1) as usize,
            _ => 0,
        },
        QuestionKind::SingleChoice => options,
        QuestionKind::MultiChoice => options + 1,
        QuestionKind::Integer | QuestionKind::Text => 1,
    }
}

impl TallyLayout {
    /// The layout for a definition.
    pub fn new(definition: &SurveyDefinition) -> Self {
        let mut offsets = Vec::with_capacity(definition.questions.len());
        let mut next = 0;
        for q in &definition.questions {
            offsets.push(next);
            next += slots_of(q.kind, q.min, q.max, q.options.len());
        }
        Self {
            question_offsets: offsets,
            count_slots: next,
            measures: measure_ids(definition),
            positions: definition.questions.iter().enumerate().map(|(i, q)| (q.id.clone(), i)).collect(),
            scoring: Scoring::new(definition),
        }
    }

    /// An all-zero tally.
    pub fn empty(&self) -> Tally {
        Tally {
            respondents: 0,
            counts: vec![0; self.count_slots],
            measures: vec![MeasureSums::default(); self.measures.len()],
        }
    }

    /// Bytes of an encoded tally.
    pub fn encoded_len(&self) -> usize {
        8 + self.count_slots * 4 + self.measures.len() * 20
    }
}

/// Running sums of one measure's respondent-level scores.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MeasureSums {
    /// Respondents with a score.
    pub n: u64,
    /// Sum of their scores (0–100).
    pub sum: f64,
    /// Sum of the squares of their scores.
    pub sum_sq: f64,
}

/// The sufficient statistics of a group of respondents.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    /// Respondents counted.
    pub respondents: u64,
    /// Count slots, by [`TallyLayout::question_offsets`].
    pub counts: Vec<u64>,
    /// Per measure, by [`TallyLayout::measures`].
    pub measures: Vec<MeasureSums>,
}

/// A stored tally does not fit the layout.
#[derive(Debug, thiserror::Error)]
#[error("tally of {found} bytes does not fit a layout of {expected} bytes")]
pub struct LayoutMismatch {
    /// Bytes expected.
    pub expected: usize,
    /// Bytes found.
    pub found: usize,
}

impl Tally {
    /// Adds another tally of the same layout.
    pub fn add(&mut self, other: &Tally) {
        self.respondents += other.respondents;
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        for (a, b) in self.measures.iter_mut().zip(&other.measures) {
            a.n += b.n;
            a.sum += b.sum;
            a.sum_sq += b.sum_sq;
        }
    }

    /// Packs the tally: respondents (u64), counts (u32 each), then (n u32, sum f64, sum_sq f64)
    /// per measure, little-endian. Counts past u32 saturate (4 billion answers in one row).
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8 + self.counts.len() * 4 + self.measures.len() * 20);
        bytes.extend_from_slice(&self.respondents.to_le_bytes());
        for count in &self.counts {
            bytes.extend_from_slice(&u32::try_from(*count).unwrap_or(u32::MAX).to_le_bytes());
        }
        for m in &self.measures {
            bytes.extend_from_slice(&u32::try_from(m.n).unwrap_or(u32::MAX).to_le_bytes());
            bytes.extend_from_slice(&m.sum.to_le_bytes());
            bytes.extend_from_slice(&m.sum_sq.to_le_bytes());
        }
        bytes
    }

    /// Unpacks a tally written by [`Tally::encode`] for the same layout.
    pub fn decode(layout: &TallyLayout, bytes: &[u8]) -> Result<Self, LayoutMismatch> {
        let expected = layout.encoded_len();
        if bytes.len() != expected {
            return Err(LayoutMismatch { expected, found: bytes.len() });
        }
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let f64_at = |at: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[at..at + 8]);
            f64::from_le_bytes(raw)
        };
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&bytes[..8]);
        let respondents = u64::from_le_bytes(raw);
        let counts = (0..layout.count_slots).map(|i| u64::from(u32_at(8 + i * 4))).collect();
        let base = 8 + layout.count_slots * 4;
        let measures = (0..layout.measures.len())
            .map(|i| {
                let at = base + i * 20;
                MeasureSums { n: u64::from(u32_at(at)), sum: f64_at(at + 4), sum_sq: f64_at(at + 12) }
            })
            .collect();
        Ok(Self { respondents, counts, measures })
    }
}

/// One respondent's scores (0–100) per measure, by [`TallyLayout::measures`]; `None` where the
/// respondent answered none of the measure's criteria.
pub fn respondent_scores(layout: &TallyLayout, answers: &Answers) -> Vec<Option<f64>> {
    let scoring = &layout.scoring;
    let satisfied = |question: usize, values: &[i64]| -> Option<bool> {
        match answers.get(question) {
            Some(AnswerValue::Number(n)) => Some(values.contains(n)),
            _ => None,
        }
    };
    let element_scores: Vec<Option<f64>> = scoring
        .elements
        .iter()
        .map(|element| match element.combine {
            Combine::General => {
                element.general.and_then(|g| satisfied(g, &element.satisfied)).map(|s| if s { 100.0 } else { 0.0 })
            }
            Combine::Mean => {
                let (mut judged, mut satisfied_count) = (0usize, 0usize);
                for criterion in &element.criteria {
                    if let Some(s) = satisfied(*criterion, &element.satisfied) {
                        judged += 1;
                        satisfied_count += usize::from(s);
                    }
                }
                (judged > 0).then(|| 100.0 * satisfied_count as f64 / judged as f64)
            }
        })
        .collect();
    let mean = |scores: &mut dyn Iterator<Item = f64>| {
        let (count, sum) = scores.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
        (count > 0).then(|| sum / count as f64)
    };
    let component_scores: Vec<Option<f64>> =
        scoring.components.iter().map(|members| mean(&mut members.iter().filter_map(|e| element_scores[*e]))).collect();
    let index = if scoring.components.is_empty() {
        mean(&mut element_scores.iter().flatten().copied())
    } else {
        mean(&mut component_scores.iter().flatten().copied())
    };
    std::iter::once(index).chain(component_scores).chain(element_scores).collect()
}

/// The tally of one response.
pub fn response_tally(definition: &SurveyDefinition, layout: &TallyLayout, answers: &Answers) -> Tally {
    let mut tally = layout.empty();
    tally.respondents = 1;
    for (index, question) in definition.questions.iter().enumerate() {
        let offset = layout.question_offsets[index];
        match (answers.get(index), question.kind) {
            (Some(AnswerValue::Number(n)), QuestionKind::Scale) => {
                if let Some(min) = question.min
                    && let Some(slot) = usize::try_from(n - min)
                        .ok()
                        .filter(|s| *s < slots_of(question.kind, question.min, question.max, 0))
                {
                    tally.counts[offset + slot] += 1;
                }
            }
            (Some(AnswerValue::Choice(value)), QuestionKind::SingleChoice) => {
                if let Some(slot) = question.options.iter().position(|o| o.value == *value) {
                    tally.counts[offset + slot] += 1;
                }
            }
            (Some(AnswerValue::Choices(values)), QuestionKind::MultiChoice) => {
                for value in values {
                    if let Some(slot) = question.options.iter().position(|o| o.value == *value) {
                        tally.counts[offset + slot] += 1;
                    }
                }
                tally.counts[offset + question.options.len()] += 1;
            }
            (Some(_), QuestionKind::Integer | QuestionKind::Text) => tally.counts[offset] += 1,
            _ => {}
        }
    }
    for (sums, score) in tally.measures.iter_mut().zip(respondent_scores(layout, answers)) {
        if let Some(score) = score {
            sums.n = 1;
            sums.sum = score;
            sums.sum_sq = score * score;
        }
    }
    tally
}

/// The answer to a breakdown question, as it appears in a cell key.
fn breakdown_value<'d>(answers: &Answers<'d>, question: Option<usize>) -> &'d str {
    match question.and_then(|i| answers.get(i)) {
        Some(AnswerValue::Choice(value)) => value,
        _ => NO_ANSWER,
    }
}

/// Key of a breakdown cell: `b:QUESTION=VALUE`.
pub fn breakdown_cell(question: &str, value: &str) -> String {
    // Built by hand: this runs for every breakdown of every response, and `format!` cost five
    // times as much.
    let mut cell = String::with_capacity(3 + question.len() + value.len());
    cell.push_str("b:");
    cell.push_str(question);
    cell.push('=');
    cell.push_str(value);
    cell
}

/// The cells a response counts in: all respondents, one per breakdown question, and the
/// combination of the weighting questions (`w:gender=female,age_band=25_34`).
pub fn response_cells(layout: &TallyLayout, answers: &Answers) -> Vec<String> {
    let scoring = &layout.scoring;
    let mut cells = Vec::with_capacity(2 + scoring.breakdowns.len());
    cells.push(ALL_CELL.to_owned());
    for (question, position) in &scoring.breakdowns {
        cells.push(breakdown_cell(question, breakdown_value(answers, *position)));
    }
    if !scoring.weighting.is_empty() {
        let mut cell = String::with_capacity(64);
        cell.push_str("w:");
        for (index, (question, position)) in scoring.weighting.iter().enumerate() {
            if index > 0 {
                cell.push(',');
            }
            cell.push_str(question);
            cell.push('=');
            cell.push_str(breakdown_value(answers, *position));
        }
        cells.push(cell);
    }
    cells
}

/// Tallies keyed by (agency id, respondent type, cell), summed in memory before they are written.
pub type TallyDeltas = BTreeMap<(i64, String, String), Tally>;

/// Adds one response to `deltas`, at its agency and every ancestor in `path`.
pub fn add_response(
    deltas: &mut TallyDeltas,
    layout: &TallyLayout,
    path: &[i64],
    respondent_type: &str,
    cells: &[String],
    tally: &Tally,
) {
    for agency in path {
        for cell in cells {
            deltas
                .entry((*agency, respondent_type.to_owned(), cell.clone()))
                .or_insert_with(|| layout.empty())
                .add(tally);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::survey::answers::check_answers;
    use crate::survey::defaults::embedded_definitions;

    fn definition(id: &str) -> SurveyDefinition {
        embedded_definitions().unwrap().into_iter().find(|d| d.id == id).unwrap()
    }

    #[test]
    fn scores_follow_the_measurement_model() {
        let d = definition("sipas-2017");
        // access: 4,5,3,2,— → 2 of 4 satisfied = 50; procedures: all 5 → 100; nothing else answered.
        let answers =
            check_answers(&d, &json!({"c01": 4, "c02": 5, "c03": 3, "c04": 2, "c06": 5, "c07": 5, "c08": 4, "c09": 5}))
                .unwrap();
        let layout = TallyLayout::new(&d);
        let scores = respondent_scores(&layout, &answers);
        assert_eq!(layout.measures[0], "sipas");
        assert_eq!(layout.measures[1], "access");
        assert_eq!(scores[1], Some(50.0));
        assert_eq!(scores[2], Some(100.0));
        assert_eq!(scores[3], None);
        assert_eq!(scores[0], Some(75.0), "index = mean of the elements with a score");
    }

    #[test]
    fn component_scores_average_their_elements() {
        let d = definition("sipas-individual");
        let answers = check_answers(&d, &json!({"p01": 5, "p02": 1, "p03": 4, "s01": 1})).unwrap();
        let layout = TallyLayout::new(&d);
        let scores = respondent_scores(&layout, &answers);
        let at = |id: &str| layout.measures.iter().position(|m| m == id).unwrap();
        assert_eq!(scores[at("accountability")], Some(50.0));
        assert_eq!(scores[at("participation")], Some(100.0));
        assert_eq!(scores[at("policy")], Some(75.0));
        assert_eq!(scores[at("services")], Some(0.0));
        assert_eq!(scores[at("sipas")], Some(37.5));
    }

    #[test]
    fn a_tally_round_trips_through_its_encoding_and_adds_up() {
        let d = definition("sipas-individual");
        let layout = TallyLayout::new(&d);
        let answers =
            check_answers(&d, &json!({"s01": 5, "gender": "female", "age_band": "25_34", "e01": "much"})).unwrap();
        let one = response_tally(&d, &layout, &answers);
        let mut two = one.clone();
        two.add(&one);
        let decoded = Tally::decode(&layout, &two.encode()).unwrap();
        assert_eq!(decoded, two);
        assert_eq!(decoded.respondents, 2);
        let s01 = d.questions.iter().position(|q| q.id == "s01").unwrap();
        assert_eq!(decoded.counts[layout.question_offsets[s01] + 4], 2, "two answers of 5");
        assert!(Tally::decode(&layout, &[0u8; 3]).is_err());
    }

    #[test]
    fn cells_include_breakdowns_and_the_weighting_combination() {
        let d = definition("sipas-individual");
        let answers = check_answers(&d, &json!({"gender": "female", "age_band": "25_34"})).unwrap();
        let cells = response_cells(&TallyLayout::new(&d), &answers);
        assert_eq!(cells[0], "*");
        assert!(cells.contains(&"b:gender=female".to_owned()));
        assert!(cells.contains(&"b:education=_".to_owned()));
        assert_eq!(cells.last().unwrap(), "w:gender=female,age_band=25_34");
    }
}
