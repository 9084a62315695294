//! The single-POST benchmark's ceiling (`bench/ceiling.sh`): a bare server that does, for each
//! `POST /api/v1/responses`, only what no response service can skip: HTTP (the same actix-web
//! server, one worker per core, keep-alive), reading the body, and storing a response row and its
//! pending-tally row in a transaction committed with other requests' rows (group commit on one
//! writer thread, `synchronous=FULL` on SQLite, the same connection settings and kept multi-row
//! inserts as sipas), answering 201 only after the commit. It does not parse, authenticate,
//! check, hash, count or log anything; every row is a copy of a response the benchmark stored
//! through sipas (a new id and time), so the rows written are those of a sipas POST.
//!
//! `GET /healthz` answers as sipas's does, so that the ceiling's own ratio to it can be set beside
//! sipas's. Stops on Ctrl-C or SIGTERM.
//! Usage: `cargo run --release --example post_ceiling -- DATABASE_URL CAMPAIGN ADDRESS`

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use actix_web::{App, HttpResponse, HttpServer, web};
use chrono::Utc;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use sipas::api::responses::RESPONSE_BODY_LIMIT;
use sipas::db::copy::ResponsesRow as Row;
use sipas::db::schema::{pending_tallies, responses};
use sipas::db::{self, DatabaseTarget, DbConnection, DbError};
use sipas::intake::writer::{CHECKPOINT_EVERY, MAX_GROUP, QUEUE_DEPTH, WRITER_AUTOCHECKPOINT_PAGES};
use tokio::sync::oneshot;

/// Rows waiting for the writer, each with the request to answer after its commit.
type Job = (Row, oneshot::Sender<Result<(), String>>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(campaign), Some(address)) = (args.get(1), args.get(2), args.get(3)) else {
        return Err("usage: post_ceiling DATABASE_URL CAMPAIGN ADDRESS".into());
    };
    let target = DatabaseTarget::parse(url)?;
    let mut conn = db::connect(&target)?;
    let template: Row =
        responses::table.filter(responses::campaign_id.eq(campaign)).select(Row::as_select()).first(&mut conn)?;
    if matches!(conn, DbConnection::Sqlite(_)) {
        // As sipas: the log is copied back on a thread of its own, not in the writer's commits.
        conn.batch_execute(&format!("PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES};"))?;
        let mut checkpoints = db::connect(&target)?;
        std::thread::Builder::new().name("ceiling-checkpoint".to_owned()).spawn(move || {
            while checkpoints.batch_execute("PRAGMA wal_checkpoint(PASSIVE);").is_ok() {
                std::thread::sleep(CHECKPOINT_EVERY);
            }
        })?;
    }
    let (sender, receiver) = sync_channel::<Job>(QUEUE_DEPTH);
    std::thread::Builder::new().name("ceiling-writer".to_owned()).spawn(move || write_groups(conn, &receiver))?;
    let state = web::Data::new((sender, template));
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(RESPONSE_BODY_LIMIT))
                .route(
                    "/healthz",
                    web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }),
                )
                .route("/api/v1/responses", web::post().to(post))
        })
        .workers(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .bind(address.as_str())?
        .run()
        .await
    })?;
    Ok(())
}

/// Stores a copy of the template response (the body is read and dropped) and answers 201 after
/// its commit.
async fn post(state: web::Data<(SyncSender<Job>, Row)>, body: web::Bytes) -> HttpResponse {
    let (sender, template) = state.get_ref();
    drop(body);
    let id = ulid::Ulid::new().to_string();
    let row = Row { id: id.clone(), received_at: Utc::now().naive_utc(), ..template.clone() };
    let (reply, answer) = oneshot::channel();
    if sender.try_send((row, reply)).is_err() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    match answer.await {
        Ok(Ok(())) => HttpResponse::Created().json(serde_json::json!({"id": id, "received_at": Utc::now()})),
        _ => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// The writer thread: every row waiting at that moment in one transaction, then the answers.
fn write_groups(mut conn: DbConnection, receiver: &Receiver<Job>) {
    while let Ok((row, reply)) = receiver.recv() {
        let (mut rows, mut replies) = (vec![row], vec![reply]);
        while rows.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok((row, reply)) => {
                    rows.push(row);
                    replies.push(reply);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let result = insert(&mut conn, &rows).map_err(|error| error.to_string());
        for reply in replies {
            let _gone = reply.send(result.clone());
        }
    }
}

/// Inserts the group's responses and their pending-tally rows in one transaction.
fn insert(conn: &mut DbConnection, rows: &[Row]) -> Result<(), DbError> {
    let now = Utc::now().naive_utc();
    let pending: Vec<_> = rows
        .iter()
        .map(|row| {
            (
                pending_tallies::response_id.eq(row.id.as_str()),
                pending_tallies::campaign_id.eq(row.campaign_id.as_str()),
                pending_tallies::created_at.eq(now),
            )
        })
        .collect();
    db::write_transaction(conn, |conn| {
        match conn {
            DbConnection::Postgres(pg) => {
                db::kept_insert::insert_rows(pg, responses::table, rows)?;
                db::kept_insert::insert_rows(pg, pending_tallies::table, &pending[..])?;
            }
            DbConnection::Sqlite(sqlite) => {
                db::kept_insert::insert_rows(sqlite, responses::table, rows)?;
                db::kept_insert::insert_rows(sqlite, pending_tallies::table, &pending[..])?;
            }
        }
        Ok::<_, DbError>(())
    })
}
