//! Crash safety: the real binary is killed with SIGKILL at random moments while several clients
//! post responses, twenty times, on the test's database (SQLite or PostgreSQL). Every response
//! acknowledged with a 201 must be stored exactly once with all its answers, retries of the
//! unacknowledged requests with their idempotency keys must each end stored once, and the tallies
//! must equal a recount. (Answers live inside their response row, so there are no answer rows that
//! could outlive their response.)

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use crate::helpers::{
    TestDatabase, cli_campaign, free_port, individual, sipas, spawn_binary, stderr, stdout, wait_ready,
};

const KILLS: usize = 20;
const CLIENTS: usize = 4;

/// Idempotency key → (body, id of the acknowledged response, if any).
type Ledger = Arc<Mutex<BTreeMap<String, (Value, Option<String>)>>>;

async fn post(client: &reqwest::Client, base: &str, key: &str, token: &str, body: &Value) -> Option<String> {
    let response = client
        .post(format!("{base}/api/v1/responses"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if response.status().as_u16() != 201 {
        return None;
    }
    let created: Value = response.json().await.ok()?;
    created["id"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_responses_survive_sigkill() {
    let database = TestDatabase::new();
    let token = cli_campaign(&database, "crash");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ledger: Ledger = Arc::new(Mutex::new(BTreeMap::new()));
    // Responses acknowledged so far, so that each round is killed after some got through, however
    // slow the machine (a fixed pause could end before the first commit on a loaded one).
    let acknowledged = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    for round in 0..KILLS {
        let mut server = spawn_binary(&database, port);
        wait_ready(&client, &base).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let (client, base, token, ledger, stop, acknowledged) =
                (client.clone(), base.clone(), token.clone(), ledger.clone(), stop.clone(), acknowledged.clone());
            clients.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("r{round}-c{c}-{n}");
                    let body = individual("crash", "00070", (round * 1_000_000) as u64 + c as u64 * 10_000 + n);
                    ledger.lock().unwrap().insert(key.clone(), (body.clone(), None));
                    let id = post(&client, &base, &key, &token, &body).await;
                    match id {
                        Some(id) => {
                            if let Some(entry) = ledger.lock().unwrap().get_mut(&key) {
                                entry.1 = Some(id);
                            }
                            acknowledged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        None => break, // the server is gone
                    }
                    n += 1;
                }
            }));
        }
        let round_start = acknowledged.load(std::sync::atomic::Ordering::Relaxed);
        let waiting_since = std::time::Instant::now();
        while acknowledged.load(std::sync::atomic::Ordering::Relaxed) == round_start {
            assert!(waiting_since.elapsed() < Duration::from_secs(60), "round {round}: nothing acknowledged in 60 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let pause = rand::rng().random_range(0..350);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for client in clients {
            client.await.unwrap();
        }
    }

    // Back up once more: retry every unacknowledged request with its key.
    let mut server = spawn_binary(&database, port);
    wait_ready(&client, &base).await;
    let pending: Vec<(String, Value)> = ledger
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, (_, id))| id.is_none())
        .map(|(key, (body, _))| (key.clone(), body.clone()))
        .collect();
    let acknowledged_before = ledger.lock().unwrap().values().filter(|(_, id)| id.is_some()).count();
    for (key, body) in &pending {
        let id = post(&client, &base, key, &token, body).await.expect("a retry is answered 201");
        ledger.lock().unwrap().get_mut(key).unwrap().1 = Some(id);
    }

    // Everything acknowledged is stored once, with its answers.
    let export = client
        .get(format!("{base}/api/v1/campaigns/crash/responses?format=ndjson"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stored: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut by_id: HashMap<String, Vec<&Value>> = HashMap::new();
    for row in &stored {
        by_id.entry(row["id"].as_str().unwrap().to_owned()).or_default().push(row);
    }
    let ledger = ledger.lock().unwrap();
    assert!(acknowledged_before >= KILLS, "the clients got responses through ({acknowledged_before})");
    assert_eq!(stored.len(), ledger.len(), "one stored response per request, acknowledged or retried");
    for (key, (body, id)) in ledger.iter() {
        let id = id.as_ref().unwrap();
        let rows = by_id.get(id).unwrap_or_else(|| panic!("{key}: response {id} is missing"));
        assert_eq!(rows.len(), 1, "{key}: stored once");
        assert_eq!(rows[0]["answers"], body["answers"], "{key}: every answer kept");
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let verify = sipas(&database, &["tallies", "verify", "--campaign", "crash"]);
    assert!(verify.status.success(), "tallies equal a recount: {}{}", stdout(&verify), stderr(&verify));
    eprintln!(
        "crash test: {KILLS} kills, {} requests, {acknowledged_before} acknowledged before the kills, {} retried",
        ledger.len(),
        pending.len()
    );
}
