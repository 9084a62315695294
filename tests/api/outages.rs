//! Outages and shutdown: the database going away while serving (PostgreSQL, through a proxy the
//! test cuts), a full disk under SQLite, and SIGTERM finishing the requests in flight.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sipas::auth::Role;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{
    TestApp, TestDatabase, cli_campaign, cli_partner_key, free_port, individual, sipas, spawn_binary,
    spawn_binary_logging, stdout, wait_ready,
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

/// A full disk under SQLite: the server runs with a file-size limit (`ulimit -f`, SIGXFSZ
/// ignored, so that writes past it fail as on a full disk). Writes get 503 with `Retry-After` and
/// a clear log line, the server stays up, and every acknowledged response is stored with its
/// tallies, nothing half written.
#[tokio::test]
async fn a_full_disk_under_sqlite_gives_503_and_loses_nothing() {
    let database = TestDatabase::new();
    if database.is_postgres() {
        eprintln!("a full disk is an SQLite matter; this test runs in the SQLite pass");
        return;
    }
    let admin = cli_campaign(&database, "full");
    let _ = admin;
    let partner = cli_partner_key(&database, "01");
    let file = database.dir().join("sipas.db");
    // Room for the WAL to grow a little past the database file's size, and no more.
    let limit_kib = std::fs::metadata(&file).unwrap().len() / 1024 + 1;
    let port = free_port();
    let log = database.dir().join("server.log");
    let command = format!(
        "trap '' XFSZ; ulimit -f {limit_kib}; exec '{}' --database '{}' serve --bind 127.0.0.1:{port} 2>'{}'",
        env!("CARGO_BIN_EXE_sipas"),
        database.url,
        log.display()
    );
    let mut server = Command::new("sh")
        .args(["-c", &command])
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .current_dir(database.dir())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &base).await;

    let mut acknowledged = 0;
    let mut refusal = None;
    for batch in 0..400 {
        let items: Vec<serde_json::Value> = (0..50)
            .map(|i| {
                let mut item = individual("full", "00004", batch * 50 + i);
                item["client_id"] = json!(format!("b{batch}-{i}"));
                item
            })
            .collect();
        let response = client
            .post(format!("{base}/api/v1/responses/batch"))
            .bearer_auth(&partner)
            .json(&json!({"items": items}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 | 207 => {
                let body: serde_json::Value = response.json().await.unwrap();
                acknowledged += body["results"].as_array().unwrap().iter().filter(|r| r["status"] == 201).count();
            }
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                refusal = Some(response.json::<serde_json::Value>().await.unwrap());
                break;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    let refusal = refusal.expect("the disk filled up");
    assert_eq!(refusal["code"], "database_unavailable");
    assert!(acknowledged > 0, "some responses fitted before the disk was full");
    assert_eq!(client.get(format!("{base}/healthz")).send().await.unwrap().status().as_u16(), 200, "still up");
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let _ = server.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("responses could not be written: the database is unavailable (disk full")
            && logged.contains("disk I/O error"),
        "a clear log line:\n{logged}"
    );

    // Without the limit: exactly the acknowledged responses, and tallies that match them.
    let stored = sipas::intake::store::count(&mut database.connect(), "full").unwrap();
    assert_eq!(stored as usize, acknowledged);
    let verify = sipas(&database, &["tallies", "verify", "--campaign", "full"]);
    assert!(verify.status.success(), "{}", crate::helpers::stderr(&verify));
}

/// Clears the immutable attribute of the files it names when dropped, so that a failed assertion
/// does not leave files that the temporary directory's removal cannot delete.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    fn set(files: Vec<std::path::PathBuf>) -> Self {
        let status = Command::new("chattr").arg("+i").args(&files).status().expect("chattr runs");
        assert!(status.success(), "chattr +i refused on {files:?}");
        Self(files)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

/// A disk turning read-only under SQLite while the server runs: the database file and its
/// write-ahead log made immutable (`chattr +i`, which refuses writes even through descriptors
/// already open, as a file system remounted read-only after an error does). Writes get 503 with
/// `Retry-After` and a clear log line while reads go on; when the files are writable again the
/// server writes again by itself, and the refused requests, retried with their idempotency keys,
/// are each stored once. The outage is logged every few seconds, not once per request.
#[tokio::test]
async fn a_disk_turning_read_only_under_sqlite_gives_503_and_recovers() {
    let database = TestDatabase::new();
    if database.is_postgres() {
        eprintln!("a read-only file is an SQLite matter; this test runs in the SQLite pass");
        return;
    }
    // The attribute needs root and a file system that keeps it (ext4, xfs, btrfs, tmpfs); CI has both
    // and asks for the test with `SIPAS_PRIVILEGED_TESTS=required`, elsewhere it may be skipped.
    let probe = database.dir().join("probe");
    std::fs::write(&probe, b"").unwrap();
    let settable = Command::new("chattr").arg("+i").arg(&probe).output().is_ok_and(|out| out.status.success());
    let _ = Command::new("chattr").arg("-i").arg(&probe).status();
    if !settable {
        crate::helpers::skip_for_missing(
            "SIPAS_PRIVILEGED_TESTS",
            "a file cannot be made immutable here (it needs root, on a file system that keeps the attribute)",
        );
        return;
    }
    let _admin = cli_campaign(&database, "readonly");
    let partner = cli_partner_key(&database, "01");
    let port = free_port();
    let log = database.dir().join("server.log");
    let mut server = spawn_binary_logging(&database, port, &log);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &base).await;
    let post = |seed: u64| {
        client
            .post(format!("{base}/api/v1/responses"))
            .bearer_auth(&partner)
            .header("Idempotency-Key", format!("desk-{seed}"))
            .json(&individual("readonly", "00004", seed))
            .send()
    };
    for seed in 0..20 {
        assert_eq!(post(seed).await.unwrap().status().as_u16(), 201);
    }

    let file = database.dir().join("sipas.db");
    let log_file = database.dir().join("sipas.db-wal");
    let read_only = Immutable::set(vec![file, log_file]);
    for seed in 20..40 {
        let response = post(seed).await.unwrap();
        assert_eq!(response.status().as_u16(), 503, "refused while the files are read-only");
        assert!(response.headers().contains_key("retry-after"));
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "database_unavailable");
    }
    let counts = client.get(format!("{base}/api/v1/campaigns/readonly")).bearer_auth(&partner).send().await.unwrap();
    assert_eq!(counts.status().as_u16(), 200, "reads go on");
    drop(read_only);

    // Writable again: the refused requests retried with their keys are stored, once each.
    for seed in 20..40 {
        assert_eq!(post(seed).await.unwrap().status().as_u16(), 201, "written again by itself");
        let replay = post(seed).await.unwrap();
        assert_eq!(replay.status().as_u16(), 201);
        assert_eq!(replay.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    }
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let _ = server.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("responses could not be written: the database is unavailable (disk full or read-only"),
        "a clear log line:\n{logged}"
    );
    // Twenty refusals within a few seconds: a line or two, not one (or three) per request.
    for line in ["responses could not be written", "database unavailable: requests answered 503"] {
        let count = logged.matches(line).count();
        assert!((1..=3).contains(&count), "`{line}` logged {count} times for 20 refusals:\n{logged}");
    }
    assert!(!logged.contains("Error encountered"), "no line per request:\n{logged}");
    let stored = sipas::intake::store::count(&mut database.connect(), "readonly").unwrap();
    assert_eq!(stored, 40, "the 20 acknowledged before and the 20 retried, each once");
    let verify = sipas(&database, &["tallies", "verify", "--campaign", "readonly"]);
    assert!(verify.status.success(), "{}", crate::helpers::stderr(&verify));
}
