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
    /// Every agency responses are tallied at (members and their ancestors), as a tree.
    pub tree: Arc<CampaignTree>,
    loaded_at: Instant,
}

/// An agency of a campaign's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Agency id.
    pub id: i64,
    /// Official code.
    pub code: String,
    /// Vietnamese name.
    pub name_vi: String,
    /// English name, when the registry has one.
    pub name_en: Option<String>,
    /// Level (`nation`, `province`, `commune`, …).
    pub level: String,
    /// Parent within the tree.
    pub parent: Option<i64>,
    /// Children within the tree, by code.
    pub children: Vec<i64>,
}

impl Node {
    /// The name in `language` (Vietnamese unless English is asked for and known).
    pub fn name(&self, language: &str) -> &str {
        match (language, &self.name_en) {
            ("en", Some(english)) => english,
            _ => &self.name_vi,
        }
    }
}

/// The agencies of a campaign: members and every ancestor, with parent and child links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignTree {
    /// Nodes by agency id.
    pub nodes: HashMap<i64, Node>,
    /// Agency id by code.
    pub by_code: HashMap<String, i64>,
    /// The topmost node (the common ancestor of all members, or the first root).
    pub root: Option<i64>,
}

impl CampaignTree {
    /// The node with this code.
    pub fn find(&self, code: &str) -> Option<&Node> {
        self.by_code.get(code).and_then(|id| self.nodes.get(id))
    }

    /// The node with this id.
    pub fn node(&self, id: i64) -> Option<&Node> {
        self.nodes.get(&id)
    }

    /// Whether `node` is one of `agencies` or lies below one of them. The tree holds every
    /// ancestor of its members, so the walk up reaches any agency above.
    pub fn within(&self, node: i64, agencies: &[i64]) -> bool {
        let mut cursor = Some(node);
        // The registry's depth is a handful of levels; the bound only guards against a cycle.
        for _ in 0..64 {
            let Some(id) = cursor else { return false };
            if agencies.contains(&id) {
                return true;
            }
            cursor = self.node(id).and_then(|n| n.parent);
        }
        false
    }

    /// Whether a reader limited to `limit` (`None`: not limited) may read `node`'s figures and
    /// rows: the node is one of the limit's agencies or lies below one.
    pub fn readable(&self, node: i64, limit: Option<&[i64]>) -> bool {
        limit.is_none_or(|agencies| self.within(node, agencies))
    }
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
        let (members, tree) = members_of(conn, &roots, date)?;
        Ok(Some(Self {
            tree: Arc::new(tree),
            layout: TallyLayout::new(&definition),
            definition: Arc::new(definition),
            campaign,
            members,
            loaded_at: Instant::now(),
        }))
    }
}

type AgencyRow = (i64, String, Option<i64>, Option<NaiveDate>, Option<NaiveDate>, String, Option<String>, String);

/// Every agency in the subtrees of `roots` valid on `date`, with its ancestor path, and the tree
/// those paths make.
fn members_of(
    conn: &mut DbConnection,
    roots: &[i64],
    date: NaiveDate,
) -> Result<(HashMap<String, Member>, CampaignTree), DbError> {
    // The registry is small (thousands of rows): one read and the walk in memory beat a recursive
    // query that would differ between the two backends.
    let rows: Vec<AgencyRow> = agencies::table
        .select((
            agencies::id,
            agencies::code,
            agencies::parent_id,
            agencies::valid_from,
            agencies::valid_to,
            agencies::name_vi,
            agencies::name_en,
            agencies::level,
        ))
        .load(conn)?;
    let parent_of: HashMap<i64, Option<i64>> = rows.iter().map(|row| (row.0, row.2)).collect();
    let mut members = HashMap::new();
    for (id, code, _, from, to, _, _, _) in &rows {
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
    Ok((members.clone(), build_tree(&members, &rows)))
}

fn build_tree(members: &HashMap<String, Member>, rows: &[AgencyRow]) -> CampaignTree {
    let mut parents: HashMap<i64, Option<i64>> = HashMap::new();
    for member in members.values() {
        for (at, id) in member.path.iter().enumerate() {
            parents.insert(*id, member.path.get(at + 1).copied());
        }
    }
    let mut tree = CampaignTree::default();
    for (id, code, _, _, _, name_vi, name_en, level) in rows {
        if let Some(parent) = parents.get(id) {
            tree.by_code.insert(code.clone(), *id);
            tree.nodes.insert(
                *id,
                Node {
                    id: *id,
                    code: code.clone(),
                    name_vi: name_vi.clone(),
                    name_en: name_en.clone(),
                    level: level.clone(),
                    parent: *parent,
                    children: Vec::new(),
                },
            );
        }
    }
    let mut links: Vec<(i64, i64, String)> =
        tree.nodes.values().filter_map(|n| n.parent.map(|p| (p, n.id, n.code.clone()))).collect();
    links.sort_by(|a, b| a.2.cmp(&b.2));
    for (parent, child, _) in links {
        if let Some(node) = tree.nodes.get_mut(&parent) {
            node.children.push(child);
        }
    }
    let mut roots: Vec<&Node> = tree.nodes.values().filter(|n| n.parent.is_none()).collect();
    roots.sort_by(|a, b| a.code.cmp(&b.code));
    // A single root with a single child chain is still the root: analysts start at the top.
    tree.root = roots.first().map(|n| n.id);
    tree
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
                    tree: context.tree.clone(),
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
