use crate::helpers::{TestApp, json_of};

#[tokio::test]
async fn healthz_answers_while_the_process_runs() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn readyz_answers_once_the_database_is_migrated() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}

#[tokio::test]
async fn unknown_routes_get_a_problem_document() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/nothing-here").send().await.unwrap();
    let body = crate::helpers::assert_problem(response, 404, "not_found").await;
    assert_eq!(body["type"], "urn:sipas:problem:not_found");
    let (status, _) = json_of(app.get("/nowhere").send().await.unwrap()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn every_response_carries_the_request_id() {
    let app = TestApp::spawn().await;
    let given = app.get("/healthz").header("x-request-id", "desk-7-000123").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "desk-7-000123", "the caller's id is kept");
    let fresh = app.get("/api/v1/surveys").send().await.unwrap();
    assert_eq!(fresh.headers()["x-request-id"].len(), 26, "a new id when none is given");
    let long = "x".repeat(200);
    let replaced = app.get("/nope").header("x-request-id", long.as_str()).send().await.unwrap();
    assert_eq!(replaced.status().as_u16(), 404);
    assert_ne!(replaced.headers()["x-request-id"], long.as_str(), "an unreasonable id is replaced");
}

/// Reads one HTTP/1.1 response (headers and a `Content-Length` body) from a kept-alive socket;
/// `None` when the server closed the connection instead.
async fn read_response(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return Some(head.to_owned());
            }
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// A proxy in front keeps idle upstream connections for up to a minute and reuses them: the
/// server must not close one after a few seconds (the next request on it would fail as a 502).
/// An idle connection is still served after 6 s (actix-web's own default closes it at 5 s).
#[tokio::test]
async fn an_idle_keep_alive_connection_stays_open_for_a_proxy() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let first = read_response(&mut stream).await.expect("a first answer");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let second = read_response(&mut stream).await.expect("the connection is still open after 6 s idle");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
}
