//! Requests that should never get in: each refused with the right status, nothing stored, and
//! nothing about the server's insides in the body.

use reqwest::header::COOKIE;
use serde_json::json;
use sipas::auth::Role;

use crate::helpers::{TestApp, individual};

/// What a refusal's body must never contain.
const LEAKS: [&str; 9] =
    ["diesel", "sqlite", "postgres", "panicked", "SELECT", "stack backtrace", "/src/", "DbError", "r2d2"];

async fn refused(response: reqwest::Response, status: u16, what: &str) {
    assert_eq!(response.status().as_u16(), status, "{what}");
    let body = response.text().await.unwrap();
    for leak in LEAKS {
        assert!(!body.contains(leak), "{what}: the body mentions `{leak}`: {body}");
    }
}

#[tokio::test]
async fn requests_that_should_never_get_in_are_refused_and_store_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("hn", "sipas-individual", &["01", "79"]).await;
    let hanoi = app.key(Role::Partner, &["01"]);
    let analyst = app.key(Role::Analyst, &[]);

    // Another partner's agency; an analyst key posting; a revoked key; no key; a malformed key.
    refused(app.post_response(&hanoi, None, &individual("hn", "79", 1)).await, 403, "another agency").await;
    refused(app.post_response(&analyst, None, &individual("hn", "00004", 2)).await, 403, "an analyst posting").await;
    let revoked = app.key(Role::Partner, &["01"]);
    let revoked_id = revoked.split('_').nth(1).unwrap();
    let gone =
        app.client.delete(app.url(&format!("/api/v1/keys/{revoked_id}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(gone.status().as_u16(), 204);
    refused(app.post_response(&revoked, None, &individual("hn", "00004", 3)).await, 401, "a revoked key").await;
    refused(app.post("/api/v1/responses").json(&individual("hn", "00004", 4)).send().await.unwrap(), 401, "no key")
        .await;
    refused(app.post_response("sipas_1_' OR '1'='1", None, &individual("hn", "00004", 5)).await, 401, "an SQL key")
        .await;
    // A forged analyst session does not open unpublished results.
    let forged = app.get("/results/hn").header(COOKIE, "sipas_session=1.99999999999.00ff").send().await.unwrap();
    refused(forged, 401, "a forged session").await;

    // Path traversal where a name becomes a path or a file name.
    for path in [
        "/api/v1/campaigns/..%2F..%2Fetc%2Fpasswd/responses?format=csv",
        "/api/v1/campaigns/%2e%2e/stats?format=csv",
        "/results/..%2F..%2Fetc%2Fpasswd/stats.csv",
        "/static/..%2FCargo.toml",
        "/static/../Cargo.toml",
        "/s/hn/..%2F..%2Fetc%2Fpasswd/qr.svg",
    ] {
        let response = app.get(path).bearer_auth(&analyst).send().await.unwrap();
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{path}: {status}");
        refused(response, status, path).await;
    }

    // SQL metacharacters in every kind of parameter: refused or harmlessly empty, never a 5xx.
    let sql = ["' OR '1'='1", "1; DROP TABLE responses; --", "%' --", "\\\"", "_%"];
    for text in sql {
        let encoded = serde_urlencoded::to_string([("", text)]).unwrap().trim_start_matches('=').to_owned();
        for path in [
            format!("/api/v1/agencies?q={encoded}"),
            format!("/api/v1/agencies/{encoded}"),
            format!("/api/v1/agencies?parent={encoded}"),
            format!("/api/v1/campaigns/hn/stats?agency={encoded}"),
            format!("/api/v1/campaigns/hn/stats?breakdown={encoded}"),
            format!("/api/v1/campaigns/hn/stats?compare={encoded}"),
            format!("/api/v1/campaigns/{encoded}"),
            format!("/api/v1/audit?action={encoded}"),
            format!("/api/v1/surveys/{encoded}"),
            format!("/results/hn?agency={encoded}&lang={encoded}"),
            format!("/s/hn/{encoded}"),
        ] {
            let response = app.get(&path).bearer_auth(&admin).send().await.unwrap();
            let status = response.status().as_u16();
            assert!(status < 500, "{path}: {status}");
            refused(response, status, &path).await;
        }
    }
    let injected =
        json!({"campaign": "hn' OR '1'='1", "agency": "01'; --", "respondent_type": "individual", "answers": {}});
    refused(app.post_response(&hanoi, None, &injected).await, 422, "SQL in a body").await;

    // Oversized headers are refused before any handler runs.
    let huge = "x".repeat(64 * 1024);
    let response = app.get("/api/v1/campaigns").bearer_auth(&admin).header("X-Padding", &huge).send().await.unwrap();
    let problem = crate::helpers::assert_problem(response, 431, "headers_too_large").await;
    assert!(problem["detail"].as_str().unwrap().contains("16384"));
    // And the server is still there, with nothing stored and every table intact.
    assert_eq!(app.get("/healthz").send().await.unwrap().status().as_u16(), 200);
    assert_eq!(app.stored_responses("hn"), 0);
    assert_eq!(app.get_json_with("/api/v1/campaigns/hn", &admin).await.0, 200);
    assert_eq!(app.post_response(&hanoi, None, &individual("hn", "00004", 9)).await.status().as_u16(), 201);
}

/// A JSON body that does not fit its type is refused 400 naming the member at fault (and the
/// missing one by its name), not only a line and column; a key that may not make the request
/// is refused 403 whatever its body; nothing is changed.
#[tokio::test]
async fn a_json_body_that_does_not_fit_names_the_member_at_fault() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("hn", "sipas-individual", &["01"]).await;
    let analyst = app.key(Role::Analyst, &[]);
    let faults = |body: serde_json::Value| {
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["field"].as_str().unwrap().to_owned(), e["code"].as_str().unwrap().to_owned()))
            .collect::<Vec<_>>()
    };
    let send = |method: reqwest::Method, path: &str, key: &str, body: &str| {
        app.client
            .request(method, app.url(path))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    for (method, path, body, field, code) in [
        (reqwest::Method::PATCH, "/api/v1/campaigns/hn", r#"{"min_n": 1.5}"#, "min_n", "invalid"),
        (reqwest::Method::PATCH, "/api/v1/campaigns/hn", r#"{"min_n": "five"}"#, "min_n", "invalid"),
        (
            reqwest::Method::POST,
            "/api/v1/campaigns",
            r#"{"mail": {"reminders": [-1]}}"#,
            "mail.reminders[0]",
            "invalid",
        ),
        (reqwest::Method::POST, "/api/v1/keys", r#"{"name": "k", "role": "boss"}"#, "role", "invalid"),
        (reqwest::Method::POST, "/api/v1/keys", r#"{"name": "k"}"#, "role", "required"),
        (reqwest::Method::POST, "/api/v1/keys", r#"{"name": "k""#, "body", "syntax"),
        (reqwest::Method::POST, "/api/v1/keys", r#"{"name": "k", "role": "admin"} and more"#, "body", "syntax"),
        (
            reqwest::Method::POST,
            "/api/v1/campaigns/hn/invitations",
            r#"{"invitations": [{"email": 5, "agency": "00004"}]}"#,
            "invitations[0].email",
            "invalid",
        ),
    ] {
        let response = send(method.clone(), path, &admin, body).await.unwrap();
        let problem = crate::helpers::assert_problem(response, 400, "malformed_body").await;
        assert_eq!(
            faults(problem.clone()),
            vec![(field.to_owned(), code.to_owned())],
            "{method} {path} {body}: {problem}"
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(!detail.contains("i32") && !detail.contains("u32"), "Rust type names in {detail}");
    }
    // An analyst may not change a campaign: 403 before its body is read.
    let forbidden = send(reqwest::Method::PATCH, "/api/v1/campaigns/hn", &analyst, r#"{"min_n": 1.5}"#).await.unwrap();
    crate::helpers::assert_problem(forbidden, 403, "forbidden").await;
    let (_, keys) = app.get_json_with("/api/v1/keys", &admin).await;
    assert!(keys["keys"].as_array().unwrap().iter().all(|k| k["name"] != "k"), "{keys}");
    let (_, campaign) = app.get_json_with("/api/v1/campaigns/hn", &admin).await;
    assert_ne!(campaign["min_n"], 1.5);
}

/// A query parameter that does not fit is refused 400 naming it, an unknown one too.
#[tokio::test]
async fn a_query_parameter_that_does_not_fit_is_named() {
    let app = TestApp::spawn().await;
    let admin = app.open_campaign("hn", "sipas-individual", &["01"]).await;
    for (path, field) in [
        ("/api/v1/audit?limit=abc", "limit"),
        ("/api/v1/audit?before=1.5", "before"),
        ("/api/v1/campaigns/hn/stats?scope=bogus", "scope"),
        ("/api/v1/campaigns/hn/stats?confidence=high", "confidence"),
        ("/api/v1/campaigns/hn/stats?nope=1", "nope"),
        ("/api/v1/campaigns/hn/responses?format=pdf", "format"),
        ("/api/v1/agencies?sort=name", "sort"),
    ] {
        let response = app.get(path).bearer_auth(&admin).send().await.unwrap();
        let problem = crate::helpers::assert_problem(response, 400, "invalid_parameter").await;
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains(&format!("`{field}`")), "{path}: {problem}");
    }
}
