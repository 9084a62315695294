//! What operators use: Prometheus metrics behind a token, the audit log of admin actions, the
//! example configuration.

use reqwest::header::CONTENT_TYPE;
use serde_json::json;
use sipas::auth::Role;

use crate::helpers::{TestApp, individual};

#[tokio::test]
async fn metrics_are_off_by_default_and_behind_their_token() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/metrics").send().await.unwrap().status().as_u16(), 404);

    let app = TestApp::spawn_with(|settings| settings.metrics_token = Some("scrape-me".to_owned())).await;
    assert_eq!(app.get("/metrics").send().await.unwrap().status().as_u16(), 401);
    assert_eq!(app.get("/metrics").bearer_auth("wrong").send().await.unwrap().status().as_u16(), 401);
    let admin = app.open_campaign("hn", "sipas-individual", &["01"]).await;
    let partner = app.key(Role::Partner, &["01"]);
    assert_eq!(app.post_response(&partner, None, &individual("hn", "00004", 1)).await.status().as_u16(), 201);
    let mut bad = individual("hn", "00004", 2);
    bad["answers"]["s01"] = json!(9);
    assert_eq!(app.post_response(&partner, None, &bad).await.status().as_u16(), 422);
    let other = individual("hn", "79", 3);
    assert_eq!(app.post_response(&partner, None, &other).await.status().as_u16(), 422);
    let _ = admin;

    let response = app.get("/metrics").bearer_auth("scrape-me").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    for expected in [
        "sipas_responses_accepted_total{channel=\"api\"} 1",
        "sipas_responses_refused_total{channel=\"api\",reason=\"invalid\"} 2",
        "sipas_http_requests_total{method=\"POST\",route=\"/api/v1/responses\",status=\"201\"} 1",
        "sipas_http_requests_total{method=\"POST\",route=\"/api/v1/responses\",status=\"422\"} 2",
        "sipas_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/responses\"} 3",
        "sipas_outbox_depth 0",
        "sipas_db_pool_connections ",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in\n{text}");
    }
    // Unknown paths share one label: a scanner can't blow up the number of series.
    let _ = app.get("/wp-admin/x").send().await.unwrap();
    let _ = app.get("/etc/passwd").send().await.unwrap();
    let text = app.get("/metrics").bearer_auth("scrape-me").send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("wp-admin") && !text.contains("passwd"));
    assert!(text.contains("sipas_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 2"), "{text}");
}

#[tokio::test]
async fn admin_actions_are_in_the_audit_log() {
    let app = TestApp::spawn().await;
    let admin = app.key(Role::Admin, &[]);
    let admin_id: i64 = admin.split('_').nth(1).unwrap().parse().unwrap();
    let created = app
        .post("/api/v1/keys")
        .bearer_auth(&admin)
        .json(&json!({"role": "partner", "name": "one-stop desk", "agencies": ["01"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    let partner_id = created["id"].as_i64().unwrap();
    let partner = created["secret"].as_str().unwrap().to_owned();
    app.open_campaign("audited", "sipas-individual", &["01"]).await;
    let patched = app.patch_campaign(&admin, "audited", &json!({"results_public": true, "min_n": 40})).await;
    assert_eq!(patched.status().as_u16(), 200);
    let revoked =
        app.client.delete(app.url(&format!("/api/v1/keys/{partner_id}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(revoked.status().as_u16(), 204);
    // A refused action leaves no entry.
    let refused = app.patch_campaign(&admin, "audited", &json!({"min_n": 0})).await;
    assert_eq!(refused.status().as_u16(), 422);
    let cli = crate::helpers::sipas(&app.database, &["keys", "create", "--role", "analyst", "--name", "cli"]);
    assert!(cli.status.success());

    assert_eq!(app.get("/api/v1/audit").bearer_auth(&partner).send().await.unwrap().status().as_u16(), 401);
    let analyst = app.key(Role::Analyst, &[]);
    assert_eq!(app.get("/api/v1/audit").bearer_auth(&analyst).send().await.unwrap().status().as_u16(), 403);
    let (status, page) = app.get_json_with("/api/v1/audit", &admin).await;
    assert_eq!(status, 200);
    let entries = page["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["key.created", "key.revoked", "campaign.updated", "campaign.created", "key.created"]);
    assert_eq!(entries[0]["key_id"], serde_json::Value::Null, "the command line");
    assert_eq!(entries[0]["details"]["role"], "analyst");
    assert_eq!(entries[1]["target"], partner_id.to_string());
    assert_eq!(entries[1]["key_id"], admin_id);
    assert_eq!(entries[2]["details"], json!({"results_public": true, "min_n": 40}));
    assert_eq!(entries[3]["target"], "audited");
    assert_eq!(entries[4]["details"]["agencies"], json!(["01"]));
    assert!(!entries[4].to_string().contains(&partner), "no secret in the log");
    // Paging and filtering.
    let (_, first) = app.get_json_with("/api/v1/audit?limit=2", &admin).await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    let next = first["next"].as_i64().unwrap();
    let (_, second) = app.get_json_with(&format!("/api/v1/audit?limit=2&before={next}"), &admin).await;
    assert_eq!(second["entries"][0]["action"], "campaign.updated");
    let (_, only) = app.get_json_with("/api/v1/audit?action=key.created", &admin).await;
    assert_eq!(only["entries"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/api/v1/audit?limit=0").bearer_auth(&admin).send().await.unwrap().status().as_u16(), 400);
}

fn stats_of(url: &str, campaign: &str) -> serde_json::Value {
    let target = sipas::db::DatabaseTarget::parse(url).unwrap();
    let mut conn = sipas::db::connect(&target).unwrap();
    let request = sipas::report::StatsRequest {
        agency: None,
        scope: sipas::report::Scope::Children,
        rollup: sipas::report::Rollup::MeanOfUnits,
        weights: sipas::report::Weights::None,
        breakdown: None,
        compare: Some("demo-2023".to_owned()),
        confidence: sipas::stats::Confidence::default(),
        language: "vi".to_owned(),
        limited_to: None,
    };
    let cache = sipas::campaign::context::CampaignCache::default();
    let mut report =
        serde_json::to_value(sipas::report::stats(&mut conn, &cache, campaign, &request).unwrap()).unwrap();
    report["computed_at"] = serde_json::Value::Null;
    report
}

/// `sipas copy` from an SQLite file into the test database (PostgreSQL in CI's PostgreSQL pass)
/// and, on PostgreSQL, back into a new SQLite file: the figures, keys and secrets survive.
#[test]
fn a_database_copies_to_another_backend_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let source_url = format!("sqlite://{}", dir.path().join("source.db").display());
    let source = sipas::db::DatabaseTarget::parse(&source_url).unwrap();
    sipas::app::prepare_database(&source, true).unwrap();
    let mut conn = sipas::db::connect(&source).unwrap();
    let secret = sipas::db::server_secret(&mut conn, "dossier").unwrap();
    sipas::demo::load(&mut conn, &sipas::campaign::context::CampaignCache::default(), &secret, 8).unwrap();
    let key = sipas::auth::create_key(&mut conn, "analyst", Role::Analyst, &[]).unwrap();
    sipas::audit::record(&mut conn, sipas::audit::Actor::CommandLine, "key.created", &key.id.to_string(), &json!({}))
        .unwrap();
    drop(conn);

    let target = crate::helpers::TestDatabase::new();
    let copy = |from: &str, to: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sipas"))
            .args(["copy", "--from", from, "--to", to])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let copied = copy(&source_url, &target.url);
    assert!(copied.status.success(), "{}", crate::helpers::stderr(&copied));
    assert!(crate::helpers::stderr(&copied).contains("responses: 816 row(s)"), "{}", crate::helpers::stderr(&copied));
    assert_eq!(stats_of(&target.url, "demo-2024"), stats_of(&source_url, "demo-2024"));
    let mut copy_conn = target.connect();
    assert_eq!(sipas::db::server_secret(&mut copy_conn, "dossier").unwrap(), secret);
    let principal = sipas::auth::authenticate(&mut copy_conn, &key.secret).unwrap().expect("the key works in the copy");
    assert_eq!(principal.key_id, key.id);
    // New rows get fresh ids after the copied ones.
    let next = sipas::auth::create_key(&mut copy_conn, "after the move", Role::Admin, &[]).unwrap();
    assert!(next.id > key.id);
    assert_eq!(sipas::audit::list(&mut copy_conn, None, None, 10).unwrap().len(), 1);

    // A database with data of its own is not a target.
    let again = copy(&source_url, &target.url);
    assert!(!again.status.success());
    assert!(crate::helpers::stderr(&again).contains("already holds"), "{}", crate::helpers::stderr(&again));

    if target.is_postgres() {
        let back_url = format!("sqlite://{}", dir.path().join("back.db").display());
        let back = copy(&target.url, &back_url);
        assert!(back.status.success(), "{}", crate::helpers::stderr(&back));
        assert_eq!(stats_of(&back_url, "demo-2024"), stats_of(&source_url, "demo-2024"));
    }
}
