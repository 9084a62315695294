//! The batch benchmark's baseline (`bench/intake.sh`): copies of a response the benchmark stored,
//! inserted with plain diesel (multi-row INSERTs of 1,000, in one transaction) and nothing else:
//! no checks, no tallies, no idempotency records. Prints rows per second. Then, as a second
//! figure, the same with each response's idempotency record (a copy of one the benchmark stored,
//! under a new key), as a batch item's `client_id` requires: responses per second. On SQLite, a
//! third figure: the responses alone again, with no checkpoint in the timed commit (the log
//! emptied before it and not copied back during it). SQLite copies its write-ahead log back into
//! the database in the commit that fills it past a thousand pages, as every plain program's
//! inserts do and as the first figure's do; sipas does it on a thread of its own. That copy made
//! the first figure swing by a quarter from round to round; without it the figure is the rows'
//! inserts and their flush alone.
//!
//! Each figure is the median of ROUNDS inserts of ROWS rows (each in its own transaction), with
//! the slowest and fastest beside it: one insert takes about a second, and a single second on a
//! shared machine moved the ratio it is the denominator of by a sixth between runs.
//! Usage: `cargo run --release --example batch_baseline -- DATABASE_URL CAMPAIGN [ROWS [ROUNDS]]`

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use sipas::db::copy::{IdempotencyKeysRow, ResponsesRow as Row};
use sipas::db::schema::{idempotency_keys, responses};
use sipas::db::{self, DatabaseTarget, DbConnection, DbError};
use sipas::intake::writer::SQLITE_AUTOCHECKPOINT_PAGES;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(campaign)) = (args.get(1), args.get(2)) else {
        return Err("usage: batch_baseline DATABASE_URL CAMPAIGN [ROWS [ROUNDS]]".into());
    };
    let count: usize = args.get(3).map(|rows| rows.parse()).transpose()?.unwrap_or(100_000);
    let rounds: usize = args.get(4).map(|rounds| rounds.parse()).transpose()?.unwrap_or(5).max(1);
    let mut conn = db::connect(&DatabaseTarget::parse(url)?)?;
    let template: Row =
        responses::table.filter(responses::campaign_id.eq(campaign)).select(Row::as_select()).first(&mut conn)?;
    let record: IdempotencyKeysRow =
        idempotency_keys::table.select(IdempotencyKeysRow::as_select()).first(&mut conn)?;
    let new_rows =
        || -> Vec<Row> { (0..count).map(|_| Row { id: ulid::Ulid::new().to_string(), ..template.clone() }).collect() };
    // The kinds of insert alternate, so that all see the database at the same sizes.
    let (mut plain, mut with_records) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let mut without_checkpoint = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        plain.push(count as f64 / insert(&mut conn, &new_rows(), &[])?);
        if matches!(conn, DbConnection::Sqlite(_)) {
            let rows = new_rows();
            conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA wal_autocheckpoint = 0;")?;
            let seconds = insert(&mut conn, &rows, &[]);
            // SQLite's default again, and the log copied back untimed, so that the other kinds of
            // insert start as they would have.
            conn.batch_execute(&format!(
                "PRAGMA wal_autocheckpoint = {SQLITE_AUTOCHECKPOINT_PAGES}; PRAGMA wal_checkpoint(TRUNCATE);"
            ))?;
            without_checkpoint.push(count as f64 / seconds?);
        }
        let rows = new_rows();
        let records: Vec<IdempotencyKeysRow> = rows
            .iter()
            .map(|row| IdempotencyKeysRow { idempotency_key: format!("baseline-{}", row.id), ..record.clone() })
            .collect();
        with_records.push(count as f64 / insert(&mut conn, &rows, &records)?);
    }
    let (median, slowest, fastest) = spread(&mut plain);
    println!(
        "baseline: {count} rows x {rounds} rounds, rows/s slowest {slowest:.0} fastest {fastest:.0} -> median rows/s {median:.0}"
    );
    let (median, slowest, fastest) = spread(&mut with_records);
    println!(
        "baseline with idempotency records: {count} responses x {rounds} rounds, responses/s slowest {slowest:.0} \
         fastest {fastest:.0} -> median responses/s {median:.0}"
    );
    if !without_checkpoint.is_empty() {
        let (median, slowest, fastest) = spread(&mut without_checkpoint);
        println!(
            "baseline without a checkpoint in its commit: {count} rows x {rounds} rounds, rows/s slowest \
             {slowest:.0} fastest {fastest:.0} -> median rows/s {median:.0}"
        );
    }
    Ok(())
}

/// The median, smallest and largest of the rates (sorted in place; never empty).
fn spread(rates: &mut [f64]) -> (f64, f64, f64) {
    rates.sort_by(f64::total_cmp);
    let middle = rates.len() / 2;
    let median = if rates.len() % 2 == 1 { rates[middle] } else { (rates[middle - 1] + rates[middle]) / 2.0 };
    (median, rates[0], rates[rates.len() - 1])
}

/// Inserts the rows in one transaction, a thousand per statement (each thousand responses followed
/// by their records, as a batch writes them); returns the seconds it took.
fn insert(conn: &mut DbConnection, rows: &[Row], records: &[IdempotencyKeysRow]) -> Result<f64, DbError> {
    let started = Instant::now();
    db::write_transaction(conn, |conn| {
        for (index, chunk) in rows.chunks(1_000).enumerate() {
            let records = records.chunks(1_000).nth(index).unwrap_or_default();
            match conn {
                DbConnection::Postgres(pg) => {
                    diesel::insert_into(responses::table).values(chunk).execute(pg)?;
                    if !records.is_empty() {
                        diesel::insert_into(idempotency_keys::table).values(records).execute(pg)?;
                    }
                }
                DbConnection::Sqlite(sqlite) => {
                    diesel::insert_into(responses::table).values(chunk).execute(sqlite)?;
                    if !records.is_empty() {
                        diesel::insert_into(idempotency_keys::table).values(records).execute(sqlite)?;
                    }
                }
            }
        }
        Ok::<_, DbError>(())
    })?;
    Ok(started.elapsed().as_secs_f64())
}
