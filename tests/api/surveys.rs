use serde_json::Value;
use sipas::auth::Role;

use crate::helpers::{TestApp, assert_problem, json_of};

const SMALL_SURVEY: &str = r#"
id = "province-own"
version = 1
languages = ["vi", "en"]
title = { vi = "Khảo sát của tỉnh", en = "Province survey" }

[[sections]]
id = "main"
title = { vi = "Chính", en = "Main" }

[[questions]]
id = "q1"
section = "main"
kind = "scale"
min = 1
max = 3
labels = [
  { value = 1, label = { vi = "Không", en = "No" } },
  { value = 2, label = { vi = "Tạm", en = "So-so" } },
  { value = 3, label = { vi = "Có", en = "Yes" } },
]
text = { vi = "Hài lòng?", en = "Satisfied?" }

[measurement]
index = { id = "idx", label = { vi = "Chỉ số", en = "Index" } }
satisfied = [3]

[[measurement.elements]]
id = "e1"
label = { vi = "Yếu tố", en = "Element" }
criteria = ["q1"]
"#;

#[tokio::test]
async fn the_shipped_surveys_are_published_with_titles_in_both_languages() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/api/v1/surveys").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["surveys"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["dossier-rating", "sipas-2017", "sipas-individual", "sipas-organization"]);
    for survey in body["surveys"].as_array().unwrap() {
        assert_eq!(survey["version"], 1);
        assert_eq!(survey["languages"], serde_json::json!(["vi", "en"]));
        assert!(survey["title"]["vi"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(survey["title"]["en"].as_str().is_some_and(|t| !t.is_empty()));
    }
}

#[tokio::test]
async fn a_survey_is_returned_in_full_with_its_measurement_model() {
    let app = TestApp::spawn().await;
    let (status, latest) = app.get_json("/api/v1/surveys/sipas-individual").await;
    assert_eq!(status, 200);
    let (status, v1) = app.get_json("/api/v1/surveys/sipas-individual/versions/1").await;
    assert_eq!(status, 200);
    assert_eq!(latest, v1);
    let question = latest["questions"].as_array().unwrap().iter().find(|q| q["id"] == "s09").unwrap();
    assert_eq!(question["kind"], "scale");
    assert_eq!((question["min"].as_i64(), question["max"].as_i64()), (Some(1), Some(5)));
    assert_eq!(question["labels"].as_array().unwrap().len(), 5);
    assert_eq!(question["labels"][3]["label"]["vi"], "Hài lòng");
    let measurement = &latest["measurement"];
    assert_eq!(measurement["satisfied"], serde_json::json!([4, 5]));
    assert_eq!(measurement["components"].as_array().unwrap().len(), 2);
    assert_eq!(measurement["elements"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn unknown_surveys_and_versions_are_404_and_a_bad_version_is_400() {
    let app = TestApp::spawn().await;
    assert_problem(app.get("/api/v1/surveys/nope").send().await.unwrap(), 404, "survey_not_found").await;
    assert_problem(app.get("/api/v1/surveys/nope/versions/1").send().await.unwrap(), 404, "survey_not_found").await;
    assert_problem(app.get("/api/v1/surveys/sipas-2017/versions/9").send().await.unwrap(), 404, "version_not_found")
        .await;
    let body = assert_problem(
        app.get("/api/v1/surveys/sipas-2017/versions/x").send().await.unwrap(),
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "version");
}

async fn publish(app: &TestApp, key: Option<&str>, content_type: &str, body: &str) -> reqwest::Response {
    let mut request = app.post("/api/v1/surveys").header("content-type", content_type).body(body.to_owned());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn publishing_needs_an_admin_key() {
    let app = TestApp::spawn().await;
    assert_problem(publish(&app, None, "application/toml", SMALL_SURVEY).await, 401, "unauthorized").await;
    assert_problem(publish(&app, Some("sipas_1_forged"), "application/toml", SMALL_SURVEY).await, 401, "unauthorized")
        .await;
    let analyst = app.key(Role::Analyst, &[]);
    assert_problem(publish(&app, Some(&analyst), "application/toml", SMALL_SURVEY).await, 403, "forbidden").await;
}

#[tokio::test]
async fn a_published_version_is_immutable_and_republishing_it_unchanged_is_a_no_op() {
    let app = TestApp::spawn().await;
    let admin = app.key(Role::Admin, &[]);
    let (status, body) = json_of(publish(&app, Some(&admin), "application/toml", SMALL_SURVEY).await).await;
    assert_eq!((status, body["outcome"].as_str()), (201, Some("published")));

    // Same content, differently formatted (JSON form): a no-op.
    let (_, stored) = app.get_json("/api/v1/surveys/province-own").await;
    let (status, body) = json_of(publish(&app, Some(&admin), "application/json", &stored.to_string()).await).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("unchanged")));

    // Same version, other content: refused, and the stored version is untouched.
    let changed = SMALL_SURVEY.replace("Hài lòng?", "Có hài lòng không?");
    assert_problem(publish(&app, Some(&admin), "application/toml", &changed).await, 409, "version_conflict").await;
    let (_, after) = app.get_json("/api/v1/surveys/province-own/versions/1").await;
    assert_eq!(after, stored);

    // As a new version it is accepted; both stay readable.
    let v2 = changed.replace("version = 1", "version = 2");
    assert_eq!(publish(&app, Some(&admin), "application/toml", &v2).await.status(), 201);
    let (_, latest) = app.get_json("/api/v1/surveys/province-own").await;
    assert_eq!(latest["version"], 2);
    let (_, list) = app.get_json("/api/v1/surveys").await;
    let own = list["surveys"].as_array().unwrap().iter().find(|s| s["id"] == "province-own").unwrap().clone();
    assert_eq!(own["versions"], serde_json::json!([1, 2]));
    let (status, _) = app.get_json("/api/v1/surveys/province-own/versions/1").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_incoherent_definition_is_refused_with_every_item_named() {
    let app = TestApp::spawn().await;
    let admin = app.key(Role::Admin, &[]);
    let broken = SMALL_SURVEY
        .replace(r#"criteria = ["q1"]"#, r#"criteria = ["q9"]"#)
        .replace(r#"en = "Satisfied?""#, r#"fr = "Satisfait ?""#);
    let body =
        assert_problem(publish(&app, Some(&admin), "application/toml", &broken).await, 422, "invalid_definition").await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"measurement.elements[e1].criteria[q9]"), "{fields:?}");
    assert!(fields.contains(&"questions[q1].text.en"), "{fields:?}");
    assert!(fields.contains(&"questions[q1].text.fr"), "{fields:?}");

    let body =
        assert_problem(publish(&app, Some(&admin), "application/toml", "id = [").await, 400, "malformed_body").await;
    assert!(body["detail"].as_str().is_some());
    assert_problem(publish(&app, Some(&admin), "image/png", SMALL_SURVEY).await, 415, "unsupported_media_type").await;
    let (_, list) = app.get_json("/api/v1/surveys").await;
    assert_eq!(list["surveys"].as_array().unwrap().len(), 4, "nothing was published");
}

#[tokio::test]
async fn every_shipped_definition_round_trips_through_its_json_form() {
    let app = TestApp::spawn().await;
    let admin = app.key(Role::Admin, &[]);
    for id in ["sipas-individual", "sipas-organization", "sipas-2017", "dossier-rating"] {
        let (_, definition): (u16, Value) = app.get_json(&format!("/api/v1/surveys/{id}")).await;
        let (status, body) =
            json_of(publish(&app, Some(&admin), "application/json", &definition.to_string()).await).await;
        assert_eq!((status, body["outcome"].as_str()), (200, Some("unchanged")), "{id}");
    }
}
