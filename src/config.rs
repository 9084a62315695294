//! Settings: defaults that run as they are, overridden by an optional `sipas.toml`, then by
//! `SIPAS_*` environment variables, then by command-line flags. One typed struct, passed
//! explicitly, so that each test can run its own server with its own settings.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "human" | "text" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format `{other}`: use human or json")),
        }
    }
}

/// Everything sipas can be configured with.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Database URL: `sqlite://PATH` (default `sqlite://sipas.db`), `sqlite:PATH`, a plain path, or
    /// `postgres://…`. Environment: `SIPAS_DATABASE_URL` or `DATABASE_URL`.
    pub database_url: String,
    /// Address the HTTP server listens on. Environment: `SIPAS_BIND`.
    pub bind: String,
    /// Log format. Environment: `SIPAS_LOG_FORMAT` (`human` or `json`).
    pub log_format: LogFormat,
    /// Most database connections open at once. Environment: `SIPAS_POOL_SIZE`.
    pub pool_size: u32,
    /// Seconds a request waits for a database connection before it is answered 503.
    /// Environment: `SIPAS_POOL_TIMEOUT_SECONDS`.
    pub pool_timeout_seconds: u64,
    /// HTTP worker threads; `0` means one per core. Environment: `SIPAS_WORKERS`.
    pub workers: usize,
    /// Seconds an idle keep-alive connection is kept open. Above the idle timeout of a proxy or
    /// load balancer in front (nginx and cloud load balancers keep 60 s), so that the proxy never
    /// sends a request on a connection sipas is just closing (answered 502 to the client).
    /// Environment: `SIPAS_KEEP_ALIVE_SECONDS`.
    pub keep_alive_seconds: u64,
    /// Publish the shipped survey definitions and load Vietnam's agency registry at start.
    /// Environment: `SIPAS_LOAD_DEFAULTS`.
    pub load_defaults: bool,
    /// Most items in one `POST /api/v1/responses/batch`. Environment: `SIPAS_BATCH_MAX_ITEMS`.
    pub batch_max_items: usize,
    /// Days idempotency keys (and the results they replay) are kept.
    /// Environment: `SIPAS_IDEMPOTENCY_RETENTION_DAYS`.
    pub idempotency_retention_days: u32,
    /// Secret for the keyed hash of dossier identifiers (any text). When unset, a random secret is
    /// generated once and kept in the database, shared by every instance. Environment:
    /// `SIPAS_DOSSIER_SECRET`.
    pub dossier_secret: Option<String>,
    /// Base URL citizens reach the service at (links, QR codes, posters), without a trailing
    /// slash. When unset: `http://` and the bind address. Environment: `SIPAS_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// Completed submissions of open-link forms accepted per minute from one IP address. Generous,
    /// since a one-stop desk's kiosk or Wi-Fi puts many citizens behind one address; moving between
    /// pages never counts. Environment: `SIPAS_FORM_RATE_LIMIT`.
    pub form_rate_limit: u32,
    /// SMTP server for invitations, in lettre's URL form (`smtp://host:port`,
    /// `smtp://user:pass@host:587?tls=required`, `smtps://…`). Unset: invitations wait in the
    /// outbox. Environment: `SIPAS_SMTP_URL`.
    pub smtp_url: Option<String>,
    /// Sender of invitations (`Khảo sát SIPAS <khaosat@example.gov.vn>`). Environment:
    /// `SIPAS_MAIL_FROM`.
    pub mail_from: String,
    /// Days after a campaign closes before invitation addresses are erased. Environment:
    /// `SIPAS_INVITATION_RETENTION_DAYS`.
    pub invitation_retention_days: u32,
    /// First retry delay of a transiently failed mail, in seconds (doubled on every attempt).
    /// Environment: `SIPAS_MAIL_RETRY_SECONDS`.
    pub mail_retry_seconds: f64,
    /// Pause of the mail worker when the outbox is empty, in milliseconds. Environment:
    /// `SIPAS_MAIL_POLL_MS`.
    pub mail_poll_ms: u64,
    /// Most milliseconds between a response's commit and its addition to the tally rows (the
    /// writer adds many at once; statistics count a response from its commit either way).
    /// Environment: `SIPAS_TALLY_FOLD_MS`.
    pub tally_fold_ms: u64,
    /// Token a scraper presents (`Authorization: Bearer …`) to read `/metrics`; unset, the
    /// endpoint does not exist. Environment: `SIPAS_METRICS_TOKEN`.
    pub metrics_token: Option<String>,
}

impl Settings {
    /// The mail worker's configuration, when an SMTP server is configured.
    pub fn mail_config(
        &self,
        secret: Vec<u8>,
    ) -> Result<Option<crate::mail::worker::MailConfig>, crate::mail::worker::WorkerError> {
        let Some(smtp_url) = &self.smtp_url else { return Ok(None) };
        let from = self
            .mail_from
            .parse()
            .map_err(|e: lettre::address::AddressError| crate::mail::worker::WorkerError::From(e.to_string()))?;
        Ok(Some(crate::mail::worker::MailConfig {
            smtp_url: smtp_url.clone(),
            from,
            public_url: self.public_base(),
            secret,
            retry_base: std::time::Duration::from_secs_f64(self.mail_retry_seconds.clamp(0.0, 86_400.0)),
            poll: std::time::Duration::from_millis(self.mail_poll_ms.max(10)),
        }))
    }

    /// The public base URL, without a trailing slash.
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.bind),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: "sqlite://sipas.db".to_owned(),
            bind: "127.0.0.1:8080".to_owned(),
            log_format: LogFormat::Human,
            pool_size: 8,
            pool_timeout_seconds: 5,
            workers: 0,
            keep_alive_seconds: 75,
            load_defaults: true,
            batch_max_items: 1_000,
            idempotency_retention_days: 7,
            dossier_secret: None,
            public_url: None,
            form_rate_limit: 60,
            smtp_url: None,
            mail_from: "SIPAS <no-reply@localhost>".to_owned(),
            invitation_retention_days: 30,
            mail_retry_seconds: 60.0,
            mail_poll_ms: 2_000,
            tally_fold_ms: 250,
            metrics_token: None,
        }
    }
}

/// The settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An environment variable has a value of the wrong form.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Settings {
    /// Reads `file` (or `sipas.toml` in the working directory when it exists), then the
    /// environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let default_file = Path::new("sipas.toml");
        let file = file.or_else(|| default_file.exists().then_some(default_file));
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?
            }
            None => Self::default(),
        };
        settings.apply_env(|name| std::env::var(name).ok())?;
        Ok(settings)
    }

    /// Overrides fields from environment variables, read through `lookup`.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: ToString,
        {
            value.trim().parse().map_err(|e: T::Err| ConfigError::Env { name, message: e.to_string() })
        }
        if let Some(url) = lookup("SIPAS_DATABASE_URL").or_else(|| lookup("DATABASE_URL")) {
            self.database_url = url;
        }
        if let Some(value) = lookup("SIPAS_BIND") {
            self.bind = value;
        }
        if let Some(value) = lookup("SIPAS_LOG_FORMAT") {
            self.log_format = parse("SIPAS_LOG_FORMAT", &value)?;
        }
        if let Some(value) = lookup("SIPAS_POOL_SIZE") {
            self.pool_size = parse("SIPAS_POOL_SIZE", &value)?;
        }
        if let Some(value) = lookup("SIPAS_POOL_TIMEOUT_SECONDS") {
            self.pool_timeout_seconds = parse("SIPAS_POOL_TIMEOUT_SECONDS", &value)?;
        }
        if let Some(value) = lookup("SIPAS_WORKERS") {
            self.workers = parse("SIPAS_WORKERS", &value)?;
        }
        if let Some(value) = lookup("SIPAS_KEEP_ALIVE_SECONDS") {
            self.keep_alive_seconds = parse("SIPAS_KEEP_ALIVE_SECONDS", &value)?;
        }
        if let Some(value) = lookup("SIPAS_BATCH_MAX_ITEMS") {
            self.batch_max_items = parse("SIPAS_BATCH_MAX_ITEMS", &value)?;
        }
        if let Some(value) = lookup("SIPAS_IDEMPOTENCY_RETENTION_DAYS") {
            self.idempotency_retention_days = parse("SIPAS_IDEMPOTENCY_RETENTION_DAYS", &value)?;
        }
        if let Some(value) = lookup("SIPAS_DOSSIER_SECRET") {
            self.dossier_secret = Some(value);
        }
        if let Some(value) = lookup("SIPAS_PUBLIC_URL") {
            self.public_url = Some(value);
        }
        if let Some(value) = lookup("SIPAS_FORM_RATE_LIMIT") {
            self.form_rate_limit = parse("SIPAS_FORM_RATE_LIMIT", &value)?;
        }
        if let Some(value) = lookup("SIPAS_SMTP_URL") {
            self.smtp_url = Some(value);
        }
        if let Some(value) = lookup("SIPAS_MAIL_FROM") {
            self.mail_from = value;
        }
        if let Some(value) = lookup("SIPAS_INVITATION_RETENTION_DAYS") {
            self.invitation_retention_days = parse("SIPAS_INVITATION_RETENTION_DAYS", &value)?;
        }
        if let Some(value) = lookup("SIPAS_MAIL_RETRY_SECONDS") {
            self.mail_retry_seconds = parse("SIPAS_MAIL_RETRY_SECONDS", &value)?;
        }
        if let Some(value) = lookup("SIPAS_MAIL_POLL_MS") {
            self.mail_poll_ms = parse("SIPAS_MAIL_POLL_MS", &value)?;
        }
        if let Some(value) = lookup("SIPAS_TALLY_FOLD_MS") {
            self.tally_fold_ms = parse("SIPAS_TALLY_FOLD_MS", &value)?;
        }
        if let Some(value) = lookup("SIPAS_METRICS_TOKEN") {
            self.metrics_token = Some(value);
        }
        if let Some(value) = lookup("SIPAS_LOAD_DEFAULTS") {
            self.load_defaults = parse("SIPAS_LOAD_DEFAULTS", &value)?;
        }
        Ok(())
    }
}

/// Every setting with its environment variable and what it does, in the order of the example
/// file (`sipas config example` writes it; a test checks that it covers every field).
pub const SETTING_DOCS: [(&str, &str, &str); 20] = [
    (
        "database_url",
        "SIPAS_DATABASE_URL or DATABASE_URL",
        "sqlite://PATH, sqlite:PATH, a file path, or postgres://user@host/db",
    ),
    ("bind", "SIPAS_BIND", "address the HTTP server listens on"),
    (
        "public_url",
        "SIPAS_PUBLIC_URL",
        "base URL citizens reach the service at (links, QR codes, mails); unset: http:// and the bind address",
    ),
    ("log_format", "SIPAS_LOG_FORMAT", "human or json"),
    ("workers", "SIPAS_WORKERS", "HTTP worker threads; 0: one per core"),
    (
        "keep_alive_seconds",
        "SIPAS_KEEP_ALIVE_SECONDS",
        "seconds an idle connection is kept open; above the idle timeout of a proxy in front (often 60)",
    ),
    ("pool_size", "SIPAS_POOL_SIZE", "most database connections open at once"),
    ("pool_timeout_seconds", "SIPAS_POOL_TIMEOUT_SECONDS", "seconds a request waits for a connection before a 503"),
    ("load_defaults", "SIPAS_LOAD_DEFAULTS", "publish the shipped surveys and load Vietnam's agency registry at start"),
    ("batch_max_items", "SIPAS_BATCH_MAX_ITEMS", "most items in one POST /api/v1/responses/batch"),
    ("idempotency_retention_days", "SIPAS_IDEMPOTENCY_RETENTION_DAYS", "days idempotency keys are kept"),
    (
        "dossier_secret",
        "SIPAS_DOSSIER_SECRET",
        "secret of the dossier hashes, form tokens, invitation links and sessions; unset: generated once into the database",
    ),
    (
        "form_rate_limit",
        "SIPAS_FORM_RATE_LIMIT",
        "open-link form submissions accepted per minute from one address; 0: no limit",
    ),
    (
        "smtp_url",
        "SIPAS_SMTP_URL",
        "SMTP server for invitations (smtp://host:port, smtps://user:pass@host); unset: mails wait in the outbox",
    ),
    ("mail_from", "SIPAS_MAIL_FROM", "sender of invitations"),
    (
        "invitation_retention_days",
        "SIPAS_INVITATION_RETENTION_DAYS",
        "days after a campaign closes before invitation addresses are erased",
    ),
    ("mail_retry_seconds", "SIPAS_MAIL_RETRY_SECONDS", "first retry delay of a failed mail, doubled on every attempt"),
    ("mail_poll_ms", "SIPAS_MAIL_POLL_MS", "pause of the mail worker when the outbox is empty"),
    (
        "tally_fold_ms",
        "SIPAS_TALLY_FOLD_MS",
        "most milliseconds before committed responses are added to the tally rows",
    ),
    ("metrics_token", "SIPAS_METRICS_TOKEN", "bearer token for GET /metrics; unset: no metrics endpoint"),
];

/// An example `sipas.toml`: every setting with its default (unset ones commented out), what it
/// does and the environment variable that overrides it.
pub fn example_toml() -> String {
    let defaults = toml::Table::try_from(Settings::default()).unwrap_or_default();
    let mut text = String::from(
        "# sipas.toml: every setting with its default. Environment variables override the file,\n\
         # command-line flags override both. Unknown keys are refused.\n",
    );
    for (key, env, what) in SETTING_DOCS {
        text.push_str(&format!("\n# {what}\n# environment: {env}\n"));
        match defaults.get(key) {
            Some(value) => text.push_str(&format!("{key} = {value}\n")),
            None => text.push_str(&format!("# {key} = \"\"\n")),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_generated_from_the_settings() {
        let documented: Vec<&str> = SETTING_DOCS.iter().map(|(key, _, _)| *key).collect();
        // Every field is documented: a default serialised with every option set names them all.
        let full = Settings {
            dossier_secret: Some(String::new()),
            public_url: Some(String::new()),
            smtp_url: Some(String::new()),
            metrics_token: Some(String::new()),
            ..Settings::default()
        };
        let fields = toml::Table::try_from(full).unwrap();
        let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        let mut sorted = documented.clone();
        keys.sort_unstable();
        sorted.sort_unstable();
        assert_eq!(keys, sorted, "SETTING_DOCS and Settings disagree");
        // The example parses back to the defaults, and the shipped copy is current.
        let example = example_toml();
        assert_eq!(toml::from_str::<Settings>(&example).unwrap(), Settings::default());
        let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/sipas.example.toml"))
            .unwrap_or_default();
        assert_eq!(
            shipped, example,
            "deploy/sipas.example.toml is stale: run `sipas config example > deploy/sipas.example.toml`"
        );
    }

    #[test]
    fn environment_overrides_the_defaults() {
        let mut settings = Settings::default();
        let env = |name: &str| match name {
            "DATABASE_URL" => Some("postgres://h/db".to_owned()),
            "SIPAS_POOL_SIZE" => Some("3".to_owned()),
            "SIPAS_LOG_FORMAT" => Some("json".to_owned()),
            _ => None,
        };
        assert!(settings.apply_env(env).is_ok());
        assert_eq!(settings.database_url, "postgres://h/db");
        assert_eq!(settings.pool_size, 3);
        assert_eq!(settings.log_format, LogFormat::Json);
    }

    #[test]
    fn a_malformed_variable_is_named() {
        let mut settings = Settings::default();
        let error = settings.apply_env(|name| (name == "SIPAS_POOL_SIZE").then(|| "many".to_owned()));
        assert!(matches!(error, Err(ConfigError::Env { name: "SIPAS_POOL_SIZE", .. })));
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        assert!(toml::from_str::<Settings>("colour = 1").is_err());
        let parsed = toml::from_str::<Settings>("bind = \"0.0.0.0:80\"").ok();
        assert_eq!(parsed.map(|s| s.bind), Some("0.0.0.0:80".to_owned()));
    }
}
