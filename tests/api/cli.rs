use crate::helpers::{TestDatabase, sipas, stderr, stdout};

#[test]
fn an_unsupported_database_scheme_is_a_one_line_usage_error() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sipas"))
        .args(["--database", "mysql://localhost/sipas", "migrate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(message.contains("postgres://") && message.contains("sqlite://PATH"), "{message}");
}

#[test]
fn an_unreachable_database_is_a_clear_error_not_a_panic() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sipas"))
        .args(["--database", "postgres://nobody@127.0.0.1:1/none", "serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("127.0.0.1") && !message.contains("panicked"), "{message}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/sipas.db");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sipas"))
        .args(["--database", &format!("sqlite://{}", missing.display()), "migrate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).to_lowercase().contains("unable to open the database file"), "{}", stderr(&output));
}

#[test]
fn every_subcommand_has_help() {
    let commands: [&[&str]; 16] = [
        &["campaigns"],
        &["campaigns", "create"],
        &["campaigns", "list"],
        &["tallies", "verify"],
        &["serve"],
        &["migrate"],
        &["defs"],
        &["defs", "check"],
        &["defs", "publish"],
        &["defs", "list"],
        &["agencies", "import"],
        &["agencies", "list"],
        &["keys", "create"],
        &["keys", "list"],
        &["keys", "revoke"],
        &["keys"],
    ];
    for command in commands {
        let output =
            std::process::Command::new(env!("CARGO_BIN_EXE_sipas")).args(command).arg("--help").output().unwrap();
        assert!(output.status.success(), "{command:?}");
        assert!(stdout(&output).contains("Usage: sipas"), "{command:?}");
    }
}

#[test]
fn defs_check_accepts_the_shipped_definitions_and_names_faults_in_others() {
    let database = TestDatabase::new();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/survey-defs");
    let output = sipas(&database, &["defs", "check", shipped]);
    assert!(output.status.success(), "{}", stderr(&output));

    let dir = database.dir().join("defs");
    std::fs::create_dir_all(&dir).unwrap();
    let original = std::fs::read_to_string(format!("{shipped}/dossier-rating.toml")).unwrap();
    std::fs::write(dir.join("bad.toml"), original.replace("satisfied = [2]", "satisfied = [3]")).unwrap();
    std::fs::write(dir.join("unknown-key.toml"), original.replace("version = 1", "version = 1\nauthor = \"x\""))
        .unwrap();
    let output = sipas(&database, &["defs", "check", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("bad.toml: measurement.elements[handling].criteria[d1_total_time]"), "{message}");
    assert!(message.contains("outside the scale 0–2"), "{message}");
    assert!(message.contains("unknown-key.toml") && message.contains("unknown field `author`"), "{message}");
}

#[test]
fn defs_publish_refuses_changed_content_under_a_published_version() {
    let database = TestDatabase::new();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/survey-defs/sipas-2017.toml");
    let output = sipas(&database, &["defs", "publish", shipped]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("nothing changed"), "{}", stderr(&output));

    let changed = database.dir().join("changed.toml");
    let text = std::fs::read_to_string(shipped).unwrap().replace("Civil servants are polite", "Staff are polite");
    std::fs::write(&changed, &text).unwrap();
    let output = sipas(&database, &["defs", "publish", changed.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("already published with different content"), "{}", stderr(&output));

    std::fs::write(&changed, text.replace("version = 1", "version = 2")).unwrap();
    let output = sipas(&database, &["defs", "publish", changed.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let listing = stdout(&sipas(&database, &["defs", "list"]));
    assert!(listing.lines().any(|l| l.starts_with("sipas-2017") && l.contains(" 2 ")), "{listing}");
}

#[test]
fn agencies_import_is_all_or_nothing_and_idempotent() {
    let database = TestDatabase::new();
    let file = database.dir().join("ministry.csv");
    std::fs::write(
        &file,
        "level,code,name,division_type,parent_code,name_en\n\
         ministry,BNV,Bộ Nội vụ,bộ,VN,Ministry of Home Affairs\n\
         department,BNV-CCHC,Vụ Cải cách hành chính,vụ,BNV,Department of Administrative Reform\n\
         department,BNV-X,,vụ,NOPE,\n",
    )
    .unwrap();
    let output = sipas(&database, &["agencies", "import", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("line 4: name is empty"), "{message}");
    let listing = stdout(&sipas(&database, &["agencies", "list", "--level", "ministry"]));
    assert!(!listing.contains("BNV"), "nothing may be imported from a bad file: {listing}");

    let good: String = std::fs::read_to_string(&file).unwrap().lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, good).unwrap();
    let output = sipas(&database, &["agencies", "import", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("2 created, 0 updated, 0 unchanged"), "{}", stderr(&output));
    let output = sipas(&database, &["agencies", "import", file.to_str().unwrap()]);
    assert!(stderr(&output).contains("0 created, 0 updated, 2 unchanged"), "{}", stderr(&output));
    let listing = stdout(&sipas(&database, &["agencies", "list", "--parent", "BNV"]));
    assert!(listing.contains("BNV-CCHC") && listing.contains("Vụ Cải cách hành chính"), "{listing}");
}

#[test]
fn agencies_import_refuses_a_code_already_used_at_the_same_dates() {
    let database = TestDatabase::new();
    let file = database.dir().join("clash.csv");
    std::fs::write(&file, "level,code,name,division_type,parent_code\nprovince,01,Hà Nội mới,,VN\n").unwrap();
    let output = sipas(&database, &["agencies", "import", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("line 2: code `01` already names"), "{}", stderr(&output));
}

#[test]
fn keys_create_prints_the_secret_alone_on_stdout() {
    let database = TestDatabase::new();
    let output = sipas(&database, &["keys", "create", "--role", "partner", "--name", "One-stop HN", "--agency", "01"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let secret = stdout(&output);
    assert_eq!(secret.lines().count(), 1);
    assert!(secret.starts_with("sipas_") && secret.trim().len() > 40, "{secret}");
    assert!(stderr(&output).contains("shown only now"));

    let listing = stdout(&sipas(&database, &["keys", "list"]));
    assert!(listing.contains("partner") && listing.contains("One-stop HN") && listing.contains("01"), "{listing}");
    assert!(!listing.contains(secret.trim()), "the list never shows secrets");

    let output = sipas(&database, &["keys", "create", "--role", "partner", "--name", "no scope"]);
    assert_eq!(output.status.code(), Some(1));
    let output = sipas(&database, &["keys", "create", "--role", "owner", "--name", "x"]);
    assert_eq!(output.status.code(), Some(2), "clap refuses an unknown role");
    assert!(sipas(&database, &["keys", "revoke", "1"]).status.success());
    assert!(stdout(&sipas(&database, &["keys", "list"])).contains("revoked"));
    assert_eq!(sipas(&database, &["keys", "revoke", "99"]).status.code(), Some(1));
}

#[test]
fn campaigns_are_created_and_listed_from_the_command_line() {
    let database = TestDatabase::new();
    let output = sipas(
        &database,
        &[
            "campaigns",
            "create",
            "--id",
            "hn-2026",
            "--survey",
            "sipas-individual",
            "--title-vi",
            "Hà Nội 2026",
            "--title-en",
            "Ha Noi 2026",
            "--agency",
            "01",
            "--opens-at",
            "2026-01-01T00:00:00Z",
            "--closes-at",
            "2027-01-01T00:00:00Z",
            "--channel",
            "api",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let listing = stdout(&sipas(&database, &["campaigns", "list"]));
    assert!(listing.contains("hn-2026") && listing.contains("sipas-individual"), "{listing}");
    let output = sipas(
        &database,
        &[
            "campaigns",
            "create",
            "--id",
            "x",
            "--survey",
            "sipas-individual",
            "--title-vi",
            "X",
            "--agency",
            "99999",
            "--opens-at",
            "2026-01-01T00:00:00Z",
            "--closes-at",
            "2025-01-01T00:00:00Z",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("agencies[0]") && message.contains("closes_at") && message.contains("title.en"),
        "{message}"
    );
    let verified = sipas(&database, &["tallies", "verify"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
}

#[tokio::test]
async fn backup_writes_a_consistent_copy_of_the_sqlite_database() {
    let app = crate::helpers::TestApp::spawn().await;
    let admin = app.open_campaign("hn", "dossier-rating", &["01"]).await;
    let response = app.post_response(&admin, None, &crate::helpers::rating("hn", "00070", None, 2)).await;
    assert_eq!(response.status().as_u16(), 201);
    let file = app.database.dir().join("backup.db");
    let output = sipas(&app.database, &["backup", "--to", file.to_str().unwrap()]);
    if app.database.is_postgres() {
        assert_eq!(output.status.code(), Some(2));
        assert!(stderr(&output).contains("pg_dump"), "{}", stderr(&output));
        return;
    }
    assert!(output.status.success(), "{}", stderr(&output));
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_sipas"))
        .args(["--database", &format!("sqlite://{}", file.display()), "campaigns", "list"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", stderr(&listed));
    let line = stdout(&listed).lines().find(|l| l.starts_with("hn ")).map(str::to_owned).unwrap_or_default();
    assert!(line.split_whitespace().any(|w| w == "1"), "the copy holds the campaign and its response: {line}");
    let again = sipas(&app.database, &["backup", "--to", file.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "an existing file is never overwritten");
}
