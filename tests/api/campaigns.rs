use serde_json::json;
use sipas::auth::Role;

use crate::helpers::{TestApp, assert_problem, json_of, rating};

#[tokio::test]
async fn a_campaign_is_created_read_and_changed() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("hn-2026", "sipas-individual", &["01"]).await;
    let (status, campaign) =
        json_of(app.get("/api/v1/campaigns/hn-2026").bearer_auth(&admin).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(campaign["version"], 1, "the latest version by default");
    assert_eq!(campaign["channels"], json!(["api", "link", "invitation"]));
    assert_eq!(campaign["min_n"], 30);
    assert_eq!(campaign["agencies"], json!(["01"]));

    let response = app
        .patch_campaign(&admin, "hn-2026", &json!({"title": {"vi": "Hà Nội 2026", "en": "Ha Noi 2026"}, "min_n": 50}))
        .await;
    let (status, changed) = json_of(response).await;
    assert_eq!((status, changed["min_n"].as_i64()), (200, Some(50)));
    assert_eq!(changed["title"]["vi"], "Hà Nội 2026");

    let analyst = app.key(Role::Analyst, &[]);
    let (status, list) = json_of(app.get("/api/v1/campaigns").bearer_auth(&analyst).send().await.unwrap()).await;
    assert_eq!((status, list["campaigns"].as_array().unwrap().len()), (200, 1));
    let forbidden = app.patch_campaign(&analyst, "hn-2026", &json!({"min_n": 5})).await;
    assert_problem(forbidden, 403, "forbidden").await;
}

#[tokio::test]
async fn bad_campaigns_are_refused_with_every_field_named() {
    let app = TestApp::spawn().await;
    let admin = app.key(Role::Admin, &[]);
    let body = json!({
        "id": "Bad Id", "survey": "sipas-individual", "title": {"vi": "Thử"}, "agencies": ["01", "99999"],
        "opens_at": "2026-02-01T00:00:00Z", "closes_at": "2026-01-01T00:00:00Z", "min_n": 0
    });
    let problem = assert_problem(
        app.post("/api/v1/campaigns").bearer_auth(&admin).json(&body).send().await.unwrap(),
        422,
        "invalid_campaign",
    )
    .await;
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    for field in ["id", "title.en", "closes_at", "min_n", "agencies[1]"] {
        assert!(fields.contains(&field), "{field} not in {fields:?}");
    }
    let unknown = json!({"id": "x", "survey": "nope", "title": {"vi": "a"}, "agencies": ["01"], "opens_at": "2026-01-01T00:00:00Z", "closes_at": "2026-02-01T00:00:00Z"});
    assert_problem(
        app.post("/api/v1/campaigns").bearer_auth(&admin).json(&unknown).send().await.unwrap(),
        422,
        "invalid_campaign",
    )
    .await;
    assert_problem(
        app.get("/api/v1/campaigns/none").bearer_auth(&admin).send().await.unwrap(),
        404,
        "campaign_not_found",
    )
    .await;
    let malformed = app
        .post("/api/v1/campaigns")
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400, "malformed_body").await;
}

#[tokio::test]
async fn a_campaign_id_is_unique_and_its_version_is_fixed_once_it_has_responses() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("ratings", "dossier-rating", &["VN"]).await;
    let again = json!({"id": "ratings", "survey": "dossier-rating", "title": {"vi": "a", "en": "b"}, "agencies": ["VN"],
        "opens_at": "2026-01-01T00:00:00Z", "closes_at": "2027-01-01T00:00:00Z"});
    assert_problem(
        app.post("/api/v1/campaigns").bearer_auth(&admin).json(&again).send().await.unwrap(),
        409,
        "campaign_exists",
    )
    .await;
    assert_eq!(app.post_response(&admin, None, &rating("ratings", "01", None, 2)).await.status().as_u16(), 201);
    let change = app.patch_campaign(&admin, "ratings", &json!({"agencies": ["01"]})).await;
    assert_problem(change, 409, "campaign_has_responses").await;
}
