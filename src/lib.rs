//! sipas measures how satisfied people and businesses are with the public administrative services
//! of government agencies, the way Vietnam's national SIPAS index does: survey definitions as
//! data, one write path for responses, statistics from sufficient statistics, on SQLite or
//! PostgreSQL.

pub mod agency;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod campaign;
pub mod config;
pub mod db;
pub mod demo;
pub mod error;
pub mod intake;
pub mod mail;
pub mod metrics;
pub mod report;
pub mod stats;
pub mod survey;
pub mod telemetry;
pub mod web;
