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
