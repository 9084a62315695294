//! What the write path needs to know about a campaign, loaded once and cached: the campaign, its
//! definition, the tally layout, and every member agency with its chain of ancestors.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use diesel::prelude::*;

use super::{Campaign, get as get_campaign, vietnam};
use crate::db::schema::{agencies, campaign_agencies, campaigns};
use crate::db::{DbConnection, DbError};
use crate::intake::tally::TallyLayout;
use crate::survey::SurveyDefinition;
use crate::survey::store as survey_store;

/// How long a cached campaign is trusted before its `updated_at` is checked again (changes made
/// through another instance become visible within this time).
pub const RECHECK_AFTER: Duration = Duration::from_secs(5);

/// An agency that belongs to a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub agency_id: i64,
    /// Its id, then its ancestors' up to the root: the rows its responses are tallied in.
    pub path: Vec<i64>,
}

/// A campaign ready for the write path.
#[derive(Debug)]
pub struct CampaignContext {
    /// The campaign.
    pub campaign: Campaign,
    /// Its survey version.
    pub definition: Arc<SurveyDefinition>,
    /// Where counts sit in its tallies.
    pub layout: TallyLayout,
    /// Member agencies by code (resolved at the opening date).
    pub members: HashMap<String, Member>,
    loaded_at: Instant,
}

impl CampaignContext {
    /// Loads a campaign with its members; `None` when there is no such campaign.
    pub fn load(conn: &mut DbConnection, id: &str) -> Result<Option<Self>, DbError> {
        let Some(campaign) = get_campaign(conn, id)? else { return Ok(None) };
        let definition = survey_store::get(conn, &campaign.survey, Some(campaign.version))?
            .ok_or_else(|| DbError::Query(diesel::result::Error::NotFound))?;
        let date = campaign.opens_at.with_timezone(&vietnam()).date_naive();
        let roots: Vec<i64> = campaign_agencies::table
            .filter(campaign_agencies::campaign_id.eq(id))
            .select(campaign_agencies::agency_id)
            .load(conn)?;
        let members = members_of(conn, &roots, date)?;
        Ok(Some(Self {
            layout: TallyLayout::new(&definition),
            definition: Arc::new(definition),
            campaign,
            members,
            loaded_at: Instant::now(),
        }))
    }
}

type AgencyRow = (i64, String, Option<i64>, Option<NaiveDate>, Option<NaiveDate>);

/// Every agency in the subtrees of `roots` valid on `date`, with its ancestor path.
fn members_of(conn: &mut DbConnection, roots: &[i64], date: NaiveDate) -> Result<HashMap<String, Member>, DbError> {
    // The registry is small (thousands of rows): one read and the walk in memory beat a recursive
    // query that would differ between the two backends.
    let rows: Vec<AgencyRow> = agencies::table
        .select((agencies::id, agencies::code, agencies::parent_id, agencies::valid_from, agencies::valid_to))
        .load(conn)?;
    let parent_of: HashMap<i64, Option<i64>> = rows.iter().map(|(id, _, parent, _, _)| (*id, *parent)).collect();
    let mut members = HashMap::new();
    for (id, code, _, from, to) in &rows {
        let valid = from.is_none_or(|f| f <= date) && to.is_none_or(|t| t >= date);
        if !valid {
            continue;
        }
        let mut path = vec![*id];
        let mut cursor = parent_of.get(id).copied().flatten();
        while let Some(parent) = cursor {
            if path.len() > 64 {
                break;
            }
            path.push(parent);
            cursor = parent_of.get(&parent).copied().flatten();
        }
        if path.iter().any(|p| roots.contains(p)) {
            members.insert(code.clone(), Member { agency_id: *id, path });
        }
    }
    Ok(members)
}

/// Cached campaign contexts, shared by the handlers of one process.
#[derive(Debug, Default)]
pub struct CampaignCache {
    entries: RwLock<HashMap<String, Arc<CampaignContext>>>,
}

impl CampaignCache {
    /// The campaign's context, from the cache while it is fresh. Blocking.
    pub fn get(&self, conn: &mut DbConnection, id: &str) -> Result<Option<Arc<CampaignContext>>, DbError> {
        let cached = self.entries.read().ok().and_then(|entries| entries.get(id).cloned());
        if let Some(context) = &cached {
            if context.loaded_at.elapsed() < RECHECK_AFTER {
                return Ok(cached);
            }
            let updated_at: Option<chrono::NaiveDateTime> =
                campaigns::table.find(id).select(campaigns::updated_at).first(conn).optional()?;
            if updated_at == Some(context.campaign.updated_at.naive_utc()) {
                let refreshed = Arc::new(CampaignContext {
                    campaign: context.campaign.clone(),
                    definition: context.definition.clone(),
                    layout: context.layout.clone(),
                    members: context.members.clone(),
                    loaded_at: Instant::now(),
                });
                self.store(id, refreshed.clone());
                return Ok(Some(refreshed));
            }
        }
        match CampaignContext::load(conn, id)? {
            Some(context) => {
                let context = Arc::new(context);
                self.store(id, context.clone());
                Ok(Some(context))
            }
            None => {
                self.forget(id);
                Ok(None)
            }
        }
    }

    /// The cached context when it is fresh enough to use without asking the database (no I/O, so
    /// callable on the async executor).
    pub fn fresh(&self, id: &str) -> Option<Arc<CampaignContext>> {
        let entries = self.entries.read().ok()?;
        entries.get(id).filter(|context| context.loaded_at.elapsed() < RECHECK_AFTER).cloned()
    }

    fn store(&self, id: &str, context: Arc<CampaignContext>) {
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(id.to_owned(), context);
        }
    }

    /// Drops a campaign from the cache (after this process changed it).
    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(id);
        }
    }
}
