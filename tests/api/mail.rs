//! Invitations by email against a real SMTP server on loopback (mailin-embedded): delivery in the
//! right language, one-time links, reminders, retries, permanent failures, several workers,
//! opting out and the erasure of addresses.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::prelude::*;
use mailin_embedded::{Handler, Response, Server, response};
use serde_json::{Value, json};
use sipas::auth::Role;
use sipas::db::schema::{invitations, outbox, responses};

use crate::form::Citizen;
use crate::helpers::{TestApp, json_of};

/// What the test SMTP server does with each message.
#[derive(Clone, Copy)]
enum Behaviour {
    Accept,
    /// Refuse this many messages with 451, then accept.
    RefuseFirst(usize),
    /// Refuse every message with 550.
    RefuseAlways,
}

#[derive(Clone)]
struct Sink {
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    refused: Arc<Mutex<usize>>,
    behaviour: Behaviour,
    current: Vec<u8>,
}

impl Handler for Sink {
    fn rcpt(&mut self, _to: &str) -> Response {
        let mut refused = self.refused.lock().unwrap();
        match self.behaviour {
            Behaviour::RefuseFirst(n) if *refused < n => {
                *refused += 1;
                Response::custom(451, "4.3.0 Try again later".to_owned())
            }
            Behaviour::RefuseAlways => {
                *refused += 1;
                Response::custom(550, "5.1.1 No such mailbox".to_owned())
            }
            _ => response::OK,
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, _to: &[String]) -> Response {
        self.current.clear();
        response::START_DATA
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.received.lock().unwrap().push(std::mem::take(&mut self.current));
        response::OK
    }
}

/// A real SMTP server on a random loopback port; returns its URL and what it received.
fn smtp_server(behaviour: Behaviour) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink { received: received.clone(), refused: Arc::new(Mutex::new(0)), behaviour, current: Vec::new() };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let mut server = Server::new(sink);
    server.with_name("mail.test").with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (url, received)
}

async fn mail_app(smtp: &str) -> TestApp {
    let smtp = smtp.to_owned();
    TestApp::spawn_with(move |settings| {
        settings.smtp_url = Some(smtp);
        settings.mail_from = "Khảo sát SIPAS <khaosat@example.gov.vn>".to_owned();
        settings.mail_poll_ms = 50;
        settings.mail_retry_seconds = 0.2;
    })
    .await
}

async fn campaign(app: &TestApp, id: &str, mail: Value) -> String {
    let admin = app.key(Role::Admin, &[]);
    let response = app
        .post("/api/v1/campaigns")
        .bearer_auth(&admin)
        .json(&json!({
            "id": id, "survey": "sipas-individual", "agencies": ["01"], "mail": mail,
            "title": {"vi": "Khảo sát hài lòng 2026", "en": "Satisfaction survey 2026"},
            "opens_at": "2025-07-01T00:00:00Z", "closes_at": "2099-01-01T00:00:00Z",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap());
    admin
}

async fn invite(app: &TestApp, key: &str, campaign: &str, rows: Value) -> (u16, Value) {
    let path = format!("/api/v1/campaigns/{campaign}/invitations");
    json_of(app.post(&path).bearer_auth(key).json(&json!({"invitations": rows})).send().await.unwrap()).await
}

/// Invites three people to campaign `hn`: one at commune 00070 and two at commune 00004, both of
/// Hà Nội.
async fn invite_three(app: &TestApp, admin: &str) {
    let rows = json!([
        {"email": "an@example.vn", "agency": "00070"},
        {"email": "binh@example.vn", "agency": "00004"},
        {"email": "chi@example.vn", "agency": "00004"},
    ]);
    let (status, report) = invite(app, admin, "hn", rows).await;
    assert_eq!(status, 202, "{report}");
}

/// Campaign `hn`'s invitation summary as `key` reads it.
async fn summary_as(app: &TestApp, key: &str) -> Value {
    let (status, summary) = app.get_json_with("/api/v1/campaigns/hn/invitations/summary", key).await;
    assert_eq!(status, 200, "{summary}");
    summary
}

/// Waits until the sink holds `count` messages (or fails after 15 s).
async fn wait_for(received: &Arc<Mutex<Vec<Vec<u8>>>>, count: usize) -> Vec<Vec<u8>> {
    for _ in 0..300 {
        let messages = received.lock().unwrap().clone();
        if messages.len() >= count {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {count} message(s), got {}", received.lock().unwrap().len());
}

/// (recipient, subject, plain text, html, token) of a raw message.
fn read(raw: &[u8]) -> (String, String, String, String, String) {
    let parsed = mailparse::parse_mail(raw).unwrap();
    let header =
        |name: &str| parsed.headers.iter().find(|h| h.get_key_ref().eq_ignore_ascii_case(name)).map(|h| h.get_value());
    let unsubscribe = header("List-Unsubscribe").expect("List-Unsubscribe");
    assert_eq!(header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    assert!(header("Message-ID").is_some_and(|id| id.ends_with("@example.gov.vn>")));
    assert_eq!(parsed.ctype.mimetype, "multipart/alternative");
    let token = unsubscribe.trim_matches(['<', '>']).rsplit("/u/").next().unwrap().to_owned();
    let part = |mime: &str| parsed.subparts.iter().find(|p| p.ctype.mimetype == mime).unwrap().get_body().unwrap();
    (header("To").unwrap(), header("Subject").unwrap(), part("text/plain"), part("text/html"), token)
}

#[tokio::test]
async fn an_invitation_arrives_in_its_language_and_its_link_works_once() {
    let (smtp, received) = smtp_server(Behaviour::Accept);
    let app = mail_app(&smtp).await;
    let admin = campaign(&app, "hn", json!({})).await;
    let (status, report) = invite(
        &app,
        &admin,
        "hn",
        json!([
            {"email": "an@example.vn", "agency": "00070", "language": "en"},
            {"email": "binh@example.vn", "agency": "00070"},
            {"email": "AN@example.vn", "agency": "00070"},
            {"email": "not an address", "agency": "00070"},
            {"email": "chi@example.vn", "agency": "79"},
        ]),
    )
    .await;
    assert_eq!(status, 202, "{report}");
    assert_eq!((report["queued"].as_u64(), report["duplicates"].as_u64()), (Some(2), Some(1)));
    let refused: Vec<&str> = report["refused"].as_array().unwrap().iter().map(|r| r["row"].as_str().unwrap()).collect();
    assert_eq!(refused, ["invitations[3]", "invitations[4]"]);

    let messages = wait_for(&received, 2).await;
    let mails: Vec<_> = messages.iter().map(|m| read(m)).collect();
    let english = mails.iter().find(|m| m.0.contains("an@example.vn")).unwrap();
    let vietnamese = mails.iter().find(|m| m.0.contains("binh@example.vn")).unwrap();
    assert_eq!(english.1, "Satisfaction survey 2026");
    assert_eq!(vietnamese.1, "Khảo sát hài lòng 2026");
    assert!(vietnamese.2.contains("Phường Hoàn Kiếm") && vietnamese.2.contains("Kính gửi Ông/Bà"));
    let link = format!("{}/i/{}", app.address, english.4);
    assert!(english.2.contains(&link) && english.3.contains(&link), "the link is in both parts");

    // The link opens the form in English and works once.
    let path = format!("/i/{}", english.4);
    let mut citizen = Citizen::open(&app, &path).await;
    assert_eq!(citizen.status, 200);
    assert!(citizen.page.contains("<html lang=\"en\">"));
    citizen.complete().await;
    assert!(citizen.page.contains("Thank you"), "{}", citizen.page);
    assert_eq!(app.stored_responses("hn"), 1);
    let again = app.get(&path).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 410);
    assert!(again.text().await.unwrap().contains("already answered"));
    assert_eq!(app.get("/i/not-a-token").send().await.unwrap().status().as_u16(), 404);

    // Anonymous: the response knows its channel, nothing of the invitation.
    let mut conn = app.database.connect();
    let channel: String = responses::table.select(responses::channel).first(&mut conn).unwrap();
    assert_eq!(channel, "invitation");
    let analyst = app.key(Role::Analyst, &[]);
    let (_, summary) = app.get_json_with("/api/v1/campaigns/hn/invitations/summary", &analyst).await;
    assert_eq!(
        (summary["invited"].as_i64(), summary["sent"].as_i64(), summary["used"].as_i64()),
        (Some(2), Some(2), Some(1))
    );
    assert_eq!(summary["response_rate"], 50.0);
    assert!(!summary.to_string().contains('@'), "no addresses in the summary");
}

/// An analyst key limited to some agencies counts the invitations of those agencies (and below)
/// alone: a commune's key does not learn how many people another commune invited.
#[tokio::test]
async fn a_limited_analyst_counts_only_its_agencies_invitations() {
    let (smtp, received) = smtp_server(Behaviour::Accept);
    let app = mail_app(&smtp).await;
    let admin = campaign(&app, "hn", json!({})).await;
    invite_three(&app, &admin).await;
    wait_for(&received, 3).await;
    let invited = |key: String| {
        let app = &app;
        async move { summary_as(app, &key).await["invited"].as_i64().unwrap() }
    };
    assert_eq!(invited(app.key(Role::Analyst, &[])).await, 3);
    assert_eq!(invited(admin.clone()).await, 3);
    assert_eq!(invited(app.key(Role::Analyst, &["01"])).await, 3, "the province holds both communes");
    assert_eq!(invited(app.key(Role::Analyst, &["00070"])).await, 1);
    assert_eq!(invited(app.key(Role::Analyst, &["00004"])).await, 2);
    assert_eq!(invited(app.key(Role::Analyst, &["79"])).await, 0, "another province's key");
}

/// Messages not yet handed to a mail server (none is configured here) are counted as waiting in
/// the outbox, and a key limited to some agencies counts those of its agencies alone.
#[tokio::test]
async fn messages_waiting_in_the_outbox_are_counted_for_the_agencies_a_key_reads() {
    let app = TestApp::spawn().await;
    let admin = campaign(&app, "hn", json!({})).await;
    invite_three(&app, &admin).await;
    let waiting = |key: String| {
        let app = &app;
        async move {
            let summary = summary_as(app, &key).await;
            (summary["queued"].as_i64().unwrap(), summary["outbox_pending"].as_i64().unwrap(), summary["sent"].clone())
        }
    };
    assert_eq!(waiting(admin.clone()).await, (3, 3, json!(0)));
    assert_eq!(waiting(app.key(Role::Analyst, &["01"])).await, (3, 3, json!(0)));
    assert_eq!(waiting(app.key(Role::Analyst, &["00070"])).await, (1, 1, json!(0)));
    assert_eq!(waiting(app.key(Role::Analyst, &["00004"])).await, (2, 2, json!(0)));
    assert_eq!(waiting(app.key(Role::Analyst, &["79"])).await, (0, 0, json!(0)), "another province's key");
}

#[tokio::test]
async fn two_submissions_through_one_link_store_one_response() {
    let (smtp, received) = smtp_server(Behaviour::Accept);
    let app = mail_app(&smtp).await;
    let admin = campaign(&app, "hn", json!({})).await;
    invite(&app, &admin, "hn", json!([{"email": "an@example.vn", "agency": "00070"}])).await;
    let token = read(&wait_for(&received, 1).await[0]).4;
    let path = format!("/i/{token}?view=all");
    let first = Citizen::open(&app, &path).await;
    let second = Citizen::open(&app, &path).await;
    let send = |c: &Citizen| {
        let mut fields = c.hidden();
        fields.extend(c.last_options());
        app.post(&format!("/i/{token}")).header("cookie", &c.cookie).form(&fields).send()
    };
    let (a, b) = tokio::join!(send(&first), send(&second));
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 410]);
    assert_eq!(app.stored_responses("hn"), 1);
}

#[tokio::test]
async fn reminders_reach_only_those_who_have_not_answered_and_not_opted_out() {
    let (smtp, received) = smtp_server(Behaviour::Accept);
    let app = mail_app(&smtp).await;
    let admin = campaign(&app, "hn", json!({"reminders": [3]})).await;
    let rows = json!([
        {"email": "answered@example.vn", "agency": "00070"},
        {"email": "silent@example.vn", "agency": "00070"},
        {"email": "optout@example.vn", "agency": "00070"},
    ]);
    invite(&app, &admin, "hn", rows).await;
    let mails: Vec<_> = wait_for(&received, 3).await.iter().map(|m| read(m)).collect();
    let token_of = |who: &str| mails.iter().find(|m| m.0.contains(who)).unwrap().4.clone();
    let mut citizen = Citizen::open(&app, &format!("/i/{}", token_of("answered"))).await;
    citizen.complete().await;
    let optout = app.post(&format!("/u/{}", token_of("optout"))).send().await.unwrap();
    assert_eq!(optout.status().as_u16(), 200);
    // Three days pass.
    let mut conn = app.database.connect();
    let earlier = (chrono::Utc::now() - chrono::Duration::days(4)).naive_utc();
    diesel::update(invitations::table).set(invitations::sent_at.eq(earlier)).execute(&mut conn).unwrap();
    let all = wait_for(&received, 4).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let all = if received.lock().unwrap().len() > all.len() { received.lock().unwrap().clone() } else { all };
    assert_eq!(all.len(), 4, "one reminder, once");
    let reminder = read(&all[3]);
    assert!(reminder.0.contains("silent@example.vn"));
    assert!(reminder.1.starts_with("Nhắc lại:"));
}

#[tokio::test]
async fn a_refusing_server_is_retried_and_a_permanent_refusal_is_recorded() {
    let (smtp, received) = smtp_server(Behaviour::RefuseFirst(2));
    let app = mail_app(&smtp).await;
    let admin = campaign(&app, "hn", json!({})).await;
    invite(&app, &admin, "hn", json!([{"email": "an@example.vn", "agency": "00070"}])).await;
    wait_for(&received, 1).await;
    // The server has the message before the worker records the delivery: wait for the record.
    let mut conn = app.database.connect();
    let mut delivered = None;
    for _ in 0..100 {
        let (state, attempts): (String, i32) =
            outbox::table.select((outbox::status, outbox::attempts)).first(&mut conn).unwrap();
        if state == "sent" {
            delivered = Some(attempts);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivered, Some(3), "two refusals, then delivered");

    let (smtp, _) = smtp_server(Behaviour::RefuseAlways);
    let app = mail_app(&smtp).await;
    let admin = campaign(&app, "hn", json!({})).await;
    invite(&app, &admin, "hn", json!([{"email": "an@example.vn", "agency": "00070"}])).await;
    let analyst = app.key(Role::Analyst, &[]);
    for _ in 0..100 {
        let (_, summary) = app.get_json_with("/api/v1/campaigns/hn/invitations/summary", &analyst).await;
        if summary["failed"] == 1 {
            let mut conn = app.database.connect();
            let failure: Option<String> = invitations::table.select(invitations::failure).first(&mut conn).unwrap();
            assert!(failure.unwrap().contains("550"), "the server's reply is kept");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the invitation was not marked failed");
}

#[tokio::test]
async fn two_workers_send_each_message_once() {
    let (smtp, received) = smtp_server(Behaviour::Accept);
    let app = mail_app(&smtp).await;
    let smtp_again = smtp.clone();
    let _second = TestApp::spawn_sharing_with(&app, move |settings| {
        settings.smtp_url = Some(smtp_again);
        settings.mail_from = "Khảo sát SIPAS <khaosat@example.gov.vn>".to_owned();
        settings.mail_poll_ms = 50;
    })
    .await;
    let admin = campaign(&app, "hn", json!({})).await;
    let rows: Vec<Value> = (0..40).map(|i| json!({"email": format!("p{i}@example.vn"), "agency": "00070"})).collect();
    invite(&app, &admin, "hn", Value::Array(rows)).await;
    wait_for(&received, 40).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut recipients: Vec<String> = received.lock().unwrap().iter().map(|m| read(m).0).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!((received.lock().unwrap().len(), recipients.len()), (40, 40), "each once");
}

#[tokio::test]
async fn addresses_are_erased_after_the_retention_period() {
    let (smtp, received) = smtp_server(Behaviour::Accept);
    let app = mail_app(&smtp).await;
    let admin = campaign(&app, "hn", json!({})).await;
    invite(&app, &admin, "hn", json!([{"email": "an@example.vn", "agency": "00070", "dossier": "H26-1"}])).await;
    wait_for(&received, 1).await;
    let response = app.patch_campaign(&admin, "hn", &json!({"closes_at": "2025-08-01T00:00:00Z"})).await;
    assert_eq!(response.status().as_u16(), 200);
    let output = crate::helpers::sipas(&app.database, &["purge"]);
    assert!(output.status.success(), "{}", crate::helpers::stderr(&output));
    let mut conn = app.database.connect();
    let left: Vec<(Option<String>, Option<String>, String)> = invitations::table
        .select((invitations::email, invitations::dossier, invitations::email_hash))
        .load(&mut conn)
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].0.as_deref(), left[0].1.as_deref()), (None, None));
    let queued: i64 = outbox::table.count().get_result(&mut conn).unwrap();
    assert_eq!(queued, 0);
}
