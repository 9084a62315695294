//! Parsing a definition file and checking that it is coherent before it can be published.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;

use super::model::{Combine, LocalizedText, Question, QuestionKind, SurveyDefinition};

/// One thing wrong in a definition, with the item at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DefinitionProblem {
    /// Where in the definition: `questions[s12].text.en`, `measurement.elements[access]`, …
    pub item: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DefinitionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.message)
    }
}

/// Why a definition cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// The text is not valid TOML or JSON of the definition's shape (this includes unknown keys).
    #[error("{0}")]
    Syntax(String),
    /// The definition parses but is not coherent.
    #[error("{} problem(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<DefinitionProblem>),
}

/// Parses a definition from TOML, resolves its shared scales, normalises its texts to NFC and
/// checks it.
pub fn parse_definition(toml_text: &str) -> Result<SurveyDefinition, DefinitionError> {
    let definition: SurveyDefinition = toml::from_str(toml_text).map_err(|e| DefinitionError::Syntax(e.to_string()))?;
    prepare(definition)
}

/// Same as [`parse_definition`] for the JSON form returned by the API.
pub fn parse_definition_json(json_text: &str) -> Result<SurveyDefinition, DefinitionError> {
    let definition: SurveyDefinition =
        serde_json::from_str(json_text).map_err(|e| DefinitionError::Syntax(e.to_string()))?;
    prepare(definition)
}

fn prepare(mut definition: SurveyDefinition) -> Result<SurveyDefinition, DefinitionError> {
    normalize_texts(&mut definition);
    definition.resolve_scales();
    let problems = check(&definition);
    if problems.is_empty() { Ok(definition) } else { Err(DefinitionError::Invalid(problems)) }
}

/// Vietnamese text can arrive decomposed; store every text in NFC so that it renders and compares
/// the same everywhere.
fn normalize_texts(definition: &mut SurveyDefinition) {
    fn nfc(text: &mut LocalizedText) {
        for value in text.0.values_mut() {
            *value = value.nfc().collect();
        }
    }
    nfc(&mut definition.title);
    definition.description.iter_mut().for_each(nfc);
    definition.source.iter_mut().for_each(nfc);
    for scale in &mut definition.scales {
        scale.labels.iter_mut().for_each(|p| nfc(&mut p.label));
    }
    for section in &mut definition.sections {
        nfc(&mut section.title);
        section.description.iter_mut().for_each(nfc);
    }
    for question in &mut definition.questions {
        nfc(&mut question.text);
        question.help.iter_mut().for_each(nfc);
        question.labels.iter_mut().for_each(|p| nfc(&mut p.label));
        question.options.iter_mut().for_each(|o| nfc(&mut o.label));
    }
    let m = &mut definition.measurement;
    nfc(&mut m.index.label);
    m.components.iter_mut().for_each(|c| nfc(&mut c.label));
    m.elements.iter_mut().for_each(|e| nfc(&mut e.label));
}

/// Collects problems with the item they concern.
#[derive(Default)]
struct Problems(Vec<DefinitionProblem>);

impl Problems {
    fn add(&mut self, item: impl Into<String>, message: impl Into<String>) {
        self.0.push(DefinitionProblem { item: item.into(), message: message.into() });
    }

    /// Reports every id that occurs more than once in `ids`.
    fn unique<'a>(&mut self, list: &str, ids: impl IntoIterator<Item = &'a str>) {
        let mut seen = HashSet::new();
        for id in ids {
            if !seen.insert(id) {
                self.add(format!("{list}[{id}]"), "duplicate id");
            }
        }
    }
}

fn is_identifier(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Every problem in a parsed definition; empty when it can be published.
pub fn check(definition: &SurveyDefinition) -> Vec<DefinitionProblem> {
    let mut problems = Problems::default();
    check_header(definition, &mut problems);
    check_texts(definition, &mut problems);
    check_questions(definition, &mut problems);
    check_measurement(definition, &mut problems);
    problems.0
}

fn check_header(definition: &SurveyDefinition, problems: &mut Problems) {
    if !is_identifier(&definition.id) {
        problems.add("id", "must be 1–64 lowercase letters, digits, '-' or '_'");
    }
    if definition.version < 1 {
        problems.add("version", "must be 1 or more");
    }
    if definition.languages.is_empty() {
        problems.add("languages", "declare at least one language");
    }
    for language in &definition.languages {
        let well_formed = (2..=3).contains(&language.len()) && language.chars().all(|c| c.is_ascii_lowercase());
        if !well_formed {
            problems.add(format!("languages[{language}]"), "must be a 2- or 3-letter lowercase code");
        }
    }
    problems.unique("languages", definition.languages.iter().map(String::as_str));
    if definition.sections.is_empty() {
        problems.add("sections", "declare at least one section");
    }
    if definition.questions.is_empty() {
        problems.add("questions", "declare at least one question");
    }
}

fn check_texts(definition: &SurveyDefinition, problems: &mut Problems) {
    let declared: BTreeSet<&str> = definition.languages.iter().map(String::as_str).collect();
    for (path, text) in definition.texts() {
        for language in &declared {
            match text.0.get(*language) {
                None => problems.add(format!("{path}.{language}"), "label missing in a declared language"),
                Some(value) if value.trim().is_empty() => problems.add(format!("{path}.{language}"), "empty text"),
                Some(_) => {}
            }
        }
        for language in text.0.keys() {
            if !declared.contains(language.as_str()) {
                problems.add(format!("{path}.{language}"), "language not declared in `languages`");
            }
        }
    }
}

fn check_questions(definition: &SurveyDefinition, problems: &mut Problems) {
    problems.unique("sections", definition.sections.iter().map(|s| s.id.as_str()));
    problems.unique("questions", definition.questions.iter().map(|q| q.id.as_str()));
    problems.unique("scales", definition.scales.iter().map(|s| s.id.as_str()));
    for section in &definition.sections {
        if !is_identifier(&section.id) {
            problems.add(format!("sections[{}]", section.id), "id must be lowercase letters, digits, '-' or '_'");
        }
    }
    for scale in &definition.scales {
        check_scale_points(&format!("scales[{}]", scale.id), scale.min, scale.max, &scale.labels, problems);
    }
    let sections: HashSet<&str> = definition.sections.iter().map(|s| s.id.as_str()).collect();
    let scales: HashSet<&str> = definition.scales.iter().map(|s| s.id.as_str()).collect();
    for question in &definition.questions {
        let item = format!("questions[{}]", question.id);
        if !is_identifier(&question.id) {
            problems.add(&item, "id must be lowercase letters, digits, '-' or '_'");
        }
        if !sections.contains(question.section.as_str()) {
            problems.add(format!("{item}.section"), format!("unknown section `{}`", question.section));
        }
        check_question_kind(question, &item, &scales, problems);
    }
}

fn check_scale_points(item: &str, min: i64, max: i64, labels: &[super::model::PointLabel], problems: &mut Problems) {
    if min >= max {
        problems.add(item, format!("min ({min}) must be below max ({max})"));
        return;
    }
    if max - min > 100 {
        problems.add(item, "a scale has at most 101 points");
        return;
    }
    let labelled: HashSet<i64> = labels.iter().map(|p| p.value).collect();
    for point in labels {
        if point.value < min || point.value > max {
            problems.add(format!("{item}.labels[{}]", point.value), "label for a point outside the scale");
        }
    }
    if labelled.len() != labels.len() {
        problems.add(format!("{item}.labels"), "a point is labelled twice");
    }
    for value in min..=max {
        if !labelled.contains(&value) {
            problems.add(format!("{item}.labels[{value}]"), "every point of a scale needs a label in words");
        }
    }
}

fn check_question_kind(question: &Question, item: &str, scales: &HashSet<&str>, problems: &mut Problems) {
    let choice = matches!(question.kind, QuestionKind::SingleChoice | QuestionKind::MultiChoice);
    if !choice && !question.options.is_empty() {
        problems.add(format!("{item}.options"), "only choice questions have options");
    }
    if question.kind != QuestionKind::Scale && (question.scale.is_some() || !question.labels.is_empty()) {
        problems.add(item, "only scale questions have a scale or point labels");
    }
    if question.kind != QuestionKind::Text && question.max_length.is_some() {
        problems.add(format!("{item}.max_length"), "only text questions have a maximum length");
    }
    if !matches!(question.kind, QuestionKind::Scale | QuestionKind::Integer)
        && (question.min.is_some() || question.max.is_some())
    {
        problems.add(item, "only scale and integer questions have min and max");
    }
    match question.kind {
        QuestionKind::Scale => {
            if let Some(name) = &question.scale
                && !scales.contains(name.as_str())
            {
                problems.add(format!("{item}.scale"), format!("unknown scale `{name}`"));
                return;
            }
            match (question.min, question.max) {
                (Some(min), Some(max)) => check_scale_points(item, min, max, &question.labels, problems),
                _ => problems.add(item, "a scale question needs `scale`, or `min`, `max` and `labels`"),
            }
        }
        QuestionKind::SingleChoice | QuestionKind::MultiChoice => {
            if question.options.is_empty() {
                problems.add(format!("{item}.options"), "a choice question needs options");
            }
            problems.unique(&format!("{item}.options"), question.options.iter().map(|o| o.value.as_str()));
            for option in &question.options {
                let ok = !option.value.is_empty()
                    && option.value.len() <= 64
                    && option.value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !ok {
                    problems.add(
                        format!("{item}.options[{}]", option.value),
                        "value must be 1–64 letters, digits, '-' or '_'",
                    );
                }
            }
        }
        QuestionKind::Integer => {
            if let (Some(min), Some(max)) = (question.min, question.max)
                && min > max
            {
                problems.add(item, format!("min ({min}) must not exceed max ({max})"));
            }
        }
        QuestionKind::Text => {
            if question.max_length == Some(0) {
                problems.add(format!("{item}.max_length"), "must be at least 1");
            }
        }
    }
}

fn check_measurement(definition: &SurveyDefinition, problems: &mut Problems) {
    let m = &definition.measurement;
    let questions: HashMap<&str, &Question> = definition.questions.iter().map(|q| (q.id.as_str(), q)).collect();
    let level_ids = std::iter::once(m.index.id.as_str())
        .chain(m.components.iter().map(|c| c.id.as_str()))
        .chain(m.elements.iter().map(|e| e.id.as_str()));
    problems.unique("measurement", level_ids);
    if m.index.combine != Combine::Mean {
        problems.add("measurement.index.combine", "the index combines its children by `mean`");
    }
    if m.elements.is_empty() {
        problems.add("measurement.elements", "declare at least one element");
    }
    if m.satisfied.is_empty() {
        problems.add("measurement.satisfied", "declare the answer values that count as satisfied");
    }
    let components: HashSet<&str> = m.components.iter().map(|c| c.id.as_str()).collect();
    for component in &m.components {
        let item = format!("measurement.components[{}]", component.id);
        if component.combine != Combine::Mean {
            problems.add(format!("{item}.combine"), "a component combines its elements by `mean`");
        }
        if !m.elements.iter().any(|e| e.component.as_deref() == Some(component.id.as_str())) {
            problems.add(item, "empty component: no element belongs to it");
        }
    }
    let mut used_as_criterion = HashSet::new();
    for element in &m.elements {
        let item = format!("measurement.elements[{}]", element.id);
        match (&element.component, components.is_empty()) {
            (Some(c), false) if !components.contains(c.as_str()) => {
                problems.add(format!("{item}.component"), format!("unknown component `{c}`"));
            }
            (None, false) => problems.add(format!("{item}.component"), "the model has components: name this element's"),
            (Some(_), true) => problems.add(format!("{item}.component"), "the model declares no components"),
            _ => {}
        }
        if element.criteria.is_empty() {
            problems.add(&item, "empty element: it has no criteria");
        }
        let satisfied = element.satisfied.as_ref().unwrap_or(&m.satisfied);
        if element.satisfied.as_ref().is_some_and(Vec::is_empty) {
            problems.add(format!("{item}.satisfied"), "declare at least one satisfied value");
        }
        let statements =
            element.criteria.iter().map(|c| (c, "criteria")).chain(element.general.iter().map(|g| (g, "general")));
        for (question_id, role) in statements {
            let at = format!("{item}.{role}[{question_id}]");
            if !used_as_criterion.insert(question_id.as_str()) {
                problems.add(&at, "question used twice in the measurement model");
            }
            match questions.get(question_id.as_str()) {
                None => problems.add(&at, "no such question"),
                Some(q) if q.kind != QuestionKind::Scale => problems.add(&at, "not a scale question"),
                Some(q) => {
                    if let (Some(min), Some(max)) = (q.min, q.max) {
                        for value in satisfied {
                            if *value < min || *value > max {
                                problems.add(&at, format!("satisfied value {value} is outside the scale {min}–{max}"));
                            }
                        }
                    }
                }
            }
        }
        if element.combine == Combine::General && element.general.is_none() {
            problems.add(format!("{item}.combine"), "`general` combination needs a `general` statement");
        }
    }
    let lists = [
        ("breakdowns", &m.breakdowns, true),
        ("expectations", &m.expectations, false),
        ("assessments", &m.assessments, false),
    ];
    for (list, ids, single_only) in lists {
        problems.unique(&format!("measurement.{list}"), ids.iter().map(String::as_str));
        for id in ids {
            let at = format!("measurement.{list}[{id}]");
            match questions.get(id.as_str()).map(|q| q.kind) {
                None => problems.add(at, "no such question"),
                Some(QuestionKind::SingleChoice) => {}
                Some(QuestionKind::MultiChoice) if !single_only => {}
                Some(_) if single_only => problems.add(at, "breakdowns must be single-choice questions"),
                Some(_) => problems.add(at, "must be a choice question"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
id = "mini"
version = 1
languages = ["vi", "en"]
title = { vi = "Khảo sát", en = "Survey" }

[[scales]]
id = "s5"
min = 1
max = 3
labels = [
  { value = 1, label = { vi = "Không", en = "No" } },
  { value = 2, label = { vi = "Bình thường", en = "Neutral" } },
  { value = 3, label = { vi = "Có", en = "Yes" } },
]

[[sections]]
id = "main"
title = { vi = "Chính", en = "Main" }

[[questions]]
id = "q1"
section = "main"
kind = "scale"
scale = "s5"
text = { vi = "Câu 1", en = "Question 1" }

[[questions]]
id = "sex"
section = "main"
kind = "single_choice"
text = { vi = "Giới tính", en = "Sex" }
options = [ { value = "m", label = { vi = "Nam", en = "Male" } }, { value = "f", label = { vi = "Nữ", en = "Female" } } ]

[measurement]
index = { id = "idx", label = { vi = "Chỉ số", en = "Index" } }
satisfied = [3]
breakdowns = ["sex"]

[[measurement.elements]]
id = "e1"
label = { vi = "Yếu tố", en = "Element" }
criteria = ["q1"]
"#;

    fn problems_of(text: &str) -> Vec<String> {
        match parse_definition(text) {
            Ok(_) => Vec::new(),
            Err(DefinitionError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
            Err(DefinitionError::Syntax(message)) => vec![message],
        }
    }

    #[test]
    fn a_minimal_definition_is_accepted_and_its_scale_resolved() {
        let definition = parse_definition(MINIMAL).map_err(|e| e.to_string());
        let question = definition.as_ref().ok().and_then(|d| d.question("q1").cloned());
        assert_eq!(question.as_ref().and_then(|q| q.min), Some(1));
        assert_eq!(question.map(|q| q.labels.len()), Some(3));
    }

    #[test]
    fn each_kind_of_mistake_is_named_with_its_item() {
        let cases: [(&str, &str, &str); 8] = [
            ("duplicate question id", r#"id = "sex""#, "questions[q1]: duplicate id"),
            ("criterion pointing to a missing question", r#"criteria = ["q1"]"#, "criteria[nope]: no such question"),
            ("criterion on a non-scale question", r#"criteria = ["q1"]"#, "criteria[sex]: not a scale question"),
            (
                "label missing in a declared language",
                r#"text = { vi = "Câu 1", en = "Question 1" }"#,
                "questions[q1].text.en: label missing",
            ),
            ("empty element", r#"criteria = ["q1"]"#, "elements[e1]: empty element"),
            ("threshold outside the scale", "satisfied = [3]", "satisfied value 4 is outside the scale 1–3"),
            ("unknown key", "version = 1", "unknown field `colour`"),
            (
                "breakdown on a scale question",
                r#"breakdowns = ["sex"]"#,
                "breakdowns[q1]: breakdowns must be single-choice",
            ),
        ];
        let replacements = [
            r#"id = "q1""#,
            r#"criteria = ["nope"]"#,
            r#"criteria = ["sex"]"#,
            r#"text = { vi = "Câu 1" }"#,
            "criteria = []",
            "satisfied = [4]",
            "version = 1\ncolour = \"red\"",
            r#"breakdowns = ["q1"]"#,
        ];
        for ((case, find, expected), replace) in cases.iter().zip(replacements) {
            let text = MINIMAL.replacen(find, replace, 1);
            let problems = problems_of(&text);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "case `{case}`: expected a problem containing `{expected}`, got {problems:?}"
            );
        }
    }

    #[test]
    fn texts_are_normalised_to_nfc() {
        let decomposed = "Khảo sát".nfd().collect::<String>();
        let text = MINIMAL.replacen("Khảo sát", &decomposed, 1);
        let definition = parse_definition(&text).ok();
        assert_eq!(definition.map(|d| d.title.get("vi").to_owned()), Some("Khảo sát".to_owned()));
    }
}
