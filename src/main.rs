//! The `sipas` command line: serve, migrate, manage definitions, agencies and keys.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use sipas::agency::import::{self, ImportError, ImportOptions};
use sipas::agency::{self, store as agency_store};
use sipas::app::{Application, prepare_database};
use sipas::audit::{Actor, audited};
use sipas::auth::{self, Role};
use sipas::campaign::{self, CampaignError, Channel, NewCampaign};
use sipas::config::Settings;
use sipas::db::{self, DatabaseTarget, DbConnection};
use sipas::intake::verify;
use sipas::survey::check::DefinitionError;
use sipas::survey::model::LocalizedText;
use sipas::survey::store::{self as survey_store, PublishError, PublishOutcome};
use sipas::survey::{SurveyDefinition, parse_definition};
use sipas::telemetry;

// glibc's allocator spent a fifth of the intake path's CPU in its slow paths (memory allocated by
// the HTTP workers and freed by the writer thread); mimalloc handles that pattern well.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sipas: satisfaction surveys of public administrative services, SIPAS-style.
#[derive(Debug, Parser)]
#[command(name = "sipas", version, about, long_about = None)]
struct Cli {
    /// Configuration file (default: sipas.toml in the working directory, if present).
    #[arg(long, global = true, env = "SIPAS_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH, sqlite:PATH, a file path, or postgres://… (overrides DATABASE_URL).
    #[arg(long, global = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (migrations run first).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080; env SIPAS_BIND).
        #[arg(long)]
        bind: Option<String>,
        /// Load the synthetic demo campaigns first (as `sipas demo` does) and show them.
        #[arg(long)]
        demo: bool,
    },
    /// Copy a whole database into a fresh one on another backend (SQLite to PostgreSQL, or back),
    /// then check the copy: row counts per table and every campaign's tallies.
    Copy {
        /// Source database URL.
        #[arg(long)]
        from: String,
        /// Target database URL (migrated here if needed; must hold no campaigns, keys or
        /// responses).
        #[arg(long)]
        to: String,
    },
    /// Print configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Create the demo campaigns with synthetic responses calibrated to the published SIPAS
    /// figures of 2022–2024 (idempotent: a complete round is left alone).
    Demo {
        /// Responses per province and round.
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(4..=100_000))]
        per_province: u32,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check, publish and list survey definitions.
    #[command(subcommand)]
    Defs(DefsCommand),
    /// Import and list agencies.
    #[command(subcommand)]
    Agencies(AgenciesCommand),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create and list campaigns.
    #[command(subcommand)]
    Campaigns(CampaignsCommand),
    /// Check the running tallies against the stored answers.
    #[command(subcommand)]
    Tallies(TalliesCommand),
    /// SIPAS estimates of a campaign (a table in the terminal, or JSON, CSV, XLSX).
    Stats(StatsArgs),
    /// Export a campaign's anonymous responses (CSV, NDJSON or XLSX), streamed.
    Export(ExportArgs),
    /// Queue invitations from a CSV file (email,agency[,language][,dossier]).
    Invite {
        /// Campaign id.
        #[arg(long)]
        campaign: String,
        /// The CSV file.
        file: PathBuf,
    },
    /// Run only the mail worker (outbox and reminders), for a process apart from `serve`.
    Worker,
    /// Erase invitation addresses of campaigns closed longer than the retention period.
    Purge,
    /// Write an online, consistent copy of the SQLite database (PostgreSQL: use pg_dump).
    Backup {
        /// The file to create (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print an example sipas.toml with every setting, its default and its environment variable.
    Example,
}

#[derive(Debug, Args)]
struct StatsArgs {
    /// Campaign id.
    #[arg(long)]
    campaign: String,
    /// Agency code (default: the top of the campaign's tree).
    #[arg(long)]
    agency: Option<String>,
    /// `children` (default) or `self`.
    #[arg(long, default_value = "children", value_parser = ["children", "self"])]
    scope: String,
    /// `mean_of_units` (default) or `pooled`.
    #[arg(long, default_value = "mean_of_units", value_parser = ["mean_of_units", "pooled"])]
    method: String,
    /// `none` (default) or `cells`.
    #[arg(long, default_value = "none", value_parser = ["none", "cells"])]
    weights: String,
    /// A breakdown question id or `respondent_type`.
    #[arg(long)]
    breakdown: Option<String>,
    /// An earlier campaign of the same survey to compare with.
    #[arg(long)]
    compare: Option<String>,
    /// Confidence level (default 0.95).
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// `table` (default), `json`, `csv` or `xlsx`.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv", "xlsx"])]
    format: String,
    /// Language of labels: `vi` (default) or `en`.
    #[arg(long, default_value = "vi", value_parser = ["vi", "en"])]
    lang: String,
    /// Write to this file instead of standard output (required for xlsx).
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// Campaign id.
    #[arg(long)]
    campaign: String,
    /// `csv` (default), `ndjson` or `xlsx`.
    #[arg(long, default_value = "csv", value_parser = ["csv", "ndjson", "xlsx"])]
    format: String,
    /// Only the responses of this agency and its subtree.
    #[arg(long)]
    agency: Option<String>,
    /// Write to this file instead of standard output (required for xlsx).
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum CampaignsCommand {
    /// Create a campaign.
    Create {
        /// Slug (lowercase letters, digits, '-').
        #[arg(long)]
        id: String,
        /// Survey id.
        #[arg(long)]
        survey: String,
        /// Survey version (default: the latest).
        #[arg(long)]
        version: Option<i32>,
        /// Title in Vietnamese.
        #[arg(long)]
        title_vi: String,
        /// Title in English.
        #[arg(long)]
        title_en: Option<String>,
        /// Agency code (with its subtree); repeat for several.
        #[arg(long = "agency", required = true)]
        agencies: Vec<String>,
        /// Opening instant (RFC 3339).
        #[arg(long)]
        opens_at: chrono::DateTime<chrono::Utc>,
        /// Closing instant (RFC 3339).
        #[arg(long)]
        closes_at: chrono::DateTime<chrono::Utc>,
        /// Channels (api, link, invitation); repeat for several (default: all).
        #[arg(long = "channel")]
        channels: Vec<String>,
        /// Minimum respondents per unit for estimates (default 30).
        #[arg(long)]
        min_n: Option<i32>,
    },
    /// List campaigns.
    List,
}

#[derive(Debug, Subcommand)]
enum TalliesCommand {
    /// Recompute tallies from the answers and name every difference (exit 1 when there is one).
    Verify {
        /// Only this campaign (default: all).
        #[arg(long)]
        campaign: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DefsCommand {
    /// Check definition files (a directory's *.toml, or single files) without publishing them.
    Check {
        /// Directories or files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Publish a definition file (identical content again is a no-op; changed content needs a new version).
    Publish {
        /// The TOML file.
        file: PathBuf,
    },
    /// List the published surveys.
    List,
}

#[derive(Debug, Subcommand)]
enum AgenciesCommand {
    /// Import agencies from a CSV file (level,code,name,division_type,parent_code[,name_en,valid_from,valid_to]).
    Import {
        /// The CSV file.
        file: PathBuf,
        /// First valid day for rows that give none (YYYY-MM-DD).
        #[arg(long)]
        valid_from: Option<NaiveDate>,
        /// Parent of rows with an empty parent_code (otherwise they become roots).
        #[arg(long)]
        under: Option<String>,
    },
    /// List agencies valid on a date.
    List(AgencyListArgs),
}

#[derive(Debug, Args)]
struct AgencyListArgs {
    /// Only the children of this agency.
    #[arg(long)]
    parent: Option<String>,
    /// Only this level.
    #[arg(long)]
    level: Option<String>,
    /// Text in the name or code (diacritics optional).
    #[arg(long)]
    q: Option<String>,
    /// Date (YYYY-MM-DD; default today).
    #[arg(long)]
    at: Option<NaiveDate>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once, alone, on standard output.
    Create {
        /// admin, analyst or partner.
        #[arg(long)]
        role: Role,
        /// Who or what the key is for.
        #[arg(long)]
        name: String,
        /// Agency code the key is limited to (with its subtree); repeat for several.
        #[arg(long = "agency")]
        agencies: Vec<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key at once.
    Revoke {
        /// The key's id.
        id: i64,
    },
}

/// A command failure: the message and the exit code.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn new(message: impl std::fmt::Display) -> Self {
        Self { message: message.to_string(), code: 1 }
    }

    fn usage(message: impl std::fmt::Display) -> Self {
        Self { message: message.to_string(), code: 2 }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("sipas: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let mut settings = Settings::load(cli.config.as_deref()).map_err(Failure::usage)?;
    if let Some(database) = cli.database {
        settings.database_url = database;
    }
    telemetry::init(settings.log_format);
    match cli.command {
        Command::Serve { bind, demo } => {
            if let Some(bind) = bind {
                settings.bind = bind;
            }
            if demo {
                demo_command(&settings, DEMO_PER_PROVINCE)?;
            }
            serve(settings)
        }
        Command::Copy { from, to } => copy_command(&from, &to),
        Command::Config(ConfigCommand::Example) => {
            print!("{}", sipas::config::example_toml());
            Ok(())
        }
        Command::Demo { per_province } => demo_command(&settings, per_province as usize),
        Command::Migrate => {
            let target = target(&settings)?;
            let preparation = prepare_database(&target, settings.load_defaults).map_err(Failure::new)?;
            eprintln!("{target}: {} migration(s) applied", preparation.migrations_applied);
            Ok(())
        }
        Command::Defs(DefsCommand::Check { paths }) => check_definitions(&paths),
        Command::Defs(DefsCommand::Publish { file }) => {
            let definition = read_definition(&file).map_err(Failure::new)?;
            let target = format!("{}@{}", definition.id, definition.version);
            let published = |conn: &mut DbConnection| {
                audited(
                    conn,
                    Actor::CommandLine,
                    "definition.published",
                    |conn| survey_store::publish(conn, &definition),
                    |outcome| (*outcome == PublishOutcome::Published).then(|| (target.clone(), serde_json::json!({}))),
                )
            };
            with_database(&settings, |conn| match published(conn) {
                Ok(PublishOutcome::Published) => {
                    eprintln!("published {} version {}", definition.id, definition.version);
                    Ok(())
                }
                Ok(PublishOutcome::Unchanged) => {
                    eprintln!(
                        "{} version {} is already published with this content: nothing changed",
                        definition.id, definition.version
                    );
                    Ok(())
                }
                Err(PublishError::VersionConflict { survey, version }) => Err(Failure::new(format!(
                    "{}: survey `{survey}` version {version} is already published with different content; give it a new version",
                    file.display()
                ))),
                Err(PublishError::Db(e)) => Err(Failure::new(e)),
            })
        }
        Command::Defs(DefsCommand::List) => with_database(&settings, |conn| {
            let surveys = survey_store::list(conn).map_err(Failure::new)?;
            println!("{:<24} {:>7}  TITLE", "SURVEY", "VERSION");
            for survey in surveys {
                println!("{:<24} {:>7}  {}", survey.id, survey.version, survey.title.get("vi"));
            }
            Ok(())
        }),
        Command::Agencies(AgenciesCommand::Import { file, valid_from, under }) => {
            let bytes = std::fs::read(&file).map_err(|e| Failure::new(format!("{}: {e}", file.display())))?;
            with_database(&settings, |conn| {
                let rows = import::parse_csv(&bytes).map_err(|e| import_failure(&file, e))?;
                let options = ImportOptions { default_valid_from: valid_from, top_parent: under };
                let report = import::import(conn, &rows, &options).map_err(|e| import_failure(&file, e))?;
                eprintln!(
                    "{}: {} created, {} updated, {} unchanged",
                    file.display(),
                    report.created,
                    report.updated,
                    report.unchanged
                );
                Ok(())
            })
        }
        Command::Agencies(AgenciesCommand::List(args)) => with_database(&settings, |conn| list_agencies(conn, args)),
        Command::Keys(KeysCommand::Create { role, name, agencies }) => with_database(&settings, |conn| {
            let key = audited(
                conn,
                Actor::CommandLine,
                "key.created",
                |conn| auth::create_key(conn, &name, role, &agencies),
                |k| {
                    Some((
                        k.id.to_string(),
                        serde_json::json!({"name": name, "role": role.as_str(), "agencies": agencies}),
                    ))
                },
            )
            .map_err(Failure::new)?;
            eprintln!("created {role} key {} for `{name}`; the secret below is shown only now:", key.id);
            println!("{}", key.secret);
            Ok(())
        }),
        Command::Keys(KeysCommand::List) => with_database(&settings, |conn| {
            let keys = auth::list_keys(conn).map_err(Failure::new)?;
            println!("{:>5}  {:<8} {:<10} {:<20} NAME", "ID", "ROLE", "STATUS", "AGENCIES");
            for key in keys {
                let status = if key.revoked_at.is_some() { "revoked" } else { "active" };
                println!("{:>5}  {:<8} {:<10} {:<20} {}", key.id, key.role, status, key.agencies.join(","), key.name);
            }
            Ok(())
        }),
        Command::Campaigns(CampaignsCommand::Create {
            id,
            survey,
            version,
            title_vi,
            title_en,
            agencies,
            opens_at,
            closes_at,
            channels,
            min_n,
        }) => {
            let mut title = std::collections::BTreeMap::from([("vi".to_owned(), title_vi)]);
            if let Some(en) = title_en {
                title.insert("en".to_owned(), en);
            }
            let channels = if channels.is_empty() {
                None
            } else {
                let parsed: Result<Vec<Channel>, _> = channels
                    .iter()
                    .map(|c| serde_json::from_value::<Channel>(serde_json::Value::from(c.as_str())))
                    .collect();
                Some(parsed.map_err(|_| Failure::usage("channels are api, link or invitation"))?)
            };
            let new = NewCampaign {
                id,
                survey,
                version,
                title: LocalizedText(title),
                agencies,
                opens_at,
                closes_at,
                channels,
                min_n,
                mail: None,
            };
            let created = |conn: &mut DbConnection| {
                audited(
                    conn,
                    Actor::CommandLine,
                    "campaign.created",
                    |conn| campaign::create(conn, &new),
                    |c| {
                        Some((
                            c.id.clone(),
                            serde_json::json!({"survey": c.survey, "version": c.version, "agencies": c.agencies}),
                        ))
                    },
                )
            };
            with_database(&settings, |conn| match created(conn) {
                Ok(created) => {
                    eprintln!("created campaign {} on {} version {}", created.id, created.survey, created.version);
                    Ok(())
                }
                Err(CampaignError::Invalid(problems)) => Err(Failure::new(
                    problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("\n"),
                )),
                Err(other) => Err(Failure::new(other)),
            })
        }
        Command::Campaigns(CampaignsCommand::List) => with_database(&settings, |conn| {
            let campaigns = campaign::list(conn).map_err(Failure::new)?;
            println!("{:<24} {:<20} {:>7} {:>10}  OPENS → CLOSES", "CAMPAIGN", "SURVEY", "VERSION", "RESPONSES");
            for c in campaigns {
                println!(
                    "{:<24} {:<20} {:>7} {:>10}  {} → {}",
                    c.id,
                    c.survey,
                    c.version,
                    c.responses,
                    c.opens_at.to_rfc3339(),
                    c.closes_at.to_rfc3339()
                );
            }
            Ok(())
        }),
        Command::Stats(args) => with_database(&settings, |conn| stats_command(conn, args)),
        Command::Invite { campaign, file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| Failure::new(format!("{}: {e}", file.display())))?;
            with_database(&settings, |conn| invite_command(conn, &settings, &campaign, &file, &text))
        }
        Command::Worker => worker_command(settings),
        Command::Backup { to } => backup_command(&settings, &to),
        Command::Purge => with_database(&settings, |conn| {
            let days = settings.invitation_retention_days;
            let erased = audited(
                conn,
                Actor::CommandLine,
                "purge.run",
                |conn| sipas::mail::purge(conn, days),
                |erased| {
                    Some(("invitations".to_owned(), serde_json::json!({"erased": erased, "retention_days": days})))
                },
            )
            .map_err(Failure::new)?;
            eprintln!(
                "{erased} invitation(s) erased (campaigns closed more than {} days ago)",
                settings.invitation_retention_days
            );
            Ok(())
        }),
        Command::Export(args) => with_database(&settings, |conn| export_command(conn, args)),
        Command::Tallies(TalliesCommand::Verify { campaign: only }) => with_database(&settings, |conn| {
            let ids: Vec<String> = match only {
                Some(id) => vec![id],
                None => campaign::list(conn).map_err(Failure::new)?.into_iter().map(|c| c.id).collect(),
            };
            let mut differences = 0;
            for id in ids {
                let verification =
                    verify::verify_campaign(conn, &id).map_err(|e| Failure::new(format!("{id}: {e}")))?;
                for difference in &verification.differences {
                    println!("{id}: {difference}");
                }
                differences += verification.differences.len();
                eprintln!(
                    "{id}: {} responses recounted, {} tally rows compared, {} difference(s)",
                    verification.responses,
                    verification.rows,
                    verification.differences.len()
                );
            }
            if differences == 0 {
                Ok(())
            } else {
                Err(Failure::new(format!("{differences} difference(s) between tallies and answers")))
            }
        }),
        Command::Keys(KeysCommand::Revoke { id }) => with_database(&settings, |conn| {
            let revoked = audited(
                conn,
                Actor::CommandLine,
                "key.revoked",
                |conn| auth::revoke_key(conn, id),
                |found| found.then(|| (id.to_string(), serde_json::json!({}))),
            );
            if revoked.map_err(Failure::new)? {
                eprintln!("key {id} revoked");
                Ok(())
            } else {
                Err(Failure::new(format!("no key {id}")))
            }
        }),
    }
}

fn target(settings: &Settings) -> Result<DatabaseTarget, Failure> {
    DatabaseTarget::parse(&settings.database_url).map_err(Failure::usage)
}

/// Opens the database prepared for use (migrated, with the shipped data) and runs `work`.
fn with_database<T>(
    settings: &Settings,
    work: impl FnOnce(&mut DbConnection) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let target = target(settings)?;
    prepare_database(&target, settings.load_defaults).map_err(Failure::new)?;
    let mut conn = db::connect(&target).map_err(Failure::new)?;
    work(&mut conn)
}

fn serve(settings: Settings) -> Result<(), Failure> {
    target(&settings)?;
    let runtime = actix_web::rt::System::new();
    runtime.block_on(async move {
        let bind = settings.bind.clone();
        let application = Application::build(settings).await.map_err(Failure::new)?;
        tracing::info!(address = %bind, port = application.port(), "sipas listening");
        application.run_until_stopped().await.map_err(Failure::new)
    })
}

fn read_definition(path: &Path) -> Result<SurveyDefinition, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_definition(&text).map_err(|e| match e {
        DefinitionError::Syntax(message) => format!("{}: {}", path.display(), message.trim()),
        DefinitionError::Invalid(problems) => {
            problems.iter().map(|p| format!("{}: {p}", path.display())).collect::<Vec<_>>().join("\n")
        }
    })
}

fn check_definitions(paths: &[PathBuf]) -> Result<(), Failure> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut failures = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for file in &files {
        match read_definition(file) {
            Ok(definition) => {
                let key = (definition.id.clone(), definition.version);
                if let Some(other) = seen.insert(key, file.clone()) {
                    failures.push(format!(
                        "{}: survey `{}` version {} is also defined in {}",
                        file.display(),
                        definition.id,
                        definition.version,
                        other.display()
                    ));
                } else {
                    eprintln!(
                        "{}: ok ({} version {}, {} questions)",
                        file.display(),
                        definition.id,
                        definition.version,
                        definition.questions.len()
                    );
                }
            }
            Err(message) => failures.push(message),
        }
    }
    if files.is_empty() {
        return Err(Failure::new("no definition files found"));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!("{} file(s) with problems:\n{}", failures.len(), failures.join("\n"))))
    }
}

fn import_failure(file: &Path, error: ImportError) -> Failure {
    match error {
        ImportError::Rows(problems) => Failure::new(format!(
            "{}: {} bad row(s), nothing imported:\n{}",
            file.display(),
            problems.len(),
            problems.iter().map(|p| format!("{}:{}", file.display(), p)).collect::<Vec<_>>().join("\n")
        )),
        ImportError::Db(e) => Failure::new(e),
    }
}

fn list_agencies(conn: &mut DbConnection, args: AgencyListArgs) -> Result<(), Failure> {
    let at = args.at.unwrap_or_else(agency::today);
    let parent = match &args.parent {
        Some(code) => Some(
            agency_store::resolve(conn, code, at)
                .map_err(Failure::new)?
                .ok_or_else(|| Failure::new(format!("no agency `{code}` on {at}")))?
                .agency_id(),
        ),
        None => None,
    };
    let mut filter =
        agency_store::AgencyFilter { at, parent, level: args.level, text: args.q, after: None, limit: 1_000 };
    println!("{:<8} {:<10} NAME", "CODE", "LEVEL");
    loop {
        let page = agency_store::list(conn, &filter).map_err(Failure::new)?;
        for agency in &page {
            println!("{:<8} {:<10} {}", agency.code, agency.level, agency.name_vi);
        }
        match page.last() {
            Some(last) if page.len() as i64 == filter.limit => {
                filter.after = Some(agency_store::ListPosition { code: last.code.clone(), id: last.id });
            }
            _ => break,
        }
    }
    Ok(())
}

/// Parses a command-line word into one of the API's enums (same spelling as the query string).
fn word<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Failure> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(Failure::usage)
}

fn output_writer(path: Option<&Path>) -> Result<Box<dyn std::io::Write + Send>, Failure> {
    match path {
        Some(path) => std::fs::File::create(path)
            .map(|f| Box::new(std::io::BufWriter::new(f)) as Box<dyn std::io::Write + Send>)
            .map_err(|e| Failure::new(format!("{}: {e}", path.display()))),
        None => Ok(Box::new(std::io::BufWriter::new(std::io::stdout()))),
    }
}

fn stats_command(conn: &mut DbConnection, args: StatsArgs) -> Result<(), Failure> {
    use sipas::report::{self, ReportError, StatsRequest};
    let confidence = sipas::stats::Confidence::new(args.confidence)
        .filter(|c| c.level <= 0.999)
        .ok_or_else(|| Failure::usage(format!("--confidence {} is not between 0.5 and 0.999", args.confidence)))?;
    if args.format == "xlsx" && args.output.is_none() {
        return Err(Failure::usage("--format xlsx needs --output FILE"));
    }
    let request = StatsRequest {
        agency: args.agency,
        scope: word(&args.scope)?,
        rollup: word(&args.method)?,
        weights: word(&args.weights)?,
        breakdown: args.breakdown,
        compare: args.compare,
        confidence,
        language: args.lang.clone(),
        // The command line runs with the database's own rights.
        limited_to: None,
    };
    let cache = sipas::campaign::context::CampaignCache::default();
    let report = report::stats(conn, &cache, &args.campaign, &request).map_err(|e| match e {
        ReportError::Db(db) => Failure::new(db),
        other => Failure::usage(other),
    })?;
    let mut out = output_writer(args.output.as_deref())?;
    let written = match args.format.as_str() {
        "json" => serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::other),
        "csv" => report::export::stats_csv(&report).map_err(std::io::Error::other).and_then(|b| out.write_all(&b)),
        "xlsx" => report::export::stats_xlsx(&report, &args.lang)
            .map_err(std::io::Error::other)
            .and_then(|b| out.write_all(&b)),
        _ => out.write_all(stats_table(&report).as_bytes()),
    };
    written.and_then(|_| out.flush()).map_err(|e| Failure::new(format!("writing the report: {e}")))
}

/// A terminal table: one row per unit with the index, its interval and the rank, then the
/// components (or elements) rounded for display.
fn stats_table(report: &sipas::report::output::StatsReport) -> String {
    use std::fmt::Write;
    let round = |value: Option<f64>| value.map_or_else(|| "—".to_owned(), |v| format!("{v:.2}"));
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{} ({} v{}), roll-up {}, weights {}, {}% intervals",
        report.title,
        report.survey,
        report.version,
        report.method.rollup,
        report.method.weights,
        report.method.confidence * 100.0
    );
    let columns: Vec<String> = report
        .parent
        .iter()
        .chain(&report.units)
        .next()
        .map(|u| {
            let figures = &u.figures;
            let list = if figures.components.is_empty() { &figures.elements } else { &figures.components };
            list.iter().map(|m| m.id.chars().take(12).collect()).collect()
        })
        .unwrap_or_default();
    let _ = write!(text, "{:<8} {:<30} {:>7} {:>7} {:>15} {:>5}", "CODE", "NAME", "N", "INDEX", "INTERVAL", "RANK");
    for column in &columns {
        let _ = write!(text, " {column:>12}");
    }
    text.push('\n');
    for (role, unit) in report.parent.iter().map(|p| ("=", p)).chain(report.units.iter().map(|u| (" ", u))) {
        let f = &unit.figures;
        let name: String = unit.agency.name.chars().take(29).collect();
        let interval = match (f.index.ci_low, f.index.ci_high) {
            (Some(low), Some(high)) => format!("{low:.2}–{high:.2}"),
            _ if f.suppressed => "suppressed".to_owned(),
            _ => "—".to_owned(),
        };
        let rank = unit.rank.map_or_else(String::new, |r| r.to_string());
        let _ = write!(
            text,
            "{role}{:<7} {name:<30} {:>7} {:>7} {interval:>15} {rank:>5}",
            unit.agency.code,
            f.n,
            round(f.index.estimate)
        );
        let list = if f.components.is_empty() { &f.elements } else { &f.components };
        for m in list {
            let _ = write!(text, " {:>12}", round(m.estimate));
        }
        text.push('\n');
    }
    text
}

fn export_command(conn: &mut DbConnection, args: ExportArgs) -> Result<(), Failure> {
    use sipas::report::microdata::{self, MicrodataFormat};
    let format: MicrodataFormat = word(&args.format)?;
    if format == MicrodataFormat::Xlsx && args.output.is_none() {
        return Err(Failure::usage("--format xlsx needs --output FILE"));
    }
    let context = sipas::campaign::context::CampaignContext::load(conn, &args.campaign)
        .map_err(Failure::new)?
        .ok_or_else(|| Failure::usage(format!("no campaign `{}`", args.campaign)))?;
    let agencies = match &args.agency {
        None => None,
        Some(code) => {
            let node = context.tree.find(code).ok_or_else(|| {
                Failure::usage(format!("agency `{code}` is not part of campaign `{}`", args.campaign))
            })?;
            Some(microdata::subtree(&context, node.id))
        }
    };
    let total = u64::try_from(context.campaign.responses).unwrap_or(0);
    let progress = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} responses, {per_sec}, {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut out = output_writer(args.output.as_deref())?;
    let count = microdata::export_responses(conn, &context, agencies.as_ref(), format, &mut out, &mut |n| {
        progress.set_position(n)
    })
    .and_then(|n| out.flush().map(|_| n).map_err(Into::into))
    .map_err(Failure::new)?;
    progress.finish_and_clear();
    eprintln!("{count} responses exported");
    Ok(())
}

fn mail_secret(conn: &mut DbConnection, settings: &Settings) -> Result<Vec<u8>, Failure> {
    match &settings.dossier_secret {
        Some(secret) => Ok(secret.clone().into_bytes()),
        None => db::server_secret(conn, "dossier").map_err(Failure::new),
    }
}

fn invite_command(
    conn: &mut DbConnection,
    settings: &Settings,
    campaign: &str,
    file: &Path,
    text: &str,
) -> Result<(), Failure> {
    let context = sipas::campaign::context::CampaignContext::load(conn, campaign)
        .map_err(Failure::new)?
        .ok_or_else(|| Failure::usage(format!("no campaign `{campaign}`")))?;
    let rows = sipas::mail::parse_csv(text).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("{}: {}: {}", p.row, p.field, p.message)).collect();
        Failure::usage(format!("{}:\n{}", file.display(), lines.join("\n")))
    })?;
    let principal = auth::Principal { key_id: 0, role: Role::Admin, scope: Vec::new() };
    let secret = mail_secret(conn, settings)?;
    let report = sipas::mail::create(conn, &context, &rows, &principal, &secret).map_err(Failure::new)?;
    for problem in &report.refused {
        eprintln!("{}: {}: {}: {}", file.display(), problem.row, problem.field, problem.message);
    }
    eprintln!("{} queued, {} already invited, {} refused", report.queued, report.duplicates, report.refused.len());
    if report.queued == 0 && !report.refused.is_empty() { Err(Failure::new("nothing was queued")) } else { Ok(()) }
}

fn worker_command(settings: Settings) -> Result<(), Failure> {
    let target = target(&settings)?;
    prepare_database(&target, false).map_err(Failure::new)?;
    let options = db::PoolOptions {
        max_size: settings.pool_size.max(2),
        connection_timeout: std::time::Duration::from_secs(settings.pool_timeout_seconds),
    };
    let pool = db::build_pool(&target, &options).map_err(Failure::new)?;
    let mut conn = pool.get().map_err(Failure::new)?;
    let secret = mail_secret(&mut conn, &settings)?;
    drop(conn);
    let config = settings
        .mail_config(secret)
        .map_err(Failure::usage)?
        .ok_or_else(|| Failure::usage("set SIPAS_SMTP_URL (or smtp_url in sipas.toml) to run the mail worker"))?;
    let runtime = actix_web::rt::System::new();
    runtime.block_on(async move {
        let campaigns = std::sync::Arc::new(sipas::campaign::context::CampaignCache::default());
        sipas::mail::worker::run(pool, campaigns, config).await.map_err(Failure::new)
    })
}

/// `VACUUM INTO` writes a consistent snapshot while the service keeps running (readers and the
/// writer are not blocked for its duration beyond SQLite's usual locking).
fn copy_command(from: &str, to: &str) -> Result<(), Failure> {
    let source = DatabaseTarget::parse(from).map_err(Failure::usage)?;
    let destination = DatabaseTarget::parse(to).map_err(Failure::usage)?;
    if source.to_string() == destination.to_string() {
        return Err(Failure::usage("--from and --to name the same database"));
    }
    // Both at this version's schema; the target without the shipped data (the source's is copied).
    prepare_database(&source, false).map_err(Failure::new)?;
    prepare_database(&destination, false).map_err(Failure::new)?;
    let mut from_conn = db::connect(&source).map_err(Failure::new)?;
    let mut to_conn = db::connect(&destination).map_err(Failure::new)?;
    let started = std::time::Instant::now();
    let report = db::copy::copy_database(&mut from_conn, &mut to_conn).map_err(Failure::new)?;
    let mut mismatches = Vec::new();
    for (table, copied) in &report {
        let (in_source, in_target) = (
            db::copy::count(&mut from_conn, table).map_err(Failure::new)?,
            db::copy::count(&mut to_conn, table).map_err(Failure::new)?,
        );
        eprintln!("{table}: {copied} row(s)");
        if in_target != in_source {
            mismatches.push(format!("{table}: {in_source} in the source, {in_target} in the copy"));
        }
    }
    for campaign in campaign::list(&mut to_conn).map_err(Failure::new)? {
        let verification = verify::verify_campaign(&mut to_conn, &campaign.id).map_err(Failure::new)?;
        mismatches.extend(verification.differences.iter().map(|d| format!("{}: {d}", campaign.id)));
    }
    if !mismatches.is_empty() {
        return Err(Failure::new(format!("the copy differs from the source:\n{}", mismatches.join("\n"))));
    }
    eprintln!(
        "{source} copied to {destination} in {:.1} s; row counts and tallies checked",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Responses per province and round that `serve --demo` loads.
const DEMO_PER_PROVINCE: usize = 600;

fn demo_command(settings: &Settings, per_province: usize) -> Result<(), Failure> {
    with_database(settings, |conn| {
        let secret = match &settings.dossier_secret {
            Some(secret) => secret.clone().into_bytes(),
            None => db::server_secret(conn, "dossier").map_err(Failure::new)?,
        };
        let cache = sipas::campaign::context::CampaignCache::default();
        let started = std::time::Instant::now();
        let outcomes = sipas::demo::load(conn, &cache, &secret, per_province).map_err(Failure::new)?;
        for outcome in &outcomes {
            eprintln!(
                "{}: {} synthetic response(s) written, {} in all",
                outcome.campaign, outcome.written, outcome.total
            );
        }
        let base = settings.public_base();
        eprintln!(
            "demo data ready in {:.1} s; with the server running, open {base}/results/{}",
            started.elapsed().as_secs_f64(),
            sipas::demo::ROUNDS[sipas::demo::ROUNDS.len() - 1].id
        );
        Ok(())
    })
}

fn backup_command(settings: &Settings, to: &Path) -> Result<(), Failure> {
    let target = target(settings)?;
    if matches!(target, DatabaseTarget::Postgres(_)) {
        return Err(Failure::usage("for PostgreSQL use pg_dump (and WAL archiving for point-in-time recovery)"));
    }
    if to.exists() {
        return Err(Failure::usage(format!("{} exists: choose a new file", to.display())));
    }
    let path = to.to_str().ok_or_else(|| Failure::usage("the backup path is not UTF-8"))?;
    with_database(settings, |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!("VACUUM INTO '{}'", path.replace('\'', "''")))
            .execute(conn)
            .map_err(|e| Failure::new(format!("backup to {}: {e}", to.display())))?;
        let size = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
        eprintln!("{}: {size} bytes, a consistent copy", to.display());
        Ok(())
    })
}
