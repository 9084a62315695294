//! Responses committed but not yet added to their tally rows (`pending_tallies`).
//!
//! The writer commits each group of responses with one small row per response in
//! `pending_tallies` instead of rewriting the campaign's tally rows (about 3 KB each, some thirty
//! per response) in every group; it adds them to the tallies later, many at once, in the
//! transaction that deletes their rows. So at every instant the tally rows plus the responses
//! listed here count every response exactly once, and a reader that reads both in one snapshot
//! ([`crate::db::read_snapshot`]) sees every acknowledged response.

use std::collections::HashMap;

use diesel::prelude::*;

use super::tally::{TallyDeltas, add_response, response_cells, response_tally};
use crate::campaign::context::CampaignContext;
use crate::db::schema::{pending_tallies, responses};
use crate::db::{DbConnection, DbError};
use crate::survey::answers::Answers;

/// A stored response, as much of it as its tallies need.
pub type StoredResponse = (String, i64, String, String);

/// Adds stored responses of one campaign (id, agency id, respondent type, stored answers) to
/// `deltas`, at their agency and every ancestor. Returns a description of each response that
/// could not be counted (answers that do not decode, an agency outside the campaign).
pub fn tally_stored(
    deltas: &mut TallyDeltas,
    context: &CampaignContext,
    stored: impl IntoIterator<Item = StoredResponse>,
) -> Vec<String> {
    let mut paths: Option<HashMap<i64, &[i64]>> = None;
    let mut faults = Vec::new();
    for (id, agency_id, respondent_type, answers) in stored {
        let paths = paths.get_or_insert_with(|| context.members.values().map(|m| (m.agency_id, &m.path[..])).collect());
        let answers = match Answers::decode(&context.definition, &answers) {
            Ok(answers) => answers,
            Err(error) => {
                faults.push(format!("response {id}: stored answers do not decode: {error}"));
                continue;
            }
        };
        let Some(path) = paths.get(&agency_id) else {
            faults.push(format!("response {id}: agency {agency_id} is not a member of the campaign"));
            continue;
        };
        let tally = response_tally(&context.definition, &context.layout, &answers);
        let cells = response_cells(&context.layout, &answers);
        add_response(deltas, &context.layout, path, &respondent_type, &cells, &tally);
    }
    faults
}

/// The tallies of a campaign's responses not yet added to its tally rows. Read it in the same
/// snapshot as the tally rows it completes.
pub fn pending_deltas(conn: &mut DbConnection, context: &CampaignContext) -> Result<TallyDeltas, DbError> {
    let campaign = context.campaign.id.as_str();
    let stored: Vec<StoredResponse> = responses::table
        .filter(
            responses::id.eq_any(
                pending_tallies::table
                    .filter(pending_tallies::campaign_id.eq(campaign))
                    .select(pending_tallies::response_id),
            ),
        )
        .select((responses::id, responses::agency_id, responses::respondent_type, responses::answers))
        .load(conn)?;
    let mut deltas = TallyDeltas::new();
    for fault in tally_stored(&mut deltas, context, stored) {
        tracing::error!(campaign, fault, "a stored response cannot be counted");
    }
    Ok(deltas)
}

/// How many of a campaign's responses are not yet added to its tally rows.
pub fn pending_count(conn: &mut DbConnection, campaign: &str) -> Result<i64, DbError> {
    Ok(pending_tallies::table.filter(pending_tallies::campaign_id.eq(campaign)).count().get_result(conn)?)
}
