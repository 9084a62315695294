//! Reading the registry: lookups by code at a date, listings, parent chains and successions.

use chrono::NaiveDate;
use diesel::prelude::*;

use crate::db::schema::{agencies, agency_successions};
use crate::db::{DbConnection, DbError};

/// The database identity of an agency (codes are reused across eras; this id is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyId(pub i64);

/// One agency as stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = agencies)]
pub struct Agency {
    /// Database identity.
    pub id: i64,
    /// Official code, unique at any one date.
    pub code: String,
    /// Name in Vietnamese.
    pub name_vi: String,
    /// Name in English, where known.
    pub name_en: Option<String>,
    /// Level in the hierarchy (`nation`, `province`, `commune`, …).
    pub level: String,
    /// Official type of unit (`tỉnh`, `phường`, …).
    pub division_type: Option<String>,
    /// The parent agency.
    pub parent_id: Option<i64>,
    /// First day valid; `None` when valid since before the registry's records.
    pub valid_from: Option<NaiveDate>,
    /// Last day valid; `None` while still valid.
    pub valid_to: Option<NaiveDate>,
    /// The name folded for search.
    pub search_name: String,
}

impl Agency {
    /// The database identity.
    pub fn agency_id(&self) -> AgencyId {
        AgencyId(self.id)
    }

    /// Whether the agency is valid on `date`.
    pub fn is_valid_on(&self, date: NaiveDate) -> bool {
        self.valid_from.is_none_or(|from| from <= date) && self.valid_to.is_none_or(|to| to >= date)
    }
}

type ValidOn = diesel::dsl::And<
    diesel::dsl::Or<diesel::dsl::IsNull<agencies::valid_from>, diesel::dsl::LtEq<agencies::valid_from, NaiveDate>>,
    diesel::dsl::Or<diesel::dsl::IsNull<agencies::valid_to>, diesel::dsl::GtEq<agencies::valid_to, NaiveDate>>,
>;

/// SQL condition: the agency is valid on `date`.
fn valid_on(date: NaiveDate) -> ValidOn {
    agencies::valid_from
        .is_null()
        .or(agencies::valid_from.le(date))
        .and(agencies::valid_to.is_null().or(agencies::valid_to.ge(date)))
}

/// The agency with this code on this date.
pub fn resolve(conn: &mut DbConnection, code: &str, at: NaiveDate) -> Result<Option<Agency>, DbError> {
    Ok(agencies::table
        .filter(agencies::code.eq(code))
        .filter(valid_on(at))
        .select(Agency::as_select())
        .first(conn)
        .optional()?)
}

/// Every agency that has ever had this code, oldest first (for "valid until …" hints).
pub fn all_with_code(conn: &mut DbConnection, code: &str) -> Result<Vec<Agency>, DbError> {
    Ok(agencies::table
        .filter(agencies::code.eq(code))
        .order(agencies::valid_from.asc())
        .select(Agency::as_select())
        .load(conn)?)
}

/// The agency with this id.
pub fn by_id(conn: &mut DbConnection, id: AgencyId) -> Result<Option<Agency>, DbError> {
    Ok(agencies::table.find(id.0).select(Agency::as_select()).first(conn).optional()?)
}

/// The chain of parents from the agency's own parent up to the root.
pub fn ancestors(conn: &mut DbConnection, agency: &Agency) -> Result<Vec<Agency>, DbError> {
    let mut chain = Vec::new();
    let mut next = agency.parent_id;
    while let Some(parent_id) = next {
        // A cycle would be a corrupt registry; the bound keeps a bad import from hanging a request.
        if chain.len() > 64 {
            break;
        }
        let Some(parent) = by_id(conn, AgencyId(parent_id))? else { break };
        next = parent.parent_id;
        chain.push(parent);
    }
    Ok(chain)
}

/// A succession link as seen from one side.
#[derive(Debug, Clone)]
pub struct Succession {
    /// The agency on the other side of the link.
    pub agency: Agency,
    /// The day the successor took over.
    pub effective_on: NaiveDate,
}

/// The agencies this one took over from.
pub fn predecessors(conn: &mut DbConnection, id: AgencyId) -> Result<Vec<Succession>, DbError> {
    let rows: Vec<(Agency, NaiveDate)> = agency_successions::table
        .inner_join(agencies::table.on(agencies::id.eq(agency_successions::predecessor_id)))
        .filter(agency_successions::successor_id.eq(id.0))
        .order(agencies::code)
        .select((Agency::as_select(), agency_successions::effective_on))
        .load(conn)?;
    Ok(rows.into_iter().map(|(agency, effective_on)| Succession { agency, effective_on }).collect())
}

/// The agencies that took this one over.
pub fn successors(conn: &mut DbConnection, id: AgencyId) -> Result<Vec<Succession>, DbError> {
    let rows: Vec<(Agency, NaiveDate)> = agency_successions::table
        .inner_join(agencies::table.on(agencies::id.eq(agency_successions::successor_id)))
        .filter(agency_successions::predecessor_id.eq(id.0))
        .order(agencies::code)
        .select((Agency::as_select(), agency_successions::effective_on))
        .load(conn)?;
    Ok(rows.into_iter().map(|(agency, effective_on)| Succession { agency, effective_on }).collect())
}

/// The position after which a page of a listing starts: the last (code, id) already returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPosition {
    /// Code of the last agency returned.
    pub code: String,
    /// Id of the last agency returned.
    pub id: i64,
}

/// Which agencies to list.
#[derive(Debug, Clone)]
pub struct AgencyFilter {
    /// The date the agencies must be valid on.
    pub at: NaiveDate,
    /// Only the direct children of this agency.
    pub parent: Option<AgencyId>,
    /// Only this level.
    pub level: Option<String>,
    /// Only names (or codes) containing this text, compared without diacritics.
    pub text: Option<String>,
    /// Start after this position.
    pub after: Option<ListPosition>,
    /// At most this many.
    pub limit: i64,
}

/// Agencies matching the filter, ordered by code then id (a stable order for keyset paging).
pub fn list(conn: &mut DbConnection, filter: &AgencyFilter) -> Result<Vec<Agency>, DbError> {
    let mut query = agencies::table.filter(valid_on(filter.at)).into_boxed();
    if let Some(parent) = filter.parent {
        query = query.filter(agencies::parent_id.eq(parent.0));
    }
    if let Some(level) = &filter.level {
        query = query.filter(agencies::level.eq(level.clone()));
    }
    if let Some(text) = &filter.text {
        let pattern = format!("%{}%", escape_like(&super::fold_for_search(text)));
        query = query
            .filter(agencies::search_name.like(pattern).escape('\\').or(agencies::code.eq(text.trim().to_owned())));
    }
    if let Some(after) = &filter.after {
        query = query.filter(
            agencies::code
                .gt(after.code.clone())
                .or(agencies::code.eq(after.code.clone()).and(agencies::id.gt(after.id))),
        );
    }
    Ok(query
        .order((agencies::code.asc(), agencies::id.asc()))
        .limit(filter.limit)
        .select(Agency::as_select())
        .load(conn)?)
}

/// Escapes `%`, `_` and `\` so that user text matches literally inside a LIKE pattern.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// How many agencies the registry holds, in every era.
pub fn count(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(agencies::table.count().get_result(conn)?)
}

/// The agency's whole subtree (itself included) as ids, following parent links.
pub fn subtree_ids(conn: &mut DbConnection, root: AgencyId) -> Result<Vec<AgencyId>, DbError> {
    let mut result = vec![root];
    let mut frontier = vec![root.0];
    while !frontier.is_empty() {
        let children: Vec<i64> = frontier
            .chunks(500)
            .map(|chunk| {
                agencies::table
                    .filter(agencies::parent_id.eq_any(chunk.to_vec()))
                    .select(agencies::id)
                    .load::<i64>(conn)
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        result.extend(children.iter().copied().map(AgencyId));
        frontier = children;
        if result.len() > 1_000_000 {
            break;
        }
    }
    Ok(result)
}

/// The codes of the given agencies, by id.
pub fn codes_by_id(conn: &mut DbConnection, ids: &[i64]) -> Result<std::collections::HashMap<i64, String>, DbError> {
    let mut codes = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<(i64, String)> = agencies::table
            .filter(agencies::id.eq_any(chunk.to_vec()))
            .select((agencies::id, agencies::code))
            .load(conn)?;
        codes.extend(rows);
    }
    Ok(codes)
}

/// How many agencies valid on `at` have this one as their parent.
pub fn child_count(conn: &mut DbConnection, id: AgencyId, at: NaiveDate) -> Result<i64, DbError> {
    Ok(agencies::table.filter(agencies::parent_id.eq(id.0)).filter(valid_on(at)).count().get_result(conn)?)
}
