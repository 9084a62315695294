//! The shape of a survey definition file (TOML) and of its JSON form in the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A text in each of the definition's languages, keyed by language code (`vi`, `en`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = BTreeMap<String, String>, example = json!({"vi": "Hài lòng", "en": "Satisfied"}))]
pub struct LocalizedText(pub BTreeMap<String, String>);

impl LocalizedText {
    /// The text in `language`, falling back to the first language that has one.
    pub fn get(&self, language: &str) -> &str {
        self.0.get(language).or_else(|| self.0.values().next()).map(String::as_str).unwrap_or_default()
    }
}

/// One published version of a survey: its questions and how answers become indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyDefinition {
    /// Stable identifier of the survey (`sipas-individual`); shared by all its versions.
    pub id: String,
    /// Version number, from 1; a published version never changes.
    pub version: i32,
    /// Languages every text is given in, the first being the default.
    pub languages: Vec<String>,
    /// Title shown to respondents and analysts.
    pub title: LocalizedText,
    /// Longer introduction shown before the first section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<LocalizedText>,
    /// Where the questionnaire comes from and how faithful its wording is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<LocalizedText>,
    /// Answer scales shared by several questions; a question names one with `scale`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scales: Vec<Scale>,
    /// Sections, in the order they are shown.
    pub sections: Vec<Section>,
    /// Questions, in the order they are shown.
    pub questions: Vec<Question>,
    /// How answers combine into criteria, elements, components and the overall index.
    pub measurement: Measurement,
}

/// A named answer scale (for example the 5-point satisfaction scale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Identifier a question refers to.
    pub id: String,
    /// Lowest point.
    pub min: i64,
    /// Highest point.
    pub max: i64,
    /// A label in words for every point.
    pub labels: Vec<PointLabel>,
}

/// The words for one point of a scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointLabel {
    /// The point's value.
    pub value: i64,
    /// Its label per language.
    pub label: LocalizedText,
}

/// A group of questions shown together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Identifier questions refer to.
    pub id: String,
    /// Heading.
    pub title: LocalizedText,
    /// Optional introduction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<LocalizedText>,
}

/// What kind of answer a question takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// One point of a numeric scale with labelled points.
    Scale,
    /// Exactly one of the options.
    SingleChoice,
    /// Any number of distinct options.
    MultiChoice,
    /// A whole number, optionally bounded.
    Integer,
    /// Free text, optionally limited in length.
    Text,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Identifier, used as the answer's key and as the criterion id.
    pub id: String,
    /// The section it belongs to.
    pub section: String,
    /// What kind of answer it takes.
    pub kind: QuestionKind,
    /// Whether a response must answer it.
    #[serde(default)]
    pub required: bool,
    /// The question or statement.
    pub text: LocalizedText,
    /// Optional hint shown under the question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<LocalizedText>,
    /// For a scale question: the shared scale it uses (its bounds and labels are copied here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<String>,
    /// Lowest accepted value (scale and integer questions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// Highest accepted value (scale and integer questions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// Point labels of a scale question.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<PointLabel>,
    /// Options of a choice question.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<ChoiceOption>,
    /// Longest accepted text, in characters (text questions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
}

/// One option of a choice question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceOption {
    /// The code stored in the answer.
    pub value: String,
    /// Its label per language.
    pub label: LocalizedText,
}

/// How a level of the measurement model is computed from the level below.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Unweighted mean of the children's values.
    #[default]
    Mean,
    /// The value of the element's "in general" statement (elements only).
    General,
}

/// The measurement model: which questions are criteria, which answers count as satisfied, and
/// how criteria combine into elements, components and the overall index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    /// The overall index.
    pub index: IndexDefinition,
    /// Answer values that count as satisfied, unless an element says otherwise.
    pub satisfied: Vec<i64>,
    /// Components (groups of elements); empty when elements combine directly into the index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    /// Elements (groups of criteria).
    pub elements: Vec<Element>,
    /// Single-choice questions about the respondent usable for breakdowns and weights.
    #[serde(default)]
    pub breakdowns: Vec<String>,
    /// Breakdown questions whose combinations are the cells of post-stratification weights
    /// (for example sex × age band, matching census tables).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weighting: Vec<String>,
    /// Choice questions about what respondents want improved, reported as ranked shares.
    #[serde(default)]
    pub expectations: Vec<String>,
    /// Other choice questions reported as shares of each option.
    #[serde(default)]
    pub assessments: Vec<String>,
}

/// The overall index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexDefinition {
    /// Identifier of the index (`sipas`).
    pub id: String,
    /// Its name.
    pub label: LocalizedText,
    /// How its children (components, or elements when there are none) combine.
    #[serde(default)]
    pub combine: Combine,
}

/// A component: a group of elements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Identifier.
    pub id: String,
    /// Name.
    pub label: LocalizedText,
    /// How its elements combine.
    #[serde(default)]
    pub combine: Combine,
}

/// An element: a group of criteria, each a scale question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Element {
    /// Identifier.
    pub id: String,
    /// Name.
    pub label: LocalizedText,
    /// The component it belongs to (required when the model has components).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Question ids of its criteria.
    pub criteria: Vec<String>,
    /// Question id of its "satisfied with … in general" statement, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub general: Option<String>,
    /// Mean of the criteria, or the value of the general statement.
    #[serde(default)]
    pub combine: Combine,
    /// Satisfied values for this element's criteria, overriding the model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satisfied: Option<Vec<i64>>,
}

impl SurveyDefinition {
    /// The question with this id.
    pub fn question(&self, id: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.id == id)
    }

    /// Copies each shared scale's bounds and labels into the questions that name it, so that
    /// every scale question carries its own `min`, `max` and `labels`. Unknown scale names are
    /// left for the checker to report.
    pub fn resolve_scales(&mut self) {
        for question in &mut self.questions {
            let Some(name) = &question.scale else { continue };
            let Some(scale) = self.scales.iter().find(|s| &s.id == name) else { continue };
            if question.min.is_none() && question.max.is_none() && question.labels.is_empty() {
                question.min = Some(scale.min);
                question.max = Some(scale.max);
                question.labels = scale.labels.clone();
            }
        }
    }

    /// Every localized text in the definition with a path naming where it is.
    pub fn texts(&self) -> Vec<(String, &LocalizedText)> {
        let mut texts = vec![("title".to_owned(), &self.title)];
        if let Some(description) = &self.description {
            texts.push(("description".to_owned(), description));
        }
        if let Some(source) = &self.source {
            texts.push(("source".to_owned(), source));
        }
        for scale in &self.scales {
            for point in &scale.labels {
                texts.push((format!("scales[{}].labels[{}]", scale.id, point.value), &point.label));
            }
        }
        for section in &self.sections {
            texts.push((format!("sections[{}].title", section.id), &section.title));
            if let Some(description) = &section.description {
                texts.push((format!("sections[{}].description", section.id), description));
            }
        }
        for question in &self.questions {
            texts.push((format!("questions[{}].text", question.id), &question.text));
            if let Some(help) = &question.help {
                texts.push((format!("questions[{}].help", question.id), help));
            }
            if question.scale.is_none() {
                for point in &question.labels {
                    texts.push((format!("questions[{}].labels[{}]", question.id, point.value), &point.label));
                }
            }
            for option in &question.options {
                texts.push((format!("questions[{}].options[{}]", question.id, option.value), &option.label));
            }
        }
        let m = &self.measurement;
        texts.push((format!("measurement.index[{}].label", m.index.id), &m.index.label));
        for component in &m.components {
            texts.push((format!("measurement.components[{}].label", component.id), &component.label));
        }
        for element in &m.elements {
            texts.push((format!("measurement.elements[{}].label", element.id), &element.label));
        }
        texts
    }
}
