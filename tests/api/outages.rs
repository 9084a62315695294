//! Outages and shutdown: the database going away while serving (PostgreSQL, through a proxy the
//! test cuts), and SIGTERM finishing the requests in flight.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sipas::auth::Role;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{
    TestApp, TestDatabase, cli_campaign, free_port, individual, sipas, spawn_binary, stdout, wait_ready,
};

/// A TCP proxy to PostgreSQL that the test can cut (refusing and dropping every connection) and
/// restore.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
}

async fn proxy(upstream: String) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { continue };
            if !flag.load(Ordering::SeqCst) {
                continue; // dropped: the connection is refused
            }
            let (flag, upstream) = (flag.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(&upstream).await else { return };
                let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                tokio::pin!(copy);
                loop {
                    tokio::select! {
                        _ = &mut copy => return,
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {
                            if !flag.load(Ordering::SeqCst) {
                                return; // cut: both sides are dropped
                            }
                        }
                    }
                }
            });
        }
    });
    Proxy { port, up }
}

// Several threads: the proxy must keep running while the server starts (which blocks on the
// database).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_going_away_gives_503_and_recovers_by_itself() {
    let Some(server) = crate::helpers::postgres_url() else {
        // SQLite is a file in the process: there is no server to lose. The suite runs this test
        // when it runs on PostgreSQL (as CI does).
        return;
    };
    let upstream =
        server.split_once("://").unwrap().1.split('/').next().unwrap().rsplit('@').next().unwrap().to_owned();
    let proxy = proxy(upstream.clone()).await;
    let port = proxy.port;
    let app = TestApp::spawn_with(move |settings| {
        settings.database_url = settings.database_url.replacen(&upstream, &format!("127.0.0.1:{port}"), 1);
        settings.pool_timeout_seconds = 2;
    })
    .await;
    let admin = app.open_campaign("hn", "sipas-individual", &["01"]).await;
    assert_eq!(app.post_response(&admin, None, &individual("hn", "00070", 1)).await.status().as_u16(), 201);

    proxy.up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let refused = app.post_response(&admin, None, &individual("hn", "00070", 2)).await;
    assert_eq!(refused.status().as_u16(), 503, "{}", refused.text().await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(8), "answered within the pool timeout, no hang");
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let (status, body) = app.get_json("/api/v1/surveys").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "database_unavailable");

    proxy.up.store(true, Ordering::SeqCst);
    let mut recovered = false;
    for _ in 0..50 {
        if app.get("/readyz").send().await.unwrap().status().is_success() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "ready again once the database is back");
    assert_eq!(app.post_response(&admin, None, &individual("hn", "00070", 3)).await.status().as_u16(), 201);
    let analyst = app.key(Role::Analyst, &[]);
    let (_, stats) = app.get_json_with("/api/v1/campaigns/hn/stats?agency=01&scope=self", &analyst).await;
    assert_eq!(stats["units"][0]["n"], 2, "nothing lost, nothing half written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_requests_in_flight() {
    let database = TestDatabase::new();
    let token = cli_campaign(&database, "hn");
    let port = free_port();
    let mut server = spawn_binary(&database, port);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;
    let items: Vec<_> = (0..1000)
        .map(|i| {
            let mut item = individual("hn", "00070", i);
            item["client_id"] = json!(format!("item-{i}"));
            item
        })
        .collect();
    let request =
        client.post(format!("{base}/api/v1/responses/batch")).bearer_auth(&token).json(&json!({"items": items}));
    let in_flight = tokio::spawn(request.send());
    tokio::time::sleep(Duration::from_millis(30)).await;
    let term = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(term.success());
    let response = in_flight.await.unwrap().expect("the request in flight is answered");
    assert_eq!(response.status().as_u16(), 200);
    let exit = server.wait().unwrap();
    assert!(exit.success(), "a clean exit after SIGTERM: {exit:?}");
    let list = sipas(&database, &["campaigns", "list"]);
    assert!(stdout(&list).contains("1000"), "all 1,000 stored: {}", stdout(&list));
}
