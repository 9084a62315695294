use serde_json::{Value, json};
use sipas::auth::Role;

use crate::helpers::{TestApp, assert_problem, individual, json_of, rating, sipas, stderr, stdout};

#[tokio::test]
async fn an_accepted_response_is_stored_with_its_answers_and_provenance_only() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("hn", "sipas-individual", &["01"]).await;
    let partner = app.key(Role::Partner, &["01"]);
    let body = individual("hn", "00070", 7);
    let response = app.post_response(&partner, None, &body).await;
    assert!(response.headers().get("location").is_some());
    let (status, created) = json_of(response).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created.as_object().unwrap().len(), 2, "only id and received_at: {created}");

    let analyst = app.key(Role::Analyst, &[]);
    let path = format!("/api/v1/responses/{}", created["id"].as_str().unwrap());
    let (status, stored) = json_of(app.get(&path).bearer_auth(&analyst).send().await.unwrap()).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["answers"], body["answers"]);
    assert_eq!(
        (stored["campaign"].as_str(), stored["agency"].as_str(), stored["survey"].as_str()),
        (Some("hn"), Some("00070"), Some("sipas-individual"))
    );
    assert_eq!(stored["received_at"], created["received_at"]);
    assert_problem(app.get(&path).bearer_auth(&partner).send().await.unwrap(), 403, "forbidden").await;
    assert_problem(
        app.get("/api/v1/responses/nope").bearer_auth(&admin).send().await.unwrap(),
        404,
        "response_not_found",
    )
    .await;
}

#[tokio::test]
async fn keys_are_checked_for_role_and_agency_scope() {
    let app = TestApp::spawn().await;
    app.open_campaign("nation", "dossier-rating", &["VN"]).await;
    let hanoi = app.key(Role::Partner, &["01"]);
    let analyst = app.key(Role::Analyst, &[]);
    assert_eq!(app.post_response(&hanoi, None, &rating("nation", "00070", None, 2)).await.status().as_u16(), 201);
    assert_problem(app.post_response(&hanoi, None, &rating("nation", "79", None, 2)).await, 403, "forbidden").await;
    assert_problem(app.post_response(&analyst, None, &rating("nation", "01", None, 2)).await, 403, "forbidden").await;
    assert_problem(
        app.post_response("sipas_9_nothing", None, &rating("nation", "01", None, 2)).await,
        401,
        "unauthorized",
    )
    .await;
    let anonymous = app.post("/api/v1/responses").json(&rating("nation", "01", None, 2)).send().await.unwrap();
    assert_problem(anonymous, 401, "unauthorized").await;
    assert_eq!(app.stored_responses("nation"), 1);
}

#[tokio::test]
async fn a_retry_with_the_same_key_replays_the_first_answer_and_stores_nothing_new() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("r", "dossier-rating", &["01"]).await;
    let body = rating("r", "01", None, 2);
    let first = app.post_response(&admin, Some("order-42"), &body).await;
    assert_eq!(first.status().as_u16(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.text().await.unwrap();
    // The same content in another key order is the same request.
    let reordered: Value = serde_json::from_str(&serde_json::to_string(&body).unwrap()).unwrap();
    let retry = app.post_response(&admin, Some("order-42"), &reordered).await;
    assert_eq!(retry.status().as_u16(), 201);
    assert_eq!(retry.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(retry.text().await.unwrap(), first_body);
    // What is hashed is what would be stored: the same answers written otherwise (spacing, an
    // escaped string, the default language left out) are the same request.
    let respelled = r#"{ "answers": {"overall_level": "\u0073atisfied", "d8_feedback": 2, "d7_attitude": 2,
        "d6_disclosure": 0, "d5_one_stop": 2, "d4_agencies": 2, "d3_contacts": 1, "d2_agency_time": 2,
        "d1_total_time": 2}, "respondent_type": "individual", "agency": "01", "campaign": "r" }"#;
    let retry = app
        .post("/api/v1/responses")
        .bearer_auth(&admin)
        .header("idempotency-key", "order-42")
        .header("content-type", "application/json")
        .body(respelled)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(retry.text().await.unwrap(), first_body);
    let changed = rating("r", "01", None, 1);
    assert_problem(app.post_response(&admin, Some("order-42"), &changed).await, 409, "idempotency_key_reused").await;
    let mut in_english = body.clone();
    in_english["language"] = json!("en");
    assert_problem(app.post_response(&admin, Some("order-42"), &in_english).await, 409, "idempotency_key_reused").await;
    assert_eq!(app.stored_responses("r"), 1);
    // Keys are scoped to the API key: another key may use the same value.
    let other = app.key(Role::Admin, &[]);
    assert_eq!(app.post_response(&other, Some("order-42"), &body).await.status().as_u16(), 201);
    assert_eq!(app.stored_responses("r"), 2);
    let bad_key = app.post_response(&admin, Some(&"k".repeat(256)), &body).await;
    assert_eq!(bad_key.status().as_u16(), 400);
}

#[tokio::test]
async fn a_key_recorded_before_content_hashes_replays_its_first_result() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("old", "dossier-rating", &["01"]).await;
    let first = app.post_response(&admin, Some("k-1"), &rating("old", "01", None, 2)).await;
    assert_eq!(first.status().as_u16(), 201);
    let first_body = first.text().await.unwrap();
    // Records written by earlier versions hashed the request's JSON (64 hex digits, no prefix);
    // that JSON is not kept, so a request under such a key is taken as its retry.
    use diesel::RunQueryDsl;
    let mut conn = app.database.connect();
    let legacy = "ab".repeat(32);
    let changed =
        diesel::sql_query(format!("UPDATE idempotency_keys SET request_hash = '{legacy}'")).execute(&mut conn).unwrap();
    assert_eq!(changed, 1);
    let retry = app.post_response(&admin, Some("k-1"), &rating("old", "01", None, 1)).await;
    assert_eq!(retry.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(retry.text().await.unwrap(), first_body);
    assert_eq!(app.stored_responses("old"), 1);
}

#[tokio::test]
async fn concurrent_posts_with_one_key_store_one_response() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("c", "dossier-rating", &["01"]).await;
    let body = rating("c", "01", None, 2);
    let posts = (0..16).map(|_| app.post_response(&admin, Some("same-key"), &body));
    let responses = futures_util::future::join_all(posts).await;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        let (status, created) = json_of(response).await;
        assert_eq!(status, 201, "{created}");
        ids.insert(created["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(app.stored_responses("c"), 1);
}

#[tokio::test]
async fn two_servers_sharing_a_database_store_one_response_per_key() {
    let app = TestApp::spawn().await;
    if !app.database.is_postgres() {
        return; // Several instances share a database only on PostgreSQL.
    }
    let other = app.spawn_sharing().await;
    let admin = app.open_campaign("shared", "dossier-rating", &["01"]).await;
    for round in 0..5 {
        let body = rating("shared", "01", None, 2);
        let key = format!("k-{round}");
        let (a, b) =
            tokio::join!(app.post_response(&admin, Some(&key), &body), other.post_response(&admin, Some(&key), &body));
        let (a, b) = (json_of(a).await, json_of(b).await);
        assert_eq!((a.0, b.0), (201, 201), "{a:?} {b:?}");
        assert_eq!(a.1["id"], b.1["id"]);
    }
    assert_eq!(app.stored_responses("shared"), 5);
}

#[tokio::test]
async fn a_dossier_is_rated_once_and_stored_only_as_a_keyed_hash() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("d", "dossier-rating", &["01"]).await;
    assert_eq!(
        app.post_response(&admin, None, &rating("d", "00070", Some("HS-000123-2026"), 2)).await.status().as_u16(),
        201
    );
    assert_problem(
        app.post_response(&admin, None, &rating("d", "00070", Some("HS-000123-2026"), 1)).await,
        409,
        "dossier_already_rated",
    )
    .await;
    // The same dossier number at another agency is another dossier.
    assert_eq!(
        app.post_response(&admin, None, &rating("d", "00073", Some("HS-000123-2026"), 2)).await.status().as_u16(),
        201
    );
    let dump = sipas(&app.database, &["tallies", "verify"]);
    assert!(dump.status.success(), "{}", stderr(&dump));
    if !app.database.is_postgres() {
        let path = app.database.url.trim_start_matches("sqlite://").to_owned();
        let bytes = std::fs::read(path).unwrap();
        let needle = b"HS-000123-2026";
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "the dossier id is stored in clear");
    }
}

#[tokio::test]
async fn closed_campaigns_and_agencies_outside_them_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("hn", "dossier-rating", &["01"]).await;
    let body =
        assert_problem(app.post_response(&admin, None, &rating("hn", "79", None, 2)).await, 422, "invalid_response")
            .await;
    assert_eq!(body["errors"][0]["code"], "agency_not_in_campaign");
    let body =
        assert_problem(app.post_response(&admin, None, &rating("none", "01", None, 2)).await, 422, "invalid_response")
            .await;
    assert_eq!(body["errors"][0]["code"], "unknown_campaign");
    let close = app.patch_campaign(&admin, "hn", &json!({"closes_at": "2025-12-31T00:00:00Z"})).await;
    assert_eq!(close.status().as_u16(), 200);
    let body =
        assert_problem(app.post_response(&admin, None, &rating("hn", "01", None, 2)).await, 422, "invalid_response")
            .await;
    assert_eq!(body["errors"][0]["code"], "campaign_closed");
    assert_eq!(app.stored_responses("hn"), 0);
}

/// A partner that got no answer before the close retries afterwards: a request stored while the
/// campaign was open is answered with its first result; anything new is refused as before.
#[tokio::test]
async fn a_retry_after_the_campaign_closed_gets_its_first_result() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("late", "dossier-rating", &["01"]).await;
    let partner = app.key(Role::Partner, &["01"]);
    let first = app.post_response(&partner, Some("single-1"), &rating("late", "01", None, 2)).await;
    let (status, created) = json_of(first).await;
    assert_eq!(status, 201, "{created}");
    let batch = |items: Value| app.post("/api/v1/responses/batch").bearer_auth(&partner).json(&items).send();
    let mut item = rating("late", "01", Some("HS-1"), 1);
    item["client_id"] = json!("batch-1");
    let (status, first_batch) = json_of(batch(json!({"items": [item.clone()]})).await.unwrap()).await;
    assert_eq!((status, first_batch["results"][0]["status"].as_u64()), (200, Some(201)), "{first_batch}");

    let close = app.patch_campaign(&admin, "late", &json!({"closes_at": "2025-12-31T00:00:00Z"})).await;
    assert_eq!(close.status().as_u16(), 200);

    let retry = app.post_response(&partner, Some("single-1"), &rating("late", "01", None, 2)).await;
    assert_eq!(retry.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let (status, replayed) = json_of(retry).await;
    assert_eq!((status, &replayed["id"]), (201, &created["id"]), "{replayed}");
    let other = app.post_response(&partner, Some("single-1"), &rating("late", "01", None, 1)).await;
    assert_problem(other, 409, "idempotency_key_reused").await;
    let new = app.post_response(&partner, Some("single-2"), &rating("late", "01", None, 2)).await;
    let body = assert_problem(new, 422, "invalid_response").await;
    assert_eq!(body["errors"][0]["code"], "campaign_closed");
    let without_key = app.post_response(&partner, None, &rating("late", "01", None, 2)).await;
    assert_problem(without_key, 422, "invalid_response").await;

    let mut new_item = rating("late", "01", None, 2);
    new_item["client_id"] = json!("batch-2");
    let (status, again) = json_of(batch(json!({"items": [item, new_item]})).await.unwrap()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["results"][0]["status"], 201, "{again}");
    assert_eq!(again["results"][0]["id"], first_batch["results"][0]["id"]);
    assert_eq!(again["results"][1]["status"], 422, "{again}");
    assert_eq!(again["results"][1]["errors"][0]["code"], "campaign_closed");
    assert_eq!(app.stored_responses("late"), 2, "nothing stored after the close");
}

/// The writer leaves copying the SQLite write-ahead log back to the database file to a thread of
/// its own: the log must still be copied and started over as responses arrive, not grow with
/// the data (it would if nothing checkpointed it).
#[tokio::test]
async fn the_sqlite_write_ahead_log_is_checkpointed_while_responses_arrive() {
    let app = TestApp::spawn().await;
    if app.database.is_postgres() {
        return;
    }
    let admin = app.open_campaign("wal", "sipas-individual", &["01"]).await;
    let wal = app.database.dir().join("sipas.db-wal");
    let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let answered = individual("wal", "00070", 7);
    for round in 0..12u64 {
        let items: Vec<Value> = (0..500u64)
            .map(|i| {
                let mut item = answered.clone();
                item["client_id"] = json!(format!("wal-{round}-{i}"));
                item
            })
            .collect();
        let response = app.post("/api/v1/responses/batch").bearer_auth(&admin).json(&json!({"items": items})).send();
        assert_eq!(response.await.unwrap().status().as_u16(), 200);
        // Room for a checkpoint between batches, as between a partner's requests.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(app.stored_responses("wal"), 6_000);
    let (log, database) = (size(&wal), size(&app.database.dir().join("sipas.db")));
    assert!(log < database / 2, "the log ({log} bytes) was not copied back into the database ({database} bytes)");
}

#[tokio::test]
async fn every_fault_in_a_response_is_listed_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("f", "dossier-rating", &["01"]).await;
    let body = json!({"campaign": "f", "agency": "01", "respondent_type": "robot", "language": "fr", "extra": 1,
        "answers": {"d1_total_time": 9, "d2_agency_time": "2", "nope": 1, "overall_level": "meh"}});
    let problem = assert_problem(app.post_response(&admin, None, &body).await, 422, "invalid_response").await;
    let mut found: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap().to_owned(), e["code"].as_str().unwrap().to_owned()))
        .collect();
    found.sort();
    assert!(found.contains(&("extra".into(), "unknown_field".into())), "{found:?}");
    assert!(found.contains(&("respondent_type".into(), "invalid".into())), "{found:?}");
    let body = json!({"campaign": "f", "agency": "01", "respondent_type": "individual", "language": "fr",
        "answers": {"d1_total_time": 9, "d2_agency_time": "2", "nope": 1, "overall_level": "meh"}});
    let problem = assert_problem(app.post_response(&admin, None, &body).await, 422, "invalid_response").await;
    let codes: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap().to_owned(), e["code"].as_str().unwrap().to_owned()))
        .collect();
    for expected in [
        ("language", "invalid"),
        ("answers.d1_total_time", "out_of_range"),
        ("answers.d2_agency_time", "wrong_type"),
        ("answers.nope", "unknown_question"),
        ("answers.overall_level", "unknown_option"),
        ("answers.d3_contacts", "required"),
    ] {
        assert!(codes.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{expected:?} not in {codes:?}");
    }
}

#[tokio::test]
async fn a_batch_stores_its_valid_items_and_answers_each_in_order() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("b", "dossier-rating", &["01"]).await;
    let partner = app.key(Role::Partner, &["01"]);
    let with_id = |mut item: Value, id: &str| {
        item["client_id"] = Value::from(id);
        item
    };
    let items = json!({"items": [
        with_id(rating("b", "00070", Some("A-1"), 2), "c1"),
        with_id(rating("b", "00070", None, 7), "c2"),
        with_id(rating("b", "00070", Some("A-1"), 1), "c3"),
        with_id(rating("b", "79", None, 2), "c4"),
        rating("b", "00073", None, 2),
        with_id(rating("b", "00073", None, 1), "c6"),
        with_id(rating("b", "00073", None, 1), "c6"),
    ]});
    let send = || app.post("/api/v1/responses/batch").bearer_auth(&partner).json(&items).send();
    let (status, first) = json_of(send().await.unwrap()).await;
    assert_eq!(status, 200, "{first}");
    let statuses: Vec<i64> =
        first["results"].as_array().unwrap().iter().map(|r| r["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [201, 422, 409, 422, 422, 201, 201]);
    let results = first["results"].as_array().unwrap();
    assert_eq!(results[2]["errors"][0]["code"], "dossier_already_rated");
    assert_eq!(results[1]["errors"][0]["field"], "answers.d1_total_time");
    assert_eq!(results[4]["errors"][0]["field"], "client_id");
    assert_eq!(results[5]["id"], results[6]["id"], "a repeated client_id in one batch stores once");
    assert_eq!(app.stored_responses("b"), 2);

    let (_, again) = json_of(send().await.unwrap()).await;
    let ids = |v: &Value| {
        v["results"].as_array().unwrap().iter().map(|r| (r["status"].clone(), r["id"].clone())).collect::<Vec<_>>()
    };
    assert_eq!(ids(&again), ids(&first), "a replayed batch returns the first results");
    assert_eq!(app.stored_responses("b"), 2);

    // New items beside a replayed one and a key reused for other content: the group is written
    // again after its keys collide, and only the new items are stored.
    let mixed = json!({"items": [
        with_id(rating("b", "00073", None, 2), "c7"),
        with_id(rating("b", "00070", Some("A-1"), 2), "c1"),
        with_id(rating("b", "00073", None, 2), "c6"),
        with_id(rating("b", "00073", None, 0), "c8"),
    ]});
    let (status, third) =
        json_of(app.post("/api/v1/responses/batch").bearer_auth(&partner).json(&mixed).send().await.unwrap()).await;
    assert_eq!(status, 200, "{third}");
    let results = third["results"].as_array().unwrap();
    let statuses: Vec<i64> = results.iter().map(|r| r["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [201, 201, 409, 201], "{third}");
    assert_eq!(results[1]["id"], first["results"][0]["id"], "the replayed item has its first id");
    assert_eq!(results[2]["errors"][0]["code"], "idempotency_key_reused");
    assert_ne!(results[0]["id"], results[3]["id"]);
    assert_eq!(app.stored_responses("b"), 4);
    let _ = admin;
}

#[tokio::test]
async fn a_batch_over_the_limit_is_refused_whole() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("big", "dossier-rating", &["01"]).await;
    let items: Vec<Value> = (0..1_001)
        .map(|i| {
            let mut item = rating("big", "01", None, 2);
            item["client_id"] = Value::from(format!("k{i}"));
            item
        })
        .collect();
    let response =
        app.post("/api/v1/responses/batch").bearer_auth(&admin).json(&json!({"items": items})).send().await.unwrap();
    assert_problem(response, 413, "batch_too_large").await;
    assert_eq!(app.stored_responses("big"), 0);
}

#[tokio::test]
async fn tallies_agree_with_a_recount_after_a_mixed_workload() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("mix", "sipas-individual", &["VN"]).await;
    let agencies = ["00070", "00073", "01", "79", "26704", "24"];
    let mut items = Vec::new();
    for seed in 0..60u64 {
        let mut item = individual("mix", agencies[seed as usize % agencies.len()], seed);
        if seed % 3 == 0 {
            item["respondent_type"] = Value::from("organization");
        }
        item["client_id"] = Value::from(format!("m{seed}"));
        items.push(item);
    }
    let (status, _) = json_of(
        app.post("/api/v1/responses/batch").bearer_auth(&admin).json(&json!({"items": items})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let bodies: Vec<Value> =
        (0..20u64).map(|seed| individual("mix", agencies[(seed % 6) as usize], 100 + seed)).collect();
    let singles = bodies.iter().map(|body| app.post_response(&admin, None, body));
    for response in futures_util::future::join_all(singles).await {
        assert_eq!(response.status().as_u16(), 201);
    }
    assert_eq!(app.stored_responses("mix"), 80);
    let verified = sipas(&app.database, &["tallies", "verify", "--campaign", "mix"]);
    assert!(verified.status.success(), "{}{}", stdout(&verified), stderr(&verified));
    assert!(stderr(&verified).contains("80 responses recounted"), "{}", stderr(&verified));

    // A tampered tally is found and named.
    let mut conn = app.database.connect();
    wait_until_folded(&mut conn).await;
    use diesel::prelude::*;
    diesel::sql_query("UPDATE tallies SET respondents = respondents + 1 WHERE cell = '*' AND agency_id = (SELECT MIN(agency_id) FROM tallies)")
        .execute(&mut conn)
        .unwrap();
    let verified = sipas(&app.database, &["tallies", "verify"]);
    assert_eq!(verified.status.code(), Some(1));
    assert!(stdout(&verified).contains("column says"), "{}", stdout(&verified));
}

#[tokio::test]
async fn tallies_changed_by_another_connection_are_read_again_before_the_next_write() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("other", "sipas-individual", &["VN"]).await;
    assert_eq!(app.post_response(&admin, None, &individual("other", "00070", 1)).await.status().as_u16(), 201);
    assert_eq!(app.post_response(&admin, None, &individual("other", "00070", 2)).await.status().as_u16(), 201);
    let mut conn = app.database.connect();
    wait_until_folded(&mut conn).await;
    // Another connection (another process, an operator's repair) rewrites the tallies meanwhile:
    // here it empties them, as if the campaign had been recounted from nothing.
    use diesel::prelude::*;
    diesel::sql_query("DELETE FROM tallies WHERE campaign_id = 'other'").execute(&mut conn).unwrap();
    assert_eq!(app.post_response(&admin, None, &individual("other", "00070", 3)).await.status().as_u16(), 201);
    wait_until_folded(&mut conn).await;
    // The writer must have read the rows again (finding none), not added to what it wrote before.
    let root: Vec<Count> = diesel::sql_query(
        "SELECT respondents AS n FROM tallies WHERE campaign_id = 'other' AND cell = '*' \
         AND agency_id = (SELECT id FROM agencies WHERE code = 'VN')",
    )
    .load(&mut conn)
    .unwrap();
    assert_eq!(root.iter().map(|c| c.n).sum::<i64>(), 1, "only the response posted after the rewrite");
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn pending(conn: &mut sipas::db::DbConnection) -> i64 {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT COUNT(*) AS n FROM pending_tallies").get_result::<Count>(conn).unwrap().n
}

/// Waits (at most 10 s) until the writer has added every committed response to the tally rows.
async fn wait_until_folded(conn: &mut sipas::db::DbConnection) {
    for _ in 0..200 {
        if pending(conn) == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("responses still pending after 10 s");
}

/// Responses are counted from their commit: while their tallies wait to be added (here for an
/// hour), statistics and the campaign's count already include them, and `sipas tallies verify`
/// agrees. Another instance starting on the database adds what is pending, and the first
/// instance, finding its rows taken, does not add them twice.
#[actix_web::test]
async fn responses_count_before_their_tallies_are_written() {
    let app = TestApp::spawn_with(|settings| settings.tally_fold_ms = 3_600_000).await;
    let admin = app.open_campaign("lag", "sipas-individual", &["VN"]).await;
    for seed in 1..=3 {
        assert_eq!(app.post_response(&admin, None, &individual("lag", "00070", seed)).await.status().as_u16(), 201);
    }
    let mut conn = app.database.connect();
    assert_eq!(pending(&mut conn), 3, "nothing added to the tally rows yet");
    assert_eq!(counted(&app, &admin).await, (Some(3), Some(3)));
    let verification = sipas::intake::verify::verify_campaign(&mut conn, "lag").unwrap();
    assert_eq!((verification.responses, verification.differences.len()), (3, 0), "{:?}", verification.differences);

    let second = TestApp::spawn_sharing(&app).await;
    wait_until_folded(&mut conn).await;
    assert_eq!(app.post_response(&admin, None, &individual("lag", "00070", 4)).await.status().as_u16(), 201);
    assert_eq!(counted(&app, &admin).await, (Some(4), Some(4)));
    assert_eq!(counted(&second, &admin).await, (Some(4), Some(4)));
    let verification = sipas::intake::verify::verify_campaign(&mut conn, "lag").unwrap();
    assert_eq!((verification.responses, verification.differences.len()), (4, 0), "{:?}", verification.differences);
}

/// A large group (here one batch of 300) writes its tallies in its own transaction: nothing is
/// left pending, and the tallies equal a recount.
#[actix_web::test]
async fn a_large_batch_writes_its_tallies_with_its_responses() {
    let app = TestApp::spawn_with(|settings| settings.tally_fold_ms = 3_600_000).await;
    let admin = app.open_campaign("lag", "sipas-individual", &["VN"]).await;
    let agencies = ["00070", "00073", "01", "79"];
    let items: Vec<Value> = (0..300u64)
        .map(|seed| {
            let mut item = individual("lag", agencies[seed as usize % agencies.len()], seed);
            item["client_id"] = Value::from(format!("big-{seed}"));
            item
        })
        .collect();
    let (status, body) = json_of(
        app.post("/api/v1/responses/batch").bearer_auth(&admin).json(&json!({"items": items})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["results"].as_array().unwrap().iter().all(|r| r["status"] == 201), "{body}");
    let mut conn = app.database.connect();
    assert_eq!(pending(&mut conn), 0, "nothing pending");
    assert_eq!(counted(&app, &admin).await, (Some(300), Some(300)));
    let verification = sipas::intake::verify::verify_campaign(&mut conn, "lag").unwrap();
    assert_eq!((verification.responses, verification.differences.len()), (300, 0), "{:?}", verification.differences);
}

/// Respondents in the campaign's national statistics and in its response count.
async fn counted(app: &TestApp, key: &str) -> (Option<u64>, Option<u64>) {
    let (status, stats) = app.get_json_with("/api/v1/campaigns/lag/stats", key).await;
    assert_eq!(status, 200, "{stats}");
    let (status, campaign) = app.get_json_with("/api/v1/campaigns/lag", key).await;
    assert_eq!(status, 200, "{campaign}");
    (stats["parent"]["n"].as_u64(), campaign["responses"].as_u64())
}

/// Bad inputs, each of which must get a 4xx and store nothing.
fn corpus() -> Vec<(&'static str, Option<&'static str>, Vec<u8>)> {
    let json = |v: Value| v.to_string().into_bytes();
    let valid = rating("bad", "01", None, 2);
    let with = |path: &[&str], value: Value| {
        let mut body = valid.clone();
        let mut cursor = &mut body;
        for key in &path[..path.len() - 1] {
            cursor = &mut cursor[*key];
        }
        cursor[path[path.len() - 1]] = value;
        json(body)
    };
    let ct = Some("application/json");
    let many_answers: serde_json::Map<String, Value> = (0..10_000).map(|i| (format!("q{i}"), Value::from(1))).collect();
    let mut cases: Vec<(&'static str, Option<&'static str>, Vec<u8>)> = vec![
        ("empty body", ct, Vec::new()),
        ("malformed JSON", ct, b"{\"campaign\": ".to_vec()),
        ("malformed UTF-8", ct, b"{\"campaign\": \"\xff\xfe\"}".to_vec()),
        ("JSON array", ct, b"[1,2,3]".to_vec()),
        ("JSON string", ct, b"\"hello\"".to_vec()),
        ("JSON null", ct, b"null".to_vec()),
        ("not JSON content type", Some("text/plain"), json(valid.clone())),
        ("no content type", None, json(valid.clone())),
        ("form encoded", Some("application/x-www-form-urlencoded"), b"campaign=bad".to_vec()),
        (
            "over 64 KiB",
            ct,
            json(
                json!({"campaign": "bad", "agency": "01", "respondent_type": "individual", "answers": {}, "pad": "x".repeat(70_000)}),
            ),
        ),
        ("deeply nested", ct, format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)).into_bytes()),
        (
            "10,000 answers",
            ct,
            json(json!({"campaign": "bad", "agency": "01", "respondent_type": "individual", "answers": many_answers})),
        ),
        ("campaign is a number", ct, with(&["campaign"], json!(5))),
        ("campaign is an object", ct, with(&["campaign"], json!({"id": "bad"}))),
        ("campaign missing", ct, with(&["campaign"], Value::Null)),
        ("unknown campaign", ct, with(&["campaign"], json!("other"))),
        ("agency is an array", ct, with(&["agency"], json!(["01"]))),
        ("unknown agency", ct, with(&["agency"], json!("99999"))),
        ("agency outside campaign", ct, with(&["agency"], json!("79"))),
        ("agency with SQL", ct, with(&["agency"], json!("01' OR '1'='1"))),
        ("respondent type wrong", ct, with(&["respondent_type"], json!("robot"))),
        ("respondent type number", ct, with(&["respondent_type"], json!(1))),
        ("language unknown", ct, with(&["language"], json!("xx"))),
        ("language number", ct, with(&["language"], json!(84))),
        ("answers is an array", ct, with(&["answers"], json!([2, 2]))),
        ("answers is a string", ct, with(&["answers"], json!("all good"))),
        ("answers missing", ct, with(&["answers"], Value::Null)),
        ("answer huge number", ct, with(&["answers", "d1_total_time"], json!(1e300))),
        ("answer u64 max", ct, with(&["answers", "d1_total_time"], json!(u64::MAX))),
        ("answer negative", ct, with(&["answers", "d1_total_time"], json!(-1))),
        ("answer above scale", ct, with(&["answers", "d1_total_time"], json!(3))),
        ("answer fraction", ct, with(&["answers", "d1_total_time"], json!(1.5))),
        ("answer as string", ct, with(&["answers", "d1_total_time"], json!("2"))),
        ("answer as boolean", ct, with(&["answers", "d1_total_time"], json!(true))),
        ("answer nested object", ct, with(&["answers", "d1_total_time"], json!({"value": 2}))),
        ("answer nested array", ct, with(&["answers", "d1_total_time"], json!([2]))),
        ("unknown option", ct, with(&["answers", "overall_level"], json!("ecstatic"))),
        ("option as array", ct, with(&["answers", "overall_level"], json!(["satisfied"]))),
        ("unknown question", ct, with(&["answers", "d10"], json!(2))),
        ("required answer missing", ct, with(&["answers", "d8_feedback"], Value::Null)),
        ("completed_at not a date", ct, with(&["completed_at"], json!("yesterday"))),
        ("completed_at in the future", ct, with(&["completed_at"], json!("2999-01-01T00:00:00Z"))),
        ("service too long", ct, with(&["service"], json!("x".repeat(500)))),
        ("dossier number", ct, with(&["dossier"], json!(12345))),
        ("unknown top-level field", ct, with(&["ip_address"], json!("10.0.0.1"))),
        ("string with NUL", ct, with(&["agency"], json!("01\u{0}"))),
    ];
    cases.push(("huge number literal", ct, b"{\"campaign\":\"bad\",\"agency\":\"01\",\"respondent_type\":\"individual\",\"answers\":{\"d1_total_time\":123456789012345678901234567890}}".to_vec()));
    cases
}

#[tokio::test]
async fn bad_inputs_get_a_4xx_and_store_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("bad", "dossier-rating", &["01"]).await;
    assert_eq!(app.post_response(&admin, None, &rating("bad", "01", None, 2)).await.status().as_u16(), 201);
    let cases = corpus();
    assert!(cases.len() >= 40);
    for (name, content_type, body) in cases {
        let mut request = app.post("/api/v1/responses").bearer_auth(&admin).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let media = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        assert!((400..500).contains(&status), "case `{name}`: status {status}, body {text}");
        assert_eq!(media.as_deref(), Some("application/problem+json"), "case `{name}`: {text}");
        assert!(!text.contains("diesel") && !text.contains("panicked"), "case `{name}` leaks internals: {text}");
    }
    assert_eq!(app.stored_responses("bad"), 1, "nothing stored by a bad input, nothing lost");
}
