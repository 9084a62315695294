//! Anonymous response rows for analysts' own tools (CSV, NDJSON, XLSX), the codebook that explains
//! their columns, and Cronbach's alpha per element. Responses are read page by page and written
//! as they come: memory stays flat whatever the campaign's size.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::campaign::context::CampaignContext;
use crate::db::schema::responses;
use crate::db::{DbConnection, DbError};
use crate::stats::reliability::AlphaAccumulator;
use crate::survey::answers::{AnswerValue, Answers};
use crate::survey::model::{LocalizedText, SurveyDefinition};

/// Responses read per page.
const PAGE: i64 = 2_000;
/// Agency filters longer than this are applied in memory rather than in the query.
const MAX_IN_LIST: usize = 5_000;

/// Formats of the microdata export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MicrodataFormat {
    /// RFC 4180, UTF-8 with a byte-order mark for spreadsheet programs.
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// An Excel workbook.
    Xlsx,
}

impl MicrodataFormat {
    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
            Self::Xlsx => "xlsx",
        }
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Writing failed (the client went away, the disk is full).
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding failed.
    #[error("encoding the export failed: {0}")]
    Encode(String),
}

/// The columns before the answers.
pub const FIXED_COLUMNS: [&str; 6] = ["id", "agency", "respondent_type", "channel", "language", "received_on"];

/// One stored response, as exported.
struct Row {
    id: String,
    agency: String,
    respondent_type: String,
    channel: String,
    language: String,
    received_on: String,
}

type StoredRow = (String, i64, String, String, String, NaiveDateTime, String);

/// Calls `visit` for every response of the campaign (optionally only those of `agencies`), in id
/// order, reading `PAGE` rows at a time.
fn for_each_response(
    conn: &mut DbConnection,
    context: &CampaignContext,
    agencies: Option<&HashSet<i64>>,
    mut visit: impl FnMut(&Row, &Answers) -> Result<(), ExportError>,
) -> Result<u64, ExportError> {
    let codes: HashMap<i64, &str> = context.tree.nodes.values().map(|n| (n.id, n.code.as_str())).collect();
    let in_query: Option<Vec<i64>> = agencies.filter(|a| a.len() <= MAX_IN_LIST).map(|a| a.iter().copied().collect());
    let campaign = context.campaign.id.as_str();
    let mut after = String::new();
    let mut count = 0;
    loop {
        let mut query = responses::table
            .filter(responses::campaign_id.eq(campaign))
            .filter(responses::id.gt(&after))
            .order(responses::id)
            .limit(PAGE)
            .select((
                responses::id,
                responses::agency_id,
                responses::respondent_type,
                responses::channel,
                responses::language,
                responses::received_at,
                responses::answers,
            ))
            .into_boxed();
        if let Some(ids) = &in_query {
            query = query.filter(responses::agency_id.eq_any(ids.clone()));
        }
        let page: Vec<StoredRow> = query.load(conn).map_err(DbError::from)?;
        let Some(last) = page.last() else { break };
        after = last.0.clone();
        for (id, agency, respondent_type, channel, language, received_at, stored) in page {
            if agencies.is_some_and(|a| !a.contains(&agency)) {
                continue;
            }
            let answers = Answers::decode(&context.definition, &stored)
                .map_err(|e| ExportError::Db(DbError::Corrupt(format!("response {id}: {e}"))))?;
            let row = Row {
                agency: codes.get(&agency).map_or_else(|| agency.to_string(), |c| (*c).to_owned()),
                id,
                respondent_type,
                channel,
                language,
                received_on: received_at.date().to_string(),
            };
            visit(&row, &answers)?;
            count += 1;
        }
    }
    Ok(count)
}

/// An answer as a value code: numbers as digits, choices by their code (several joined by `;`).
fn answer_text(answer: Option<&AnswerValue>) -> String {
    match answer {
        None => String::new(),
        Some(AnswerValue::Number(n)) => n.to_string(),
        Some(AnswerValue::Choice(value)) => (*value).to_owned(),
        Some(AnswerValue::Text(value)) => value.clone(),
        Some(AnswerValue::Choices(values)) => values.join(";"),
    }
}

fn answer_json(answer: &AnswerValue) -> Value {
    match answer {
        AnswerValue::Number(n) => json!(n),
        AnswerValue::Choice(value) => json!(value),
        AnswerValue::Text(value) => json!(value),
        AnswerValue::Choices(values) => json!(values),
    }
}

/// The ids of `agency` and every agency below it in the campaign's tree.
pub fn subtree(context: &CampaignContext, agency: i64) -> HashSet<i64> {
    let mut ids = HashSet::new();
    let mut stack = vec![agency];
    while let Some(id) = stack.pop() {
        if ids.insert(id)
            && let Some(node) = context.tree.node(id)
        {
            stack.extend(&node.children);
        }
    }
    ids
}

/// Writes the responses of a campaign (or of a subtree) in a format to `out`; `progress` hears the
/// running count. Returns the number of responses written.
pub fn export_responses(
    conn: &mut DbConnection,
    context: &CampaignContext,
    agencies: Option<&HashSet<i64>>,
    format: MicrodataFormat,
    out: &mut (dyn Write + Send),
    progress: &mut dyn FnMut(u64),
) -> Result<u64, ExportError> {
    let definition = &context.definition;
    let question_ids: Vec<&str> = definition.questions.iter().map(|q| q.id.as_str()).collect();
    match format {
        MicrodataFormat::Csv => {
            out.write_all("\u{feff}".as_bytes())?;
            let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(out);
            let header: Vec<&str> = FIXED_COLUMNS.iter().copied().chain(question_ids.iter().copied()).collect();
            writer.write_record(&header).map_err(|e| ExportError::Encode(e.to_string()))?;
            let mut record: Vec<String> = Vec::with_capacity(header.len());
            let count = for_each_response(conn, context, agencies, |row, answers| {
                record.clear();
                record.extend(
                    [&row.id, &row.agency, &row.respondent_type, &row.channel, &row.language, &row.received_on]
                        .map(String::clone),
                );
                record.extend((0..question_ids.len()).map(|i| answer_text(answers.get(i))));
                writer.write_record(&record).map_err(|e| ExportError::Encode(e.to_string()))?;
                Ok(())
            })
            .inspect(|n| progress(*n));
            writer.flush()?;
            count
        }
        MicrodataFormat::Ndjson => {
            let mut written = 0u64;
            let count = for_each_response(conn, context, agencies, |row, answers| {
                let mut object = Map::new();
                for (i, id) in question_ids.iter().enumerate() {
                    if let Some(answer) = answers.get(i) {
                        object.insert((*id).to_owned(), answer_json(answer));
                    }
                }
                let line = json!({
                    "id": row.id, "agency": row.agency, "respondent_type": row.respondent_type,
                    "channel": row.channel, "language": row.language, "received_on": row.received_on,
                    "answers": object,
                });
                serde_json::to_writer(&mut *out, &line).map_err(|e| ExportError::Encode(e.to_string()))?;
                out.write_all(b"\n")?;
                written += 1;
                if written.is_multiple_of(10_000) {
                    progress(written);
                }
                Ok(())
            })?;
            progress(count);
            Ok(count)
        }
        MicrodataFormat::Xlsx => export_xlsx(conn, context, agencies, &question_ids, out, progress),
    }
}

/// Rows an XLSX export holds: Excel's limit of 1,048,576 rows per sheet, less the header.
pub const XLSX_MAX_ROWS: u64 = 1_048_575;

fn export_xlsx(
    conn: &mut DbConnection,
    context: &CampaignContext,
    agencies: Option<&HashSet<i64>>,
    question_ids: &[&str],
    out: &mut (dyn Write + Send),
    progress: &mut dyn FnMut(u64),
) -> Result<u64, ExportError> {
    use rust_xlsxwriter::Workbook;
    let encode = |e: rust_xlsxwriter::XlsxError| ExportError::Encode(e.to_string());
    let mut workbook = Workbook::new();
    let mut written = 0u64;
    {
        // A constant-memory worksheet spills its rows to a temporary file as they are written.
        let sheet = workbook.add_worksheet_with_constant_memory().map_err(encode)?;
        sheet.set_name("responses").map_err(encode)?;
        sheet.set_freeze_panes(1, 0).map_err(encode)?;
        let header = FIXED_COLUMNS.iter().copied().chain(question_ids.iter().copied());
        for (col, name) in header.enumerate() {
            sheet.write_string(0, col as u16, name).map_err(encode)?;
        }
        for_each_response(conn, context, agencies, |row, answers| {
            if written >= XLSX_MAX_ROWS {
                return Err(ExportError::Encode(format!(
                    "more than {XLSX_MAX_ROWS} responses do not fit a worksheet: use CSV or NDJSON"
                )));
            }
            written += 1;
            let r = written as u32;
            let fixed = [&row.id, &row.agency, &row.respondent_type, &row.channel, &row.language, &row.received_on];
            for (col, value) in fixed.into_iter().enumerate() {
                sheet.write_string(r, col as u16, value.as_str()).map_err(encode)?;
            }
            for i in 0..question_ids.len() {
                let col = (FIXED_COLUMNS.len() + i) as u16;
                match answers.get(i) {
                    None => {}
                    Some(AnswerValue::Number(n)) => {
                        sheet.write_number(r, col, *n as f64).map_err(encode)?;
                    }
                    other => {
                        sheet.write_string(r, col, answer_text(other)).map_err(encode)?;
                    }
                }
            }
            if written.is_multiple_of(10_000) {
                progress(written);
            }
            Ok(())
        })?;
    }
    workbook.save_to_writer(&mut *out).map_err(encode)?;
    progress(written);
    Ok(written)
}

/// One question of the codebook.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CodebookQuestion {
    /// Column name (question id).
    pub id: String,
    /// Section id.
    pub section: String,
    /// Kind of answer.
    pub kind: String,
    /// The question in every language.
    pub text: LocalizedText,
    /// Value codes with their labels (scale points and options).
    pub values: Vec<CodebookValue>,
    /// For a criterion: the element it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element: Option<String>,
    /// For a criterion: the values counted as satisfied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub satisfied: Option<Vec<i64>>,
    /// How a multi-choice answer is written in CSV.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// One value code.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CodebookValue {
    /// The code as it appears in the data.
    pub value: String,
    /// Its label in every language.
    pub label: LocalizedText,
}

/// The codebook of a campaign's microdata.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Codebook {
    /// Campaign id.
    pub campaign: String,
    /// Survey id.
    pub survey: String,
    /// Survey version.
    pub version: i32,
    /// The columns before the answers, explained.
    pub fixed_columns: Vec<CodebookValue>,
    /// One entry per answer column, in column order.
    pub questions: Vec<CodebookQuestion>,
}

fn text(vi: &str, en: &str) -> LocalizedText {
    LocalizedText([("vi".to_owned(), vi.to_owned()), ("en".to_owned(), en.to_owned())].into_iter().collect())
}

/// The codebook of a campaign.
pub fn codebook(context: &CampaignContext) -> Codebook {
    let definition: &SurveyDefinition = &context.definition;
    let m = &definition.measurement;
    let fixed = [
        ("id", "Mã phiếu trả lời", "Response id"),
        ("agency", "Mã cơ quan, đơn vị", "Agency code"),
        (
            "respondent_type",
            "Loại người trả lời (individual, organization)",
            "Respondent type (individual, organization)",
        ),
        ("channel", "Kênh (api, link, invitation)", "Channel (api, link, invitation)"),
        ("language", "Ngôn ngữ trả lời", "Language answered in"),
        ("received_on", "Ngày nhận (UTC)", "Date received (UTC)"),
    ];
    let questions = definition
        .questions
        .iter()
        .map(|q| {
            let element = m.elements.iter().find(|e| e.criteria.contains(&q.id) || e.general.as_ref() == Some(&q.id));
            let mut values: Vec<CodebookValue> =
                q.labels.iter().map(|p| CodebookValue { value: p.value.to_string(), label: p.label.clone() }).collect();
            values.extend(q.options.iter().map(|o| CodebookValue { value: o.value.clone(), label: o.label.clone() }));
            CodebookQuestion {
                id: q.id.clone(),
                section: q.section.clone(),
                kind: serde_json::to_value(q.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                text: q.text.clone(),
                values,
                element: element.map(|e| e.id.clone()),
                satisfied: element.map(|e| e.satisfied.clone().unwrap_or_else(|| m.satisfied.clone())),
                format: (q.kind == crate::survey::model::QuestionKind::MultiChoice)
                    .then(|| "codes joined by `;` in CSV and XLSX, an array in NDJSON".to_owned()),
            }
        })
        .collect();
    Codebook {
        campaign: context.campaign.id.clone(),
        survey: definition.id.clone(),
        version: definition.version,
        fixed_columns: fixed
            .into_iter()
            .map(|(value, vi, en)| CodebookValue { value: value.to_owned(), label: text(vi, en) })
            .collect(),
        questions,
    }
}

/// The codebook as CSV: one row per question and value.
pub fn codebook_csv(codebook: &Codebook) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    writer.write_record(["column", "kind", "text_vi", "text_en", "value", "label_vi", "label_en", "element"])?;
    for column in &codebook.fixed_columns {
        writer.write_record([
            &column.value,
            "fixed",
            column.label.get("vi"),
            column.label.get("en"),
            "",
            "",
            "",
            "",
        ])?;
    }
    for q in &codebook.questions {
        let element = q.element.clone().unwrap_or_default();
        if q.values.is_empty() {
            writer.write_record([&q.id, &q.kind, q.text.get("vi"), q.text.get("en"), "", "", "", &element])?;
        }
        for v in &q.values {
            writer.write_record([
                &q.id,
                &q.kind,
                q.text.get("vi"),
                q.text.get("en"),
                &v.value,
                v.label.get("vi"),
                v.label.get("en"),
                &element,
            ])?;
        }
    }
    writer.into_inner().map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))
}

/// Cronbach's alpha of one element.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ElementReliability {
    /// Element id.
    pub id: String,
    /// Its label in the chosen language.
    pub label: String,
    /// Criteria (items).
    pub items: usize,
    /// Respondents who answered every criterion of the element.
    pub complete: u64,
    /// Cronbach's alpha; `null` with fewer than two items or two complete respondents.
    pub alpha: Option<f64>,
}

/// The answer of `GET /api/v1/campaigns/{id}/reliability`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reliability {
    /// Campaign id.
    pub campaign: String,
    /// Agency code the respondents are from (with its subtree).
    pub agency: String,
    /// Responses read.
    pub responses: u64,
    /// Per element.
    pub elements: Vec<ElementReliability>,
    /// How alpha is computed.
    pub method: String,
}

/// Cronbach's alpha per element over the responses of an agency's subtree, streamed.
pub fn reliability(
    conn: &mut DbConnection,
    context: &CampaignContext,
    agency: i64,
    language: &str,
) -> Result<Reliability, ExportError> {
    let definition = &context.definition;
    let index_of: HashMap<&str, usize> =
        definition.questions.iter().enumerate().map(|(i, q)| (q.id.as_str(), i)).collect();
    let elements = &definition.measurement.elements;
    let items: Vec<Vec<usize>> = elements
        .iter()
        .map(|e| e.criteria.iter().filter_map(|c| index_of.get(c.as_str()).copied()).collect())
        .collect();
    let mut accumulators: Vec<AlphaAccumulator> = items.iter().map(|i| AlphaAccumulator::new(i.len())).collect();
    let filter = (Some(agency) != context.tree.root).then(|| subtree(context, agency));
    let mut values = Vec::new();
    let responses = for_each_response(conn, context, filter.as_ref(), |_, answers| {
        for (accumulator, questions) in accumulators.iter_mut().zip(&items) {
            values.clear();
            values.extend(questions.iter().map(|q| match answers.get(*q) {
                Some(AnswerValue::Number(n)) => Some(*n as f64),
                _ => None,
            }));
            accumulator.add(&values);
        }
        Ok(())
    })?;
    Ok(Reliability {
        campaign: context.campaign.id.clone(),
        agency: context.tree.node(agency).map(|n| n.code.clone()).unwrap_or_default(),
        responses,
        elements: elements
            .iter()
            .zip(&items)
            .zip(&accumulators)
            .map(|((e, i), a)| ElementReliability {
                id: e.id.clone(),
                label: e.label.get(language).to_owned(),
                items: i.len(),
                complete: a.complete(),
                alpha: a.alpha(),
            })
            .collect(),
        method: "Cronbach's alpha of the element's criteria on the raw scale values, over respondents who \
                 answered every criterion of the element (listwise)"
            .to_owned(),
    })
}
