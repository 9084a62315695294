//! The citizen form over HTTP, on both backends: paging, validation, CSRF, resubmission, rate
//! limiting, the rating page, QR code and poster. The browser tests live in `tests/browser`.

use std::collections::BTreeMap;

use serde_json::json;
use sipas::auth::Role;

use crate::helpers::TestApp;

/// The attributes of every `<input>` of a page.
fn inputs(html: &str) -> Vec<BTreeMap<String, String>> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<input ") {
        let tag_end = rest[start..].find('>').map_or(rest.len(), |e| start + e);
        let tag = &rest[start + 7..tag_end];
        let mut attributes = BTreeMap::new();
        let mut cursor = tag;
        while let Some(eq) = cursor.find("=\"") {
            let name = cursor[..eq].rsplit(' ').next().unwrap_or_default().trim().to_owned();
            let value_end = cursor[eq + 2..].find('"').map_or(cursor.len(), |e| eq + 2 + e);
            let value = cursor[eq + 2..value_end].replace("&#x2f;", "/").replace("&quot;", "\"").replace("&amp;", "&");
            attributes.insert(name, value);
            cursor = &cursor[(value_end + 1).min(cursor.len())..];
        }
        if tag.contains(" checked") {
            attributes.insert("checked".to_owned(), "checked".to_owned());
        }
        found.push(attributes);
        rest = &rest[tag_end..];
    }
    found
}

/// A citizen's browser: keeps the cookie and the page's hidden fields.
pub struct Citizen<'a> {
    app: &'a TestApp,
    pub path: String,
    pub cookie: String,
    pub page: String,
    pub status: u16,
}

impl<'a> Citizen<'a> {
    pub async fn open(app: &'a TestApp, path: &str) -> Citizen<'a> {
        let response = app.get(path).send().await.unwrap();
        let status = response.status().as_u16();
        let cookie = response
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .unwrap_or_default();
        let page = response.text().await.unwrap();
        let path = path.split('?').next().unwrap().to_owned();
        Citizen { app, path, cookie, page, status }
    }

    pub fn hidden(&self) -> Vec<(String, String)> {
        inputs(&self.page)
            .into_iter()
            .filter(|i| i.get("type").map(String::as_str) == Some("hidden"))
            .map(|i| (i["name"].clone(), i.get("value").cloned().unwrap_or_default()))
            .collect()
    }

    /// The answer fields on this page: radio groups with the value of their last option.
    pub fn last_options(&self) -> BTreeMap<String, String> {
        let mut chosen = BTreeMap::new();
        for input in inputs(&self.page) {
            if input.get("type").map(String::as_str) == Some("radio") {
                chosen.insert(input["name"].clone(), input["value"].clone());
            }
        }
        chosen
    }

    pub async fn post(&mut self, extra: &[(String, String)]) {
        let mut fields = self.hidden();
        fields.extend(extra.iter().cloned());
        let response = self.app.post(&self.path).header("cookie", &self.cookie).form(&fields).send().await.unwrap();
        self.status = response.status().as_u16();
        self.page = response.text().await.unwrap();
    }

    /// Answers every radio group on each page with its last option and moves on to the end.
    pub async fn complete(&mut self) {
        for _ in 0..20 {
            if !self.page.contains("name=\"_page\"") {
                return;
            }
            let answers: Vec<(String, String)> = self.last_options().into_iter().collect();
            self.post(&answers).await;
        }
    }
}

async fn campaign(app: &TestApp, id: &str, survey: &str, closes: &str) {
    let admin = app.key(Role::Admin, &[]);
    let response = app
        .post("/api/v1/campaigns")
        .bearer_auth(&admin)
        .json(&json!({
            "id": id, "survey": survey, "agencies": ["01"],
            "title": {"vi": "Khảo sát mức độ hài lòng năm 2026", "en": "Satisfaction survey 2026"},
            "opens_at": "2025-07-01T00:00:00Z", "closes_at": closes,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
}

#[tokio::test]
async fn a_citizen_completes_the_survey_page_by_page() {
    let app = TestApp::spawn().await;
    campaign(&app, "hn", "sipas-individual", "2099-01-01T00:00:00Z").await;
    let mut citizen = Citizen::open(&app, "/s/hn/00070").await;
    assert_eq!(citizen.status, 200);
    assert!(citizen.page.contains("<html lang=\"vi\">"));
    assert!(citizen.page.contains("Phần 1/5"), "progress indicator");
    assert!(citizen.cookie.starts_with("sipas_form="));
    // First page answered, then back: the answers come back checked.
    let first: Vec<(String, String)> = citizen.last_options().into_iter().collect();
    citizen.post(&first).await;
    assert!(citizen.page.contains("Phần 2/5"), "{}", &citizen.page[..400.min(citizen.page.len())]);
    citizen.post(&[("_nav".to_owned(), "back".to_owned())]).await;
    assert!(citizen.page.contains("Phần 1/5"));
    let checked: Vec<String> =
        inputs(&citizen.page).into_iter().filter(|i| i.contains_key("checked")).map(|i| i["name"].clone()).collect();
    assert_eq!(checked.len(), first.len(), "every answer kept");
    citizen.complete().await;
    assert_eq!(citizen.status, 200);
    assert!(citizen.page.contains("Cảm ơn"), "thank-you page");
    assert_eq!(app.stored_responses("hn"), 1);

    // The stored response went through the intake path: channel link, language vi.
    let analyst = app.key(Role::Analyst, &[]);
    let (_, rows) = app.get_json_with("/api/v1/campaigns/hn/stats?agency=01&scope=self", &analyst).await;
    assert_eq!(rows["units"][0]["n"], 1);
}

#[tokio::test]
async fn a_resubmitted_last_page_stores_one_response() {
    let app = TestApp::spawn().await;
    campaign(&app, "hn", "sipas-individual", "2099-01-01T00:00:00Z").await;
    let citizen = Citizen::open(&app, "/s/hn/00070?view=all").await;
    assert!(!citizen.page.contains("Phần 1/"), "one long page");
    let answers: Vec<(String, String)> = citizen.last_options().into_iter().collect();
    let mut fields = citizen.hidden();
    fields.extend(answers);
    let send = || app.post("/s/hn/00070").header("cookie", &citizen.cookie).form(&fields).send();
    let (first, second) = tokio::join!(send(), send());
    assert_eq!((first.unwrap().status().as_u16(), second.unwrap().status().as_u16()), (200, 200));
    let again = send().await.unwrap();
    assert!(again.text().await.unwrap().contains("chỉ ghi nhận một lần"));
    assert_eq!(app.stored_responses("hn"), 1);
}

#[tokio::test]
async fn refused_answers_keep_the_page_and_name_each_field() {
    let app = TestApp::spawn().await;
    campaign(&app, "ratings", "dossier-rating", "2099-01-01T00:00:00Z").await;
    let mut citizen = Citizen::open(&app, "/r/ratings/00070?lang=en").await;
    assert!(citizen.page.contains("<html lang=\"en\">"));
    citizen.post(&[("q:d1_total_time".to_owned(), "2".to_owned())]).await;
    assert_eq!(citizen.status, 422);
    assert!(citizen.page.contains("<title>Error: "), "the title says so");
    assert!(citizen.page.contains("class=\"error-summary\""));
    // Eight required answers missing: each in the summary, linked to its field, and tied to it.
    assert_eq!(citizen.page.matches("<li><a href=\"#q-").count(), 8, "{}", citizen.page);
    assert_eq!(citizen.page.matches("class=\"error-message\"").count(), 8);
    assert!(citizen.page.contains("aria-describedby=\"q-d2_agency_time-error\""));
    assert!(citizen.page.contains("Please answer this question."));
    let kept = inputs(&citizen.page).into_iter().any(|i| {
        i.get("name").map(String::as_str) == Some("q:d1_total_time")
            && i.get("value").map(String::as_str) == Some("2")
            && i.contains_key("checked")
    });
    assert!(kept, "the answer given is kept");
    assert_eq!(app.stored_responses("ratings"), 0);

    // A value outside the scale (a tampered form) is refused on the individual survey too.
    campaign(&app, "hn", "sipas-individual", "2099-01-01T00:00:00Z").await;
    let mut individual = Citizen::open(&app, "/s/hn/00070?view=all").await;
    individual.post(&[("q:s01".to_owned(), "9".to_owned())]).await;
    assert_eq!(individual.status, 422);
    assert!(individual.page.contains("Vui lòng chọn hoặc nhập giá trị trong khoảng cho phép."));
    assert_eq!(app.stored_responses("hn"), 0);
}

#[tokio::test]
async fn posts_without_the_page_token_are_refused() {
    let app = TestApp::spawn().await;
    campaign(&app, "hn", "sipas-individual", "2099-01-01T00:00:00Z").await;
    let citizen = Citizen::open(&app, "/s/hn/00070?view=all").await;
    let fields = citizen.hidden();
    let no_cookie = app.post("/s/hn/00070").form(&fields).send().await.unwrap();
    assert_eq!(no_cookie.status().as_u16(), 403);
    assert!(no_cookie.text().await.unwrap().contains("Phiên làm việc đã hết hạn"));
    let other_cookie = app
        .post("/s/hn/00070")
        .header("cookie", "sipas_form=00112233445566778899aabbccddeeff")
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(other_cookie.status().as_u16(), 403);
    assert_eq!(app.stored_responses("hn"), 0);
    // The honeypot: answered "thank you", nothing stored.
    let mut trapped = fields.clone();
    trapped.push(("website".to_owned(), "http://spam.example".to_owned()));
    let response = app.post("/s/hn/00070").header("cookie", &citizen.cookie).form(&trapped).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(app.stored_responses("hn"), 0);
}

#[tokio::test]
async fn completed_submissions_are_rate_limited_per_address_but_paging_is_not() {
    let app = TestApp::spawn_with(|settings| settings.form_rate_limit = 2).await;
    campaign(&app, "hn", "sipas-individual", "2099-01-01T00:00:00Z").await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let mut citizen = Citizen::open(&app, "/s/hn/00070").await;
        for _ in 0..3 {
            citizen.post(&[]).await; // paging forward never counts
        }
        citizen.complete().await;
        statuses.push(citizen.status);
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(app.stored_responses("hn"), 2);
}

#[tokio::test]
async fn closed_unknown_and_outside_agencies_get_friendly_pages() {
    let app = TestApp::spawn().await;
    campaign(&app, "old", "sipas-individual", "2025-12-31T00:00:00Z").await;
    campaign(&app, "hn", "sipas-individual", "2099-01-01T00:00:00Z").await;
    let closed = app.get("/s/old/00070").send().await.unwrap();
    assert_eq!(closed.status().as_u16(), 410);
    assert!(closed.text().await.unwrap().contains("Đợt khảo sát đã kết thúc"));
    let unknown = app.get("/s/nope/00070?lang=en").send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    assert!(unknown.text().await.unwrap().contains("Survey not found"));
    let outside = app.get("/s/hn/79").header("accept-language", "en-US,en;q=0.9").send().await.unwrap();
    assert_eq!(outside.status().as_u16(), 404);
    assert!(outside.text().await.unwrap().contains("<html lang=\"en\">"));
}

#[tokio::test]
async fn the_dossier_rating_qr_code_and_poster() {
    let app = TestApp::spawn().await;
    campaign(&app, "ratings", "dossier-rating", "2099-01-01T00:00:00Z").await;
    let mut citizen = Citizen::open(&app, "/r/ratings/00070?dossier=H26-0001").await;
    assert_eq!(citizen.status, 200);
    assert!(citizen.page.contains("H26-0001"));
    let answers: Vec<(String, String)> = citizen.last_options().into_iter().collect();
    citizen.post(&answers).await;
    assert_eq!(citizen.status, 200, "{}", citizen.page);
    assert_eq!(app.stored_responses("ratings"), 1);
    // The same dossier again: refused kindly.
    let mut again = Citizen::open(&app, "/r/ratings/00070?dossier=H26-0001").await;
    let answers: Vec<(String, String)> = again.last_options().into_iter().collect();
    again.post(&answers).await;
    assert_eq!(again.status, 409);
    assert_eq!(app.stored_responses("ratings"), 1);

    let qr = app.get("/s/ratings/00070/qr.svg").send().await.unwrap();
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    assert!(qr.text().await.unwrap().starts_with("<?xml"));
    let poster = app.get("/s/ratings/00070/poster").send().await.unwrap().text().await.unwrap();
    assert!(poster.contains("/s/ratings/00070/qr.svg") && poster.contains("Phường Hoàn Kiếm"));
    let css = app.get("/static/form.css").send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}
