//! Inline SVG charts for the results pages: dot plots with interval whiskers, diverging and
//! stacked bars, and a trend line. Written by hand because the page must work without
//! JavaScript and pass an accessibility audit: the chart crates either draw with JavaScript in
//! the browser or emit SVG without titles, descriptions and roles, and none lets the text
//! alternative and the number formatting of the page's language be set.
//!
//! Every chart is an `<svg role="img">` named by its `<title>` and described by its `<desc>`;
//! the numbers it draws are passed in already computed (and shown in a table beside it), so the
//! drawing never computes a figure of its own.

use std::fmt::Write as _;

/// Width of every chart's coordinate system; the page scales it.
const WIDTH: f64 = 640.0;
/// Height of one row of a row chart.
const ROW: f64 = 22.0;
/// Space above the rows (for the axis labels).
const TOP: f64 = 28.0;
/// Longest row label of a bar chart, in characters (Vietnamese text with diacritics at 12 px
/// fits the label column).
const LABEL_CHARS: usize = 36;
/// Text colour (passes WCAG AA contrast on white).
const INK: &str = "#1a1a1a";
/// Grid lines.
const GRID: &str = "#d0d0d0";
/// Dots and whiskers (Okabe–Ito blue).
pub const DOT: &str = "#0072b2";
/// The unit the page is about, among its siblings, and reference lines (Okabe–Ito vermillion).
pub const HIGHLIGHT: &str = "#d55e00";
/// Five points of a satisfaction scale, lowest first (ColorBrewer BrBG, safe for colour-blind
/// readers and in greyscale print).
pub const SCALE5: [&str; 5] = ["#a6611a", "#dfc27d", "#e8e8e8", "#80cdc1", "#018571"];
/// Three levels of priority, highest first (ColorBrewer Blues).
pub const PRIORITY3: [&str; 3] = ["#08519c", "#6baed6", "#c6dbef"];

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Shortens a label to `max` characters with an ellipsis (the full text is in the table).
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short = short.trim_end().to_owned();
    short.push('…');
    short
}

/// What every chart carries: an id (unique on the page), a title and a text alternative.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    /// Prefix of the element ids.
    pub id: &'a str,
    /// The accessible name.
    pub title: &'a str,
    /// The text alternative: what a reader should take from the chart.
    pub description: &'a str,
}

fn open(frame: &Frame, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" viewBox=\"0 0 {WIDTH} {height:.0}\" \
         aria-labelledby=\"{id}-title {id}-desc\" font-family=\"system-ui, sans-serif\" font-size=\"12\">\
         <title id=\"{id}-title\">{title}</title><desc id=\"{id}-desc\">{desc}</desc>",
        id = escape(frame.id),
        title = escape(frame.title),
        desc = escape(frame.description),
    )
}

/// A linear scale from a domain to a pixel range.
#[derive(Debug, Clone, Copy)]
struct Scale {
    low: f64,
    high: f64,
    from: f64,
    to: f64,
}

impl Scale {
    fn at(&self, value: f64) -> f64 {
        let span = (self.high - self.low).max(f64::EPSILON);
        self.from + (value.clamp(self.low, self.high) - self.low) / span * (self.to - self.from)
    }

    /// Ticks every `step`.
    fn ticks(&self, step: f64) -> Vec<f64> {
        let mut ticks = Vec::new();
        let mut tick = (self.low / step).ceil() * step;
        while tick <= self.high + 1e-9 {
            ticks.push(tick);
            tick += step;
        }
        ticks
    }
}

/// A percentage domain that holds every value, widened to multiples of 5 within 0–100.
fn percent_domain(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for value in values.filter(|v| v.is_finite()) {
        low = low.min(value);
        high = high.max(value);
    }
    if !low.is_finite() {
        return (0.0, 100.0);
    }
    let low = ((low - 1.0) / 5.0).floor() * 5.0;
    let high = ((high + 1.0) / 5.0).ceil() * 5.0;
    let (low, high) = (low.max(0.0), high.min(100.0));
    if high - low < 10.0 { ((high - 10.0).max(0.0), (low + 10.0).min(100.0)) } else { (low, high) }
}

fn tick_step(span: f64) -> f64 {
    if span > 50.0 {
        20.0
    } else if span > 20.0 {
        10.0
    } else {
        5.0
    }
}

/// A tick label: ticks fall on multiples of 5, printed without decimals.
fn tick_label(value: f64) -> String {
    format!("{:.0}", value.abs())
}

fn axis(svg: &mut String, scale: &Scale, top: f64, bottom: f64) {
    for tick in scale.ticks(tick_step(scale.high - scale.low)) {
        let x = scale.at(tick);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top:.1}\" y2=\"{bottom:.1}\" stroke=\"{GRID}\" stroke-width=\"1\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{INK}\">{}</text>",
            top - 8.0,
            tick_label(tick)
        );
    }
}

/// One row of a dot plot: an estimate with its interval.
#[derive(Debug, Clone)]
pub struct DotRow {
    /// Row label.
    pub label: String,
    /// The estimate, as drawn.
    pub value: f64,
    /// Lower bound of the interval.
    pub low: f64,
    /// Upper bound of the interval.
    pub high: f64,
    /// The value as printed at the end of the row.
    pub text: String,
    /// Drawn in the highlight colour (the unit the page is about).
    pub highlight: bool,
    /// Printed in bold (a component or the index among elements).
    pub strong: bool,
}

/// A horizontal dot plot: one row per estimate, whiskers for the interval, an optional vertical
/// reference line (the parent's value).
pub fn dot_plot(frame: &Frame, rows: &[DotRow], reference: Option<(f64, &str)>) -> String {
    let label_width = 250.0;
    let value_width = 56.0;
    let height = TOP + ROW * rows.len() as f64 + 8.0;
    let (low, high) =
        percent_domain(rows.iter().flat_map(|r| [r.low, r.high, r.value]).chain(reference.iter().map(|(v, _)| *v)));
    let scale = Scale { low, high, from: label_width + 8.0, to: WIDTH - value_width - 8.0 };
    let mut svg = open(frame, height);
    axis(&mut svg, &scale, TOP, height - 4.0);
    if let Some((value, label)) = reference {
        let x = scale.at(value);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{HIGHLIGHT}\" stroke-width=\"2\" \
             stroke-dasharray=\"5 3\"><title>{}</title></line>",
            TOP - 4.0,
            height - 4.0,
            escape(label)
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64 + ROW / 2.0;
        let colour = if row.highlight { HIGHLIGHT } else { DOT };
        let weight = if row.strong || row.highlight { " font-weight=\"700\"" } else { "" };
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{INK}\"{weight}>{}</text>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{INK}\"{weight}>{}</text>",
            label_width,
            y + 4.0,
            escape(&shorten(&row.label, if row.strong || row.highlight { 30 } else { 34 })),
            scale.at(row.low),
            scale.at(row.high),
            scale.at(row.value),
            WIDTH - value_width,
            y + 4.0,
            escape(&row.text),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One row of a bar chart made of segments (shares adding up to about 100).
#[derive(Debug, Clone)]
pub struct BarRow {
    /// Row label.
    pub label: String,
    /// Segment shares, in the order of the colours.
    pub shares: Vec<f64>,
    /// Printed at the end of the row.
    pub text: String,
}

/// Diverging stacked bars: the first `left` segments extend left of the zero line (from it
/// outwards), the rest right of it; so the satisfied share is read off the right side.
pub fn diverging(frame: &Frame, rows: &[BarRow], left: usize, colours: &[&str]) -> String {
    let left_max = rows.iter().map(|r| r.shares.iter().take(left).sum::<f64>()).fold(0.0, f64::max);
    bars(frame, rows, left, colours, -((left_max / 10.0).ceil() * 10.0).clamp(10.0, 100.0))
}

/// 100% stacked bars, segments left to right in the order of the colours.
pub fn stacked(frame: &Frame, rows: &[BarRow], colours: &[&str]) -> String {
    bars(frame, rows, 0, colours, 0.0)
}

/// Bars of segments on a scale from `low` to 100: the first `left` segments stack leftwards from
/// zero, the others rightwards.
fn bars(frame: &Frame, rows: &[BarRow], left: usize, colours: &[&str], low: f64) -> String {
    let label_width = 260.0;
    let value_width = 56.0;
    let height = TOP + ROW * rows.len() as f64 + 8.0;
    let scale = Scale { low, high: 100.0, from: label_width + 8.0, to: WIDTH - value_width - 8.0 };
    let mut svg = open(frame, height);
    axis(&mut svg, &scale, TOP, height - 4.0);
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64 + 3.0;
        let _ = write!(
            svg,
            "<text x=\"{label_width:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{INK}\">{}</text>",
            y + 12.0,
            escape(&shorten(&row.label, LABEL_CHARS))
        );
        let left = left.min(row.shares.len());
        // Left of zero the segment nearest the zero line is the last of the left ones.
        let leftwards = (0..left).rev().map(|index| (index, -1.0));
        let rightwards = (left..row.shares.len()).map(|index| (index, 1.0));
        let (mut toward_left, mut toward_right) = (0.0, 0.0);
        for (index, direction) in leftwards.chain(rightwards) {
            let share = row.shares[index];
            let edge = if direction < 0.0 { &mut toward_left } else { &mut toward_right };
            let (a, b) = (scale.at(direction * *edge), scale.at(direction * (*edge + share)));
            *edge += share;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" stroke=\"#ffffff\" stroke-width=\"0.5\"/>",
                a.min(b),
                (b - a).abs(),
                ROW - 6.0,
                colours.get(index).copied().unwrap_or(GRID)
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{INK}\">{}</text>",
            WIDTH - value_width,
            y + 12.0,
            escape(&row.text)
        );
    }
    if left > 0 {
        let zero = scale.at(0.0);
        let _ = write!(
            svg,
            "<line x1=\"{zero:.1}\" x2=\"{zero:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{INK}\" stroke-width=\"1.5\"/>",
            TOP - 4.0,
            height - 4.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One point of a trend: a campaign's estimate with its interval.
#[derive(Debug, Clone)]
pub struct TrendPoint {
    /// Label under the point.
    pub label: String,
    /// The estimate.
    pub value: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// The value as printed above the point.
    pub text: String,
}

/// A trend across campaigns: points with whiskers, joined by a line.
pub fn trend(frame: &Frame, points: &[TrendPoint]) -> String {
    let height = 240.0;
    let (left, right, top, bottom) = (48.0, WIDTH - 24.0, 24.0, height - 36.0);
    let (low, high) = percent_domain(points.iter().flat_map(|p| [p.low, p.high]));
    let y = Scale { low, high, from: bottom, to: top };
    let slot = (right - left) / points.len().max(1) as f64;
    let x = |i: usize| left + slot * (i as f64 + 0.5);
    let mut svg = open(frame, height);
    for tick in y.ticks(tick_step(high - low)) {
        let ty = y.at(tick);
        let _ = write!(
            svg,
            "<line x1=\"{left:.1}\" x2=\"{right:.1}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\" stroke=\"{GRID}\" stroke-width=\"1\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{INK}\">{}</text>",
            left - 6.0,
            ty + 4.0,
            tick_label(tick)
        );
    }
    if points.len() > 1 {
        let path: Vec<String> =
            points.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y.at(p.value))).collect();
        let _ =
            write!(svg, "<polyline points=\"{}\" fill=\"none\" stroke=\"{DOT}\" stroke-width=\"2\"/>", path.join(" "));
    }
    for (i, point) in points.iter().enumerate() {
        let px = x(i);
        let _ = write!(
            svg,
            "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{DOT}\" stroke-width=\"2\"/>\
             <circle cx=\"{px:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{DOT}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{INK}\" font-weight=\"700\">{}</text>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{INK}\">{}</text>",
            y.at(point.low),
            y.at(point.high),
            y.at(point.value),
            px + 8.0,
            y.at(point.value) - 6.0,
            escape(&point.text),
            height - 12.0,
            escape(&shorten(&point.label, 24)),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame<'static> {
        Frame { id: "c", title: "T <&>", description: "D \"quoted\"" }
    }

    fn assert_well_formed(svg: &str) {
        if let Err(error) = roxmltree::Document::parse(svg) {
            panic!("{error}: {svg}");
        }
    }

    #[test]
    fn scales_map_the_domain_onto_the_range() {
        let scale = Scale { low: 70.0, high: 90.0, from: 100.0, to: 300.0 };
        assert_eq!(scale.at(70.0), 100.0);
        assert_eq!(scale.at(80.0), 200.0);
        assert_eq!(scale.at(95.0), 300.0, "clamped");
        assert_eq!(scale.ticks(5.0), vec![70.0, 75.0, 80.0, 85.0, 90.0]);
        assert_eq!(percent_domain([82.3, 75.1, 88.0].into_iter()), (70.0, 90.0));
        assert_eq!(percent_domain([99.5].into_iter()), (90.0, 100.0));
        assert_eq!(percent_domain(std::iter::empty()), (0.0, 100.0));
    }

    #[test]
    fn charts_are_well_formed_and_escaped() {
        let rows = vec![DotRow {
            label: "A & B <c>".to_owned(),
            value: 80.0,
            low: 75.0,
            high: 85.0,
            text: "80,00".to_owned(),
            highlight: true,
            strong: false,
        }];
        let svg = dot_plot(&frame(), &rows, Some((82.0, "parent")));
        assert_well_formed(&svg);
        assert!(svg.contains("A &amp; B &lt;c&gt;"));
        assert!(svg.contains("role=\"img\""));
        let bars =
            vec![BarRow { label: "x".to_owned(), shares: vec![5.0, 10.0, 15.0, 40.0, 30.0], text: "70".to_owned() }];
        assert_well_formed(&diverging(&frame(), &bars, 3, &SCALE5));
        assert_well_formed(&stacked(&frame(), &bars, &SCALE5));
        let points = vec![
            TrendPoint { label: "2022".to_owned(), value: 80.0, low: 79.0, high: 81.0, text: "80".to_owned() },
            TrendPoint { label: "2023".to_owned(), value: 82.0, low: 81.0, high: 83.0, text: "82".to_owned() },
        ];
        assert_well_formed(&trend(&frame(), &points));
        assert_well_formed(&dot_plot(&frame(), &[], None));
    }

    #[test]
    fn diverging_bars_put_the_satisfied_share_right_of_zero() {
        let bars =
            vec![BarRow { label: "x".to_owned(), shares: vec![10.0, 10.0, 20.0, 40.0, 20.0], text: String::new() }];
        let svg = diverging(&frame(), &bars, 3, &SCALE5);
        // Left maximum 40 → domain −40…100 over 268…576 (2.2 px a point): zero at 356, the
        // "satisfied" segment (40) is 88 px wide from there, "very dissatisfied" ends at 268.
        assert!(svg.contains("x1=\"356.0\" x2=\"356.0\""), "{svg}");
        assert!(svg.contains(&format!("x=\"356.0\" y=\"31.0\" width=\"88.0\" height=\"16.0\" fill=\"{}\"", SCALE5[3])));
        assert!(svg.contains(&format!("x=\"268.0\" y=\"31.0\" width=\"22.0\" height=\"16.0\" fill=\"{}\"", SCALE5[0])));
    }

    #[test]
    fn long_labels_are_shortened() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
