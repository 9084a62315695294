//! The batch benchmark's baseline (`bench/intake.sh`): copies of a response the benchmark stored,
//! inserted with plain diesel (multi-row INSERTs of 1,000, in one transaction) and nothing else:
//! no checks, no tallies, no idempotency records. Prints rows per second.
//! Usage: `cargo run --release --example batch_baseline -- DATABASE_URL CAMPAIGN [ROWS]`

use std::time::Instant;

use diesel::prelude::*;
use sipas::db::copy::ResponsesRow as Row;
use sipas::db::schema::responses;
use sipas::db::{self, DatabaseTarget, DbConnection, DbError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(campaign)) = (args.get(1), args.get(2)) else {
        return Err("usage: batch_baseline DATABASE_URL CAMPAIGN [ROWS]".into());
    };
    let count: usize = args.get(3).map(|rows| rows.parse()).transpose()?.unwrap_or(100_000);
    let mut conn = db::connect(&DatabaseTarget::parse(url)?)?;
    let template: Row =
        responses::table.filter(responses::campaign_id.eq(campaign)).select(Row::as_select()).first(&mut conn)?;
    let rows: Vec<Row> = (0..count).map(|_| Row { id: ulid::Ulid::new().to_string(), ..template.clone() }).collect();
    let started = Instant::now();
    db::write_transaction(&mut conn, |conn| {
        for chunk in rows.chunks(1_000) {
            match conn {
                DbConnection::Postgres(pg) => diesel::insert_into(responses::table).values(chunk).execute(pg)?,
                DbConnection::Sqlite(sqlite) => diesel::insert_into(responses::table).values(chunk).execute(sqlite)?,
            };
        }
        Ok::<_, DbError>(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    println!("baseline: {count} rows in {seconds:.2} s -> rows/s {:.0}", count as f64 / seconds);
    Ok(())
}
