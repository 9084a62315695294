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
/// exactly the documented methods (over every template the path matches), with HEAD and OPTIONS;
/// so do the pages and files outside the document. A path nothing serves is still 404.
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
        // A path that is a template of its own takes that template's methods alone.
        let exact = paths.contains_key(path);
        for (template, item) in paths {
            let pattern = actix_web::dev::ResourceDef::new(template.as_str());
            if (exact && template == path) || (!exact && pattern.is_match(path)) {
                for method in ["get", "post", "put", "patch", "delete"] {
                    let upper = method.to_uppercase();
                    if item.get(method).is_some() && !methods.contains(&upper) {
                        methods.push(upper);
                        if method == "get" {
                            methods.push("HEAD".to_owned());
                        }
                    }
                }
            }
        }
        methods.push("OPTIONS".to_owned());
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
    // `/responses/batch` also matches `/responses/{id}`, but is a path of its own.
    let batch = app.client.put(app.url("/api/v1/responses/batch")).send().await.unwrap();
    assert_eq!(batch.headers()["allow"], "POST, OPTIONS");
    for (method, path, allow) in [
        (reqwest::Method::POST, "/results", "GET, HEAD, OPTIONS"),
        (reqwest::Method::PUT, "/login", "GET, HEAD, POST, OPTIONS"),
        (reqwest::Method::GET, "/logout", "POST, OPTIONS"),
        (reqwest::Method::DELETE, "/s/hn/00004", "GET, HEAD, POST, OPTIONS"),
        (reqwest::Method::POST, "/api/v1/openapi.json", "GET, HEAD, OPTIONS"),
        (reqwest::Method::POST, "/metrics", "GET, HEAD, OPTIONS"),
        (reqwest::Method::POST, "/static/form.css", "GET, HEAD, OPTIONS"),
    ] {
        let response = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(response.headers().get("allow").map(|v| v.to_str().unwrap()), Some(allow), "{method} {path}");
        crate::helpers::assert_problem(response, 405, "method_not_allowed").await;
    }
    let nowhere = app.client.request(reqwest::Method::TRACE, app.url("/api/v1/nowhere")).send().await.unwrap();
    crate::helpers::assert_problem(nowhere, 404, "not_found").await;

    // HEAD is answered as GET, headers alone: a load balancer's probe, a page, a keyed listing, a
    // streamed export (whose rows are not even read).
    let analyst = app.key(sipas::auth::Role::Analyst, &[]);
    app.open_campaign("heads", "sipas-individual", &["01"]).await;
    for (path, key) in [
        ("/healthz", None),
        ("/readyz", None),
        ("/results", None),
        ("/api/v1/campaigns", Some(&analyst)),
        ("/api/v1/campaigns/heads/responses?format=csv", Some(&analyst)),
    ] {
        let mut head = app.client.head(app.url(path));
        let mut get = app.client.get(app.url(path));
        if let Some(key) = key {
            head = head.bearer_auth(key);
            get = get.bearer_auth(key);
        }
        let (head, get) = (head.send().await.unwrap(), get.send().await.unwrap());
        assert_eq!(head.status().as_u16(), 200, "HEAD {path}");
        for name in ["content-type", "content-disposition"] {
            assert_eq!(head.headers().get(name), get.headers().get(name), "{name} of HEAD {path}");
        }
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path} sent a body");
    }
    let unkeyed = app.client.head(app.url("/api/v1/campaigns")).send().await.unwrap();
    assert_eq!(unkeyed.status().as_u16(), 401);

    // OPTIONS says what a path takes, without a key.
    for (path, allow) in [("/api/v1/campaigns", "GET, HEAD, POST, OPTIONS"), ("/login", "GET, HEAD, POST, OPTIONS")] {
        let options = app.client.request(reqwest::Method::OPTIONS, app.url(path)).send().await.unwrap();
        assert_eq!(options.status().as_u16(), 204, "OPTIONS {path}");
        assert_eq!(options.headers()["allow"], allow, "OPTIONS {path}");
    }
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
