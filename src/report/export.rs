//! A statistics report as CSV (one row per unit and measure, RFC 4180, UTF-8) and as XLSX (a
//! sheet per level, one row per unit, labels in the report's language).

use std::collections::BTreeMap;

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::output::{FiguresReport, MeasureReport, StatsReport, UnitReport};

/// Columns of the stats CSV.
pub const STATS_CSV_COLUMNS: [&str; 28] = [
    "campaign",
    "role",
    "agency",
    "agency_name",
    "level",
    "breakdown",
    "cell",
    "unit_n",
    "suppressed",
    "suppression",
    "rank",
    "kind",
    "measure",
    "label",
    "estimate",
    "ci_low",
    "ci_high",
    "n",
    "satisfied",
    "effective_n",
    "vs_parent_difference",
    "vs_parent_p_value",
    "previous",
    "change",
    "change_ci_low",
    "change_ci_high",
    "change_p_value",
    "synthetic",
];

fn number(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn count(value: Option<u64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn measures(figures: &FiguresReport) -> impl Iterator<Item = (&'static str, &MeasureReport)> {
    std::iter::once(("index", &figures.index))
        .chain(figures.components.iter().map(|m| ("component", m)))
        .chain(figures.elements.iter().map(|m| ("element", m)))
        .chain(figures.criteria.iter().map(|m| ("criterion", m)))
}

/// The report as CSV.
pub fn stats_csv(report: &StatsReport) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    writer.write_record(STATS_CSV_COLUMNS)?;
    let breakdown = report.method.breakdown.clone().unwrap_or_default();
    let mut rows = |role: &str, unit: &UnitReport, cell: Option<(&str, &FiguresReport)>| -> Result<(), csv::Error> {
        let figures = cell.map_or(&unit.figures, |(_, f)| f);
        for (kind, m) in measures(figures) {
            let change = m.change.flatten();
            writer.write_record([
                report.campaign.clone(),
                role.to_owned(),
                unit.agency.code.clone(),
                unit.agency.name.clone(),
                unit.agency.level.clone(),
                if cell.is_some() { breakdown.clone() } else { String::new() },
                cell.map(|(value, _)| value.to_owned()).unwrap_or_default(),
                figures.n.to_string(),
                figures.suppressed.to_string(),
                figures.suppression.clone().unwrap_or_default(),
                if cell.is_some() { String::new() } else { count(unit.rank.map(u64::from)) },
                kind.to_owned(),
                m.id.clone(),
                m.label.clone(),
                number(m.estimate),
                number(m.ci_low),
                number(m.ci_high),
                count(m.n),
                count(m.satisfied.flatten()),
                number(m.effective_n),
                number(m.vs_parent.map(|d| d.difference)),
                number(m.vs_parent.map(|d| d.p_value)),
                number(change.map(|c| c.previous)),
                number(change.map(|c| c.difference)),
                number(change.map(|c| c.ci_low)),
                number(change.map(|c| c.ci_high)),
                number(change.map(|c| c.p_value)),
                report.synthetic.to_string(),
            ])?;
        }
        Ok(())
    };
    let listed = report.parent.iter().map(|p| ("parent", p)).chain(report.units.iter().map(|u| ("unit", u)));
    for (role, unit) in listed {
        rows(role, unit, None)?;
        for cell in unit.breakdown.iter().flatten() {
            rows(role, unit, Some((&cell.value, &cell.figures)))?;
        }
    }
    writer.into_inner().map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))
}

/// Column headings of the XLSX in a language.
fn headings(language: &str) -> [&'static str; 7] {
    if language == "vi" {
        ["Mã", "Tên", "Cấp", "Số phiếu", "Không công bố", "Xếp hạng", "Vai trò"]
    } else {
        ["Code", "Name", "Level", "Respondents", "Suppressed", "Rank", "Role"]
    }
}

/// The report as an XLSX workbook: one sheet per level (the parent's level and the units'),
/// one row per unit, three columns (estimate, interval bounds) per measure.
pub fn stats_xlsx(report: &StatsReport, language: &str) -> Result<Vec<u8>, XlsxError> {
    let mut by_level: BTreeMap<String, Vec<(&str, &UnitReport)>> = BTreeMap::new();
    for (role, unit) in report.parent.iter().map(|p| ("parent", p)).chain(report.units.iter().map(|u| ("unit", u))) {
        by_level.entry(unit.agency.level.clone()).or_default().push((role, unit));
    }
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    if report.synthetic {
        // Synthetic figures say so on the sheet a reader opens first.
        let sheet = workbook.add_worksheet();
        sheet.set_name(if language == "vi" { "DỮ LIỆU MÔ PHỎNG" } else { "SYNTHETIC DATA" })?;
        sheet.write_string_with_format(
            0,
            0,
            if language == "vi" {
                "Dữ liệu mô phỏng: các số liệu trong tệp này được tạo ra để minh họa, không phải kết quả khảo sát thật."
            } else {
                "Synthetic data: the figures in this file were generated for demonstration and are not real survey results."
            },
            &bold,
        )?;
        sheet.write_string(1, 0, &report.title)?;
    }
    let (low, high) = if language == "vi" { ("cận dưới", "cận trên") } else { ("lower", "upper") };
    for (level, units) in by_level {
        let sheet = workbook.add_worksheet();
        let name: String = level.chars().filter(|c| !"[]:*?/\\".contains(*c)).take(31).collect();
        sheet.set_name(if name.is_empty() { "units".to_owned() } else { name })?;
        let fixed = headings(language);
        for (col, heading) in fixed.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, *heading, &bold)?;
        }
        let Some((_, first)) = units.first() else { continue };
        let mut col = fixed.len() as u16;
        for (_, m) in measures(&first.figures) {
            sheet.write_string_with_format(0, col, format!("{} [{}]", m.label, m.id), &bold)?;
            sheet.write_string_with_format(0, col + 1, format!("{} [{}] {low}", m.label, m.id), &bold)?;
            sheet.write_string_with_format(0, col + 2, format!("{} [{}] {high}", m.label, m.id), &bold)?;
            col += 3;
        }
        sheet.set_freeze_panes(1, 2)?;
        for (row, (role, unit)) in units.iter().enumerate() {
            let row = row as u32 + 1;
            sheet.write_string(row, 0, &unit.agency.code)?;
            sheet.write_string(row, 1, &unit.agency.name)?;
            sheet.write_string(row, 2, &unit.agency.level)?;
            sheet.write_number(row, 3, unit.figures.n as f64)?;
            sheet.write_boolean(row, 4, unit.figures.suppressed)?;
            if let Some(rank) = unit.rank {
                sheet.write_number(row, 5, f64::from(rank))?;
            }
            sheet.write_string(row, 6, *role)?;
            let mut col = fixed.len() as u16;
            for (_, m) in measures(&unit.figures) {
                for (offset, value) in [m.estimate, m.ci_low, m.ci_high].into_iter().enumerate() {
                    if let Some(value) = value {
                        sheet.write_number(row, col + offset as u16, value)?;
                    }
                }
                col += 3;
            }
        }
    }
    workbook.save_to_buffer()
}
