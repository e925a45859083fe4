//! Charts drawn on the server: horizontal F1 bars (SVG) and confusion heat maps (tables whose
//! cells link to their images).

use maud::{Markup, PreEscaped, html};

/// One class's bar pair.
pub struct Bars<'a> {
    pub label: &'a str,
    pub train: Option<f64>,
    pub test: Option<f64>,
}

const ROW: f64 = 34.0;
const LABEL_WIDTH: f64 = 130.0;
const PLOT_WIDTH: f64 = 420.0;

/// Horizontal bars of F1 per class, train above test, on a 0-1 axis with grid lines.
pub fn f1_bars(title: &str, rows: &[Bars<'_>]) -> Markup {
    let height = 30.0 + ROW * rows.len() as f64 + 24.0;
    let width = LABEL_WIDTH + PLOT_WIDTH + 60.0;
    let x = |value: f64| LABEL_WIDTH + PLOT_WIDTH * value.clamp(0.0, 1.0);
    html! {
        svg.chart viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height)
            role="img" aria-label=(title) {
            title { (title) }
            @for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
                line.grid x1=(x(tick)) x2=(x(tick)) y1="20" y2=(height - 22.0) {}
                text.tick x=(x(tick)) y=(height - 6.0) text-anchor="middle" { (format!("{tick:.2}")) }
            }
            @for (i, row) in rows.iter().enumerate() {
                @let top = 24.0 + ROW * i as f64;
                text.label x=(LABEL_WIDTH - 8.0) y=(top + 18.0) text-anchor="end" { (row.label) }
                @if let Some(value) = row.train {
                    rect.bar-train x=(LABEL_WIDTH) y=(top + 2.0) width=(x(value) - LABEL_WIDTH) height="12" {
                        title { (format!("{}: train F1 {value:.3}", row.label)) }
                    }
                    text.value x=(x(value) + 4.0) y=(top + 12.0) { (format!("{value:.2}")) }
                }
                @if let Some(value) = row.test {
                    rect.bar-test x=(LABEL_WIDTH) y=(top + 15.0) width=(x(value) - LABEL_WIDTH) height="12" {
                        title { (format!("{}: test F1 {value:.3}", row.label)) }
                    }
                    text.value x=(x(value) + 4.0) y=(top + 25.0) { (format!("{value:.2}")) }
                }
            }
        }
    }
}

/// A confusion matrix as a heat map: rows are the labelled class, columns the predicted
/// class; a cell's shade is its share of its row, and `link(row, column)` opens its images.
pub fn confusion(
    labels: &[String],
    matrix: &[Vec<u64>],
    link: impl Fn(usize, usize) -> String,
) -> Markup {
    html! {
        table.confusion {
            thead {
                tr {
                    th.corner { "labelled ↓ / predicted →" }
                    @for label in labels { th.col { (label) } }
                }
            }
            tbody {
                @for (r, row) in matrix.iter().enumerate() {
                    @let total: u64 = row.iter().sum();
                    tr {
                        th { (labels.get(r).map_or("?", String::as_str)) }
                        @for (c, &count) in row.iter().enumerate() {
                            @let share = if total == 0 { 0.0 } else { count as f64 / total as f64 };
                            td class=(cell_class(share, r == c)) {
                                @if count > 0 {
                                    a href=(link(r, c)) title=(format!("{count} images ({:.0}% of the row)", share * 100.0)) { (count) }
                                } @else {
                                    span.zero { "0" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Diagonal cells shade green (`heat-gN`), off-diagonal ones red (`heat-rN`), darker with a
/// larger share of the row: N is the share in tenths, 0 to 10 (the stylesheet's shades; the
/// content security policy allows no inline style).
fn cell_class(share: f64, diagonal: bool) -> String {
    let tenths = (share.clamp(0.0, 1.0) * 10.0).round() as u32;
    format!("heat-{}{tenths}", if diagonal { 'g' } else { 'r' })
}

/// A delta in F1 as coloured text: green when better, red when worse.
pub fn delta(value: Option<f64>) -> Markup {
    match value {
        None => html! { span.delta { "–" } },
        Some(v) => {
            let class = if v > 0.0005 {
                "delta up"
            } else if v < -0.0005 {
                "delta down"
            } else {
                "delta same"
            };
            html! { span class=(class) { (PreEscaped(format!("{v:+.3}"))) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_plot_width() {
        let svg = f1_bars(
            "F1",
            &[Bars {
                label: "a-line",
                train: Some(0.5),
                test: Some(1.0),
            }],
        )
        .into_string();
        assert!(
            svg.contains(&format!("width=\"{}\"", PLOT_WIDTH * 0.5)),
            "{svg}"
        );
        assert!(svg.contains(&format!("width=\"{}\"", PLOT_WIDTH)), "{svg}");
    }

    #[test]
    fn confusion_cells_link_and_shade_by_row_share() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let html = confusion(&labels, &[vec![2, 1], vec![0, 4]], |r, c| {
            format!("/cell/{r}/{c}")
        })
        .into_string();
        assert!(html.contains("href=\"/cell/0/1\""));
        assert!(
            !html.contains("href=\"/cell/1/0\""),
            "empty cells have no link"
        );
        // Row 0: 2 of 3 on the diagonal -> 7 tenths (green), 1 of 3 off it -> 3 tenths (red).
        // Row 1: all on the diagonal -> 10 tenths; its empty cell 0.
        for class in ["heat-g7", "heat-r3", "heat-g10", "heat-r0"] {
            assert!(
                html.contains(&format!("class=\"{class}\"")),
                "{class}: {html}"
            );
        }
        assert!(!html.contains("style="), "no inline style: {html}");
        // Every class used has its shade in the stylesheet.
        let css = include_str!("../../assets/app.css");
        for tenths in 0..=10 {
            for hue in ['g', 'r'] {
                assert!(
                    css.contains(&format!("td.heat-{hue}{tenths} {{")),
                    "{hue}{tenths}"
                );
            }
        }
    }
}
