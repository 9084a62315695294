//! The citizen form in a real browser: Debian's `chromium`, headless, driven by
//! `tests/browser/form.mjs` (playwright-core, axe-core, jsQR from npm). CI installs them and sets
//! `SIPAS_BROWSER_TESTS=required`; elsewhere the test says it was skipped when they are missing.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use sipas::auth::Role;

use crate::helpers::TestApp;

/// Whether the browser test must be skipped: Chromium or the npm packages are missing and CI did
/// not ask for them (`SIPAS_BROWSER_TESTS=required` makes their absence a failure).
fn skip_without_browser() -> bool {
    let Err(missing) = browser_ready() else { return false };
    crate::helpers::skip_for_missing("SIPAS_BROWSER_TESTS", &format!("the browser test: {missing}"));
    true
}

/// Runs a script of `tests/browser` with the base URL first, the screenshot folder second and
/// `args` after, and returns the JSON summary it prints last.
async fn run_script(script: &str, mut args: Vec<String>) -> Value {
    args.insert(1, "tests/browser/screenshots".to_owned());
    args.insert(0, format!("tests/browser/{script}"));
    let output = tokio::task::spawn_blocking(move || Command::new("node").args(&args).output().expect("node runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser test failed:\n{stderr}\n{stdout}");
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

fn browser_ready() -> Result<(), String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    if !Path::new(&chromium).exists() {
        return Err(format!("{chromium} is missing (apt-get install -y chromium)"));
    }
    if !Path::new("tests/browser/node_modules/playwright-core").exists() {
        return Err("tests/browser/node_modules is missing (npm ci --prefix tests/browser)".to_owned());
    }
    Ok(())
}

#[tokio::test]
async fn the_form_works_in_chromium_without_javascript_and_passes_axe() {
    if skip_without_browser() {
        return;
    }
    let app = TestApp::spawn().await;
    let admin = app.key(Role::Admin, &[]);
    for (id, survey) in [("hn", "sipas-individual"), ("ratings", "dossier-rating")] {
        let response = app
            .post("/api/v1/campaigns")
            .bearer_auth(&admin)
            .json(&json!({
                "id": id, "survey": survey, "agencies": ["01"],
                "title": {"vi": "Khảo sát mức độ hài lòng của người dân năm 2026", "en": "Residents' satisfaction survey 2026"},
                "opens_at": "2025-07-01T00:00:00Z", "closes_at": "2099-01-01T00:00:00Z",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
    }
    let summary = run_script("form.mjs", vec![app.address.clone()]).await;
    eprintln!("browser summary: {summary}");
    for page in ["form", "form_one_page", "errors", "thanks", "poster"] {
        assert_eq!(summary["axe"][page], 0, "axe violations on {page}");
    }
    assert!(summary["weight"]["first_page_bytes"].as_u64().unwrap() < 50 * 1024);
    assert_eq!(app.stored_responses("hn"), 1, "the survey filled without JavaScript");
    assert_eq!(app.stored_responses("ratings"), 1, "the rating after its error state");
}

#[tokio::test]
async fn the_results_pages_render_in_chromium_pass_axe_and_show_the_apis_numbers() {
    if skip_without_browser() {
        return;
    }
    let app = TestApp::spawn().await;
    let admin = app.key(Role::Admin, &[]);
    let analyst = app.key(Role::Analyst, &[]);
    crate::results::load_demo(&app, 120);
    let hidden = app.patch_campaign(&admin, "demo-2022", &json!({"results_public": false})).await;
    assert_eq!(hidden.status().as_u16(), 200);
    let summary = run_script("results.mjs", vec![app.address.clone(), analyst.clone()]).await;
    eprintln!("results pages: axe {}, screenshots {}", summary["axe"], summary["screenshots"]);
    for (page, violations) in summary["axe"].as_object().unwrap() {
        assert_eq!(violations, 0, "axe violations on {page}");
    }
    // The numbers in every chart's table, as the browser rendered them, are the stats API's.
    // Anonymous visitors don't see the unpublished 2022 round, so the trend starts in 2023.
    for (view, code, lang) in [("national", "VN", "vi"), ("province", "01", "en")] {
        let (_, api) = app
            .get_json_with(
                &format!("/api/v1/campaigns/demo-2024/stats?agency={code}&compare=demo-2023&lang={lang}"),
                &analyst,
            )
            .await;
        let trend = crate::results::api_trend(&app, &analyst, "demo-2024", code, &["demo-2023"]).await;
        crate::results::assert_tables_match(&summary["tables"][view], &api, code, lang, &trend);
    }
}
