//! Group commit: one writer thread per process takes every submission waiting at that moment,
//! writes them in one transaction (responses, idempotency records, a pending-tally row each) and
//! answers each only after the commit that holds it. Durability then costs one disk flush per
//! group, not one per response. A submission refused inside the group (a replayed or reused
//! idempotency key, a dossier already rated) never fails its neighbours.
//!
//! The tallies of committed responses are added to the tally rows later and many at once (see
//! [`super::pending`]): at most `fold_after` after their commit, when 2,000 wait, and when the
//! writer stops. A tally row is about 3 KB and a response touches some thirty of them; written in
//! every group they were most of a small group's pages and time. A large group (a batch) writes
//! its tallies itself: few rows beside its responses.

use std::collections::BTreeMap;
// Seeded per process like std's maps, and several times faster for the short keys hashed for
// every response here (std's SipHash was a fiftieth of the writer's time).
use foldhash::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use tokio::sync::oneshot;

use super::pending::{StoredResponse, tally_stored};
use super::tally::{Tally, TallyDeltas, TallyLayout, add_response};
use super::{Idempotency, Prepared, same_request};
use crate::campaign::Channel;
use crate::campaign::context::CampaignContext;
use crate::db::schema::{idempotency_keys, invitations, pending_tallies, responses, tallies};
use crate::db::{self, DbConnection, DbError, Pool, SharedTimestamp};
use crate::metrics::Metrics;

/// Inserts `rows` into `table` with multi-row statements the connection keeps prepared
/// ([`db::kept_insert`]), returning a [`DbError`] from the enclosing function on failure. A macro
/// rather than a function: the insert is built for each backend's connection type, and the
/// bounds a generic function would need on both are longer than the two calls.
macro_rules! insert_in_chunks {
    ($conn:expr, $table:expr, $rows:expr) => {
        match &mut *$conn {
            DbConnection::Postgres(pg) => db::kept_insert::insert_rows(pg, $table, &$rows[..])?,
            DbConnection::Sqlite(sqlite) => db::kept_insert::insert_rows(sqlite, $table, &$rows[..])?,
        };
    };
}

/// Most submissions written in one transaction.
pub const MAX_GROUP: usize = 2_000;
/// Submissions that may wait for the writer before callers are made to wait for room.
pub const QUEUE_DEPTH: usize = 4_096;

/// What became of one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored, with its id and the instant it was received.
    Created {
        /// Response id.
        id: String,
        /// When it was stored (UTC, microseconds).
        received_at: DateTime<Utc>,
    },
    /// A retry of an earlier request with the same idempotency key: its first result.
    Replayed {
        /// Status of the first result.
        status: u16,
        /// The first result's record (see [`created_record`]).
        record: String,
    },
    /// The idempotency key was used before with a different request.
    KeyReused,
    /// The invitation's one-time link was already used (nothing stored).
    InvitationUsed,
    /// The dossier was already rated in this campaign and agency.
    DossierConflict,
}

/// The stored record of a created response, also the body of its 201.
pub fn created_record(id: &str, received_at: DateTime<Utc>) -> String {
    record_of(id, &json_time(received_at))
}

/// An instant as the records write it: RFC 3339 in UTC, with microseconds.
fn json_time(at: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // Written out rather than through a strftime pattern, which costs several times as much.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.timestamp_subsec_micros(),
    )
}

/// [`created_record`] with its time already written ([`json_time`]): a group's responses share it.
fn record_of(id: &str, received_at: &str) -> String {
    // Neither part needs escaping (a ULID and an RFC 3339 time).
    let mut record = String::with_capacity(id.len() + received_at.len() + 25);
    record.push_str(r#"{"id":""#);
    record.push_str(id);
    record.push_str(r#"","received_at":""#);
    record.push_str(received_at);
    record.push_str(r#""}"#);
    record
}

/// The stored record of a dossier conflict.
pub const DOSSIER_CONFLICT_RECORD: &str = r#"{"code":"dossier_already_rated"}"#;

struct Job {
    items: Vec<Prepared>,
    reply: oneshot::Sender<Result<Written, DbError>>,
}

/// What the writer answers a job with: each item's outcome and, when the writer does not keep
/// them, the items themselves, so that they are freed by the caller's thread and not by the
/// writer, which every submission waits for (freeing a batch's thousand items was 7% of its
/// time).
struct Written {
    outcomes: Vec<ItemOutcome>,
    items: Vec<Prepared>,
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    sender: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Writer {
    /// Starts the writer thread. Responses' tallies are added to the tally rows at most
    /// `fold_after` after their commit (or sooner, when many wait). The thread stops, having added
    /// what it still holds, when every handle is dropped.
    pub fn start(pool: Pool, metrics: Arc<Metrics>, fold_after: Duration) -> Self {
        let (sender, receiver) = sync_channel(QUEUE_DEPTH);
        let observer = metrics.clone();
        let checkpoints = Checkpointer::start(pool.clone());
        let spawned = std::thread::Builder::new()
            .name("sipas-writer".to_owned())
            .spawn(move || run(pool, receiver, &observer, fold_after, checkpoints));
        if let Err(error) = spawned {
            tracing::error!(error.cause = %error, "cannot start the writer thread");
        }
        Self { sender, metrics }
    }

    /// Writes the items (in one transaction with whatever else is waiting) and returns, in order,
    /// what became of each, once committed.
    pub async fn write(&self, items: Vec<Prepared>) -> Result<Vec<ItemOutcome>, DbError> {
        let channels: Vec<Channel> = items.iter().map(|item| item.channel).collect();
        let outcomes = self.send(items).await?;
        for (channel, outcome) in channels.into_iter().zip(&outcomes) {
            match outcome {
                ItemOutcome::Created { .. } => self.metrics.accepted(channel),
                ItemOutcome::Replayed { .. } => {}
                ItemOutcome::KeyReused => self.metrics.refused(channel, "idempotency_key_reused"),
                ItemOutcome::InvitationUsed => self.metrics.refused(channel, "invitation_used"),
                ItemOutcome::DossierConflict => self.metrics.refused(channel, "dossier_rated"),
            }
        }
        Ok(outcomes)
    }

    async fn send(&self, items: Vec<Prepared>) -> Result<Vec<ItemOutcome>, DbError> {
        let (reply, answer) = oneshot::channel();
        match self.sender.try_send(Job { items, reply }) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(job)) => {
                // The queue is full: wait for room off the async executor.
                let sender = self.sender.clone();
                actix_web::rt::task::spawn_blocking(move || sender.send(job))
                    .await
                    .map_err(|e| DbError::Unavailable(format!("writer queue: {e}")))?
                    .map_err(|_| DbError::Unavailable("the writer has stopped".to_owned()))?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(DbError::Unavailable("the writer has stopped".to_owned()));
            }
        }
        let Written { outcomes, items } =
            answer.await.map_err(|_| DbError::Unavailable("the writer stopped before answering".to_owned()))??;
        drop(items);
        Ok(outcomes)
    }
}

/// Pages in the write-ahead log past which the writer checkpoints after its own commits, when the
/// checkpoint thread runs (SQLite's default is 1,000). The thread's checkpoints run beside the
/// writer's appends and so rarely end with the whole log copied, which is what lets the next
/// transaction start the log over: without this bound the log would grow for as long as the
/// load lasts.
pub const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_000;

/// SQLite's default `wal_autocheckpoint`: the commit that fills the log past this many pages
/// copies it back. The writer's connection has it without the checkpoint thread, and goes back to
/// the pool with it.
pub const SQLITE_AUTOCHECKPOINT_PAGES: u32 = 1_000;

/// Least time between two checkpoints of the SQLite write-ahead log.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Copies the SQLite write-ahead log back into the database file on a thread of its own, so that
/// the writer, which every submission waits for, does not. SQLite's automatic checkpoint runs in
/// the connection whose commit fills the log past a thousand pages: here the writer's, in the
/// middle of the serial write path (half of its commit time in batches of a thousand). The
/// checkpoint is `PASSIVE`: it copies what no reader still needs and never waits for a lock.
/// Batches of a thousand, A/B: +3% to +14% (docs/performance.md).
struct Checkpointer {
    /// Wakes the thread after a commit; one pending wake-up is enough.
    wake: SyncSender<()>,
}

impl Checkpointer {
    /// Starts the thread; `None` when it could not start, and the writer then leaves the
    /// automatic checkpoint on. On PostgreSQL the thread ends at once.
    fn start(pool: Pool) -> Option<Self> {
        let (wake, woken) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("sipas-checkpoint".to_owned())
            .spawn(move || Self::run(&pool, &woken))
            .map_err(|error| tracing::error!(error.cause = %error, "cannot start the checkpoint thread"))
            .ok()
            .map(|_| Self { wake })
    }

    /// Asks for a checkpoint after a commit.
    fn after_commit(&self) {
        let _already_asked_or_gone = self.wake.try_send(());
    }

    fn run(pool: &Pool, woken: &Receiver<()>) {
        let mut conn: Option<db::PooledConnection> = None;
        // Ends when the writer ends (the sender is dropped with it).
        while woken.recv().is_ok() {
            let started = Instant::now();
            let mut current = match conn.take() {
                Some(current) => current,
                None => match pool.get() {
                    Ok(fresh) => fresh,
                    Err(error) => {
                        tracing::warn!(error.cause = %error, "no connection for the WAL checkpoint; trying later");
                        std::thread::sleep(CHECKPOINT_EVERY);
                        continue;
                    }
                },
            };
            let DbConnection::Sqlite(sqlite) = &mut *current else { return };
            match diesel::connection::SimpleConnection::batch_execute(sqlite, "PRAGMA wal_checkpoint(PASSIVE);") {
                Ok(()) => conn = Some(current),
                // The connection is dropped and a fresh one taken next time.
                Err(error) => tracing::warn!(error.cause = %error, "WAL checkpoint failed; trying later"),
            }
            std::thread::sleep(CHECKPOINT_EVERY.saturating_sub(started.elapsed()));
        }
    }
}

fn run(
    pool: Pool,
    receiver: Receiver<Job>,
    metrics: &Metrics,
    fold_after: Duration,
    checkpoints: Option<Checkpointer>,
) {
    // On SQLite one connection is kept between groups (replaced after any failure), so that the
    // tally cache can ask it whether anyone else wrote in between.
    let mut held = HeldConnection { conn: None, checkpoint_thread: checkpoints.is_some() };
    let mut cache = TallyCache::default();
    let mut unfolded = Unfolded::default();
    // Pending rows left by an earlier run that stopped before adding them (a crash, a kill).
    let mut last_sweep: Option<Instant> = None;
    loop {
        if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
            // The first sweep takes every pending row; later ones only rows old enough to have
            // been left by an instance that stopped (others' are theirs to add).
            let older_than = last_sweep.map(|_| Utc::now().naive_utc() - SWEEP_AGE);
            match fold_stored(&pool, &mut held, &mut cache, older_than) {
                Ok(0) => {}
                Ok(folded) => tracing::info!(responses = folded, "pending tallies left by an earlier run added"),
                Err(error) => {
                    tracing::warn!(error.cause = %error, "pending tallies could not be added; retrying later")
                }
            }
            last_sweep = Some(Instant::now());
        }
        // Waits for work until the pending responses are due to be added (or the next sweep).
        let wait = unfolded.since.map_or(SWEEP_EVERY, |since| fold_after.saturating_sub(since.elapsed()));
        let first = match receiver.recv_timeout(wait) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                if unfolded.since.is_some() {
                    fold(&pool, &mut held, &mut cache, &mut unfolded, metrics);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut jobs = vec![first];
        let mut waiting = jobs[0].items.len();
        while waiting < MAX_GROUP {
            match receiver.try_recv() {
                Ok(job) => {
                    waiting += job.items.len();
                    jobs.push(job);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let items: Vec<&Prepared> = jobs.iter().flat_map(|job| job.items.iter()).collect();
        let started = Instant::now();
        let result = write_group(&pool, &mut held, &mut cache, &items);
        metrics.observe_group(items.len(), started.elapsed().as_secs_f64());
        if let (Ok(_), Some(checkpoints)) = (&result, &checkpoints) {
            checkpoints.after_commit();
        }
        let (mut outcomes, pending) = match result {
            Ok((outcomes, pending)) => (outcomes.into_iter(), pending),
            Err(error) => {
                // An outage fails every group: a line every few seconds says how many.
                static UNAVAILABLE: crate::telemetry::LogThrottle = crate::telemetry::LogThrottle::outage();
                if !matches!(error, DbError::Unavailable(_)) {
                    tracing::warn!(error.cause = %error, group.size = items.len(), "group write failed");
                } else if let Some(held) = UNAVAILABLE.admit() {
                    tracing::error!(
                        error.cause = %error,
                        group.size = items.len(),
                        groups.failed_since_last_line = held,
                        "responses could not be written: the database is unavailable (disk full or read-only, \
                         locked, or unreachable); they were answered 503 and none of them was stored"
                    );
                }
                for job in jobs {
                    let _receiver_gone = job.reply.send(Err(clone_error(&error)));
                }
                continue;
            }
        };
        for job in jobs {
            let mine: Vec<ItemOutcome> = outcomes.by_ref().take(job.items.len()).collect();
            let items = if pending {
                for (item, outcome) in job.items.into_iter().zip(&mine) {
                    unfolded.add(item, outcome);
                }
                Vec::new()
            } else {
                job.items
            };
            let _receiver_gone = job.reply.send(Ok(Written { outcomes: mine, items }));
        }
        if unfolded.ids.len() >= FOLD_AT || unfolded.since.is_some_and(|since| since.elapsed() >= fold_after) {
            fold(&pool, &mut held, &mut cache, &mut unfolded, metrics);
        }
    }
    if unfolded.since.is_some() {
        fold(&pool, &mut held, &mut cache, &mut unfolded, metrics);
    }
}

fn clone_error(error: &DbError) -> DbError {
    match error {
        DbError::Unavailable(message) => DbError::Unavailable(message.clone()),
        other => DbError::Unavailable(format!("write failed: {other}")),
    }
}

/// Whether a failed group should be retried one item at a time: a concurrent writer (another
/// process) took an idempotency key, a dossier or a tally row first.
fn is_race(error: &DbError) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        error,
        DbError::Query(Error::DatabaseError(
            DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure,
            _
        ))
    ) || matches!(error, DbError::Query(Error::DatabaseError(_, info)) if info.message().contains("deadlock"))
}

/// Writes the items in one transaction on `conn`, without the writer thread: for loading data
/// from the command line (`sipas demo`) where nothing else writes at the same time.
/// Their tallies are written in the same transaction (nothing is left pending).
pub fn write_now(conn: &mut DbConnection, items: &[&Prepared]) -> Result<Vec<ItemOutcome>, DbError> {
    db::write_transaction(conn, |conn| {
        let outcomes = write_items(conn, items, Mode::LookUpFirst)?;
        apply_now(conn, items, &outcomes, &mut TallyCache::default())?;
        Ok(outcomes)
    })
}

/// Runs `work` on the writer's connection: the one held (SQLite), or one from the pool. The
/// connection is kept after success on SQLite; PostgreSQL connections go back to the pool, which
/// checks them on the way out, so that work after a database restart does not fail on a dead
/// connection.
fn on_connection<T>(
    pool: &Pool,
    held: &mut HeldConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    let mut conn = match held.conn.take() {
        Some(conn) => conn,
        None => {
            let mut fresh = pool.get().map_err(|e| DbError::Unavailable(e.to_string()))?;
            if let DbConnection::Sqlite(sqlite) = &mut *fresh {
                // A multi-row INSERT that may fail on a constraint keeps the pages it changes in a
                // statement journal, to undo itself alone; past 64 KiB SQLite spills that journal
                // to a temporary file, written with a system call per page (a fourteenth of the
                // writer's time in batches of a thousand). In memory it is bounded by the pages
                // one statement of a group changes. Only the writer's connection: elsewhere a
                // temporary file may be a sort of millions of rows. With the checkpoint thread,
                // that thread copies the log back; see [`Checkpointer`].
                let autocheckpoint =
                    if held.checkpoint_thread { WRITER_AUTOCHECKPOINT_PAGES } else { SQLITE_AUTOCHECKPOINT_PAGES };
                diesel::connection::SimpleConnection::batch_execute(
                    sqlite,
                    &format!("PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = {autocheckpoint};"),
                )?;
            }
            fresh
        }
    };
    let result = work(&mut conn);
    // After a failure the connection may be broken: the next work takes a fresh one.
    match &mut *conn {
        DbConnection::Sqlite(_) if result.is_ok() => held.conn = Some(conn),
        DbConnection::Sqlite(sqlite) => {
            // Back to the pool with the settings others expect (temporary files on disk, SQLite's
            // own checkpoints); a broken connection fails here too and is replaced when the pool
            // checks it out again.
            let _broken = diesel::connection::SimpleConnection::batch_execute(
                sqlite,
                &format!("PRAGMA temp_store = DEFAULT; PRAGMA wal_autocheckpoint = {SQLITE_AUTOCHECKPOINT_PAGES};"),
            );
        }
        DbConnection::Postgres(_) => {}
    }
    result
}

/// The connection the writer keeps between groups on SQLite (replaced after any failure).
struct HeldConnection {
    conn: Option<db::PooledConnection>,
    /// Whether the checkpoint thread runs: the writer then checkpoints by itself only past
    /// [`WRITER_AUTOCHECKPOINT_PAGES`].
    checkpoint_thread: bool,
}

/// Writes a group: its responses, idempotency records and one pending row per created response.
/// A group of at least this many submissions writes its tallies itself instead of pending rows:
/// its tally rows are few beside its responses (a thousand responses of one agency touch some
/// thirty), while a pending row each would be a thousand rows written and deleted.
const TALLIES_IN_GROUP_AT: usize = 256;

/// Writes a group: its responses, idempotency records, and one pending row per created response
/// (or, for a large group, its tallies). Returns what became of each item and whether the
/// created ones are pending.
fn write_group(
    pool: &Pool,
    held: &mut HeldConnection,
    cache: &mut TallyCache,
    items: &[&Prepared],
) -> Result<(Vec<ItemOutcome>, bool), DbError> {
    let pending = items.len() < TALLIES_IN_GROUP_AT;
    let result = on_connection(pool, held, |conn| {
        let mut write = |conn: &mut DbConnection, mode: Mode| {
            db::write_transaction(conn, |conn| {
                let outcomes = write_items(conn, items, mode)?;
                if pending {
                    insert_pending(conn, items, &outcomes)?;
                } else {
                    apply_now(conn, items, &outcomes, cache)?;
                }
                Ok(outcomes)
            })
        };
        // A group is written as if none of its idempotency keys had been used before; if one
        // was (a client's retry) or another writer took a key or dossier meanwhile, it is written
        // again reading earlier results first, and after a second collision item by item.
        let mut result = write(conn, Mode::Optimistic);
        for mode in [Mode::LookUpFirst, Mode::OneByOne] {
            match &result {
                Err(error) if is_race(error) => {
                    tracing::debug!(error.cause = %error, ?mode, "a key or dossier was taken; writing the group again");
                    result = write(conn, mode);
                }
                _ => break,
            }
        }
        result
    });
    match &result {
        Ok(_) if !pending => cache.commit(),
        Ok(_) => {}
        // What was merged may not have been stored: start afresh.
        Err(_) => cache.clear(),
    }
    result.map(|outcomes| (outcomes, pending))
}

/// Adds the created items' tallies to their rows in the caller's transaction. Responses alike
/// (campaign, agency, respondent type, cells) are summed first, so that spreading over ancestors
/// and cells is done once per such combination.
fn apply_now(
    conn: &mut DbConnection,
    items: &[&Prepared],
    outcomes: &[ItemOutcome],
    cache: &mut TallyCache,
) -> Result<(), DbError> {
    type Combination<'a> = (&'a str, i64, &'a str, &'a [String]);
    let mut combinations: HashMap<Combination<'_>, (&Prepared, Tally)> = HashMap::default();
    for (item, outcome) in items.iter().zip(outcomes) {
        if !matches!(outcome, ItemOutcome::Created { .. }) {
            continue;
        }
        let key = (item.context.campaign.id.as_str(), item.agency_id, item.respondent_type.as_str(), &item.cells[..]);
        match combinations.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut summed) => summed.get_mut().1.add(&item.tally),
            std::collections::hash_map::Entry::Vacant(first) => {
                first.insert((item, item.tally.clone()));
            }
        }
    }
    cache.check(conn)?;
    spread_and_apply(
        conn,
        cache,
        combinations.into_iter().map(|((campaign, _, respondent_type, cells), (item, tally))| {
            (campaign, &item.context.layout, &item.path[..], respondent_type, cells, tally)
        }),
    )
}

/// Spreads summed tallies (campaign, layout, agency path, respondent type, cells, tally) over
/// every agency of their paths and every cell, and adds them to the tally rows.
fn spread_and_apply<'a, T: std::borrow::Borrow<Tally>>(
    conn: &mut DbConnection,
    cache: &mut TallyCache,
    combinations: impl Iterator<Item = (&'a str, &'a TallyLayout, &'a [i64], &'a str, &'a [String], T)>,
) -> Result<(), DbError> {
    let mut by_campaign: BTreeMap<&str, (&TallyLayout, TallyDeltas)> = BTreeMap::new();
    for (campaign, layout, path, respondent_type, cells, tally) in combinations {
        let (_, deltas) = by_campaign.entry(campaign).or_insert_with(|| (layout, TallyDeltas::new()));
        add_response(deltas, layout, path, respondent_type, cells, tally.borrow());
    }
    for (campaign, (layout, deltas)) in by_campaign {
        apply_campaign_tallies(conn, campaign, layout, deltas, cache)?;
    }
    Ok(())
}

/// Lists the created responses in `pending_tallies`, in the transaction that stores them.
fn insert_pending(conn: &mut DbConnection, items: &[&Prepared], outcomes: &[ItemOutcome]) -> Result<(), DbError> {
    let now = Utc::now().naive_utc();
    let rows: Vec<_> = items
        .iter()
        .zip(outcomes)
        .filter_map(|(item, outcome)| match outcome {
            ItemOutcome::Created { id, .. } => Some((
                pending_tallies::response_id.eq(id.as_str()),
                pending_tallies::campaign_id.eq(item.context.campaign.id.as_str()),
                pending_tallies::created_at.eq(now),
            )),
            _ => None,
        })
        .collect();
    insert_in_chunks!(conn, pending_tallies::table, &rows);
    Ok(())
}

/// Pending responses added to the tallies together once this many wait.
const FOLD_AT: usize = 2_000;
/// Most pending responses a writer keeps in memory while its folds fail (a few megabytes); past
/// it they are left to the sweep, which adds them from their stored answers.
const UNFOLDED_MAX: usize = 100_000;
/// How often the writer looks for pending rows an instance that stopped has left.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Age of pending rows taken to be left by a stopped instance.
const SWEEP_AGE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Pending rows read per transaction when adding them from the stored responses.
const SWEEP_PAGE: i64 = 2_000;

/// Responses of one campaign alike (agency, respondent type, cells), with the agency's path and
/// their summed tally.
type Combinations = HashMap<(i64, String, Vec<String>), (Vec<i64>, Tally)>;

/// Responses this writer committed whose tallies are not yet added: their ids (rows of
/// `pending_tallies`) and their tallies, summed per campaign and (agency, respondent type,
/// cells), so that folding spreads each combination over ancestors and cells once.
#[derive(Default)]
struct Unfolded {
    ids: Vec<String>,
    campaigns: BTreeMap<String, (Arc<CampaignContext>, Combinations)>,
    /// When the oldest was committed.
    since: Option<Instant>,
}

impl Unfolded {
    /// Takes a written item (moved, not copied: this runs for every response) if it was created.
    fn add(&mut self, item: Prepared, outcome: &ItemOutcome) {
        let ItemOutcome::Created { id, .. } = outcome else { return };
        self.ids.push(id.clone());
        let Prepared { context, agency_id, respondent_type, cells, path, tally, .. } = item;
        let campaign = context.campaign.id.as_str();
        if !self.campaigns.contains_key(campaign) {
            self.campaigns.insert(campaign.to_owned(), (context.clone(), HashMap::default()));
        }
        let Some((_, combinations)) = self.campaigns.get_mut(campaign) else { return };
        match combinations.entry((agency_id, respondent_type, cells)) {
            std::collections::hash_map::Entry::Occupied(mut summed) => summed.get_mut().1.add(&tally),
            std::collections::hash_map::Entry::Vacant(first) => {
                first.insert((path, tally));
            }
        }
        self.since.get_or_insert_with(Instant::now);
    }

    /// Forgets what it holds once it holds `max` responses or more, and says whether it did.
    /// Their pending rows stay on disk, and the sweep adds them (from their stored answers) once
    /// they are older than [`SWEEP_AGE`]: kept here while folds keep failing, they would only
    /// grow.
    fn forget_from(&mut self, max: usize) -> bool {
        let over = self.ids.len() >= max;
        if over {
            *self = Self::default();
        }
        over
    }

    /// Adds the summed tallies to their rows (and every ancestor's), in the caller's transaction.
    fn apply(&self, conn: &mut DbConnection, cache: &mut TallyCache) -> Result<(), DbError> {
        let combinations = self.campaigns.iter().flat_map(|(campaign, (context, combinations))| {
            combinations.iter().map(move |((_, respondent_type, cells), (path, tally))| {
                (campaign.as_str(), &context.layout, &path[..], respondent_type.as_str(), &cells[..], tally)
            })
        });
        spread_and_apply(conn, cache, combinations)
    }
}

/// Why the writer's own pending rows could not be folded from memory.
enum FoldFailure {
    /// Some were added meanwhile by another writer (a sweep after an instance seemed stopped).
    Taken,
    Db(DbError),
}

impl From<DbError> for FoldFailure {
    fn from(error: DbError) -> Self {
        Self::Db(error)
    }
}

/// Adds the writer's pending responses to the tallies, in the transaction that deletes their
/// pending rows. If another writer took some of those rows first, everything still pending is
/// added from the stored responses instead.
fn fold(pool: &Pool, held: &mut HeldConnection, cache: &mut TallyCache, unfolded: &mut Unfolded, metrics: &Metrics) {
    let started = Instant::now();
    let count = unfolded.ids.len();
    let result = on_connection(pool, held, |conn| {
        let outcome = db::write_transaction(conn, |conn| -> Result<(), FoldFailure> {
            cache.check(conn)?;
            let mut deleted = 0;
            for chunk in unfolded.ids.chunks(STATEMENT_CHUNK) {
                deleted += diesel::delete(pending_tallies::table.filter(pending_tallies::response_id.eq_any(chunk)))
                    .execute(conn)
                    .map_err(DbError::from)?;
            }
            if deleted != unfolded.ids.len() {
                return Err(FoldFailure::Taken);
            }
            unfolded.apply(conn, cache)?;
            Ok(())
        });
        match outcome {
            Ok(()) => {
                cache.commit();
                Ok(())
            }
            Err(FoldFailure::Db(error)) => Err(error),
            Err(FoldFailure::Taken) => {
                cache.clear();
                tracing::info!(
                    "pending tallies were taken by another writer; adding the rest from the stored responses"
                );
                fold_stored_on(conn, cache, None).map(|_| ())
            }
        }
    });
    match result {
        Ok(()) => {
            *unfolded = Unfolded::default();
            metrics.observe_fold(count, started.elapsed().as_secs_f64());
        }
        Err(error) => {
            // The pending rows are still there (the transaction rolled back): try again later.
            cache.clear();
            unfolded.since = Some(Instant::now());
            let next = if unfolded.forget_from(UNFOLDED_MAX) {
                "too many to keep in memory, they are left to the sweep"
            } else {
                "retrying later"
            };
            tracing::warn!(error.cause = %error, responses = count, "pending tallies could not be added; {next}");
        }
    }
}

/// Adds pending responses (those pending since before `older_than`, or all) to the tallies
/// from their stored answers, a page per transaction. Returns how many were added.
fn fold_stored(
    pool: &Pool,
    held: &mut HeldConnection,
    cache: &mut TallyCache,
    older_than: Option<chrono::NaiveDateTime>,
) -> Result<usize, DbError> {
    on_connection(pool, held, |conn| fold_stored_on(conn, cache, older_than)).inspect_err(|_| cache.clear())
}

fn fold_stored_on(
    conn: &mut DbConnection,
    cache: &mut TallyCache,
    older_than: Option<chrono::NaiveDateTime>,
) -> Result<usize, DbError> {
    let mut folded = 0;
    loop {
        let page = db::write_transaction(conn, |conn| -> Result<usize, DbError> {
            cache.check(conn)?;
            // Without a bound: every row committed before this moment (a day of clock skew allowed).
            let before = older_than.unwrap_or_else(|| Utc::now().naive_utc() + chrono::TimeDelta::days(1));
            let query = pending_tallies::table
                .filter(pending_tallies::created_at.lt(before))
                .select(pending_tallies::response_id)
                .order(pending_tallies::response_id)
                .limit(SWEEP_PAGE);
            let ids: Vec<String> = match conn {
                // Rows another writer is folding are left to it.
                DbConnection::Postgres(pg) => query.for_update().skip_locked().load(pg)?,
                DbConnection::Sqlite(sqlite) => query.load(sqlite)?,
            };
            if ids.is_empty() {
                return Ok(0);
            }
            let stored: Vec<(String, String, i64, String, String)> = responses::table
                .filter(responses::id.eq_any(&ids))
                .select((
                    responses::campaign_id,
                    responses::id,
                    responses::agency_id,
                    responses::respondent_type,
                    responses::answers,
                ))
                .load(conn)?;
            let mut by_campaign: BTreeMap<String, Vec<StoredResponse>> = BTreeMap::new();
            for (campaign, id, agency_id, respondent_type, answers) in stored {
                by_campaign.entry(campaign).or_default().push((id, agency_id, respondent_type, answers));
            }
            for (campaign, stored) in by_campaign {
                let Some(context) = CampaignContext::load(conn, &campaign)? else { continue };
                let mut deltas = TallyDeltas::new();
                for fault in tally_stored(&mut deltas, &context, stored) {
                    tracing::error!(campaign, fault, "a stored response cannot be counted");
                }
                apply_campaign_tallies(conn, &campaign, &context.layout, deltas, cache)?;
            }
            diesel::delete(pending_tallies::table.filter(pending_tallies::response_id.eq_any(&ids))).execute(conn)?;
            Ok(ids.len())
        })?;
        cache.commit();
        if page == 0 {
            return Ok(folded);
        }
        folded += page;
    }
}

/// Most tally rows the writer keeps between groups (about 3 KB each).
const TALLY_CACHE_ROWS: usize = 4_096;

/// The tally rows the writer last wrote, so that the next group need not read them back (reading
/// them was the larger part of a small group's work). Used on SQLite only, where `PRAGMA
/// data_version` on the writer's own connection tells whether any other connection or process
/// has committed since; if one has, the cache is emptied. PostgreSQL's rows are read under
/// `FOR UPDATE` every time, since other instances write them too.
#[derive(Debug, Default)]
struct TallyCache {
    rows: HashMap<(String, TallyKey), Tally>,
    /// Rows merged by the transaction in progress, kept once it commits.
    pending: Vec<((String, TallyKey), Tally)>,
    data_version: Option<i64>,
}

#[derive(QueryableByName)]
struct DataVersion {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    data_version: i64,
}

impl TallyCache {
    fn clear(&mut self) {
        self.rows.clear();
        self.pending.clear();
        self.data_version = None;
    }

    /// Called first in each group's transaction (once the write lock is held): empties the cache
    /// when another connection has committed since the last group.
    fn check(&mut self, conn: &mut DbConnection) -> Result<(), DbError> {
        self.pending.clear();
        let DbConnection::Sqlite(sqlite) = conn else { return Ok(()) };
        let version = diesel::sql_query("PRAGMA data_version").get_result::<DataVersion>(sqlite)?.data_version;
        if self.data_version != Some(version) {
            self.rows.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }

    /// Whether this group may use the cache: [`TallyCache::check`] ran on SQLite.
    fn usable(&self) -> bool {
        self.data_version.is_some()
    }

    fn take(&mut self, campaign: &str, key: &TallyKey) -> Option<Tally> {
        // Keys are looked up by value: building the owned key costs less than the row read it saves.
        self.rows.remove(&(campaign.to_owned(), key.clone()))
    }

    fn keep(&mut self, campaign: &str, key: TallyKey, tally: Tally) {
        self.pending.push(((campaign.to_owned(), key), tally));
    }

    /// The transaction committed: what it wrote is now what the database holds.
    fn commit(&mut self) {
        if self.rows.len() + self.pending.len() > TALLY_CACHE_ROWS {
            self.rows.clear();
        }
        if self.pending.len() > TALLY_CACHE_ROWS {
            self.pending.clear();
        }
        self.rows.extend(self.pending.drain(..));
    }
}

/// What the group decided for one item before anything is written.
enum Plan {
    Done(ItemOutcome),
    /// Same key and request as an earlier item of this group: answer with that item's result.
    SameAs(usize),
    Create,
    Conflict,
}

/// How a group's rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As if no idempotency key had been used before (a retry is rare): no query for earlier
    /// results (it was a seventh of the writer's time in a batch). A key used before makes the
    /// insert fail, and the group is written again [`Mode::LookUpFirst`]. Items that claim an
    /// invitation are looked up first all the same: their claim would fail before their key
    /// could, and a retry must be answered with its first result, not as a used link.
    Optimistic,
    /// Earlier results under the items' keys read first; rows inserted many at a time.
    LookUpFirst,
    /// Earlier results read first; each item inserted in its own savepoint (after a race with
    /// another writer).
    OneByOne,
}

/// Writes the items' responses and idempotency records; returns what became of each (the
/// tallies of those created are the caller's to write).
fn write_items(conn: &mut DbConnection, items: &[&Prepared], mode: Mode) -> Result<Vec<ItemOutcome>, DbError> {
    let received_at = Utc::now().trunc_subsecs(6);
    let stored_at = SharedTimestamp::new(received_at.naive_utc());
    let received_text = json_time(received_at);
    let mut plans = Vec::with_capacity(items.len());
    let mut keys_in_group: HashMap<(&str, &str), (usize, &str)> = HashMap::default();
    let mut dossiers_in_group: HashSet<(&str, i64, &str)> = HashSet::default();
    let mut invitations_in_group: HashSet<String> = HashSet::default();
    let mut earlier = match mode {
        Mode::Optimistic => {
            let claiming: Vec<&Prepared> = items.iter().copied().filter(|item| item.invitation.is_some()).collect();
            stored_results(conn, &claiming)?
        }
        Mode::LookUpFirst | Mode::OneByOne => stored_results(conn, items)?,
    };
    for (index, item) in items.iter().enumerate() {
        if let Some(Idempotency { scope, key, request_hash }) = &item.idempotency {
            if let Some((first, hash)) = keys_in_group.get(&(scope.as_str(), key.as_str())) {
                plans.push(if hash == request_hash {
                    Plan::SameAs(*first)
                } else {
                    Plan::Done(ItemOutcome::KeyReused)
                });
                continue;
            }
            if let Some(outcome) = earlier.remove(&(scope.as_str(), key.as_str())).map(|e| e.outcome(request_hash)) {
                plans.push(Plan::Done(outcome));
                continue;
            }
            keys_in_group.insert((scope, key), (index, request_hash));
        }
        if let Some(invitation) = &item.invitation
            && !claim_invitation(conn, invitation, &mut invitations_in_group)?
        {
            plans.push(Plan::Done(ItemOutcome::InvitationUsed));
            continue;
        }
        if let Some(hash) = &item.dossier_hash {
            let campaign = item.context.campaign.id.as_str();
            let taken = !dossiers_in_group.insert((campaign, item.agency_id, hash))
                || dossier_rated(conn, campaign, item.agency_id, hash)?;
            if taken {
                plans.push(Plan::Conflict);
                continue;
            }
        }
        plans.push(Plan::Create);
    }

    let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; items.len()];
    let mut new_responses = Vec::new();
    let mut new_keys = Vec::new();
    for (index, (item, plan)) in items.iter().zip(&plans).enumerate() {
        let (status, record, outcome) = match plan {
            Plan::Done(outcome) => {
                outcomes[index] = Some(outcome.clone());
                continue;
            }
            Plan::SameAs(_) => continue,
            Plan::Conflict => (409, DOSSIER_CONFLICT_RECORD.to_owned(), ItemOutcome::DossierConflict),
            Plan::Create => {
                let id = ulid::Ulid::new().to_string();
                new_responses.push(NewResponse::of(item, &id, &stored_at));
                (201, record_of(&id, &received_text), ItemOutcome::Created { id, received_at })
            }
        };
        if let Some(idempotency) = &item.idempotency {
            new_keys.push(NewIdempotencyKey {
                scope: &idempotency.scope,
                idempotency_key: &idempotency.key,
                request_hash: &idempotency.request_hash,
                status,
                body: record,
                created_at: &stored_at,
            });
        }
        outcomes[index] = Some(outcome);
    }
    if mode == Mode::OneByOne {
        insert_one_by_one(conn, items, &mut outcomes, new_responses, new_keys)?;
    } else {
        insert_in_chunks!(conn, responses::table, &new_responses);
        insert_in_chunks!(conn, idempotency_keys::table, &new_keys);
    }
    for (index, plan) in plans.iter().enumerate() {
        if let Plan::SameAs(first) = plan {
            outcomes[index] = outcomes[*first].as_ref().map(|o| match o {
                ItemOutcome::Created { id, .. } => {
                    ItemOutcome::Replayed { status: 201, record: record_of(id, &received_text) }
                }
                ItemOutcome::DossierConflict => {
                    ItemOutcome::Replayed { status: 409, record: DOSSIER_CONFLICT_RECORD.to_owned() }
                }
                other => other.clone(),
            });
        }
    }
    Ok(outcomes.into_iter().map(|o| o.unwrap_or(ItemOutcome::KeyReused)).collect())
}

/// Marks an invitation used unless it already is; in the group's transaction, so that of two
/// concurrent submissions through one link exactly one is stored, and a rolled-back group
/// leaves the link usable.
fn claim_invitation(conn: &mut DbConnection, id: &str, in_group: &mut HashSet<String>) -> Result<bool, DbError> {
    if !in_group.insert(id.to_owned()) {
        return Ok(false);
    }
    let claimed = diesel::update(invitations::table.find(id).filter(invitations::used.eq(false)))
        .set(invitations::used.eq(true))
        .execute(conn)?;
    Ok(claimed == 1)
}

/// The recorded result of an earlier request under an idempotency key.
struct StoredResult {
    request_hash: String,
    status: i32,
    record: String,
}

impl StoredResult {
    /// What a request with this hash gets: the recorded result if it is the same request.
    fn outcome(self, request_hash: &str) -> ItemOutcome {
        if same_request(&self.request_hash, request_hash) {
            ItemOutcome::Replayed { status: u16::try_from(self.status).unwrap_or(500), record: self.record }
        } else {
            ItemOutcome::KeyReused
        }
    }
}

/// The recorded results of earlier requests under the items' idempotency keys, read with one
/// query per scope and thousand keys (a batch's thousand items share one scope).
fn stored_results<'a>(
    conn: &mut DbConnection,
    items: &[&'a Prepared],
) -> Result<HashMap<(&'a str, &'a str), StoredResult>, DbError> {
    let mut by_scope: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for idempotency in items.iter().filter_map(|item| item.idempotency.as_ref()) {
        by_scope.entry(&idempotency.scope).or_default().push(&idempotency.key);
    }
    let mut found = HashMap::default();
    for (scope, keys) in by_scope {
        for chunk in keys.chunks(STATEMENT_CHUNK) {
            let asked: HashSet<&str> = chunk.iter().copied().collect();
            let rows: Vec<(String, String, i32, String)> = idempotency_keys::table
                .filter(idempotency_keys::scope.eq(scope))
                .filter(idempotency_keys::idempotency_key.eq_any(chunk))
                .select((
                    idempotency_keys::idempotency_key,
                    idempotency_keys::request_hash,
                    idempotency_keys::status,
                    idempotency_keys::body,
                ))
                .load(conn)?;
            for (key, request_hash, status, record) in rows {
                // The map borrows the items' own keys, not the rows'.
                if let Some(item_key) = asked.get(key.as_str()) {
                    found.insert((scope, *item_key), StoredResult { request_hash, status, record });
                }
            }
        }
    }
    Ok(found)
}

/// The recorded result of an earlier request with this key, if any.
/// The recorded result of an earlier request under the same idempotency key, read outside the
/// writer: for a retry that can no longer be stored (its campaign has closed), so nothing can
/// be written under the key meanwhile.
pub fn recorded_outcome(conn: &mut DbConnection, idempotency: &Idempotency) -> Result<Option<ItemOutcome>, DbError> {
    stored_result(conn, &idempotency.scope, &idempotency.key, &idempotency.request_hash)
}

fn stored_result(
    conn: &mut DbConnection,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> Result<Option<ItemOutcome>, DbError> {
    let row: Option<(String, i32, String)> = idempotency_keys::table
        .find((scope, key))
        .select((idempotency_keys::request_hash, idempotency_keys::status, idempotency_keys::body))
        .first(conn)
        .optional()?;
    Ok(row.map(|(hash, status, record)| StoredResult { request_hash: hash, status, record }.outcome(request_hash)))
}

fn dossier_rated(conn: &mut DbConnection, campaign: &str, agency_id: i64, hash: &str) -> Result<bool, DbError> {
    let count: i64 = responses::table
        .filter(responses::campaign_id.eq(campaign))
        .filter(responses::agency_id.eq(agency_id))
        .filter(responses::dossier_hash.eq(hash))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// A response's row. Its `None`s are bound as NULL (no nullable column has another default): with
/// diesel's default, a chunk of rows that may take a column's default is written on SQLite as one
/// INSERT per row, its SQL built for each (a tenth of the writer's time in a batch).
#[derive(Debug, Insertable)]
#[diesel(table_name = responses, treat_none_as_default_value = false)]
struct NewResponse<'a> {
    id: String,
    campaign_id: &'a str,
    agency_id: i64,
    respondent_type: &'a str,
    language: &'a str,
    channel: &'static str,
    key_id: Option<i64>,
    service: Option<&'a str>,
    dossier_hash: Option<&'a str>,
    answers: &'a str,
    completed_at: Option<chrono::NaiveDateTime>,
    received_at: &'a SharedTimestamp,
}

impl<'a> NewResponse<'a> {
    fn of(item: &'a Prepared, id: &str, received_at: &'a SharedTimestamp) -> Self {
        Self {
            id: id.to_owned(),
            campaign_id: &item.context.campaign.id,
            agency_id: item.agency_id,
            respondent_type: &item.respondent_type,
            language: &item.language,
            channel: item.channel.as_str(),
            key_id: item.key_id,
            service: item.service.as_deref(),
            dossier_hash: item.dossier_hash.as_deref(),
            answers: &item.answers,
            completed_at: item.completed_at.map(|at| at.naive_utc()),
            received_at,
        }
    }
}

/// Bound column by column like [`NewResponse`] (it has no optional field, but diesel's default
/// would leave its statements without a static query id: see [`db::kept_insert`]).
#[derive(Debug, Insertable)]
#[diesel(table_name = idempotency_keys, treat_none_as_default_value = false)]
struct NewIdempotencyKey<'a> {
    scope: &'a str,
    idempotency_key: &'a str,
    request_hash: &'a str,
    status: i32,
    body: String,
    created_at: &'a SharedTimestamp,
}

/// Keys per `IN (…)` list of a lookup or delete (and, halved, tally rows per insert on
/// PostgreSQL): well within SQLite's 32,766 bound parameters. The writer's own rows are inserted
/// in the chunks of [`db::kept_insert`].
const STATEMENT_CHUNK: usize = 1_000;
/// Tally rows per upsert statement (six parameters each).
const TALLY_CHUNK: usize = 500;

/// After a race: each item in its own savepoint, so that one that lost (its key or dossier was
/// taken meanwhile by another process) is answered from the winner's record and the rest are kept.
fn insert_one_by_one(
    conn: &mut DbConnection,
    items: &[&Prepared],
    outcomes: &mut [Option<ItemOutcome>],
    responses_to_insert: Vec<NewResponse<'_>>,
    keys: Vec<NewIdempotencyKey<'_>>,
) -> Result<(), DbError> {
    let mut responses_by_id: HashMap<String, NewResponse<'_>> =
        responses_to_insert.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut keys_by_id: HashMap<(&str, &str), NewIdempotencyKey<'_>> =
        keys.into_iter().map(|k| ((k.scope, k.idempotency_key), k)).collect();
    for (index, item) in items.iter().enumerate() {
        let response = match &outcomes[index] {
            Some(ItemOutcome::Created { id, .. }) => responses_by_id.remove(id),
            Some(ItemOutcome::DossierConflict) => None,
            _ => continue,
        };
        let key = item.idempotency.as_ref().and_then(|i| keys_by_id.remove(&(i.scope.as_str(), i.key.as_str())));
        let attempt = conn.transaction::<_, diesel::result::Error, _>(|conn| {
            if let Some(response) = &response {
                insert_in_chunks!(conn, responses::table, std::slice::from_ref(response));
            }
            if let Some(key) = &key {
                insert_in_chunks!(conn, idempotency_keys::table, std::slice::from_ref(key));
            }
            Ok(())
        });
        match attempt.map_err(DbError::from) {
            Ok(()) => {}
            Err(error) if error.is_unique_violation() => {
                let replay = match &item.idempotency {
                    Some(i) => stored_result(conn, &i.scope, &i.key, &i.request_hash)?,
                    None => None,
                };
                outcomes[index] = Some(replay.unwrap_or(ItemOutcome::DossierConflict));
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

type TallyKey = (i64, String, String);

type StoredTally = (i64, String, String, Vec<u8>);

/// Adds one campaign's deltas to their tally rows, reading (or taking from the cache) and writing
/// each touched row once. Rows are locked in key order on PostgreSQL, so that concurrent writers
/// in other processes neither lose updates nor deadlock.
fn apply_campaign_tallies(
    conn: &mut DbConnection,
    campaign: &str,
    layout: &TallyLayout,
    deltas: TallyDeltas,
    cache: &mut TallyCache,
) -> Result<(), DbError> {
    let mut stored: HashMap<TallyKey, Tally> = HashMap::default();
    if cache.usable() {
        for key in deltas.keys() {
            if let Some(tally) = cache.take(campaign, key) {
                stored.insert(key.clone(), tally);
            }
        }
    }
    let unread: Vec<&TallyKey> = deltas.keys().filter(|key| !stored.contains_key(*key)).collect();
    let agency_ids: Vec<i64> =
        unread.iter().map(|(a, _, _)| *a).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let wanted: HashSet<&TallyKey> = unread.iter().copied().collect();
    let cells: Vec<&str> =
        unread.iter().map(|(_, _, c)| c.as_str()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    for chunk in agency_ids.chunks(500) {
        let query = tallies::table
            .filter(tallies::campaign_id.eq(campaign))
            .filter(tallies::agency_id.eq_any(chunk.to_vec()))
            .filter(tallies::cell.eq_any(cells.clone()))
            .order((tallies::agency_id, tallies::respondent_type, tallies::cell))
            .select((tallies::agency_id, tallies::respondent_type, tallies::cell, tallies::data));
        let rows: Vec<StoredTally> = match conn {
            DbConnection::Postgres(pg) => {
                // Create missing rows first, so that FOR UPDATE below locks every row we touch.
                let missing: Vec<_> = deltas
                    .keys()
                    .filter(|(a, _, _)| chunk.contains(a))
                    .map(|(a, t, c)| {
                        (
                            tallies::campaign_id.eq(campaign),
                            tallies::agency_id.eq(*a),
                            tallies::respondent_type.eq(t.clone()),
                            tallies::cell.eq(c.clone()),
                            tallies::respondents.eq(0i64),
                            tallies::data.eq(layout.empty().encode()),
                        )
                    })
                    .collect();
                for insert_chunk in missing.chunks(STATEMENT_CHUNK / 2) {
                    diesel::insert_into(tallies::table).values(insert_chunk).on_conflict_do_nothing().execute(pg)?;
                }
                query.for_update().load(pg)?
            }
            DbConnection::Sqlite(sqlite) => query.load(sqlite)?,
        };
        for (agency, respondent_type, cell, data) in rows {
            let key = (agency, respondent_type, cell);
            if !wanted.contains(&key) {
                continue;
            }
            let tally = Tally::decode(layout, &data)
                .map_err(|e| DbError::Query(diesel::result::Error::DeserializationError(Box::new(e))))?;
            stored.insert(key, tally);
        }
    }
    // One multi-row upsert per chunk instead of one UPDATE per row: a batch spread over a
    // thousand communes touches about ten thousand tally rows.
    let keep = cache.usable();
    let rows: Vec<_> = deltas
        .into_iter()
        .map(|(key, delta)| {
            let merged = match stored.remove(&key) {
                Some(mut tally) => {
                    tally.add(&delta);
                    tally
                }
                None => delta,
            };
            let row = (
                tallies::campaign_id.eq(campaign.to_owned()),
                tallies::agency_id.eq(key.0),
                tallies::respondent_type.eq(key.1.clone()),
                tallies::cell.eq(key.2.clone()),
                tallies::respondents.eq(merged.respondents as i64),
                tallies::data.eq(merged.encode()),
            );
            if keep {
                cache.keep(campaign, key, merged);
            }
            row
        })
        .collect();
    let key = (tallies::campaign_id, tallies::agency_id, tallies::respondent_type, tallies::cell);
    let replace = (tallies::respondents.eq(excluded(tallies::respondents)), tallies::data.eq(excluded(tallies::data)));
    for chunk in rows.chunks(TALLY_CHUNK) {
        match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(tallies::table)
                .values(chunk)
                .on_conflict(key)
                .do_update()
                .set(replace)
                .execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::insert_into(tallies::table)
                .values(chunk)
                .on_conflict(key)
                .do_update()
                .set(replace)
                .execute(sqlite)?,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn pending_responses_past_the_limit_are_left_to_the_sweep() {
        let holding = |count: usize| Unfolded {
            ids: (0..count).map(|i| format!("r{i}")).collect(),
            campaigns: BTreeMap::new(),
            since: Some(Instant::now()),
        };
        let mut under = holding(9);
        assert!(!under.forget_from(10));
        assert_eq!((under.ids.len(), under.since.is_some()), (9, true), "kept to be folded again");
        let mut at = holding(10);
        assert!(at.forget_from(10));
        assert_eq!((at.ids.len(), at.since.is_some()), (0, false), "forgotten: nothing left to fold");
    }

    #[test]
    fn the_writers_rows_are_inserted_with_statements_kept_by_type() {
        // A row type whose None may mean "the column's default" gets no static query id, and its
        // statements are then rebuilt (or at best looked up by their text) for every group.
        let responses: Vec<NewResponse<'_>> = Vec::new();
        let records: Vec<NewIdempotencyKey<'_>> = Vec::new();
        let now = Utc::now().naive_utc();
        let pending = [(
            pending_tallies::response_id.eq("r"),
            pending_tallies::campaign_id.eq("c"),
            pending_tallies::created_at.eq(now),
        )];
        assert!(db::kept_insert::kept_by_type(responses::table, &responses[..]));
        assert!(db::kept_insert::kept_by_type(idempotency_keys::table, &records[..]));
        assert!(db::kept_insert::kept_by_type(pending_tallies::table, &pending[..]));
    }

    #[test]
    fn the_writers_connection_keeps_statement_journals_in_memory_and_gives_back_the_pools_settings() {
        #[derive(QueryableByName)]
        struct TempStore {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            temp_store: i32,
        }
        let temp_store = |conn: &mut DbConnection| -> i32 {
            let DbConnection::Sqlite(sqlite) = conn else { unreachable!("a SQLite pool") };
            diesel::sql_query("PRAGMA temp_store").get_result::<TempStore>(sqlite).unwrap().temp_store
        };
        let dir = tempfile::tempdir().unwrap();
        let target = db::DatabaseTarget::Sqlite(dir.path().join("writer.db"));
        let options = db::PoolOptions { max_size: 1, connection_timeout: Duration::from_secs(5) };
        let pool = db::build_pool(&target, &options).unwrap();
        let mut held = HeldConnection { conn: None, checkpoint_thread: true };
        // 2: MEMORY.
        assert_eq!(on_connection(&pool, &mut held, |conn| Ok(temp_store(conn))).unwrap(), 2);
        assert!(held.conn.is_some(), "kept between groups");
        let failed: Result<(), DbError> =
            on_connection(&pool, &mut held, |_| Err(DbError::Unavailable("a failed group".to_owned())));
        assert!(failed.is_err() && held.conn.is_none(), "given back after a failure");
        // The pool's one connection, as the next reader gets it: 0, the default (files).
        assert_eq!(temp_store(&mut pool.get().unwrap()), 0);
    }

    #[test]
    fn a_created_record_is_the_json_of_its_id_and_time() {
        let at = Utc.with_ymd_and_hms(2026, 7, 1, 8, 30, 5).single().unwrap() + chrono::Duration::microseconds(1_234);
        let record: serde_json::Value =
            serde_json::from_str(&created_record("01JZ0000000000000000000000", at)).unwrap();
        assert_eq!(
            record,
            serde_json::json!({"id": "01JZ0000000000000000000000", "received_at": "2026-07-01T08:30:05.001234Z"})
        );
        assert_eq!(
            record["received_at"].as_str().unwrap(),
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "the same form as every other time in the API"
        );
    }
}
