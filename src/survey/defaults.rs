//! The survey definitions shipped in `survey-defs/`, embedded in the binary and published at
//! start (publishing an identical version again changes nothing).

use super::check::{DefinitionError, parse_definition};
use super::model::SurveyDefinition;

/// File name and text of every definition in `survey-defs/`.
pub const EMBEDDED_DEFINITIONS: [(&str, &str); 4] = [
    ("sipas-individual.toml", include_str!("../../survey-defs/sipas-individual.toml")),
    ("sipas-organization.toml", include_str!("../../survey-defs/sipas-organization.toml")),
    ("sipas-2017.toml", include_str!("../../survey-defs/sipas-2017.toml")),
    ("dossier-rating.toml", include_str!("../../survey-defs/dossier-rating.toml")),
];

/// A shipped definition that does not parse (a defect caught by the test suite).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {error}")]
pub struct EmbeddedDefinitionError {
    /// The file in `survey-defs/`.
    pub file: &'static str,
    /// What is wrong with it.
    pub error: DefinitionError,
}

/// Parses and checks every shipped definition.
pub fn embedded_definitions() -> Result<Vec<SurveyDefinition>, EmbeddedDefinitionError> {
    EMBEDDED_DEFINITIONS
        .iter()
        .map(|(file, text)| parse_definition(text).map_err(|error| EmbeddedDefinitionError { file, error }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::survey::model::QuestionKind;

    #[test]
    fn every_shipped_definition_parses_and_passes_the_checks() {
        let result = embedded_definitions();
        assert!(result.is_ok(), "{}", result.err().map(|e| e.to_string()).unwrap_or_default());
    }

    #[test]
    fn every_file_in_survey_defs_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("survey-defs");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = EMBEDDED_DEFINITIONS.iter().map(|(f, _)| (*f).to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn the_national_questionnaires_have_the_published_structure() {
        let definitions = embedded_definitions().unwrap_or_default();
        let find = |id: &str| definitions.iter().find(|d| d.id == id);
        let criteria_count =
            |id: &str| find(id).map(|d| d.measurement.elements.iter().map(|e| e.criteria.len()).sum::<usize>());
        // 2022+: 33 statements in two components (14 policy, 19 services), one general per element.
        assert_eq!(criteria_count("sipas-individual"), Some(33));
        assert_eq!(criteria_count("sipas-organization"), Some(33));
        assert_eq!(find("sipas-individual").map(|d| d.measurement.components.len()), Some(2));
        let generals =
            find("sipas-individual").map(|d| d.measurement.elements.iter().filter(|e| e.general.is_some()).count());
        assert_eq!(generals, find("sipas-individual").map(|d| d.measurement.elements.len()));
        // 2017: 5 elements, 22 criteria, no components.
        assert_eq!(criteria_count("sipas-2017"), Some(22));
        assert_eq!(
            find("sipas-2017").map(|d| (d.measurement.elements.len(), d.measurement.components.len())),
            Some((5, 0))
        );
        // Circular 01/2018: 9 indicators scored 0–2, satisfied = 2, and an overall level.
        let dossier = find("dossier-rating");
        assert_eq!(criteria_count("dossier-rating"), Some(9));
        assert_eq!(dossier.map(|d| d.measurement.satisfied.clone()), Some(vec![2]));
        let scored = dossier.map(|d| {
            d.questions.iter().filter(|q| q.kind == QuestionKind::Scale && q.min == Some(0) && q.max == Some(2)).count()
        });
        assert_eq!(scored, Some(9));
    }
}
