//! Checking a response's answers against a definition, and their compact stored form: one JSON
//! array aligned with the definition's questions (`[4,5,null,"kinh",["a","b"]]`), trailing
//! unanswered questions dropped. A response names its (survey, version), so the alignment is fixed.

use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;

use super::model::{Question, QuestionKind, SurveyDefinition};

/// Longest accepted text answer when the definition sets no limit.
pub const DEFAULT_TEXT_LIMIT: usize = 4_000;
/// Most problems listed for one response (a request with 10,000 unknown answers gets a
/// readable error, not a megabyte).
pub const MAX_LISTED_PROBLEMS: usize = 100;

/// One answer, checked. Choices are the definition's own option values (`'d`), not copies:
/// a `sipas-individual` response has 38 of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerValue<'d> {
    /// A scale point or an integer.
    Number(i64),
    /// A single choice.
    Choice(&'d str),
    /// Several distinct choices.
    Choices(Vec<&'d str>),
    /// Free text, NFC-normalised.
    Text(String),
}

impl serde::Serialize for AnswerValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(n) => serializer.serialize_i64(*n),
            Self::Choice(text) => serializer.serialize_str(text),
            Self::Text(text) => serializer.serialize_str(text),
            Self::Choices(values) => values.serialize(serializer),
        }
    }
}

/// A response's answers, aligned with the definition's questions (`None`: not answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers<'d>(pub Vec<Option<AnswerValue<'d>>>);

/// One thing wrong with an answer or with the answers object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerProblem {
    /// `answers.QUESTION_ID`, or `answers` for the whole object.
    pub field: String,
    /// Stable code: `unknown_question`, `required`, `wrong_type`, `out_of_range`, `unknown_option`,
    /// `duplicate_choice`, `too_long`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

fn problem(question: &str, code: &'static str, message: impl Into<String>) -> AnswerProblem {
    AnswerProblem { field: format!("answers.{question}"), code, message: message.into() }
}

/// Checks an answers object against a definition, listing every problem (at most
/// [`MAX_LISTED_PROBLEMS`]).
pub fn check_answers<'d>(definition: &'d SurveyDefinition, answers: &Value) -> Result<Answers<'d>, Vec<AnswerProblem>> {
    let Value::Object(object) = answers else {
        return Err(vec![not_an_object()]);
    };
    let slots: Vec<Option<AnswerRef<'_>>> =
        definition.questions.iter().map(|q| object.get(&q.id).map(AnswerRef::from)).collect();
    let known = slots.iter().flatten().count();
    // Looked for only when some key matched no question: names are compared one by one here.
    let unknown: Vec<&str> = if known < object.len() {
        object.keys().map(String::as_str).filter(|key| definition.question(key).is_none()).collect()
    } else {
        Vec::new()
    };
    check_slots(definition, &slots, &unknown)
}

fn not_an_object() -> AnswerProblem {
    AnswerProblem {
        field: "answers".to_owned(),
        code: "wrong_type",
        message: "must be an object of question id → answer".to_owned(),
    }
}

/// A question id as a client sent it: borrowed from the request body when it holds no escapes
/// (as ids do), copied otherwise.
pub type AnswerId<'a> = std::borrow::Cow<'a, str>;

/// Reads a map key without copying it out of the request body when it can be borrowed
/// (`Cow<str>`'s own `Deserialize` always copies).
pub struct BorrowedKey<'a>(pub AnswerId<'a>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for BorrowedKey<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = BorrowedKey<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a question id")
            }

            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedKey(AnswerId::Borrowed(value)))
            }

            fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
                Ok(BorrowedKey(AnswerId::Owned(value.to_owned())))
            }

            fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
                Ok(BorrowedKey(AnswerId::Owned(value)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// One answer as read from a request body, without building a [`Value`] for the common cases:
/// a number, or a string borrowed from the body when it holds no escapes (a choice's value; most
/// answers of a SIPAS questionnaire are). Anything else is kept as the value it is. Checked
/// exactly as the [`Value`] it stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum RawAnswer<'a> {
    /// A JSON number.
    Number(serde_json::Number),
    /// A JSON string.
    Text(std::borrow::Cow<'a, str>),
    /// Anything else (null, a boolean, an array, an object).
    Other(Value),
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawAnswer<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnswerVisitor;

        // Each case as `Value`'s own visitor reads it, so that the answer stands for the same value.
        impl<'de> serde::de::Visitor<'de> for AnswerVisitor {
            type Value = RawAnswer<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("any JSON value")
            }

            fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
                Ok(RawAnswer::Other(Value::Bool(value)))
            }

            fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
                Ok(RawAnswer::Number(value.into()))
            }

            fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
                Ok(RawAnswer::Number(value.into()))
            }

            fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
                Ok(serde_json::Number::from_f64(value).map_or(RawAnswer::Other(Value::Null), RawAnswer::Number))
            }

            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(RawAnswer::Text(std::borrow::Cow::Borrowed(value)))
            }

            fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
                Ok(RawAnswer::Text(std::borrow::Cow::Owned(value.to_owned())))
            }

            fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
                Ok(RawAnswer::Text(std::borrow::Cow::Owned(value)))
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(RawAnswer::Other(Value::Null))
            }

            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(RawAnswer::Other(Value::Null))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                Ok(RawAnswer::Other(Value::Array(items)))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut object = Map::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    object.insert(key, value);
                }
                Ok(RawAnswer::Other(Value::Object(object)))
            }
        }

        deserializer.deserialize_any(AnswerVisitor)
    }
}

impl From<Value> for RawAnswer<'_> {
    /// The value as reading its JSON text would have given it.
    fn from(value: Value) -> Self {
        match value {
            Value::Number(number) => Self::Number(number),
            Value::String(text) => Self::Text(std::borrow::Cow::Owned(text)),
            other => Self::Other(other),
        }
    }
}

/// An answer as checking reads it: from a parsed [`Value`] or from a [`RawAnswer`].
#[derive(Debug, Clone, Copy)]
enum AnswerRef<'v> {
    Number(&'v serde_json::Number),
    Text(&'v str),
    Other(&'v Value),
}

impl<'v> From<&'v Value> for AnswerRef<'v> {
    fn from(value: &'v Value) -> Self {
        match value {
            Value::Number(number) => Self::Number(number),
            Value::String(text) => Self::Text(text),
            other => Self::Other(other),
        }
    }
}

impl<'v> From<&'v RawAnswer<'_>> for AnswerRef<'v> {
    fn from(answer: &'v RawAnswer<'_>) -> Self {
        match answer {
            RawAnswer::Number(number) => Self::Number(number),
            RawAnswer::Text(text) => Self::Text(text),
            RawAnswer::Other(value) => Self::from(value),
        }
    }
}

/// At most this many answers are given room before they are read (definitions have fewer
/// questions).
const MAX_PAIRS_RESERVED: usize = 256;

/// An answers object read as a list of (question id, answer) in the order given: what a parsed
/// JSON object holds (a repeated id standing for its last answer), without building one (for
/// fifty answers, building and searching the object was a fifth of a request's work). Ids are
/// borrowed from the request body ([`AnswerId`]): copying them was half of reading the pairs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnswerPairs<'a>(Vec<(AnswerId<'a>, RawAnswer<'a>)>);

impl<'a> AnswerPairs<'a> {
    /// Reads the entries of a JSON object being deserialised.
    pub fn from_map<'de: 'a, A: serde::de::MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        thread_local! {
            static LAST_LENGTH: std::cell::Cell<usize> = const { std::cell::Cell::new(64) };
        }
        // JSON tells no length ahead: the list is sized as the last one read on this thread (a
        // client sends the same questions every time), so that it is not grown and copied.
        let expected = map.size_hint().unwrap_or_else(|| LAST_LENGTH.get()).min(MAX_PAIRS_RESERVED);
        let mut pairs: Vec<(AnswerId<'a>, RawAnswer<'a>)> = Vec::with_capacity(expected);
        while let Some((BorrowedKey(key), value)) = map.next_entry()? {
            pairs.push((key, value));
        }
        LAST_LENGTH.set(pairs.len().max(1));
        Ok(Self(pairs))
    }
}

/// Checks answers read as [`AnswerPairs`] (`positions`: question id → index in the definition).
/// Same result as [`check_answers`] on the object they stand for.
pub fn check_pairs<'d>(
    definition: &'d SurveyDefinition,
    positions: &foldhash::HashMap<String, usize>,
    answers: &AnswerPairs<'_>,
) -> Result<Answers<'d>, Vec<AnswerProblem>> {
    let mut slots: Vec<Option<AnswerRef<'_>>> = vec![None; definition.questions.len()];
    let mut unknown = Vec::new();
    for (key, value) in &answers.0 {
        match positions.get(key.as_ref()) {
            // A repeated id keeps its last answer.
            Some(&index) if index < slots.len() => slots[index] = Some(AnswerRef::from(value)),
            _ => unknown.push(key.as_ref()),
        }
    }
    // Listed as a parsed object's keys would be: in order, each once.
    unknown.sort_unstable();
    unknown.dedup();
    check_slots(definition, &slots, &unknown)
}

/// Checks answers by question position (`None`: not given), `unknown` naming the keys that are
/// no question of the definition.
fn check_slots<'d>(
    definition: &'d SurveyDefinition,
    slots: &[Option<AnswerRef<'_>>],
    unknown: &[&str],
) -> Result<Answers<'d>, Vec<AnswerProblem>> {
    let mut problems = Vec::new();
    let mut values = Vec::with_capacity(definition.questions.len());
    for (question, raw) in definition.questions.iter().zip(slots) {
        let value = match raw {
            None | Some(AnswerRef::Other(Value::Null)) => None,
            Some(raw) => match check_one(question, *raw) {
                Ok(value) => value,
                Err(p) => {
                    problems.push(p);
                    None
                }
            },
        };
        if value.is_none()
            && question.required
            && !problems.iter().any(|p| p.field == format!("answers.{}", question.id))
        {
            problems.push(problem(&question.id, "required", "this question must be answered"));
        }
        values.push(value);
    }
    if !unknown.is_empty() {
        let unknown = unknown
            .iter()
            .map(|key| problem(key, "unknown_question", format!("survey `{}` has no question `{key}`", definition.id)));
        problems.splice(0..0, unknown.collect::<Vec<_>>());
    }
    if problems.is_empty() {
        Ok(Answers(values))
    } else {
        problems.truncate(MAX_LISTED_PROBLEMS);
        Err(problems)
    }
}

fn integer_of(raw: AnswerRef<'_>) -> Option<i64> {
    match raw {
        AnswerRef::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
        }
        _ => None,
    }
}

/// The position among the question's options of the option a choice names.
fn option_index(question: &Question, raw: AnswerRef<'_>) -> Result<usize, AnswerProblem> {
    let written;
    let text = match raw {
        AnswerRef::Text(s) => s,
        AnswerRef::Number(n) => {
            written = n.to_string();
            written.as_str()
        }
        _ => return Err(problem(&question.id, "wrong_type", "must be one of the option values, as a string")),
    };
    if let Some(index) = question.options.iter().position(|o| o.value == text) {
        Ok(index)
    } else {
        let allowed: Vec<&str> = question.options.iter().map(|o| o.value.as_str()).collect();
        let shown: String = text.chars().take(64).collect();
        Err(problem(&question.id, "unknown_option", format!("`{shown}` is not one of {}", allowed.join(", "))))
    }
}

fn check_one<'d>(question: &'d Question, raw: AnswerRef<'_>) -> Result<Option<AnswerValue<'d>>, AnswerProblem> {
    match question.kind {
        QuestionKind::Scale | QuestionKind::Integer => {
            let number =
                integer_of(raw).ok_or_else(|| problem(&question.id, "wrong_type", "must be a whole number"))?;
            let (min, max) = (question.min.unwrap_or(i64::MIN), question.max.unwrap_or(i64::MAX));
            if number < min || number > max {
                let bounds = match (question.min, question.max) {
                    (Some(min), Some(max)) => format!("from {min} to {max}"),
                    (Some(min), None) => format!("at least {min}"),
                    (None, Some(max)) => format!("at most {max}"),
                    (None, None) => String::new(),
                };
                return Err(problem(&question.id, "out_of_range", format!("{number} is outside the scale: {bounds}")));
            }
            Ok(Some(AnswerValue::Number(number)))
        }
        QuestionKind::SingleChoice => {
            option_index(question, raw).map(|index| Some(AnswerValue::Choice(&question.options[index].value)))
        }
        QuestionKind::MultiChoice => {
            let AnswerRef::Other(Value::Array(items)) = raw else {
                return Err(problem(&question.id, "wrong_type", "must be an array of option values"));
            };
            if items.len() > question.options.len() {
                return Err(problem(&question.id, "duplicate_choice", "more choices than the question has options"));
            }
            // Marked by position: the option found once, not looked up again to order the choices.
            let mut chosen = vec![false; question.options.len()];
            for item in items {
                let index = option_index(question, AnswerRef::from(item))?;
                if std::mem::replace(&mut chosen[index], true) {
                    let value = &question.options[index].value;
                    return Err(problem(&question.id, "duplicate_choice", format!("`{value}` is chosen twice")));
                }
            }
            // Stored in the definition's option order, so that equal answers compare equal.
            let chosen: Vec<&str> = question
                .options
                .iter()
                .zip(chosen)
                .filter(|(_, chosen)| *chosen)
                .map(|(o, _)| o.value.as_str())
                .collect();
            Ok((!chosen.is_empty()).then_some(AnswerValue::Choices(chosen)))
        }
        QuestionKind::Text => {
            let AnswerRef::Text(text) = raw else {
                return Err(problem(&question.id, "wrong_type", "must be a string"));
            };
            let text = text.trim();
            // Most answers are already composed (and plain ASCII always is): only the others are
            // rebuilt.
            let text: String = match unicode_normalization::is_nfc_quick(text.chars()) {
                unicode_normalization::IsNormalized::Yes => text.to_owned(),
                _ => text.nfc().collect(),
            };
            let limit = question.max_length.map_or(DEFAULT_TEXT_LIMIT, |l| l as usize);
            let length = text.chars().count();
            if length > limit {
                return Err(problem(&question.id, "too_long", format!("{length} characters; at most {limit}")));
            }
            Ok((!text.is_empty()).then_some(AnswerValue::Text(text)))
        }
    }
}

impl<'d> Answers<'d> {
    /// The answer to the question at `index` in the definition.
    pub fn get(&self, index: usize) -> Option<&AnswerValue<'d>> {
        self.0.get(index).and_then(Option::as_ref)
    }

    /// The compact stored form.
    pub fn encode(&self) -> String {
        let last = self.0.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
        // Sized for a typical answer, so that the text is not copied as it grows (`to_string`
        // starts at 128 bytes). Serialising strings and integers cannot fail.
        let mut text = Vec::with_capacity(16 + 8 * last);
        let _infallible = serde_json::to_writer(&mut text, &self.0[..last]);
        String::from_utf8(text).unwrap_or_default()
    }

    /// Reads the stored form back, for the definition it was checked against.
    pub fn decode(definition: &'d SurveyDefinition, stored: &str) -> Result<Self, String> {
        let Value::Array(items) = serde_json::from_str(stored).map_err(|e| e.to_string())? else {
            return Err("stored answers are not an array".to_owned());
        };
        if items.len() > definition.questions.len() {
            return Err("more stored answers than questions".to_owned());
        }
        let mut values = Vec::with_capacity(definition.questions.len());
        for (question, item) in definition.questions.iter().zip(items.iter().map(Some).chain(std::iter::repeat(None))) {
            let value = match item {
                None | Some(Value::Null) => None,
                Some(raw) => {
                    check_one(question, AnswerRef::from(raw)).map_err(|p| format!("{}: {}", p.field, p.message))?
                }
            };
            values.push(value);
        }
        Ok(Self(values))
    }

    /// The answers as an object keyed by question id, as clients send them.
    pub fn to_object(&self, definition: &SurveyDefinition) -> Map<String, Value> {
        let mut object = Map::new();
        for (question, answer) in definition.questions.iter().zip(&self.0) {
            let value = match answer {
                None => continue,
                Some(AnswerValue::Number(n)) => Value::from(*n),
                Some(AnswerValue::Choice(c)) => Value::from(*c),
                Some(AnswerValue::Choices(cs)) => Value::from(cs.clone()),
                Some(AnswerValue::Text(t)) => Value::from(t.clone()),
            };
            object.insert(question.id.clone(), value);
        }
        object
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::survey::defaults::embedded_definitions;

    fn dossier() -> SurveyDefinition {
        embedded_definitions().unwrap().into_iter().find(|d| d.id == "dossier-rating").unwrap()
    }

    fn individual() -> SurveyDefinition {
        embedded_definitions().unwrap().into_iter().find(|d| d.id == "sipas-individual").unwrap()
    }

    fn codes(result: Result<Answers, Vec<AnswerProblem>>) -> Vec<(String, &'static str)> {
        result.err().unwrap_or_default().into_iter().map(|p| (p.field, p.code)).collect()
    }

    #[test]
    fn a_complete_rating_is_accepted_and_round_trips() {
        let definition = dossier();
        let answers = json!({"d1_total_time": 2, "d2_agency_time": 2, "d3_contacts": 1, "d4_agencies": 2,
            "d5_one_stop": 2, "d6_disclosure": 0, "d7_attitude": 2, "d8_feedback": 2, "overall_level": "satisfied"});
        let checked = check_answers(&definition, &answers).unwrap();
        let stored = checked.encode();
        assert_eq!(stored, r#"[2,2,1,2,2,0,2,2,null,"satisfied"]"#);
        assert_eq!(Answers::decode(&definition, &stored).unwrap(), checked);
        assert_eq!(Value::Object(checked.to_object(&definition)), answers);
    }

    #[test]
    fn every_fault_is_listed_at_once() {
        let definition = dossier();
        let answers = json!({"d1_total_time": 3, "d2_agency_time": "2", "d3_contacts": 1.5, "d4_agencies": {"x": 1},
            "d5_one_stop": 2, "d6_disclosure": 0, "d7_attitude": 2, "overall_level": "great", "colour": "red"});
        let mut found = codes(check_answers(&definition, &answers));
        found.sort();
        assert_eq!(
            found,
            [
                ("answers.colour".to_owned(), "unknown_question"),
                ("answers.d1_total_time".to_owned(), "out_of_range"),
                ("answers.d2_agency_time".to_owned(), "wrong_type"),
                ("answers.d3_contacts".to_owned(), "wrong_type"),
                ("answers.d4_agencies".to_owned(), "wrong_type"),
                ("answers.d8_feedback".to_owned(), "required"),
                ("answers.overall_level".to_owned(), "unknown_option"),
            ]
        );
    }

    #[test]
    fn choices_texts_and_their_limits() {
        let definition = crate::survey::defaults::embedded_definitions()
            .unwrap()
            .into_iter()
            .find(|d| d.id == "sipas-2017")
            .unwrap();
        let ok =
            check_answers(&definition, &json!({"expectation_priority": ["time", "premises"], "comment": "  Tốt  "}))
                .unwrap();
        let index = definition.questions.iter().position(|q| q.id == "expectation_priority").unwrap();
        assert_eq!(ok.get(index), Some(&AnswerValue::Choices(vec!["premises", "time"])));
        let comment = definition.questions.iter().position(|q| q.id == "comment").unwrap();
        assert_eq!(ok.get(comment), Some(&AnswerValue::Text("Tốt".into())));
        // Decomposed input (o, combining circumflex, combining acute) is stored composed.
        let decomposed = check_answers(&definition, &json!({"comment": " To\u{302}\u{301}t "})).unwrap();
        assert_eq!(decomposed.get(comment), Some(&AnswerValue::Text("T\u{1ed1}t".into())));
        let found = codes(check_answers(&definition, &json!({"expectation_priority": ["time", "time"]})));
        assert_eq!(found, [("answers.expectation_priority".to_owned(), "duplicate_choice")]);
        let found = codes(check_answers(&definition, &json!({"comment": "x".repeat(1001)})));
        assert_eq!(found, [("answers.comment".to_owned(), "too_long")]);
        let found = codes(check_answers(&definition, &json!([1, 2])));
        assert_eq!(found, [("answers".to_owned(), "wrong_type")]);
    }

    #[test]
    fn answer_ids_and_strings_are_borrowed_from_the_body_unless_escaped() {
        let body = r#"{"s01": 4, "\u0073\u0030\u0032": "x", "s01": 5, "t": "a\nb", "u": [1, " "], "v": 2.5}"#;
        // The reader a request's answers object goes through.
        let Ok(crate::intake::SubmittedAnswers::Pairs(pairs)) = serde_json::from_str(body) else {
            panic!("an object is read as pairs")
        };
        let ids: Vec<(&str, bool)> =
            pairs.0.iter().map(|(id, _)| (id.as_ref(), matches!(id, AnswerId::Borrowed(_)))).collect();
        assert_eq!(ids, [("s01", true), ("s02", false), ("s01", true), ("t", true), ("u", true), ("v", true)]);
        let borrowed: Vec<bool> = pairs
            .0
            .iter()
            .filter_map(|(_, answer)| match answer {
                RawAnswer::Text(text) => Some(matches!(text, std::borrow::Cow::Borrowed(_))),
                _ => None,
            })
            .collect();
        assert_eq!(borrowed, [true, false], "a string answer is borrowed unless it holds an escape");
    }

    #[test]
    fn huge_numbers_and_floats_are_refused_and_the_problem_list_is_bounded() {
        let definition = individual();
        let found =
            codes(check_answers(&definition, &json!({"s01": 1e300, "s02": 18446744073709551615u64, "s03": 4.0})));
        assert_eq!(found.len(), 2, "{found:?}");
        let many: Map<String, Value> = (0..10_000).map(|i| (format!("x{i}"), json!(1))).collect();
        let found = codes(check_answers(&definition, &Value::Object(many)));
        assert_eq!(found.len(), MAX_LISTED_PROBLEMS);
    }
}
