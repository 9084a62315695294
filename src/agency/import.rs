//! Loading registries from CSV: the official list of Vietnam's units shipped with sipas, and
//! any other registry in the same columns (`sipas agencies import`).
//!
//! An import is all or nothing: every bad row is reported with its line, and then nothing is
//! written. Importing the same file again changes nothing.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::NaiveDate;
use diesel::prelude::*;

use super::store::{self, Agency, AgencyId};
use super::{english_name, fold_for_search, today};
use crate::db::schema::{agencies, agency_successions};
use crate::db::{DbConnection, DbError};

/// The official list of the 34 provinces and 3,321 communes from 1 July 2025.
const ADMIN_UNITS_2025: &str = include_str!("../../survey-defs/agencies/vn-admin-units-2025.csv");
/// The 63 provinces valid until 30 June 2025 and the province each became part of.
const PROVINCE_MERGER_2025: &str = include_str!("../../survey-defs/agencies/vn-provinces-2025-merger.csv");
/// Code of the nation root every province hangs under.
pub const NATION_CODE: &str = "VN";

/// The day the 2025 reorganisation took effect.
fn reorganisation_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 7, 1).unwrap_or_default()
}

/// One row of a registry file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    /// Line in the file (1 is the header).
    pub line: u64,
    /// Level (`province`, `commune`, `ministry`, …).
    pub level: String,
    /// Official code.
    pub code: String,
    /// Name in Vietnamese.
    pub name: String,
    /// Official type of unit.
    pub division_type: Option<String>,
    /// Code of the parent, resolved at this row's date.
    pub parent_code: Option<String>,
    /// Name in English; derived from the Vietnamese name for standard unit types when absent.
    pub name_en: Option<String>,
    /// First day valid.
    pub valid_from: Option<NaiveDate>,
    /// Last day valid.
    pub valid_to: Option<NaiveDate>,
}

/// A problem with one line of a registry file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// Line in the file.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why an import wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Some rows are wrong; nothing was imported.
    #[error("{} bad row(s), nothing imported:\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Rows(Vec<RowProblem>),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ImportError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error.into())
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Agencies added.
    pub created: usize,
    /// Agencies whose name, level, type or parent changed.
    pub updated: usize,
    /// Rows that matched the registry already.
    pub unchanged: usize,
}

const REQUIRED_COLUMNS: [&str; 5] = ["level", "code", "name", "division_type", "parent_code"];
const OPTIONAL_COLUMNS: [&str; 3] = ["name_en", "valid_from", "valid_to"];

fn is_code(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_level(text: &str) -> bool {
    !text.is_empty() && text.len() <= 32 && text.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

/// Parses a registry CSV (UTF-8, header `level,code,name,division_type,parent_code`, optionally
/// `name_en`, `valid_from`, `valid_to` as `YYYY-MM-DD`).
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<ImportRow>, ImportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(bytes);
    let header_problem = |message: String| ImportError::Rows(vec![RowProblem { line: 1, message }]);
    let headers = reader.headers().map_err(|e| header_problem(e.to_string()))?.clone();
    let mut columns = HashMap::new();
    for (index, name) in headers.iter().enumerate() {
        let name = name.trim();
        if !REQUIRED_COLUMNS.contains(&name) && !OPTIONAL_COLUMNS.contains(&name) {
            return Err(header_problem(format!("unknown column `{name}`")));
        }
        columns.insert(name.to_owned(), index);
    }
    if let Some(missing) = REQUIRED_COLUMNS.iter().find(|c| !columns.contains_key(**c)) {
        return Err(header_problem(format!("missing column `{missing}`")));
    }
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |p| p.line());
                problems.push(RowProblem { line, message: error.to_string() });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let field = |name: &str| {
            columns.get(name).and_then(|i| record.get(*i)).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
        };
        let mut row_problems = Vec::new();
        let mut date = |name: &str| match field(name) {
            None => None,
            Some(text) => match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
                Ok(date) => Some(date),
                Err(_) => {
                    row_problems.push(format!("{name} `{text}` is not a date (YYYY-MM-DD)"));
                    None
                }
            },
        };
        let valid_from = date("valid_from");
        let valid_to = date("valid_to");
        let row = ImportRow {
            line,
            level: field("level").unwrap_or_default(),
            code: field("code").unwrap_or_default(),
            name: field("name").unwrap_or_default(),
            division_type: field("division_type"),
            parent_code: field("parent_code"),
            name_en: field("name_en"),
            valid_from,
            valid_to,
        };
        if !is_level(&row.level) {
            row_problems.push(format!("level `{}` must be lowercase letters or '_'", row.level));
        }
        if !is_code(&row.code) {
            row_problems.push(format!("code `{}` must be 1–64 letters, digits, '-', '_' or '.'", row.code));
        }
        if row.name.is_empty() {
            row_problems.push("name is empty".to_owned());
        }
        if let Some(parent) = &row.parent_code
            && !is_code(parent)
        {
            row_problems.push(format!("parent_code `{parent}` is not a valid code"));
        }
        if let (Some(from), Some(to)) = (row.valid_from, row.valid_to)
            && from > to
        {
            row_problems.push(format!("valid_from {from} is after valid_to {to}"));
        }
        if row_problems.is_empty() {
            rows.push(row);
        } else {
            problems.extend(row_problems.into_iter().map(|message| RowProblem { line, message }));
        }
    }
    if problems.is_empty() { Ok(rows) } else { Err(ImportError::Rows(problems)) }
}

/// Settings of one import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Validity start for rows that give none.
    pub default_valid_from: Option<NaiveDate>,
    /// Parent code for rows with an empty `parent_code` (otherwise they are roots).
    pub top_parent: Option<String>,
}

/// A row ready to write, with everything resolved. Its `None`s are NULL, also when inserted (so that
/// a chunk is one multi-row INSERT on SQLite, not one statement per row).
#[derive(Debug, Clone, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = agencies)]
#[diesel(treat_none_as_null = true, treat_none_as_default_value = false)]
struct NewAgency {
    code: String,
    name_vi: String,
    name_en: Option<String>,
    level: String,
    division_type: Option<String>,
    parent_id: Option<i64>,
    valid_from: Option<NaiveDate>,
    valid_to: Option<NaiveDate>,
    search_name: String,
}

fn overlaps(a: (Option<NaiveDate>, Option<NaiveDate>), b: (Option<NaiveDate>, Option<NaiveDate>)) -> bool {
    let starts_before_end = |from: Option<NaiveDate>, to: Option<NaiveDate>| match (from, to) {
        (Some(from), Some(to)) => from <= to,
        _ => true,
    };
    starts_before_end(a.0, b.1) && starts_before_end(b.0, a.1)
}

/// The date at which a row's parent code is resolved: its first day, else its last, else today.
fn resolution_date(valid_from: Option<NaiveDate>, valid_to: Option<NaiveDate>) -> NaiveDate {
    valid_from.or(valid_to).unwrap_or_else(today)
}

/// Imports rows in one transaction: all of them, or nothing when any is wrong.
pub fn import(
    conn: &mut DbConnection,
    rows: &[ImportRow],
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    crate::db::write_transaction(conn, |conn| import_in_transaction(conn, rows, options))
}

fn import_in_transaction(
    conn: &mut DbConnection,
    rows: &[ImportRow],
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut problems = Vec::new();
    let rows: Vec<ImportRow> = rows
        .iter()
        .cloned()
        .map(|mut row| {
            row.valid_from = row.valid_from.or(options.default_valid_from);
            if row.parent_code.is_none() && options.top_parent.as_deref() != Some(row.code.as_str()) {
                row.parent_code.clone_from(&options.top_parent);
            }
            row
        })
        .collect();

    // Within the file: one row per (code, validity), no overlapping validity for one code.
    let mut by_code: HashMap<&str, Vec<&ImportRow>> = HashMap::new();
    for row in &rows {
        let same_code = by_code.entry(row.code.as_str()).or_default();
        for other in same_code.iter() {
            if overlaps((other.valid_from, other.valid_to), (row.valid_from, row.valid_to)) {
                problems.push(RowProblem {
                    line: row.line,
                    message: format!("code `{}` is already used at overlapping dates on line {}", row.code, other.line),
                });
            }
        }
        same_code.push(row);
    }

    // Depth of each row within the file, so that parents are written before their children.
    let in_file_parent = |row: &ImportRow| -> Option<usize> {
        let parent_code = row.parent_code.as_deref()?;
        let date = resolution_date(row.valid_from, row.valid_to);
        rows.iter().position(|r| {
            r.code == parent_code && r.valid_from.is_none_or(|f| f <= date) && r.valid_to.is_none_or(|t| t >= date)
        })
    };
    let parents: Vec<Option<usize>> = rows.iter().map(in_file_parent).collect();
    let mut depths = vec![0usize; rows.len()];
    for (index, row) in rows.iter().enumerate() {
        let mut depth = 0;
        let mut cursor = parents[index];
        while let Some(parent) = cursor {
            depth += 1;
            if depth > rows.len() {
                problems.push(RowProblem { line: row.line, message: "parent chain forms a cycle".to_owned() });
                break;
            }
            cursor = parents[parent];
        }
        depths[index] = depth;
    }

    // Parents outside the file must exist in the registry at the row's date.
    let mut registry_parents: HashMap<usize, i64> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        let (Some(parent_code), None) = (&row.parent_code, parents[index]) else { continue };
        let date = resolution_date(row.valid_from, row.valid_to);
        match store::resolve(conn, parent_code, date)? {
            Some(parent) => {
                registry_parents.insert(index, parent.id);
            }
            None => problems.push(RowProblem {
                line: row.line,
                message: format!("parent `{parent_code}` is neither in the file nor in the registry on {date}"),
            }),
        }
    }

    // Rows matching an existing agency (same code and first day) update it; others must not
    // overlap an existing agency with the same code.
    let mut existing: HashMap<usize, Agency> = HashMap::new();
    let codes: Vec<String> = by_code.keys().map(|c| (*c).to_owned()).collect();
    let mut stored_by_code: HashMap<String, Vec<Agency>> = HashMap::new();
    for chunk in codes.chunks(500) {
        let stored: Vec<Agency> =
            agencies::table.filter(agencies::code.eq_any(chunk.to_vec())).select(Agency::as_select()).load(conn)?;
        for agency in stored {
            stored_by_code.entry(agency.code.clone()).or_default().push(agency);
        }
    }
    for (index, row) in rows.iter().enumerate() {
        for agency in stored_by_code.get(&row.code).into_iter().flatten() {
            if agency.valid_from == row.valid_from {
                existing.insert(index, agency.clone());
            } else if overlaps((agency.valid_from, agency.valid_to), (row.valid_from, row.valid_to)) {
                problems.push(RowProblem {
                    line: row.line,
                    message: format!(
                        "code `{}` already names `{}` in the registry at overlapping dates",
                        row.code, agency.name_vi
                    ),
                });
            }
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.line);
        return Err(ImportError::Rows(problems));
    }

    let mut report = ImportReport::default();
    let mut ids: HashMap<usize, i64> = HashMap::new();
    let max_depth = depths.iter().copied().max().unwrap_or(0);
    for depth in 0..=max_depth {
        let mut to_insert: Vec<(usize, NewAgency)> = Vec::new();
        for (index, row) in rows.iter().enumerate().filter(|(i, _)| depths[*i] == depth) {
            let parent_id = match parents[index] {
                Some(parent_index) => ids.get(&parent_index).copied(),
                None => registry_parents.get(&index).copied(),
            };
            let name_en =
                row.name_en.clone().or_else(|| row.division_type.as_deref().and_then(|t| english_name(&row.name, t)));
            let new = NewAgency {
                code: row.code.clone(),
                name_vi: row.name.clone(),
                search_name: fold_for_search(&format!("{} {}", row.name, name_en.as_deref().unwrap_or_default())),
                name_en,
                level: row.level.clone(),
                division_type: row.division_type.clone(),
                parent_id,
                valid_from: row.valid_from,
                valid_to: row.valid_to,
            };
            match existing.get(&index) {
                Some(stored) => {
                    ids.insert(index, stored.id);
                    let unchanged = stored.name_vi == new.name_vi
                        && stored.name_en == new.name_en
                        && stored.level == new.level
                        && stored.division_type == new.division_type
                        && stored.parent_id == new.parent_id
                        && stored.valid_to == new.valid_to;
                    if unchanged {
                        report.unchanged += 1;
                    } else {
                        diesel::update(agencies::table.find(stored.id)).set(&new).execute(conn)?;
                        report.updated += 1;
                    }
                }
                None => to_insert.push((index, new)),
            }
        }
        insert_agencies(conn, to_insert.iter().map(|(_, new)| new.clone()).collect())?;
        report.created += to_insert.len();
        for (index, new) in to_insert {
            let query = agencies::table.filter(agencies::code.eq(new.code.clone())).select(agencies::id).into_boxed();
            let query = match new.valid_from {
                Some(from) => query.filter(agencies::valid_from.eq(from)),
                None => query.filter(agencies::valid_from.is_null()),
            };
            let id = query.first::<i64>(conn)?;
            ids.insert(index, id);
        }
    }
    Ok(report)
}

/// Multi-row insert: not available through the multi-backend connection, so each backend gets it
/// on its own connection type.
fn insert_agencies(conn: &mut DbConnection, rows: Vec<NewAgency>) -> Result<(), DbError> {
    for chunk in rows.chunks(500) {
        match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(agencies::table).values(chunk).execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::insert_into(agencies::table).values(chunk).execute(sqlite)?,
        };
    }
    Ok(())
}

/// Loads Vietnam's official registry (the nation root, the 34 provinces and 3,321 communes from
/// 1 July 2025, the 63 earlier provinces and their successors) unless it is already there.
pub fn ensure_embedded_registry(conn: &mut DbConnection) -> Result<Option<ImportReport>, ImportError> {
    if store::resolve(conn, NATION_CODE, today())?.is_some() {
        return Ok(None);
    }
    crate::db::write_transaction(conn, |conn| {
        let root = ImportRow {
            line: 1,
            level: "nation".to_owned(),
            code: NATION_CODE.to_owned(),
            name: "Việt Nam".to_owned(),
            division_type: None,
            parent_code: None,
            name_en: Some("Viet Nam".to_owned()),
            valid_from: None,
            valid_to: None,
        };
        let mut report = import_in_transaction(conn, &[root], &ImportOptions::default())?;
        let units = parse_csv(ADMIN_UNITS_2025.as_bytes())?;
        let options =
            ImportOptions { default_valid_from: Some(reorganisation_day()), top_parent: Some(NATION_CODE.to_owned()) };
        let added = import_in_transaction(conn, &units, &options)?;
        report.created += added.created;
        report.updated += added.updated;
        report.unchanged += added.unchanged;
        let old = import_old_provinces(conn)?;
        report.created += old.created;
        Ok(Some(report))
    })
}

/// The 63 provinces valid until 30 June 2025, each linked to the province it became part of.
fn import_old_provinces(conn: &mut DbConnection) -> Result<ImportReport, ImportError> {
    let mut reader = csv::Reader::from_reader(PROVINCE_MERGER_2025.as_bytes());
    let mut rows = Vec::new();
    let mut links = Vec::new();
    let mut problems = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ImportError::Rows(vec![RowProblem { line: 0, message: e.to_string() }]))?;
        let line = record.position().map_or(0, |p| p.line());
        let get = |i: usize| record.get(i).unwrap_or_default().trim().to_owned();
        let (old_code, old_name, valid_to, new_code) = (get(0), get(1), get(2), get(3));
        let Ok(valid_to) = NaiveDate::parse_from_str(&valid_to, "%Y-%m-%d") else {
            problems.push(RowProblem { line, message: format!("valid_to `{valid_to}` is not a date") });
            continue;
        };
        let division_type = if old_name.starts_with("Thành phố ") { "thành phố trung ương" } else { "tỉnh" };
        rows.push(ImportRow {
            line,
            level: "province".to_owned(),
            code: old_code.clone(),
            name: old_name,
            division_type: Some(division_type.to_owned()),
            parent_code: Some(NATION_CODE.to_owned()),
            name_en: None,
            valid_from: None,
            valid_to: Some(valid_to),
        });
        links.push((old_code, valid_to, new_code));
    }
    if !problems.is_empty() {
        return Err(ImportError::Rows(problems));
    }
    let report = import_in_transaction(conn, &rows, &ImportOptions::default())?;
    let mut seen = HashSet::new();
    for (old_code, valid_to, new_code) in links {
        let effective_on = valid_to.succ_opt().unwrap_or(valid_to);
        let old = store::resolve(conn, &old_code, valid_to)?;
        let new = store::resolve(conn, &new_code, effective_on)?;
        let (Some(old), Some(new)) = (old, new) else {
            return Err(ImportError::Rows(vec![RowProblem {
                line: 0,
                message: format!("succession {old_code} → {new_code} names an unknown province"),
            }]));
        };
        if seen.insert((old.id, new.id)) {
            diesel::insert_into(agency_successions::table)
                .values((
                    agency_successions::predecessor_id.eq(old.id),
                    agency_successions::successor_id.eq(new.id),
                    agency_successions::effective_on.eq(effective_on),
                ))
                .execute(conn)?;
        }
    }
    Ok(report)
}

/// The agency ids of a code's subtree at a date (a convenience for callers holding a code).
pub fn resolve_subtree(conn: &mut DbConnection, code: &str, at: NaiveDate) -> Result<Option<Vec<AgencyId>>, DbError> {
    match store::resolve(conn, code, at)? {
        Some(agency) => store::subtree_ids(conn, agency.agency_id()).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_lists_parse_and_have_the_official_counts() {
        let rows = parse_csv(ADMIN_UNITS_2025.as_bytes()).unwrap_or_default();
        assert_eq!(rows.iter().filter(|r| r.level == "province").count(), 34);
        assert_eq!(rows.iter().filter(|r| r.level == "commune").count(), 3_321);
        assert_eq!(PROVINCE_MERGER_2025.lines().skip(1).filter(|l| !l.trim().is_empty()).count(), 63);
    }

    #[test]
    fn bad_rows_are_reported_by_line() {
        let csv = "level,code,name,division_type,parent_code,valid_from\n\
                   province,01,Hà Nội,tỉnh,,\n\
                   Province,0 2,,tỉnh,,2025-13-01\n";
        let Err(ImportError::Rows(problems)) = parse_csv(csv.as_bytes()) else {
            panic!("expected row problems");
        };
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(text.iter().all(|p| p.starts_with("line 3:")), "{text:?}");
        assert_eq!(problems.len(), 4, "{text:?}");
    }

    #[test]
    fn unknown_columns_are_refused() {
        let csv = "level,code,name,division_type,parent_code,colour\n";
        assert!(matches!(parse_csv(csv.as_bytes()), Err(ImportError::Rows(p)) if p[0].message.contains("colour")));
    }
}
