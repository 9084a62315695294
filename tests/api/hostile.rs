//! Property tests: no input makes definition parsing, answer checking, submission parsing or the
//! stored-answer decoder panic. Random JSON values, random text, and random mutations of the
//! shipped definitions (which reach much deeper into the checker than random text does).

use proptest::prelude::*;
use serde_json::Value;
use sipas::intake::parse_submission;
use sipas::survey::answers::{Answers, check_answers};
use sipas::survey::check::{parse_definition, parse_definition_json};
use sipas::survey::defaults::embedded_definitions;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,40}".prop_map(Value::from),
        prop_oneof![Just("4"), Just("female"), Just("25_34"), Just("very_much"), Just("5")].prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_0-9]{1,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Answer objects that use the definitions' real question ids, so that the checks run deep.
fn answers_for_real_questions() -> impl Strategy<Value = Value> {
    let ids: Vec<String> =
        embedded_definitions().unwrap().into_iter().flat_map(|d| d.questions.into_iter().map(|q| q.id)).collect();
    prop::collection::btree_map(prop::sample::select(ids), json_value(), 0..30)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

const SHIPPED: [&str; 2] =
    [include_str!("../../survey-defs/sipas-2017.toml"), include_str!("../../survey-defs/dossier-rating.toml")];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn answer_checking_never_panics(answers in prop_oneof![json_value(), answers_for_real_questions()]) {
        for definition in embedded_definitions().unwrap() {
            if let Ok(checked) = check_answers(&definition, &answers) {
                // What is accepted round-trips through the stored encoding.
                let decoded = Answers::decode(&definition, &checked.encode()).unwrap();
                prop_assert_eq!(decoded, checked);
            }
        }
    }

    #[test]
    fn stored_answers_decoder_never_panics(text in "\\PC{0,200}") {
        for definition in embedded_definitions().unwrap() {
            let _ = Answers::decode(&definition, &text);
        }
    }

    #[test]
    fn submission_parsing_never_panics(body in json_value()) {
        let _ = parse_submission(body, &["client_id"]);
    }

    #[test]
    fn definition_parsing_never_panics(text in "\\PC{0,400}", json in json_value()) {
        let _ = parse_definition(&text);
        let _ = parse_definition_json(&json.to_string());
    }

    #[test]
    fn mutated_definitions_never_panic(
        which in 0..SHIPPED.len(),
        at in 0.0f64..1.0,
        cut in 0usize..80,
        insert in prop_oneof!["\\PC{0,20}", Just("[[questions]]\nid = \"c01\"\n".to_owned()), Just("= 0\n".to_owned())],
    ) {
        let text = SHIPPED[which];
        let mut start = ((text.len() as f64) * at) as usize;
        while !text.is_char_boundary(start) { start -= 1; }
        let mut end = (start + cut).min(text.len());
        while !text.is_char_boundary(end) { end -= 1; }
        let mutated = format!("{}{}{}", &text[..start], insert, &text[end..]);
        let _ = parse_definition(&mutated);
    }
}
