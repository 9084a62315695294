use std::collections::HashSet;

use serde_json::Value;

use crate::helpers::{TestApp, assert_problem};

fn codes(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|a| a["code"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn todays_registry_has_the_34_provinces_under_the_nation() {
    let app = TestApp::spawn().await;
    let (status, page) = app.get_json("/api/v1/agencies?level=province&limit=100").await;
    assert_eq!(status, 200);
    assert_eq!(codes(&page).len(), 34);
    assert!(page["items"].as_array().unwrap().iter().all(|a| a["parent"] == "VN"));
    assert_eq!(page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_63_provinces_are_there_before_the_reorganisation() {
    let app = TestApp::spawn().await;
    let (_, page) = app.get_json("/api/v1/agencies?level=province&at=2025-06-30&limit=100").await;
    assert_eq!(codes(&page).len(), 63);
    let (_, page) = app.get_json("/api/v1/agencies?level=province&at=2025-07-01&limit=100").await;
    assert_eq!(codes(&page).len(), 34);
}

#[tokio::test]
async fn paging_reaches_every_commune_exactly_once() {
    let app = TestApp::spawn().await;
    let mut seen = HashSet::new();
    let mut path = "/api/v1/agencies?level=commune&limit=500".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for code in codes(&page) {
            assert!(seen.insert(code.clone()), "commune {code} returned twice");
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/agencies?level=commune&limit=500&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3_321);
    assert_eq!(pages, 7);
}

#[tokio::test]
async fn children_of_a_province_are_its_communes() {
    let app = TestApp::spawn().await;
    let (status, page) = app.get_json("/api/v1/agencies?parent=01&limit=1000").await;
    assert_eq!(status, 200);
    let items = page["items"].as_array().unwrap();
    assert!(items.len() > 100, "Hà Nội has over a hundred communes and wards, got {}", items.len());
    assert!(items.iter().all(|a| a["level"] == "commune" && a["parent"] == "01"));
}

#[tokio::test]
async fn search_works_with_or_without_diacritics() {
    let app = TestApp::spawn().await;
    for query in ["Ha%20Noi", "H%C3%A0%20N%E1%BB%99i", "ha%20noi"] {
        let (_, page) = app.get_json(&format!("/api/v1/agencies?q={query}&level=province")).await;
        assert_eq!(codes(&page), ["01"], "q={query}");
    }
    let (_, page) = app.get_json("/api/v1/agencies?q=dak%20lak&level=province").await;
    assert_eq!(page["items"][0]["name"]["vi"], "Đắk Lắk");
    // LIKE metacharacters are matched literally.
    let (status, page) = app.get_json("/api/v1/agencies?q=%25_").await;
    assert_eq!((status, codes(&page).len()), (200, 0));
}

#[tokio::test]
async fn a_reused_code_resolves_by_date_with_its_history() {
    let app = TestApp::spawn().await;
    let (status, today) = app.get_json("/api/v1/agencies/24").await;
    assert_eq!(status, 200);
    assert_eq!(today["name"]["vi"], "Bắc Ninh");
    let predecessors: Vec<&str> =
        today["predecessors"].as_array().unwrap().iter().map(|p| p["agency"]["name"]["vi"].as_str().unwrap()).collect();
    assert_eq!(predecessors, ["Tỉnh Bắc Giang", "Tỉnh Bắc Ninh"]);

    let (status, before) = app.get_json("/api/v1/agencies/24?at=2025-06-30").await;
    assert_eq!(status, 200);
    assert_eq!(before["name"]["vi"], "Tỉnh Bắc Giang");
    assert_eq!(before["valid_to"], "2025-06-30");
    assert_eq!(before["successors"][0]["agency"]["name"]["vi"], "Bắc Ninh");
    assert_eq!(before["successors"][0]["effective_on"], "2025-07-01");
}

#[tokio::test]
async fn a_commune_shows_its_parent_chain() {
    let app = TestApp::spawn().await;
    let (status, ward) = app.get_json("/api/v1/agencies/00070").await;
    assert_eq!(status, 200);
    assert_eq!(ward["name"]["vi"], "Phường Hoàn Kiếm");
    assert_eq!(ward["name"]["en"], "Hoan Kiem Ward");
    let chain: Vec<&str> = ward["parents"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap()).collect();
    assert_eq!(chain, ["01", "VN"]);
}

#[tokio::test]
async fn unknown_codes_are_404_with_a_hint_for_codes_of_another_era() {
    let app = TestApp::spawn().await;
    let body = assert_problem(app.get("/api/v1/agencies/02").send().await.unwrap(), 404, "agency_not_found").await;
    assert!(body["detail"].as_str().unwrap().contains("Hà Giang"), "{body}");
    assert_problem(app.get("/api/v1/agencies/99999").send().await.unwrap(), 404, "agency_not_found").await;
    assert_problem(app.get("/api/v1/agencies?parent=99999").send().await.unwrap(), 404, "agency_not_found").await;
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let cases = [
        ("/api/v1/agencies?at=yesterday", "invalid_parameter", Some("at")),
        ("/api/v1/agencies?at=2025-02-30", "invalid_parameter", Some("at")),
        ("/api/v1/agencies?limit=0", "invalid_parameter", Some("limit")),
        ("/api/v1/agencies?limit=1001", "invalid_parameter", Some("limit")),
        ("/api/v1/agencies?limit=-5", "invalid_parameter", Some("limit")),
        ("/api/v1/agencies?level=Province%3B", "invalid_parameter", Some("level")),
        ("/api/v1/agencies?cursor=not-a-cursor", "invalid_cursor", None),
        ("/api/v1/agencies?levl=province", "invalid_parameter", None),
        ("/api/v1/agencies/01?at=2025", "invalid_parameter", Some("at")),
    ];
    for (path, code, field) in cases {
        let response = app.get(path).send().await.unwrap();
        let body = assert_problem(response, 400, code).await;
        if let Some(field) = field {
            assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
        }
    }
}
