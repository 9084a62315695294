//! Integration tests: the real server on a random port against a fresh database per test.
//! SQLite by default; set `SIPAS_TEST_DATABASE_URL=postgres://…` to run every test on
//! PostgreSQL (each test in its own schema, dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod agencies;
mod browser;
mod campaigns;
mod cli;
mod crash;
mod form;
mod health;
mod helpers;
mod hostile;
mod intake;
mod keys;
mod mail;
mod openapi;
mod operations;
mod outages;
mod refused;
mod results;
mod stats;
mod storage;
mod surveys;
