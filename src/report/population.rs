//! Population counts per agency and weighting cell (`PUT /api/v1/campaigns/{id}/population`):
//! parsing the analysts' CSV, storing it, and resolving a unit's population.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;

use crate::campaign::context::CampaignContext;
use crate::db::schema::populations;
use crate::db::{DbConnection, DbError, write_transaction};

/// One fault in an uploaded population table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopulationProblem {
    /// Line of the CSV (1 is the header).
    pub line: usize,
    /// Column at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Population counts by agency id, then weighting-cell key.
pub type Populations = HashMap<i64, HashMap<String, f64>>;

/// Parses `agency,<weighting questions…>,population` rows into (agency id, cell key, count). The
/// cell key is the one responses are tallied under (`w:gender=female,age_band=25_34`).
pub fn parse(context: &CampaignContext, text: &str) -> Result<Vec<(i64, String, i64)>, Vec<PopulationProblem>> {
    let definition = &context.definition;
    let weighting = &definition.measurement.weighting;
    let problem =
        |line: usize, field: &str, message: String| PopulationProblem { line, field: field.to_owned(), message };
    if weighting.is_empty() {
        return Err(vec![problem(
            1,
            "header",
            format!("survey `{}` declares no weighting questions, so it takes no population table", definition.id),
        )]);
    }
    let mut reader =
        csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let expected: Vec<String> = std::iter::once("agency".to_owned())
        .chain(weighting.iter().cloned())
        .chain(["population".to_owned()])
        .collect();
    let header: Vec<String> = match reader.headers() {
        Ok(header) => header.iter().map(str::to_owned).collect(),
        Err(error) => return Err(vec![problem(1, "header", error.to_string())]),
    };
    if header != expected {
        return Err(vec![problem(1, "header", format!("expected the columns {}", expected.join(",")))]);
    }
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let mut seen: HashMap<(i64, String), usize> = HashMap::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                problems.push(problem(line, "row", error.to_string()));
                continue;
            }
        };
        let agency = record.get(0).unwrap_or_default();
        let agency_id = match context.tree.find(agency) {
            Some(node) => Some(node.id),
            None => {
                problems.push(problem(line, "agency", format!("`{agency}` is not an agency of this campaign")));
                None
            }
        };
        let mut parts = Vec::with_capacity(weighting.len());
        for (at, question_id) in weighting.iter().enumerate() {
            let value = record.get(at + 1).unwrap_or_default();
            let known = definition.question(question_id).is_some_and(|q| q.options.iter().any(|o| o.value == value));
            if !known {
                problems.push(problem(line, question_id, format!("`{value}` is not an option of `{question_id}`")));
            }
            parts.push(format!("{question_id}={value}"));
        }
        let count = record.get(weighting.len() + 1).unwrap_or_default();
        let population = match count.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                problems.push(problem(line, "population", format!("`{count}` is not a whole number ≥ 0")));
                None
            }
        };
        let cell = format!("w:{}", parts.join(","));
        if let (Some(agency_id), Some(population)) = (agency_id, population) {
            if let Some(first) = seen.insert((agency_id, cell.clone()), line) {
                problems.push(problem(line, "agency", format!("repeats the agency and cell of line {first}")));
            }
            rows.push((agency_id, cell, population));
        }
    }
    if problems.is_empty() { Ok(rows) } else { Err(problems) }
}

/// Replaces a campaign's population table in one transaction.
pub fn replace(conn: &mut DbConnection, campaign: &str, rows: &[(i64, String, i64)]) -> Result<usize, DbError> {
    write_transaction(conn, |conn| {
        diesel::delete(populations::table.filter(populations::campaign_id.eq(campaign))).execute(conn)?;
        for chunk in rows.chunks(1_000) {
            let values: Vec<_> = chunk
                .iter()
                .map(|(agency, cell, population)| {
                    (
                        populations::campaign_id.eq(campaign),
                        populations::agency_id.eq(agency),
                        populations::cell.eq(cell),
                        populations::population.eq(population),
                    )
                })
                .collect();
            // Multi-row inserts need the concrete backend.
            match conn {
                DbConnection::Postgres(pg) => diesel::insert_into(populations::table).values(values).execute(pg)?,
                DbConnection::Sqlite(sqlite) => {
                    diesel::insert_into(populations::table).values(values).execute(sqlite)?
                }
            };
        }
        Ok::<_, DbError>(rows.len())
    })
}

/// A campaign's population table.
pub fn load(conn: &mut DbConnection, campaign: &str) -> Result<Populations, DbError> {
    let rows: Vec<(i64, String, i64)> = populations::table
        .filter(populations::campaign_id.eq(campaign))
        .select((populations::agency_id, populations::cell, populations::population))
        .load(conn)?;
    let mut table = Populations::new();
    for (agency, cell, population) in rows {
        table.entry(agency).or_default().insert(cell, population as f64);
    }
    Ok(table)
}

/// The table as CSV, in the upload format.
pub fn to_csv(context: &CampaignContext, table: &Populations) -> String {
    let weighting = &context.definition.measurement.weighting;
    let mut out = format!("agency,{},population\r\n", weighting.join(","));
    let mut rows: Vec<(String, String, f64)> = Vec::new();
    for (agency, cells) in table {
        let code = context.tree.node(*agency).map(|n| n.code.clone()).unwrap_or_default();
        for (cell, population) in cells {
            rows.push((code.clone(), cell.clone(), *population));
        }
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    for (code, cell, population) in rows {
        let values: Vec<&str> =
            cell.trim_start_matches("w:").split(',').map(|part| part.split_once('=').map_or("", |(_, v)| v)).collect();
        out.push_str(&format!("{code},{},{population}\r\n", values.join(",")));
    }
    out
}

/// A unit's population per cell: its own rows when it has any, otherwise the sum of its
/// children's (recursively), so that a table given per commune weights provinces and the nation.
pub fn resolve(context: &CampaignContext, table: &Populations, agency: i64) -> Option<BTreeMap<String, f64>> {
    if let Some(own) = table.get(&agency).filter(|cells| !cells.is_empty()) {
        return Some(own.iter().map(|(k, v)| (k.clone(), *v)).collect());
    }
    let node = context.tree.node(agency)?;
    let mut total: BTreeMap<String, f64> = BTreeMap::new();
    let mut any = false;
    for child in &node.children {
        if let Some(cells) = resolve(context, table, *child) {
            any = true;
            for (cell, population) in cells {
                *total.entry(cell).or_default() += population;
            }
        }
    }
    any.then_some(total)
}
