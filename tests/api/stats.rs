use serde_json::{Value, json};
use sipas::auth::Role;

use crate::helpers::{TestApp, assert_problem, individual, json_of, sipas, stderr, stdout};

/// Creates a campaign with its own `min_n` and opening date; returns the admin key.
async fn campaign(app: &TestApp, id: &str, survey: &str, agencies: &[&str], min_n: i64, opens: &str) -> String {
    let admin = app.key(Role::Admin, &[]);
    let response = app
        .post("/api/v1/campaigns")
        .bearer_auth(&admin)
        .json(&json!({
            "id": id, "survey": survey, "agencies": agencies, "min_n": min_n,
            "title": {"vi": "Đợt thử", "en": "Test round"},
            "opens_at": opens, "closes_at": "2099-01-01T00:00:00Z",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap());
    admin
}

async fn post_all(app: &TestApp, key: &str, mut items: Vec<Value>) {
    for item in &mut items {
        item["client_id"] = json!(ulid::Ulid::new().to_string());
    }
    let response =
        app.post("/api/v1/responses/batch").bearer_auth(key).json(&json!({"items": items})).send().await.unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    for result in body["results"].as_array().unwrap() {
        assert_eq!(result["status"], 201, "{result}");
    }
}

fn s17(campaign: &str, agency: &str, answers: Value) -> Value {
    json!({"campaign": campaign, "agency": agency, "respondent_type": "individual", "answers": answers})
}

/// Six responses a reviewer can check by hand (sipas-2017; access = c01–c05, procedures = c06–c09):
/// Hà Nội (01): c01 = 5,4,2,1 → 50; c02 = 4,2,5 → 66.67; c06 = 3,5,4 → 66.67;
///   access = mean(50, 66.67) = 58.33, procedures = 66.67, index = mean(58.33, 66.67) = 62.5.
/// Hồ Chí Minh (79): c01 = 5,3 → 50; c06 = 5,4 → 100; access 50, procedures 100, index 75.
/// Nation, mean of units: index = mean(62.5, 75) = 68.75; pooled: c01 3/6, c02 2/3, c06 4/5.
async fn hand_checked(app: &TestApp) -> String {
    let admin = campaign(app, "s17", "sipas-2017", &["01", "79"], 2, "2025-07-01T00:00:00Z").await;
    post_all(
        app,
        &admin,
        vec![
            s17("s17", "00070", json!({"c01": 5, "c02": 4, "c06": 3})),
            s17("s17", "00070", json!({"c01": 4, "c02": 2, "c06": 5})),
            s17("s17", "00070", json!({"c01": 2, "c06": 4})),
            s17("s17", "00004", json!({"c01": 1, "c02": 5})),
            s17("s17", "26506", json!({"c01": 5, "c06": 5})),
            s17("s17", "26506", json!({"c01": 3, "c06": 4})),
        ],
    )
    .await;
    app.key(Role::Analyst, &[])
}

fn measure<'a>(unit: &'a Value, list: &str, id: &str) -> &'a Value {
    unit[list].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("{list} {id}"))
}

fn close(value: &Value, expected: f64) {
    let got = value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"));
    assert!((got - expected).abs() < 1e-9, "{got} != {expected}");
}

#[tokio::test]
async fn national_figures_match_the_hand_computation_and_the_snapshot() {
    let app = TestApp::spawn().await;
    let analyst = hand_checked(&app).await;
    let (status, mut report) = app.get_json_with("/api/v1/campaigns/s17/stats", &analyst).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["method"]["rollup"], "mean_of_units");
    let parent = &report["parent"];
    assert_eq!(parent["agency"]["code"], "VN");
    assert_eq!(parent["n"], 6);
    close(&parent["index"]["estimate"], 68.75);
    let units = report["units"].as_array().unwrap();
    assert_eq!(units.len(), 2, "the provinces of the campaign");
    let hanoi = &units[0];
    assert_eq!(hanoi["agency"]["code"], "01");
    close(&measure(hanoi, "criteria", "c01")["estimate"], 50.0);
    assert_eq!(measure(hanoi, "criteria", "c01")["satisfied"], 2);
    close(&measure(hanoi, "criteria", "c02")["estimate"], 200.0 / 3.0);
    close(&measure(hanoi, "elements", "access")["estimate"], (50.0 + 200.0 / 3.0) / 2.0);
    close(&hanoi["index"]["estimate"], 62.5);
    assert!(measure(hanoi, "criteria", "c03")["estimate"].is_null(), "nobody answered c03");
    assert_eq!((hanoi["rank"].as_u64(), units[1]["rank"].as_u64()), (Some(2), Some(1)));
    close(&units[1]["index"]["estimate"], 75.0);
    // Wilson for 2 of 4 (statsmodels: 15.003898915214947, 84.99610108478505).
    close(&measure(hanoi, "criteria", "c01")["ci_low"], 15.003898915214947);
    close(&measure(hanoi, "criteria", "c01")["ci_high"], 84.99610108478505);
    assert!(hanoi["index"]["vs_parent"]["p_value"].as_f64().unwrap() <= 1.0);

    let (_, pooled) = app.get_json_with("/api/v1/campaigns/s17/stats?method=pooled", &analyst).await;
    assert_eq!(pooled["parent"]["rollup"], "pooled");
    close(&measure(&pooled["parent"], "criteria", "c06")["estimate"], 80.0);
    close(&pooled["parent"]["index"]["estimate"], ((50.0 + 200.0 / 3.0) / 2.0 + 80.0) / 2.0);

    report.as_object_mut().unwrap().remove("computed_at");
    insta::assert_json_snapshot!("national_stats", report);
}

#[tokio::test]
async fn small_units_are_suppressed_and_never_derivable() {
    let app = TestApp::spawn().await;
    let analyst = hand_checked(&app).await;
    let (status, report) = app.get_json_with("/api/v1/campaigns/s17/stats?agency=01&method=pooled", &analyst).await;
    assert_eq!(status, 200, "{report}");
    let units = report["units"].as_array().unwrap();
    let by_code = |code: &str| units.iter().find(|u| u["agency"]["code"] == code).unwrap();
    let small = by_code("00004");
    assert_eq!((small["n"].as_u64(), small["suppressed"].as_bool()), (Some(1), Some(true)));
    assert_eq!(small["suppression"], "too_few_respondents");
    assert!(small["index"]["estimate"].is_null() && small["rank"].is_null());
    // The only other commune with answers is withheld too: otherwise Hà Nội minus it = 00004.
    let partner = by_code("00070");
    assert_eq!(partner["suppression"], "complementary");
    assert!(partner["criteria"].as_array().unwrap().iter().all(|m| m["estimate"].is_null()));
    let empty = by_code("00008");
    assert_eq!((empty["n"].as_u64(), empty["suppressed"].as_bool()), (Some(0), Some(true)));
    // A mean of units leaves the small commune out instead.
    let (_, mean) = app.get_json_with("/api/v1/campaigns/s17/stats?agency=01", &analyst).await;
    let units = mean["units"].as_array().unwrap();
    let commune = units.iter().find(|u| u["agency"]["code"] == "00070").unwrap();
    assert_eq!(commune["suppressed"], false);
    close(&commune["index"]["estimate"], mean["parent"]["index"]["estimate"].as_f64().unwrap());

    // scope=self: the agency alone, against its parent.
    let (_, own) = app.get_json_with("/api/v1/campaigns/s17/stats?agency=79&scope=self", &analyst).await;
    assert_eq!(own["units"].as_array().unwrap().len(), 1);
    assert_eq!(own["units"][0]["agency"]["code"], "79");
    assert_eq!(own["parent"]["agency"]["code"], "VN");
    assert_eq!(own["units"][0]["rank"], 1);
}

#[tokio::test]
async fn breakdowns_weights_and_formats() {
    let app = TestApp::spawn().await;
    let admin = campaign(&app, "w", "sipas-individual", &["01"], 1, "2025-07-01T00:00:00Z").await;
    let mut items = Vec::new();
    for seed in 0..12 {
        let mut body = individual("w", "00070", seed);
        body["answers"]["gender"] = json!(if seed % 3 == 0 { "male" } else { "female" });
        body["answers"]["age_band"] = json!("25_34");
        items.push(body);
    }
    post_all(&app, &admin, items).await;
    let analyst = app.key(Role::Analyst, &[]);

    let (status, by_gender) =
        app.get_json_with("/api/v1/campaigns/w/stats?agency=01&scope=self&breakdown=gender", &analyst).await;
    assert_eq!(status, 200, "{by_gender}");
    let cells = by_gender["units"][0]["breakdown"].as_array().unwrap();
    let n_of = |value: &str| cells.iter().find(|c| c["value"] == value).unwrap()["n"].as_u64().unwrap();
    assert_eq!((n_of("male"), n_of("female"), n_of("_")), (4, 8, 0));
    let (_, by_type) =
        app.get_json_with("/api/v1/campaigns/w/stats?agency=01&scope=self&breakdown=respondent_type", &analyst).await;
    assert_eq!(by_type["units"][0]["breakdown"][0]["value"], "individual");

    // No population yet.
    let missing = app.get("/api/v1/campaigns/w/stats?weights=cells").bearer_auth(&analyst).send().await.unwrap();
    assert_problem(missing, 422, "population_missing").await;
    // A bad table is refused whole, by line.
    let bad = "agency,gender,age_band,population\n00070,female,25_34,100\n00070,robot,25_34,5\n99999,male,25_34,-1\n";
    let response = app
        .put("/api/v1/campaigns/w/population")
        .bearer_auth(&analyst)
        .header("content-type", "text/csv")
        .body(bad)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 422, "invalid_population").await;
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["line 3: gender", "line 4: agency", "line 4: population"]);
    // Women are 50% of the population but 2/3 of respondents; a third cell has no respondents.
    let table =
        "agency,gender,age_band,population\n00070,female,25_34,500\n00070,male,25_34,500\n00070,male,18_24,300\n";
    let response = app
        .put("/api/v1/campaigns/w/population")
        .bearer_auth(&analyst)
        .header("content-type", "text/csv")
        .body(table)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let stored =
        app.get("/api/v1/campaigns/w/population").bearer_auth(&analyst).send().await.unwrap().text().await.unwrap();
    assert!(stored.contains("00070,male,18_24,300"), "{stored}");
    let (status, weighted) =
        app.get_json_with("/api/v1/campaigns/w/stats?agency=01&scope=self&weights=cells", &analyst).await;
    assert_eq!(status, 200, "{weighted}");
    let unit = &weighted["units"][0];
    assert_eq!(unit["weighting"]["weighted"], true);
    assert_eq!(unit["weighting"]["empty_cells"][0]["cell"], "w:gender=male,age_band=18_24");
    // Kish: (500 + 500)² / (500²/8 + 500²/4) = 1e6 / 93750.
    close(&unit["weighting"]["effective_n"], 1e6 / 93_750.0);
    let (_, plain) = app.get_json_with("/api/v1/campaigns/w/stats?agency=01&scope=self", &analyst).await;
    assert_ne!(plain["units"][0]["index"]["estimate"], unit["index"]["estimate"]);
    let refused =
        app.get("/api/v1/campaigns/w/stats?weights=cells&breakdown=gender").bearer_auth(&analyst).send().await.unwrap();
    assert_problem(refused, 400, "invalid_parameter").await;

    let csv = app
        .get("/api/v1/campaigns/w/stats?agency=01&scope=self&format=csv")
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(reader.headers().unwrap().get(0), Some("campaign"));
    let rows = reader.records().count();
    // parent + unit, each with index, 2 components, 9 elements, 42 criteria.
    assert_eq!(rows, 2 * (1 + 2 + 9 + 42), "{text}");
    let xlsx = app.get("/api/v1/campaigns/w/stats?format=xlsx&lang=en").bearer_auth(&analyst).send().await.unwrap();
    assert_eq!(xlsx.status().as_u16(), 200);
    assert!(xlsx.bytes().await.unwrap().starts_with(b"PK"), "a zip container");
}

#[tokio::test]
async fn an_earlier_round_on_the_old_provinces_is_pooled_under_the_successors() {
    let app = TestApp::spawn().await;
    // 2024: old Bắc Giang (24) and old Bắc Ninh (27), both now part of Bắc Ninh (24).
    let admin = campaign(&app, "y2024", "sipas-2017", &["24", "27"], 1, "2024-03-01T00:00:00Z").await;
    post_all(
        &app,
        &admin,
        vec![
            s17("y2024", "24", json!({"c01": 2})),
            s17("y2024", "27", json!({"c01": 5})),
            s17("y2024", "27", json!({"c01": 1})),
        ],
    )
    .await;
    campaign(&app, "y2026", "sipas-2017", &["24"], 1, "2025-07-01T00:00:00Z").await;
    post_all(&app, &admin, vec![s17("y2026", "07627", json!({"c01": 5})), s17("y2026", "07615", json!({"c01": 4}))])
        .await;
    let analyst = app.key(Role::Analyst, &[]);
    let (status, report) = app.get_json_with("/api/v1/campaigns/y2026/stats?compare=y2024", &analyst).await;
    assert_eq!(status, 200, "{report}");
    let comparison = &report["method"]["comparison"];
    assert_eq!(comparison["mapped"], json!([{"agency": "24", "from": ["24", "27"]}]));
    let c01 = measure(&report["units"][0], "criteria", "c01");
    close(&c01["change"]["previous"], 100.0 / 3.0);
    close(&c01["change"]["difference"], 100.0 - 100.0 / 3.0);
    assert!(c01["change"]["p_value"].as_f64().unwrap() < 0.5);

    let other = campaign(&app, "rating", "dossier-rating", &["24"], 1, "2025-07-01T00:00:00Z").await;
    drop(other);
    let refused = app.get("/api/v1/campaigns/y2026/stats?compare=rating").bearer_auth(&analyst).send().await.unwrap();
    assert_problem(refused, 422, "campaigns_not_comparable").await;
}

#[tokio::test]
async fn microdata_codebook_and_reliability() {
    let app = TestApp::spawn().await;
    let analyst = hand_checked(&app).await;
    let csv = app.get("/api/v1/campaigns/s17/responses").bearer_auth(&analyst).send().await.unwrap();
    assert_eq!(csv.status().as_u16(), 200);
    let text = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(&header[..6], ["id", "agency", "respondent_type", "channel", "language", "received_on"]);
    assert!(!header.iter().any(|h| h.contains("key") || h.contains("dossier")), "anonymous rows");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6);
    let c01 = header.iter().position(|h| h == "c01").unwrap();
    let mut values: Vec<&str> = rows.iter().map(|r| &r[c01]).collect();
    values.sort();
    assert_eq!(values, ["1", "2", "3", "4", "5", "5"]);

    let ndjson =
        app.get("/api/v1/campaigns/s17/responses?format=ndjson&agency=79").bearer_auth(&analyst).send().await.unwrap();
    let lines: Vec<Value> = ndjson.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "only Hồ Chí Minh's");
    assert_eq!(lines[0]["agency"], "26506");
    let xlsx = app.get("/api/v1/campaigns/s17/responses?format=xlsx").bearer_auth(&analyst).send().await.unwrap();
    assert!(xlsx.bytes().await.unwrap().starts_with(b"PK"));

    let (status, book) = app.get_json_with("/api/v1/campaigns/s17/codebook", &analyst).await;
    assert_eq!(status, 200);
    let c01 = book["questions"].as_array().unwrap().iter().find(|q| q["id"] == "c01").unwrap();
    assert_eq!(c01["element"], "access");
    assert_eq!(c01["values"][0]["label"]["vi"], "Rất không hài lòng");

    let (status, reliability) = app.get_json_with("/api/v1/campaigns/s17/reliability?agency=01", &analyst).await;
    assert_eq!(status, 200, "{reliability}");
    assert_eq!(reliability["responses"], 4);
    let access = &reliability["elements"][0];
    assert_eq!((access["id"].as_str(), access["complete"].as_u64()), (Some("access"), Some(0)));
    assert!(access["alpha"].is_null(), "nobody answered all five access criteria");
}

#[tokio::test]
async fn bad_requests_get_clear_problems() {
    let app = TestApp::spawn().await;
    let analyst = hand_checked(&app).await;
    let partner = app.key(Role::Partner, &["01"]);
    let get = |path: &str, key: &str| app.get(path).bearer_auth(key).send();
    assert_problem(get("/api/v1/campaigns/s17/stats", &partner).await.unwrap(), 403, "forbidden").await;
    assert_problem(get("/api/v1/campaigns/nope/stats", &analyst).await.unwrap(), 404, "campaign_not_found").await;
    assert_problem(
        get("/api/v1/campaigns/s17/stats?agency=24", &analyst).await.unwrap(),
        404,
        "agency_not_in_campaign",
    )
    .await;
    for query in
        ["scope=all", "method=median", "confidence=1.5", "breakdown=shoe_size", "lang=fr", "format=pdf", "bogus=1"]
    {
        let response = get(&format!("/api/v1/campaigns/s17/stats?{query}"), &analyst).await.unwrap();
        assert_problem(response, 400, "invalid_parameter").await;
    }
    assert_problem(get("/api/v1/campaigns/s17/stats?compare=nope", &analyst).await.unwrap(), 400, "invalid_parameter")
        .await;
    let response = app
        .put("/api/v1/campaigns/s17/population")
        .bearer_auth(&analyst)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(response, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn the_command_line_prints_a_table_and_streams_exports() {
    let app = TestApp::spawn().await;
    hand_checked(&app).await;
    let output = sipas(&app.database, &["stats", "--campaign", "s17"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(table.contains("68.75"), "the national mean of units: {table}");
    assert!(table.contains("Thành phố Hà Nội") && table.contains("62.50"), "{table}");
    let output = sipas(&app.database, &["stats", "--campaign", "s17", "--format", "json", "--method", "pooled"]);
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["parent"]["rollup"], "pooled");

    let output = sipas(&app.database, &["export", "--campaign", "s17", "--format", "ndjson", "--agency", "01"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 4);
    assert!(stderr(&output).contains("4 responses exported"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.xlsx");
    let output =
        sipas(&app.database, &["export", "--campaign", "s17", "--format", "xlsx", "--output", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(std::fs::read(&file).unwrap().starts_with(b"PK"));

    let output = sipas(&app.database, &["stats", "--campaign", "s17", "--format", "xlsx"]);
    assert_eq!(output.status.code(), Some(2), "xlsx needs a file");
    let output = sipas(&app.database, &["stats", "--campaign", "s17", "--agency", "24"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not part of campaign"), "{}", stderr(&output));
}

/// A provincial department's key (analyst, limited to Hà Nội) reads Hà Nội and what lies below
/// it, with the nation only as the line Hà Nội is compared with; other provinces' figures, rows
/// and responses stay out of reach, and the campaign-wide population table too.
#[tokio::test]
async fn an_analyst_key_limited_to_a_province_reads_only_its_subtree() {
    let app = TestApp::spawn().await;
    let everything = hand_checked(&app).await;
    let hanoi = app.key(Role::Analyst, &["01"]);
    let get = |path: &str, key: &str| app.get(path).bearer_auth(key).send();
    let outside = |body: &Value| {
        assert_eq!(body["errors"][0]["field"], "agency", "{body}");
        assert_eq!(body["errors"][0]["code"], "outside_key_scope", "{body}");
    };

    // Without an agency, the key's own province is the top of its view.
    let (status, own) = app.get_json_with("/api/v1/campaigns/s17/stats", &hanoi).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["parent"]["agency"]["code"], "01");
    assert_eq!(own["parent"]["n"], 4);
    close(&own["parent"]["index"]["estimate"], 62.5);
    let units = own["units"].as_array().unwrap();
    assert!(units.iter().any(|u| u["agency"]["code"] == "00070"), "Hà Nội's communes");
    assert!(!units.iter().any(|u| u["agency"]["code"] == "26506"), "no commune of Hồ Chí Minh");
    let (status, commune) = app.get_json_with("/api/v1/campaigns/s17/stats?agency=00070&scope=self", &hanoi).await;
    assert_eq!(status, 200, "{commune}");
    let (status, itself) = app.get_json_with("/api/v1/campaigns/s17/stats?agency=01&scope=self", &hanoi).await;
    assert_eq!(status, 200, "{itself}");
    assert_eq!(itself["units"].as_array().unwrap().len(), 1);
    assert_eq!(itself["parent"]["agency"]["code"], "VN", "compared with the nation's aggregate");

    for path in [
        "/api/v1/campaigns/s17/stats?agency=79",
        "/api/v1/campaigns/s17/stats?agency=26506&scope=self",
        "/api/v1/campaigns/s17/stats?agency=VN",
        "/api/v1/campaigns/s17/stats?agency=79&format=csv",
        "/api/v1/campaigns/s17/responses?agency=79",
        "/api/v1/campaigns/s17/reliability?agency=VN",
    ] {
        let body = assert_problem(get(path, &hanoi).await.unwrap(), 403, "forbidden").await;
        outside(&body);
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("01") && !detail.contains("62.5"), "{detail}");
    }

    // Microdata and reliability default to the province too.
    let rows = get("/api/v1/campaigns/s17/responses?format=ndjson", &hanoi).await.unwrap();
    assert_eq!(rows.status().as_u16(), 200);
    let rows: Vec<Value> = rows.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 4, "Hà Nội's four responses");
    assert!(rows.iter().all(|r| r["agency"] == "00070" || r["agency"] == "00004"), "{rows:?}");
    let (status, reliability) = app.get_json_with("/api/v1/campaigns/s17/reliability", &hanoi).await;
    assert_eq!((status, reliability["responses"].as_u64()), (200, Some(4)), "{reliability}");

    // One stored response: Hà Nội's is readable, Hồ Chí Minh's does not exist for this key.
    let all = get("/api/v1/campaigns/s17/responses?format=ndjson", &everything).await.unwrap();
    let all: Vec<Value> = all.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let id_of = |agency: &str| all.iter().find(|r| r["agency"] == agency).unwrap()["id"].as_str().unwrap().to_owned();
    let (status, mine) = app.get_json_with(&format!("/api/v1/responses/{}", id_of("00070")), &hanoi).await;
    assert_eq!((status, mine["agency"].as_str()), (200, Some("00070")), "{mine}");
    let theirs = format!("/api/v1/responses/{}", id_of("26506"));
    assert_problem(get(&theirs, &hanoi).await.unwrap(), 404, "response_not_found").await;
    assert_eq!(get(&theirs, &everything).await.unwrap().status().as_u16(), 200);

    // The population table spans the campaign: neither read nor replaced by this key.
    let body = assert_problem(get("/api/v1/campaigns/s17/population", &hanoi).await.unwrap(), 403, "forbidden").await;
    outside(&body);
    let replace = app
        .put("/api/v1/campaigns/s17/population")
        .bearer_auth(&hanoi)
        .header("content-type", "text/csv")
        .body("agency,population\n01,1000\n")
        .send()
        .await
        .unwrap();
    assert_problem(replace, 403, "forbidden").await;
    let table = get("/api/v1/campaigns/s17/population", &everything).await.unwrap().text().await.unwrap();
    assert!(!table.contains("1000"), "nothing stored: {table}");

    // A key for two provinces names the one it asks about.
    let both = app.key(Role::Analyst, &["01", "79"]);
    let body = assert_problem(get("/api/v1/campaigns/s17/stats", &both).await.unwrap(), 403, "forbidden").await;
    assert!(body["detail"].as_str().unwrap().contains("01, 79"), "{body}");
    assert_eq!(get("/api/v1/campaigns/s17/stats?agency=79", &both).await.unwrap().status().as_u16(), 200);
    // Admin keys and keys without agencies see everything.
    assert_eq!(get("/api/v1/campaigns/s17/stats?agency=VN", &everything).await.unwrap().status().as_u16(), 200);
}
