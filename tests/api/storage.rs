use std::collections::BTreeMap;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use sipas::db::{self, DatabaseTarget, DbConnection};

use crate::helpers::{TestDatabase, postgres_url};

#[derive(QueryableByName, Debug)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Integer)]
    not_null: i32,
}

/// Maps each backend's type names onto one family, so that the comparison is about meaning.
fn family(data_type: &str) -> &'static str {
    match data_type.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "smallint" => "integer",
        "text" | "character varying" => "text",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "date" => "date",
        "boolean" => "boolean",
        "double precision" | "real" | "double" => "float",
        "blob" | "bytea" => "binary",
        _ => "other",
    }
}

fn columns(conn: &mut DbConnection) -> BTreeMap<(String, String), (&'static str, bool)> {
    let rows: Vec<ColumnRow> = match conn {
        DbConnection::Sqlite(sqlite) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
                    (p.\"notnull\" OR p.pk > 0) AS not_null \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations'",
        )
        .load(sqlite)
        .unwrap(),
        DbConnection::Postgres(pg) => diesel::sql_query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name, data_type::text AS data_type, \
                    (is_nullable = 'NO')::int AS not_null \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name <> '__diesel_schema_migrations'",
        )
        .load(pg)
        .unwrap(),
    };
    rows.into_iter().map(|r| ((r.table_name, r.column_name), (family(&r.data_type), r.not_null != 0))).collect()
}

#[test]
fn sqlite_and_postgres_migrations_produce_the_same_tables_and_columns() {
    let Some(_) = postgres_url() else {
        eprintln!("schema parity needs SIPAS_TEST_DATABASE_URL=postgres://…; it runs in CI's PostgreSQL pass");
        return;
    };
    let postgres = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_target = DatabaseTarget::Sqlite(dir.path().join("parity.db"));
    let mut sqlite = db::connect(&sqlite_target).unwrap();
    db::run_migrations(&mut sqlite).unwrap();
    let mut pg = postgres.connect();
    db::run_migrations(&mut pg).unwrap();
    let sqlite_columns = columns(&mut sqlite);
    let pg_columns = columns(&mut pg);
    assert!(!sqlite_columns.is_empty());
    assert_eq!(sqlite_columns, pg_columns);
}

#[derive(QueryableByName)]
struct Pragma {
    #[diesel(sql_type = Text)]
    value: String,
}

#[test]
fn sqlite_connections_are_durable_and_enforce_foreign_keys() {
    let database = TestDatabase::new();
    if database.is_postgres() {
        return;
    }
    let mut conn = database.connect();
    let DbConnection::Sqlite(sqlite) = &mut conn else { unreachable!() };
    let pragma = |sqlite: &mut diesel::SqliteConnection, name: &str| {
        let column = if name == "busy_timeout" { "timeout" } else { name };
        diesel::sql_query(format!("SELECT CAST({column} AS TEXT) AS value FROM pragma_{name}"))
            .get_result::<Pragma>(sqlite)
            .unwrap()
            .value
    };
    assert_eq!(pragma(sqlite, "journal_mode"), "wal");
    assert_eq!(pragma(sqlite, "synchronous"), "2", "synchronous=FULL");
    assert_eq!(pragma(sqlite, "foreign_keys"), "1");
    assert_eq!(pragma(sqlite, "busy_timeout"), "5000");
}

#[test]
fn migrations_run_once_and_report_nothing_pending() {
    let database = TestDatabase::new();
    let mut conn = database.connect();
    assert!(db::run_migrations(&mut conn).unwrap() >= 1);
    assert_eq!(db::run_migrations(&mut conn).unwrap(), 0);
    assert!(db::is_migrated(&mut conn).unwrap());
}

/// Instances started together against one database (a rollout of several replicas) apply each
/// migration and load the shipped data once, and all of them start.
#[test]
fn processes_starting_together_migrate_once() {
    let database = TestDatabase::new();
    let runs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3).map(|_| scope.spawn(|| crate::helpers::sipas(&database, &["migrate"]))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut applied = 0;
    for run in &runs {
        let stderr = crate::helpers::stderr(run);
        assert!(run.status.success(), "{stderr}");
        let count: usize = stderr
            .lines()
            .find_map(|l| l.split(": ").nth(1)?.strip_suffix(" migration(s) applied")?.parse().ok())
            .unwrap_or_else(|| panic!("{stderr}"));
        applied += count;
    }
    let migrations = std::fs::read_dir("migrations/sqlite").unwrap().count();
    assert_eq!(applied, migrations, "each migration applied by exactly one process");
    let mut conn = database.connect();
    assert_eq!(sipas::agency::store::count(&mut conn).unwrap(), 1 + 34 + 3_321 + 63);
    let surveys = sipas::survey::store::list(&mut conn).unwrap();
    assert_eq!(
        surveys.len(),
        std::fs::read_dir("survey-defs")
            .unwrap()
            .filter(|e| { e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml") })
            .count()
    );
}

/// Writes that read before they write (a key's agencies, a campaign's survey) wait for another
/// connection's write to end instead of failing: in SQLite a transaction that read first cannot
/// take the write lock once another connection has committed after its read ("database is
/// locked" at once, without the busy timeout), so these take the lock when they begin.
#[test]
fn writes_that_read_first_wait_for_another_writer() {
    let database = TestDatabase::new();
    if database.is_postgres() {
        return;
    }
    let migrated = crate::helpers::sipas(&database, &["migrate"]);
    assert!(migrated.status.success(), "{}", crate::helpers::stderr(&migrated));
    let new_campaign: sipas::campaign::NewCampaign = serde_json::from_value(serde_json::json!({
        "id": "waits",
        "survey": "sipas-individual",
        "title": {"vi": "Chờ", "en": "Waits"},
        "agencies": ["01"],
        "opens_at": "2026-01-01T00:00:00Z",
        "closes_at": "2026-12-31T00:00:00Z",
    }))
    .unwrap();
    type Write = Box<dyn FnOnce(&mut DbConnection) -> Result<(), String> + Send>;
    let writes: Vec<(&str, Write)> = vec![
        (
            "a key limited to a province",
            Box::new(|conn| {
                let scope = ["01".to_owned()];
                sipas::auth::create_key(conn, "waits", sipas::auth::Role::Analyst, &scope)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
        ),
        (
            "a campaign",
            Box::new(move |conn| sipas::campaign::create(conn, &new_campaign).map(drop).map_err(|e| e.to_string())),
        ),
    ];
    for (index, (what, write)) in writes.into_iter().enumerate() {
        let mut other = database.connect();
        other.batch_execute("BEGIN IMMEDIATE").unwrap();
        diesel::sql_query(format!("INSERT INTO server_secrets (name, value, created_at) VALUES ('other writer {index}', 'x', CURRENT_TIMESTAMP)"))
            .execute(&mut other)
            .unwrap();
        let mut conn = database.connect();
        let writer = std::thread::spawn(move || write(&mut conn));
        std::thread::sleep(std::time::Duration::from_millis(300));
        other.batch_execute("COMMIT").unwrap();
        writer.join().unwrap().unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}
