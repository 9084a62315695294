use crate::helpers::{TestApp, json_of};

#[tokio::test]
async fn healthz_answers_while_the_process_runs() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn readyz_answers_once_the_database_is_migrated() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}

#[tokio::test]
async fn unknown_routes_get_a_problem_document() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/nothing-here").send().await.unwrap();
    let body = crate::helpers::assert_problem(response, 404, "not_found").await;
    assert_eq!(body["type"], "urn:sipas:problem:not_found");
    let (status, _) = json_of(app.get("/nowhere").send().await.unwrap()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn every_response_carries_the_request_id() {
    let app = TestApp::spawn().await;
    let given = app.get("/healthz").header("x-request-id", "desk-7-000123").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "desk-7-000123", "the caller's id is kept");
    let fresh = app.get("/api/v1/surveys").send().await.unwrap();
    assert_eq!(fresh.headers()["x-request-id"].len(), 26, "a new id when none is given");
    let long = "x".repeat(200);
    let replaced = app.get("/nope").header("x-request-id", long.as_str()).send().await.unwrap();
    assert_eq!(replaced.status().as_u16(), 404);
    assert_ne!(replaced.headers()["x-request-id"], long.as_str(), "an unreasonable id is replaced");
}
