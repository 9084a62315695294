//! The results pages and the demo data: the figures on the page are the stats API's, the demo
//! reproduces the published national figures, unpublished results need a signed-in analyst, and
//! forged, expired or revoked sessions are refused.

use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use sipas::auth::Role;
use sipas::campaign::context::CampaignCache;

use crate::helpers::TestApp;

/// Loads the demo campaigns into the app's database (as `sipas demo` does).
pub fn load_demo(app: &TestApp, per_province: usize) -> Vec<sipas::demo::RoundOutcome> {
    let mut conn = app.database.connect();
    let secret = sipas::db::server_secret(&mut conn, "dossier").unwrap();
    sipas::demo::load(&mut conn, &CampaignCache::default(), &secret, per_province).unwrap()
}

/// A number as a results page prints it: Vietnamese `4.080` and `82,66`, English `4,080` and
/// `82.66`.
fn parse_number(text: &str, lang: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let normal = if lang == "vi" { text.replace('.', "").replace(',', ".") } else { text.replace(',', "") };
    Some(normal.parse().unwrap_or_else(|_| panic!("not a number: {text}")))
}

/// The tables of a results page: chart → row key → cells, read from the HTML.
pub fn tables_of(html: &str) -> Value {
    let mut tables = serde_json::Map::new();
    for part in html.split("<table data-chart=\"").skip(1) {
        let chart = part.split('"').next().unwrap().to_owned();
        let body = part.split("</table>").next().unwrap();
        let mut rows = serde_json::Map::new();
        for row in body.split("<tr data-key=\"").skip(1) {
            let key = row.split('"').next().unwrap().to_owned();
            let row = row.split("</tr>").next().unwrap();
            let cells: Vec<Value> = row
                .split("<td>")
                .skip(1)
                .map(|cell| Value::String(cell.split("</td>").next().unwrap().to_owned()))
                .collect();
            rows.insert(key, Value::Array(cells));
        }
        tables.insert(chart, Value::Object(rows));
    }
    Value::Object(tables)
}

/// Rounded to two decimals the way the page prints (Rust's formatting).
fn rounded(value: f64) -> f64 {
    format!("{value:.2}").parse().unwrap()
}

fn round2(value: &Value) -> Option<f64> {
    value.as_f64().map(rounded)
}

fn assert_close(shown: Option<f64>, api: Option<f64>, what: &str) {
    match (shown, api) {
        (Some(shown), Some(api)) => assert!((shown - api).abs() < 1e-9, "{what}: page {shown}, API {api}"),
        (None, None) => {}
        other => panic!("{what}: {other:?}"),
    }
}

/// Every number in the page's tables against the stats API's report of the same view (the
/// unit's children, compared with the previous round), and the trend's rows against reports
/// compared with each earlier round.
pub fn assert_tables_match(tables: &Value, api: &Value, code: &str, lang: &str, trend: &[(String, Option<f64>)]) {
    let units = api["units"].as_array().unwrap();
    let unit = if api["parent"]["agency"]["code"] == code {
        &api["parent"]
    } else {
        units.iter().find(|u| u["agency"]["code"] == code).unwrap()
    };
    let cell = |chart: &str, key: &str, at: usize| -> Option<f64> {
        let row = tables[chart][key].as_array().unwrap_or_else(|| panic!("{chart} has no row {key}: {tables}"));
        parse_number(row[at].as_str().unwrap(), lang)
    };
    let ranking = tables["ranking"].as_object().expect("a ranking table");
    let ranked: Vec<&Value> = units.iter().filter(|u| u["suppressed"] == false).collect();
    assert_eq!(ranking.len(), ranked.len());
    for u in ranked {
        let key = u["agency"]["code"].as_str().unwrap();
        assert_eq!(cell("ranking", key, 0), u["rank"].as_f64(), "rank of {key}");
        for (at, field) in ["estimate", "ci_low", "ci_high"].iter().enumerate() {
            assert_close(cell("ranking", key, at + 1), round2(&u["index"][field]), &format!("{key} {field}"));
        }
        assert_eq!(cell("ranking", key, 4), u["n"].as_f64(), "n of {key}");
    }
    let measures = std::iter::once(&unit["index"])
        .chain(unit["components"].as_array().unwrap())
        .chain(unit["elements"].as_array().unwrap());
    let mut profiled = 0;
    for m in measures {
        let key = m["id"].as_str().unwrap();
        for (at, field) in ["estimate", "ci_low", "ci_high"].iter().enumerate() {
            assert_close(cell("profile", key, at), round2(&m[field]), &format!("profile {key} {field}"));
        }
        profiled += 1;
    }
    assert_eq!(tables["profile"].as_object().unwrap().len(), profiled);
    let scale = unit["scale"].as_array().unwrap();
    assert_eq!(tables["scale"].as_object().unwrap().len(), scale.len());
    for spread in scale {
        let key = spread["id"].as_str().unwrap();
        assert_eq!(cell("scale", key, 0), spread["n"].as_f64());
        let points = spread["points"].as_array().unwrap();
        let mut satisfied = 0.0;
        for (at, point) in points.iter().enumerate() {
            assert_close(cell("scale", key, at + 1), round2(&point["share"]), &format!("{key} point {at}"));
            if point["satisfied"] == true {
                satisfied += point["share"].as_f64().unwrap();
            }
        }
        // The satisfied column is the stats API's criterion estimate, and the satisfied points
        // add up to it.
        let criterion = unit["criteria"].as_array().unwrap().iter().find(|c| c["id"] == key).unwrap();
        assert_close(cell("scale", key, points.len() + 1), round2(&criterion["estimate"]), key);
        assert!((satisfied - criterion["estimate"].as_f64().unwrap()).abs() < 1e-9, "{key}");
    }
    for expectation in unit["expectations"].as_array().unwrap() {
        let key = expectation["id"].as_str().unwrap();
        assert_eq!(cell("expectations", key, 0), expectation["n"].as_f64());
        for (at, value) in ["very_much", "much", "little"].iter().enumerate() {
            let option = expectation["options"].as_array().unwrap().iter().find(|o| o["value"] == *value).unwrap();
            assert_close(cell("expectations", key, at + 1), round2(&option["estimate"]), &format!("{key} {value}"));
        }
    }
    let trend_rows = tables["trend"].as_object().unwrap();
    assert_eq!(trend_rows.len(), trend.len());
    for (campaign, value) in trend {
        assert_close(cell("trend", campaign, 0), value.map(rounded), campaign);
    }
}

/// The trend a page should show for `code` in `campaign`, from the stats API.
pub async fn api_trend(
    app: &TestApp,
    key: &str,
    campaign: &str,
    code: &str,
    earlier: &[&str],
) -> Vec<(String, Option<f64>)> {
    let mut trend = Vec::new();
    for other in earlier {
        let (_, report) =
            app.get_json_with(&format!("/api/v1/campaigns/{campaign}/stats?agency={code}&compare={other}"), key).await;
        trend.push(((*other).to_owned(), report["parent"]["index"]["change"]["previous"].as_f64()));
    }
    let (_, report) = app.get_json_with(&format!("/api/v1/campaigns/{campaign}/stats?agency={code}"), key).await;
    trend.push((campaign.to_owned(), report["parent"]["index"]["estimate"].as_f64()));
    trend
}

/// Every inline SVG of a page is well-formed XML with a title and a description.
pub fn assert_svgs_well_formed(html: &str) -> usize {
    let mut count = 0;
    for part in html.split("<svg xmlns=").skip(1) {
        let end = part.find("</svg>").unwrap() + "</svg>".len();
        let svg = format!("<svg xmlns={}", &part[..end]);
        let document = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}: {svg}"));
        let root = document.root_element();
        assert_eq!(root.attribute("role"), Some("img"));
        assert!(root.children().any(|c| c.has_tag_name("title") && c.text().is_some_and(|t| !t.is_empty())));
        assert!(root.children().any(|c| c.has_tag_name("desc") && c.text().is_some_and(|t| !t.is_empty())));
        count += 1;
    }
    count
}

#[tokio::test]
async fn demo_data_reproduces_the_published_figures_and_the_pages_show_the_apis_numbers() {
    let app = TestApp::spawn().await;
    let analyst = app.key(Role::Analyst, &[]);
    let outcomes = load_demo(&app, 120);
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes.iter().all(|o| o.written == 34 * 120 && o.total == 34 * 120), "{outcomes:?}");
    // Idempotent: a second run writes nothing.
    assert!(load_demo(&app, 120).iter().all(|o| o.written == 0));

    for (campaign, published) in [("demo-2022", 80.08), ("demo-2023", 82.66), ("demo-2024", 83.94)] {
        let (status, report) = app.get_json_with(&format!("/api/v1/campaigns/{campaign}/stats"), &analyst).await;
        assert_eq!(status, 200);
        assert_eq!(report["synthetic"], true);
        let national = report["parent"]["index"]["estimate"].as_f64().unwrap();
        assert!((national - published).abs() < 0.1, "{campaign}: {national} against {published}");
        if campaign == "demo-2023" {
            let values: Vec<f64> =
                report["units"].as_array().unwrap().iter().map(|u| u["index"]["estimate"].as_f64().unwrap()).collect();
            assert_eq!(values.len(), 34);
            let (low, high) = values.iter().fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
            assert!((low - 75.03).abs() < 1.0 && (high - 90.61).abs() < 1.0, "provinces {low}–{high}");
            let policy = report["parent"]["components"][0]["estimate"].as_f64().unwrap();
            assert!((policy - 82.49).abs() < 0.2, "policy {policy}");
        }
        let (_, detail) = app.get_json_with(&format!("/api/v1/campaigns/{campaign}"), &analyst).await;
        assert_eq!(detail["synthetic"], true);
        assert_eq!(detail["results_public"], true);
        assert!(detail["title"]["en"].as_str().unwrap().starts_with("Synthetic data"));
    }

    // The national page in Vietnamese and a province page in English, against the API.
    for (code, lang) in [("VN", "vi"), ("01", "en")] {
        let response = app.get(&format!("/results/demo-2024?agency={code}&lang={lang}")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let html = response.text().await.unwrap();
        assert!(html.contains("class=\"synthetic\""), "labelled as synthetic");
        assert_eq!(assert_svgs_well_formed(&html), 5, "ranking, profile, scale, trend, expectations");
        let (_, api) = app
            .get_json_with(
                &format!("/api/v1/campaigns/demo-2024/stats?agency={code}&compare=demo-2023&lang={lang}"),
                &analyst,
            )
            .await;
        let trend = api_trend(&app, &analyst, "demo-2024", code, &["demo-2022", "demo-2023"]).await;
        assert_tables_match(&tables_of(&html), &api, code, lang, &trend);
        let headline = api["parent"]["index"]["estimate"].as_f64().unwrap();
        let shown = if lang == "vi" { format!("{headline:.2}").replace('.', ",") } else { format!("{headline:.2}") };
        assert!(html.contains(&format!("<span class=\"value\">{shown}%</span>")), "headline {shown}");
    }

    // A commune (no children) is shown among its siblings.
    let (_, province) = app.get_json_with("/api/v1/campaigns/demo-2024/stats?agency=01", &analyst).await;
    let commune = province["units"][0]["agency"]["code"].as_str().unwrap().to_owned();
    let html = app.get(&format!("/results/demo-2024?agency={commune}")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<span aria-current=\"page\">"));
    assert_eq!(tables_of(&html)["ranking"].as_object().unwrap().len(), province["units"].as_array().unwrap().len());

    // The downloads are the stats API's CSV and XLSX of the same view.
    let page_csv = app.get("/results/demo-2024/stats.csv?agency=01&lang=vi").send().await.unwrap();
    assert_eq!(page_csv.status().as_u16(), 200);
    assert!(page_csv.headers()["content-disposition"].to_str().unwrap().contains("demo-2024-01.csv"));
    let page_csv = page_csv.text().await.unwrap();
    let api_csv = app
        .get("/api/v1/campaigns/demo-2024/stats?agency=01&compare=demo-2023&format=csv")
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page_csv, api_csv);
    assert!(page_csv.lines().next().unwrap().ends_with(",synthetic"));
    assert!(page_csv.lines().nth(1).unwrap().ends_with(",true"));
    let xlsx = app.get("/results/demo-2024/stats.xlsx?agency=01").send().await.unwrap();
    assert_eq!(xlsx.status().as_u16(), 200);
    assert!(xlsx.bytes().await.unwrap().starts_with(b"PK"));

    // The microdata of a synthetic round say so too.
    let microdata = app.get("/api/v1/campaigns/demo-2024/responses").bearer_auth(&analyst).send().await.unwrap();
    assert_eq!(microdata.status().as_u16(), 200);
    assert_eq!(microdata.headers()["synthetic-data"], "true");
    assert!(microdata.headers()["content-disposition"].to_str().unwrap().contains("demo-2024-SYNTHETIC-responses.csv"));

    // Unknown views are 404 pages, not errors.
    assert_eq!(app.get("/results/demo-2024?agency=XX").send().await.unwrap().status().as_u16(), 404);
    assert_eq!(app.get("/results/demo-2024/stats.pdf").send().await.unwrap().status().as_u16(), 404);
    let index = app.get("/results").send().await.unwrap().text().await.unwrap();
    assert!(index.contains("/results/demo-2023?lang=vi"));
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("sipas_session="))
        .map(str::to_owned)
}

/// Signs in through the form and returns the session cookie's value.
async fn sign_in(app: &TestApp, key: &str, next: &str) -> (u16, Option<String>) {
    let form = app.get(&format!("/login?next={next}")).send().await.unwrap();
    let csrf_cookie = form
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("sipas_form="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = form.text().await.unwrap();
    let token = html.split("name=\"_csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let response = app
        .post("/login")
        .header(COOKIE, &csrf_cookie)
        .form(&[("_csrf", token.as_str()), ("key", key), ("next", next)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 303 {
        assert_eq!(response.headers()["location"], next);
    }
    let cookie = session_cookie(&response);
    if let Some(cookie) = &cookie {
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    }
    (status, cookie.map(|c| c.split(';').next().unwrap().trim_start_matches("sipas_session=").to_owned()))
}

#[tokio::test]
async fn unpublished_results_need_a_signed_in_analyst_and_sessions_can_not_be_forged() {
    let secret = "a-test-secret-for-sessions";
    let app = TestApp::spawn_with(|settings| settings.dossier_secret = Some(secret.to_owned())).await;
    let admin = app.key(Role::Admin, &[]);
    let analyst = app.key(Role::Analyst, &[]);
    let partner = app.key(Role::Partner, &["01"]);
    app.open_campaign("private", "sipas-individual", &["01"]).await;
    let page = "/results/private?agency=01";
    let anonymous = app.get(page).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let html = anonymous.text().await.unwrap();
    assert!(
        html.contains("/login?lang=vi&amp;next=%2Fresults%2Fprivate%3Fagency%3D01")
            || html.contains("/login?lang=vi&#38;next=")
    );
    // An unknown campaign looks the same to anonymous visitors: nothing leaks.
    assert_eq!(app.get("/results/nothing-here").send().await.unwrap().status().as_u16(), 401);
    assert_eq!(app.get("/results/private/stats.csv").send().await.unwrap().status().as_u16(), 401);

    // Wrong keys are refused; the login form needs its CSRF token.
    assert_eq!(sign_in(&app, "sipas_1_wrong", page).await, (401, None));
    assert_eq!(sign_in(&app, &partner, page).await, (401, None));
    let without_token = app.post("/login").form(&[("key", analyst.as_str()), ("next", page)]).send().await.unwrap();
    assert_eq!(without_token.status().as_u16(), 403);
    assert!(session_cookie(&without_token).is_none());

    let (status, cookie) = sign_in(&app, &analyst, page).await;
    assert_eq!(status, 303);
    let cookie = cookie.unwrap();
    let seen = app.get(page).header(COOKIE, format!("sipas_session={cookie}")).send().await.unwrap();
    assert_eq!(seen.status().as_u16(), 200);
    assert!(seen.text().await.unwrap().contains("action=\"/logout\""));
    // Signed in, an unknown campaign is simply not found.
    let missing =
        app.get("/results/nothing-here").header(COOKIE, format!("sipas_session={cookie}")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);

    // Forged: another key id, a longer expiry, another secret; expired; garbage.
    let key_id: i64 = analyst.split('_').nth(1).unwrap().parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    let forged = [
        cookie.replacen(&format!("{key_id}."), &format!("{}.", key_id + 1), 1),
        sipas::web::session::issue(b"another-secret", key_id, now + 3600),
        format!("{key_id}.{}.{}", now + 999_999, cookie.rsplit('.').next().unwrap()),
        sipas::web::session::issue(secret.as_bytes(), key_id, now - 1),
        "garbage".to_owned(),
    ];
    for value in forged {
        let refused = app.get(page).header(COOKIE, format!("sipas_session={value}")).send().await.unwrap();
        assert_eq!(refused.status().as_u16(), 401, "{value}");
        let cleared = session_cookie(&refused).expect("the bad cookie is removed");
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }
    // A genuine session ends when its key is revoked.
    let genuine = sipas::web::session::issue(secret.as_bytes(), key_id, now + 3600);
    assert_eq!(
        app.get(page).header(COOKIE, format!("sipas_session={genuine}")).send().await.unwrap().status().as_u16(),
        200
    );
    let revoke =
        app.client.delete(app.url(&format!("/api/v1/keys/{key_id}"))).bearer_auth(&admin).send().await.unwrap();
    assert!(revoke.status().is_success(), "{}", revoke.status());
    assert_eq!(
        app.get(page).header(COOKIE, format!("sipas_session={genuine}")).send().await.unwrap().status().as_u16(),
        401
    );

    // Published, anyone sees it.
    let published = app.patch_campaign(&admin, "private", &json!({"results_public": true})).await;
    assert_eq!(published.status().as_u16(), 200);
    assert_eq!(app.get(page).send().await.unwrap().status().as_u16(), 200);
    // After sign-in, only this server's results pages are followed (no open redirect).
    let admin_cookie = sign_in(&app, &admin, "/results").await;
    assert_eq!(admin_cookie.0, 303);
}

/// Signed in with a key limited to Hà Nội, an analyst sees an unpublished campaign's pages for
/// Hà Nội and below only; once the results are published, everything as anyone does.
#[tokio::test]
async fn a_limited_analyst_sees_only_its_agencies_of_unpublished_results() {
    let app = TestApp::spawn_with(|settings| settings.dossier_secret = Some("a-secret-for-scopes".to_owned())).await;
    let admin = app.key(Role::Admin, &[]);
    let hanoi = app.key(Role::Analyst, &["01"]);
    app.open_campaign("private", "sipas-individual", &["01", "79"]).await;
    let (status, cookie) = sign_in(&app, &hanoi, "/results").await;
    assert_eq!(status, 303);
    let cookie = format!("sipas_session={}", cookie.unwrap());
    let status_of = |path: &'static str| {
        let request = app.get(path).header(COOKIE, cookie.clone());
        async move { request.send().await.unwrap().status().as_u16() }
    };

    let own = app.get("/results/private").header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(own.status().as_u16(), 200);
    let html = own.text().await.unwrap();
    assert!(html.contains("Hà Nội"), "the key's province is the page's top");
    assert!(!html.contains("Hồ Chí Minh"), "no other province is listed");
    let commune = app.get("/results/private?agency=00070").header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(commune.status().as_u16(), 200, "a commune of Hà Nội");
    let html = commune.text().await.unwrap();
    let crumbs = &html[html.find("class=\"crumbs\"").unwrap()..];
    let crumbs = &crumbs[..crumbs.find("</nav>").unwrap()];
    assert!(crumbs.contains(">Thành phố Hà Nội</a>"), "the key's province is linked: {crumbs}");
    assert!(!crumbs.contains("agency=VN"), "the nation, above the key's province, is not linked: {crumbs}");
    assert!(crumbs.contains("<span>Việt Nam</span>"), "but named: {crumbs}");
    assert_eq!(status_of("/results/private?agency=79").await, 403);
    assert_eq!(status_of("/results/private?agency=VN").await, 403);
    assert_eq!(status_of("/results/private/stats.csv?agency=79").await, 403);
    let csv = app.get("/results/private/stats.csv").header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(csv.status().as_u16(), 200);
    assert!(csv.headers()["content-disposition"].to_str().unwrap().contains("private-01.csv"));

    let published = app.patch_campaign(&admin, "private", &json!({"results_public": true})).await;
    assert_eq!(published.status().as_u16(), 200);
    assert_eq!(status_of("/results/private?agency=79").await, 200, "published results are everyone's");
}
