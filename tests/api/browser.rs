//! The citizen form in a real browser: Debian's `chromium`, headless, driven by
//! `tests/browser/form.mjs` (playwright-core, axe-core, jsQR from npm). CI installs them and sets
//! `SIPAS_BROWSER_TESTS=required`; elsewhere the test says it was skipped when they are missing.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use sipas::auth::Role;

use crate::helpers::TestApp;

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
    if let Err(missing) = browser_ready() {
        let required = std::env::var("SIPAS_BROWSER_TESTS").is_ok_and(|v| v == "required");
        assert!(!required, "browser tests required, but {missing}");
        eprintln!("SKIPPED the browser test: {missing}");
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
    let address = app.address.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["tests/browser/form.mjs", &address, "tests/browser/screenshots"])
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser test failed:\n{stderr}\n{stdout}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    eprintln!("browser summary: {summary}");
    for page in ["form", "form_one_page", "errors", "thanks", "poster"] {
        assert_eq!(summary["axe"][page], 0, "axe violations on {page}");
    }
    assert!(summary["weight"]["first_page_bytes"].as_u64().unwrap() < 50 * 1024);
    assert_eq!(app.stored_responses("hn"), 1, "the survey filled without JavaScript");
    assert_eq!(app.stored_responses("ratings"), 1, "the rating after its error state");
}
