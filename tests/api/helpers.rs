//! Test harness: a fresh database per test and the real server on port 0.

use std::path::PathBuf;
use std::process::{Command, Output};

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use rand::Rng;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;
use sipas::app::Application;
use sipas::auth::{self, Role};
use sipas::config::Settings;
use sipas::db::{self, DatabaseTarget};

/// The PostgreSQL server to test against, if the run is a PostgreSQL run.
pub fn postgres_url() -> Option<String> {
    std::env::var("SIPAS_TEST_DATABASE_URL").ok().filter(|url| url.starts_with("postgres"))
}

/// A database that exists for one test: an SQLite file in a temporary directory, or a PostgreSQL
/// schema dropped when the value is dropped.
pub struct TestDatabase {
    /// URL to hand to sipas.
    pub url: String,
    /// Kept alive so that the SQLite file's directory outlives the test.
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        match postgres_url() {
            Some(server) => {
                let schema = format!("sipas_test_{:016x}", rand::rng().random::<u64>());
                let mut conn = PgConnection::establish(&server).expect("PostgreSQL for tests is not reachable");
                conn.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
                let separator = if server.contains('?') { '&' } else { '?' };
                let url = format!("{server}{separator}options=-csearch_path%3D{schema}");
                Self { url, _dir: dir, postgres: Some((server, schema)) }
            }
            None => {
                let path = dir.path().join("sipas.db");
                Self { url: format!("sqlite://{}", path.display()), _dir: dir, postgres: None }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    pub fn dir(&self) -> PathBuf {
        self._dir.path().to_owned()
    }

    /// A direct connection, for checking what is stored.
    pub fn connect(&self) -> db::DbConnection {
        db::connect(&DatabaseTarget::parse(&self.url).unwrap()).unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server, schema)) = &self.postgres
            && let Ok(mut conn) = PgConnection::establish(server)
        {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

/// The real server, listening on a random port, with its own database.
pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub database: std::sync::Arc<TestDatabase>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_on(std::sync::Arc::new(TestDatabase::new())).await
    }

    /// A second server on the same database (another process, as far as the database can tell).
    pub async fn spawn_sharing(&self) -> Self {
        Self::spawn_on(self.database.clone()).await
    }

    /// A second server on the same database, with adjusted settings.
    pub async fn spawn_sharing_with(app: &TestApp, adjust: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_configured(app.database.clone(), adjust).await
    }

    /// A server whose settings `adjust` changes.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_configured(std::sync::Arc::new(TestDatabase::new()), adjust).await
    }

    async fn spawn_on(database: std::sync::Arc<TestDatabase>) -> Self {
        Self::spawn_configured(database, |_| {}).await
    }

    async fn spawn_configured(database: std::sync::Arc<TestDatabase>, adjust: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings {
            database_url: database.url.clone(),
            bind: "127.0.0.1:0".to_owned(),
            workers: 2,
            pool_size: 4,
            ..Settings::default()
        };
        adjust(&mut settings);
        let application = Application::build(settings).await.expect("the server starts");
        let address = format!("http://127.0.0.1:{}", application.port());
        tokio::spawn(application.run_until_stopped());
        let client = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { address, client, database }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(self.url(path))
    }

    /// GET returning the status and the JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        json_of(self.get(path).send().await.unwrap()).await
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.client.put(self.url(path))
    }

    /// GET with an API key, returning the status and the JSON body.
    pub async fn get_json_with(&self, path: &str, key: &str) -> (u16, Value) {
        json_of(self.get(path).bearer_auth(key).send().await.unwrap()).await
    }

    /// Creates an API key directly in the database and returns its secret.
    pub fn key(&self, role: Role, agencies: &[&str]) -> String {
        let mut conn = self.database.connect();
        let codes: Vec<String> = agencies.iter().map(|c| (*c).to_owned()).collect();
        auth::create_key(&mut conn, "test key", role, &codes).unwrap().secret
    }
}

/// Status and JSON body of a response (Null when the body is not JSON).
pub async fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Asserts that a response is a problem document with this status and code.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let (actual, body) = json_of(response).await;
    assert_eq!(actual, status, "status; body: {body}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"), "content type; body: {body}");
    assert_eq!(body["code"], code, "code; body: {body}");
    assert_eq!(body["status"], status, "status member; body: {body}");
    body
}

/// Runs the `sipas` binary with the test database.
pub fn sipas(database: &TestDatabase, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipas"))
        .args(["--database", &database.url])
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("SIPAS_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .current_dir(database.dir())
        .output()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

impl TestApp {
    /// Creates an open campaign through the API and returns an admin key.
    pub async fn open_campaign(&self, id: &str, survey: &str, agencies: &[&str]) -> String {
        let admin = self.key(Role::Admin, &[]);
        let response = self
            .post("/api/v1/campaigns")
            .bearer_auth(&admin)
            .json(&serde_json::json!({
                "id": id,
                "survey": survey,
                "title": {"vi": "Đợt khảo sát thử", "en": "Test campaign"},
                "agencies": agencies,
                "opens_at": "2025-07-01T00:00:00Z",
                "closes_at": "2099-01-01T00:00:00Z",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap());
        admin
    }

    /// Posts a response body with a key and optional idempotency key.
    pub async fn post_response(&self, key: &str, idempotency: Option<&str>, body: &Value) -> Response {
        let mut request = self.post("/api/v1/responses").bearer_auth(key).json(body);
        if let Some(idempotency) = idempotency {
            request = request.header("Idempotency-Key", idempotency);
        }
        request.send().await.unwrap()
    }

    /// Changes a campaign (`PATCH /api/v1/campaigns/{id}`) with a key.
    pub async fn patch_campaign(&self, key: &str, id: &str, changes: &Value) -> Response {
        self.client
            .patch(self.url(&format!("/api/v1/campaigns/{id}")))
            .bearer_auth(key)
            .json(changes)
            .send()
            .await
            .unwrap()
    }

    /// Responses stored for a campaign.
    pub fn stored_responses(&self, campaign: &str) -> i64 {
        sipas::intake::store::count(&mut self.database.connect(), campaign).unwrap()
    }
}

/// A complete `dossier-rating` response for an agency.
pub fn rating(campaign: &str, agency: &str, dossier: Option<&str>, score: i64) -> Value {
    let mut body = serde_json::json!({
        "campaign": campaign,
        "agency": agency,
        "respondent_type": "individual",
        "language": "vi",
        "answers": {
            "d1_total_time": score, "d2_agency_time": 2, "d3_contacts": 1, "d4_agencies": 2, "d5_one_stop": 2,
            "d6_disclosure": 0, "d7_attitude": 2, "d8_feedback": score, "overall_level": "satisfied"
        }
    });
    if let Some(dossier) = dossier {
        body["dossier"] = Value::from(dossier);
    }
    body
}

/// A `sipas-individual` response with every statement answered, varied by `seed`.
pub fn individual(campaign: &str, agency: &str, seed: u64) -> Value {
    let definition = sipas::survey::defaults::embedded_definitions()
        .unwrap()
        .into_iter()
        .find(|d| d.id == "sipas-individual")
        .unwrap();
    let mut answers = serde_json::Map::new();
    for (i, question) in definition.questions.iter().enumerate() {
        let pick = (seed.wrapping_mul(31).wrapping_add(i as u64 * 7)) as usize;
        let value = match question.kind {
            sipas::survey::model::QuestionKind::Scale => Value::from(1 + (pick % 5) as i64),
            sipas::survey::model::QuestionKind::SingleChoice => {
                Value::from(question.options[pick % question.options.len()].value.clone())
            }
            _ => continue,
        };
        answers.insert(question.id.clone(), value);
    }
    serde_json::json!({"campaign": campaign, "agency": agency, "respondent_type": "individual", "answers": answers})
}

/// The real binary serving on `port` against the test's database (killed by the caller).
pub fn spawn_binary(database: &TestDatabase, port: u16) -> std::process::Child {
    serve_command(database, port, "error").stderr(std::process::Stdio::null()).spawn().unwrap()
}

/// Starts the real binary as [`spawn_binary`] does, logging warnings and errors to `log`.
pub fn spawn_binary_logging(database: &TestDatabase, port: u16, log: &std::path::Path) -> std::process::Child {
    serve_command(database, port, "warn").stderr(std::fs::File::create(log).unwrap()).spawn().unwrap()
}

fn serve_command(database: &TestDatabase, port: u16, level: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sipas"));
    command
        .args(["--database", &database.url, "serve", "--bind", &format!("127.0.0.1:{port}")])
        .env_remove("DATABASE_URL")
        .env_remove("SIPAS_DATABASE_URL")
        .env("RUST_LOG", level)
        .current_dir(database.dir())
        .stdout(std::process::Stdio::null());
    command
}

/// Creates a partner key limited to `agency` with the command line; returns its secret.
pub fn cli_partner_key(database: &TestDatabase, agency: &str) -> String {
    let output = sipas(database, &["keys", "create", "--role", "partner", "--name", "desk", "--agency", agency]);
    stdout(&output).trim().to_owned()
}

/// Says that a test is skipped because something it needs is `missing` here, or fails it when
/// `variable` is `required` (as CI sets it).
pub fn skip_for_missing(variable: &str, missing: &str) {
    let required = std::env::var(variable).is_ok_and(|v| v == "required");
    assert!(!required, "{variable}=required, but {missing}");
    eprintln!("SKIPPED: {missing}");
}

/// Waits until `/readyz` answers 2xx (or fails after six seconds).
pub async fn wait_ready(client: &Client, base: &str) {
    for _ in 0..300 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the server did not become ready");
}

/// Migrates the test's database with the command line, creates an admin key and an open
/// `sipas-individual` campaign over Hà Nội; returns the key.
pub fn cli_campaign(database: &TestDatabase, id: &str) -> String {
    assert!(sipas(database, &["migrate"]).status.success());
    let token = stdout(&sipas(database, &["keys", "create", "--role", "admin", "--name", "cli"])).trim().to_owned();
    let created = sipas(
        database,
        &[
            "campaigns",
            "create",
            "--id",
            id,
            "--survey",
            "sipas-individual",
            "--title-vi",
            "Thử",
            "--title-en",
            "Test",
            "--agency",
            "01",
            "--opens-at",
            "2025-07-01T00:00:00Z",
            "--closes-at",
            "2099-01-01T00:00:00Z",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    token
}

/// A free local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
