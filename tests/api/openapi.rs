use crate::helpers::TestApp;

#[tokio::test]
async fn the_openapi_document_matches_its_snapshot() {
    let app = TestApp::spawn().await;
    let (status, document) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    // Every reference resolves: a dangling one leaves a client generator (and Schemathesis) with
    // an untyped parameter.
    fn references(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| references(v, found));
            }
            serde_json::Value::Array(list) => list.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(found.len() > 50, "{} references", found.len());
    for target in found {
        let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{target}"));
        assert!(document["components"]["schemas"].get(name).is_some(), "dangling reference {target}");
    }
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

/// Every documented path asked with a method it does not serve answers 405 with `Allow` naming
/// exactly the documented methods (over every template the path matches); so do the pages and
/// files outside the document. A path nothing serves is still 404.
#[tokio::test]
async fn a_known_path_asked_with_another_method_is_answered_405_with_allow() {
    let app = TestApp::spawn().await;
    let (_, document) = app.get_json("/api/v1/openapi.json").await;
    let paths = document["paths"].as_object().unwrap();
    // Each template with its parameters filled in, so that the request names a real path shape.
    let concrete = |template: &str| {
        template.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/")
    };
    let documented = |path: &str| {
        let mut methods: Vec<String> = Vec::new();
        for (template, item) in paths {
            let pattern = actix_web::dev::ResourceDef::new(template.as_str());
            if pattern.is_match(path) {
                for method in ["get", "post", "put", "patch", "delete"] {
                    let upper = method.to_uppercase();
                    if item.get(method).is_some() && !methods.contains(&upper) {
                        methods.push(upper);
                    }
                }
            }
        }
        methods.sort();
        methods
    };
    assert!(paths.len() > 20, "{} paths", paths.len());
    for template in paths.keys() {
        let path = concrete(template);
        let response = app.client.request(reqwest::Method::TRACE, app.url(&path)).send().await.unwrap();
        let allow = response.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        crate::helpers::assert_problem(response, 405, "method_not_allowed").await;
        let mut allowed: Vec<String> = allow.unwrap_or_default().split(", ").map(str::to_owned).collect();
        allowed.sort();
        assert_eq!(allowed, documented(&path), "Allow of {path}");
    }
    // `/responses/batch` is also a `/responses/{id}`: both methods are allowed.
    let batch = app.client.put(app.url("/api/v1/responses/batch")).send().await.unwrap();
    assert_eq!(batch.headers()["allow"], "POST, GET");
    for (method, path, allow) in [
        (reqwest::Method::POST, "/results", "GET"),
        (reqwest::Method::PUT, "/login", "GET, POST"),
        (reqwest::Method::GET, "/logout", "POST"),
        (reqwest::Method::DELETE, "/s/hn/00004", "GET, POST"),
        (reqwest::Method::POST, "/api/v1/openapi.json", "GET"),
        (reqwest::Method::POST, "/metrics", "GET"),
        (reqwest::Method::POST, "/static/form.css", "GET"),
    ] {
        let response = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(response.headers().get("allow").map(|v| v.to_str().unwrap()), Some(allow), "{method} {path}");
        crate::helpers::assert_problem(response, 405, "method_not_allowed").await;
    }
    let nowhere = app.client.request(reqwest::Method::TRACE, app.url("/api/v1/nowhere")).send().await.unwrap();
    crate::helpers::assert_problem(nowhere, 404, "not_found").await;
}

/// The document's bodies of `POST /responses` and `/responses/batch` list exactly the members
/// the intake reads, with the required ones required, so that a client generated from it sends
/// what the server takes.
#[tokio::test]
async fn the_documented_response_bodies_are_the_members_the_intake_reads() {
    let app = TestApp::spawn().await;
    let (_, document) = app.get_json("/api/v1/openapi.json").await;
    let schemas = &document["components"]["schemas"];
    let names = |schema: &serde_json::Value, member: &str| {
        let mut names: Vec<String> = match &schema[member] {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            serde_json::Value::Array(list) => list.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
            _ => Vec::new(),
        };
        names.sort();
        names
    };
    let submission = &schemas["SubmissionBody"];
    let mut read: Vec<String> = sipas::intake::SUBMISSION_FIELDS.iter().map(|f| (*f).to_owned()).collect();
    read.sort();
    assert_eq!(names(submission, "properties"), read);
    assert_eq!(names(submission, "required"), ["agency", "answers", "campaign", "respondent_type"]);
    let single = &document["paths"]["/api/v1/responses"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(single["schema"]["$ref"], "#/components/schemas/SubmissionBody");
    let batch = &document["paths"]["/api/v1/responses/batch"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(batch["schema"]["$ref"], "#/components/schemas/BatchBody");
    let item = serde_json::to_string(&schemas["BatchItemBody"]).unwrap();
    assert!(item.contains("\"client_id\"") && item.contains("\"respondent_type\""), "{item}");
}
