use serde_json::json;
use sipas::auth::Role;

use crate::helpers::{TestApp, assert_problem, json_of, rating};

#[tokio::test]
async fn admins_issue_list_and_revoke_keys_and_a_revoked_key_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("ratings", "dossier-rating", &["01"]).await;
    let (status, created) = json_of(
        app.post("/api/v1/keys")
            .bearer_auth(&admin)
            .json(&json!({"role": "partner", "name": "HN one-stop", "agencies": ["01"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let (status, list) = json_of(app.get("/api/v1/keys").bearer_auth(&admin).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(!list.to_string().contains(&secret), "secrets are never listed");
    let partner = list["keys"].as_array().unwrap().iter().find(|k| k["name"] == "HN one-stop").unwrap().clone();
    assert_eq!(partner["agencies"], json!(["01"]));

    let response = app.post_response(&secret, None, &rating("ratings", "00070", None, 2)).await;
    assert_eq!(response.status().as_u16(), 201);
    let revoked = app
        .client
        .delete(app.url(&format!("/api/v1/keys/{}", created["id"])))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 204);
    assert_problem(app.post_response(&secret, None, &rating("ratings", "00070", None, 2)).await, 401, "unauthorized")
        .await;
    assert_problem(
        app.client.delete(app.url("/api/v1/keys/999")).bearer_auth(&admin).send().await.unwrap(),
        404,
        "key_not_found",
    )
    .await;
}

#[tokio::test]
async fn key_management_needs_an_admin_key() {
    let app = TestApp::spawn().await;
    assert_problem(app.get("/api/v1/keys").send().await.unwrap(), 401, "unauthorized").await;
    let analyst = app.key(Role::Analyst, &[]);
    assert_problem(app.get("/api/v1/keys").bearer_auth(&analyst).send().await.unwrap(), 403, "forbidden").await;
    let admin = app.key(Role::Admin, &[]);
    let response = app
        .post("/api/v1/keys")
        .bearer_auth(&admin)
        .json(&json!({"role": "partner", "name": "no scope"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 422, "invalid_key").await;
}
