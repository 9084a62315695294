use crate::helpers::TestApp;

#[tokio::test]
async fn the_openapi_document_matches_its_snapshot() {
    let app = TestApp::spawn().await;
    let (status, document) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    insta::assert_json_snapshot!("openapi", document);
}

#[tokio::test]
async fn the_api_page_loads_nothing_from_another_origin() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/docs").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 308);
    let page = app.get("/api/docs/").send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    for asset in ["/api/docs/", "/api/docs/swagger-initializer.js"] {
        let text = app.get(asset).send().await.unwrap().text().await.unwrap();
        assert!(!text.contains("http://") && !text.contains("https://"), "{asset} refers to another origin");
    }
    let initializer = app.get("/api/docs/swagger-initializer.js").send().await.unwrap().text().await.unwrap();
    assert!(initializer.contains("/api/v1/openapi.json") && initializer.contains("\"validatorUrl\": \"none\""));
}
