//! Recomputing a campaign's tallies from its stored answers and naming every difference from the
//! stored tallies (`sipas tallies verify`). Responses are streamed in pages, never loaded whole.

use diesel::prelude::*;

use super::pending::{StoredResponse, pending_deltas, tally_stored};
use super::tally::{Tally, TallyDeltas};
use crate::campaign::context::CampaignContext;
use crate::db::schema::{responses, tallies};
use crate::db::{DbConnection, DbError};

/// Responses read per page.
const PAGE: i64 = 5_000;

/// What a verification found.
#[derive(Debug, Default)]
pub struct Verification {
    /// Responses recounted.
    pub responses: u64,
    /// Tally rows compared.
    pub rows: usize,
    /// Every difference, described.
    pub differences: Vec<String>,
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

fn describe(key: &(i64, String, String), recount: &Tally, stored: &Tally) -> Option<String> {
    let (agency, respondent_type, cell) = key;
    let at = format!("agency {agency}, {respondent_type}, cell {cell}");
    if recount.respondents != stored.respondents {
        return Some(format!("{at}: {} respondents recounted, {} stored", recount.respondents, stored.respondents));
    }
    if let Some(slot) = recount.counts.iter().zip(&stored.counts).position(|(a, b)| a != b) {
        return Some(format!(
            "{at}: count slot {slot} is {} recounted, {} stored",
            recount.counts[slot], stored.counts[slot]
        ));
    }
    for (index, (a, b)) in recount.measures.iter().zip(&stored.measures).enumerate() {
        if a.n != b.n || !close(a.sum, b.sum) || !close(a.sum_sq, b.sum_sq) {
            return Some(format!(
                "{at}: measure {index} is (n {}, sum {}) recounted, (n {}, sum {}) stored",
                a.n, a.sum, b.n, b.sum
            ));
        }
    }
    None
}

/// Recounts one campaign, comparing the recount with its tally rows plus the responses not yet
/// added to them, all read in one snapshot.
pub fn verify_campaign(conn: &mut DbConnection, campaign: &str) -> Result<Verification, DbError> {
    crate::db::read_snapshot(conn, |conn| verify_in_snapshot(conn, campaign))
}

fn verify_in_snapshot(conn: &mut DbConnection, campaign: &str) -> Result<Verification, DbError> {
    let context = CampaignContext::load(conn, campaign)?.ok_or(DbError::Query(diesel::result::Error::NotFound))?;
    let mut recount = TallyDeltas::new();
    let mut verification = Verification::default();
    let mut after = String::new();
    loop {
        let page: Vec<StoredResponse> = responses::table
            .filter(responses::campaign_id.eq(campaign))
            .filter(responses::id.gt(&after))
            .order(responses::id)
            .limit(PAGE)
            .select((responses::id, responses::agency_id, responses::respondent_type, responses::answers))
            .load(conn)?;
        let Some(last) = page.last() else { break };
        after = last.0.clone();
        verification.responses += page.len() as u64;
        verification.differences.extend(tally_stored(&mut recount, &context, page));
    }
    let mut pending = pending_deltas(conn, &context)?;
    let stored: Vec<(i64, String, String, i64, Vec<u8>)> = tallies::table
        .filter(tallies::campaign_id.eq(campaign))
        .select((tallies::agency_id, tallies::respondent_type, tallies::cell, tallies::respondents, tallies::data))
        .load(conn)?;
    verification.rows = stored.len();
    for (agency, respondent_type, cell, respondents, data) in stored {
        let key = (agency, respondent_type, cell);
        let mut stored_tally = match Tally::decode(&context.layout, &data) {
            Ok(tally) => tally,
            Err(error) => {
                verification.differences.push(format!("tally {key:?}: {error}"));
                continue;
            }
        };
        if stored_tally.respondents != respondents as u64 {
            verification.differences.push(format!(
                "tally {key:?}: column says {respondents} respondents, data {}",
                stored_tally.respondents
            ));
        }
        if let Some(unfolded) = pending.remove(&key) {
            stored_tally.add(&unfolded);
        }
        match recount.remove(&key) {
            Some(recounted) => verification.differences.extend(describe(&key, &recounted, &stored_tally)),
            None if stored_tally.respondents == 0 => {}
            None => verification.differences.push(format!("tally {key:?}: stored, but no response counts there")),
        }
    }
    for (key, unfolded) in pending {
        match recount.remove(&key) {
            Some(recounted) => verification.differences.extend(describe(&key, &recounted, &unfolded)),
            None => verification.differences.push(format!("tally {key:?}: pending, but no response counts there")),
        }
    }
    for key in recount.keys() {
        verification.differences.push(format!("tally {key:?}: responses count there, but no row is stored"));
    }
    Ok(verification)
}
