//! The dashboard's charts as SVG drawn on the server (no script; colours
//! and sizes are SVG attributes, which the Content-Security-Policy allows,
//! not `style`): lines over time with a point per window, and horizontal
//! bars. Every point and bar carries its value in a `<title>` (a tooltip,
//! and what screen readers say) and in `data-` attributes.

use crate::web::html::esc;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 46.0;

/// One line of a chart over time.
pub(super) struct Line<'a> {
    /// The series' name (`data-series`, the legend).
    pub name: &'a str,
    pub colour: &'a str,
    /// One value per slot; `None` draws nothing there (no rate without sends).
    pub values: Vec<Option<f64>>,
}

/// The smallest of 1, 2, 5, 10, 20, 50… at or above `x` (at least 1).
pub(super) fn nice_ceiling(x: f64) -> f64 {
    let mut step = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if step * m >= x {
                return step * m;
            }
        }
        step *= 10.0;
    }
}

fn svg_open(id: &str, title: &str, desc: &str, height: f64) -> String {
    format!(
        "<svg id=\"{id}\" class=\"chart\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
         viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\" \
         font-family=\"system-ui, sans-serif\" font-size=\"11\" fill=\"#222\">\n\
         <title id=\"{id}-title\">{}</title>\n<desc id=\"{id}-desc\">{}</desc>\n",
        esc(title),
        esc(desc)
    )
}

/// A legend entry per series, above the plot's right end.
fn legend(names: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut x = WIDTH - RIGHT;
    for (name, colour) in names.iter().rev() {
        x -= 14.0 + 7.0 * name.chars().count() as f64;
        out += &format!(
            "<rect class=\"swatch\" x=\"{x:.1}\" y=\"2\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"11\">{}</text>\n",
            x + 13.0,
            esc(name)
        );
    }
    out
}

/// Lines over `slots` (window starts): `label(start)` names a slot (in the
/// titles and on the axis, every `tick_every` slots), `format` a value;
/// `unit` says what the values count. The y axis starts at 0 and ends at
/// a round number at or above the largest value and `floor`.
#[allow(clippy::too_many_arguments)]
pub(super) fn line_chart(
    id: &str,
    title: &str,
    unit: &str,
    slots: &[i64],
    label: &dyn Fn(i64) -> String,
    tick_every: usize,
    lines: &[Line],
    format: &dyn Fn(f64) -> String,
    floor: f64,
) -> String {
    let max = lines
        .iter()
        .flat_map(|l| l.values.iter().flatten())
        .fold(floor, |m, v| m.max(*v));
    let top = nice_ceiling(max);
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let n = slots.len().max(1);
    let slot = plot_w / n as f64;
    let base = TOP + plot_h;
    let x_of = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let y_of = |v: f64| base - v * plot_h / top;
    let desc = lines
        .iter()
        .map(|l| {
            let sum: f64 = l.values.iter().flatten().sum();
            format!("{}: {} in all", l.name, format(sum))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let desc = match (slots.first(), slots.last()) {
        (Some(&a), Some(&b)) => format!("{} to {} UTC. {desc}", label(a), label(b)),
        _ => desc,
    };
    let mut out = svg_open(id, title, &desc, HEIGHT);
    for value in [0.0, top / 2.0, top] {
        let y = y_of(value);
        out += &format!(
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text class=\"y-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            format(value)
        );
    }
    for line in lines {
        // Polylines through runs of known values.
        let mut run: Vec<String> = Vec::new();
        let flush = |run: &mut Vec<String>, out: &mut String| {
            if run.len() > 1 {
                *out += &format!(
                    "<polyline class=\"line\" data-series=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n",
                    esc(line.name),
                    run.join(" "),
                    line.colour
                );
            }
            run.clear();
        };
        for (i, v) in line.values.iter().enumerate() {
            match v {
                Some(v) => run.push(format!("{:.1},{:.1}", x_of(i), y_of(*v))),
                None => flush(&mut run, &mut out),
            }
        }
        flush(&mut run, &mut out);
        for (i, (v, start)) in line.values.iter().zip(slots).enumerate() {
            let Some(v) = v else { continue };
            out += &format!(
                "<circle class=\"point\" data-series=\"{name}\" data-start=\"{start}\" data-value=\"{value}\" \
                 cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>{at} UTC: {value} {name}</title></circle>\n",
                x_of(i),
                y_of(*v),
                line.colour,
                name = esc(line.name),
                value = format(*v),
                at = esc(&label(*start)),
            );
        }
    }
    out += &format!(
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{base}\" stroke=\"#555\"/>\
         <line x1=\"{LEFT}\" x2=\"{}\" y1=\"{base}\" y2=\"{base}\" stroke=\"#555\"/>\n",
        WIDTH - RIGHT
    );
    for (i, start) in slots.iter().enumerate() {
        if i % tick_every.max(1) != 0 {
            continue;
        }
        let x = x_of(i);
        out += &format!(
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{base}\" y2=\"{}\" stroke=\"#555\"/>\
             <text class=\"x-tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            base + 4.0,
            base + 16.0,
            esc(&label(*start))
        );
    }
    let names: Vec<(&str, &str)> = lines.iter().map(|l| (l.name, l.colour)).collect();
    out += &legend(&names);
    out += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time (UTC), one point per window</text>\n\
         <text x=\"12\" y=\"{mid}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {mid})\">{}</text>\n</svg>",
        LEFT + plot_w / 2.0,
        HEIGHT - 6.0,
        esc(unit),
        mid = TOP + plot_h / 2.0,
    );
    out
}

/// One row of a bar chart: its label and its bars (series name, colour,
/// value).
pub(super) struct Row<'a> {
    pub label: String,
    pub bars: Vec<(&'a str, &'a str, f64)>,
}

/// Horizontal bars, a group per row, scaled to the largest value; `what`
/// says what a bar measures (in its title: "join: 12 inbound").
pub(super) fn bar_chart(
    id: &str,
    title: &str,
    what: &str,
    rows: &[Row],
    format: &dyn Fn(f64) -> String,
) -> String {
    const LABEL: f64 = 140.0;
    const BAR: f64 = 14.0;
    let per_row = rows.iter().map(|r| r.bars.len()).max().unwrap_or(1).max(1) as f64;
    let row_h = per_row * (BAR + 2.0) + 10.0;
    let height = TOP + 20.0 + row_h * rows.len().max(1) as f64;
    let max = rows
        .iter()
        .flat_map(|r| r.bars.iter().map(|b| b.2))
        .fold(0.0, f64::max);
    let top = nice_ceiling(max);
    let plot_w = WIDTH - LABEL - RIGHT - 70.0;
    let desc = match rows.len() {
        0 => "nothing to show yet".to_owned(),
        n => format!("{n} rows, highest {}", format(max)),
    };
    let mut out = svg_open(id, title, &desc, height);
    let mut series: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        for (name, colour, _) in &r.bars {
            if !series.iter().any(|(n, _)| n == name) {
                series.push((name, colour));
            }
        }
    }
    if series.len() > 1 {
        out += &legend(&series);
    }
    for (i, r) in rows.iter().enumerate() {
        let y0 = TOP + 20.0 + row_h * i as f64;
        out += &format!(
            "<text class=\"row-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            LABEL - 8.0,
            y0 + BAR,
            esc(&r.label)
        );
        for (j, (name, colour, v)) in r.bars.iter().enumerate() {
            let y = y0 + j as f64 * (BAR + 2.0);
            let w = (v / top * plot_w).max(if *v > 0.0 { 1.0 } else { 0.0 });
            out += &format!(
                "<rect class=\"bar\" data-row=\"{row}\" data-series=\"{name}\" data-value=\"{value}\" x=\"{LABEL}\" y=\"{y:.1}\" \
                 width=\"{w:.1}\" height=\"{BAR}\" fill=\"{colour}\"><title>{row}: {value} {name} {what}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{value}</text>\n",
                LABEL + w + 4.0,
                y + BAR - 3.0,
                row = esc(&r.label),
                name = esc(name),
                value = format(*v),
                what = esc(what),
            );
        }
    }
    out += "</svg>";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_are_round() {
        let got = [0.0, 0.5, 2.0, 3.0, 7.0, 11.0, 120.0].map(nice_ceiling);
        assert_eq!(got, [1.0, 1.0, 2.0, 5.0, 10.0, 20.0, 200.0]);
    }

    #[test]
    fn lines_are_drawn_to_scale_with_their_values_in_titles() {
        let slots = [0, 60_000, 120_000, 180_000];
        let lines = [
            Line {
                name: "inbound",
                colour: "#3b7dd8",
                values: vec![Some(4.0), Some(10.0), None, Some(0.0)],
            },
            Line {
                name: "outbound <b>",
                colour: "#d8803b",
                values: vec![None, None, None, None],
            },
        ];
        let fmt = |v: f64| format!("{v}");
        let svg = line_chart(
            "c",
            "Messages",
            "messages",
            &slots,
            &|s| format!("m{s}"),
            2,
            &lines,
            &fmt,
            0.0,
        );
        assert_eq!(svg.matches("class=\"point\"").count(), 3, "{svg}");
        assert!(
            svg.contains("data-start=\"60000\" data-value=\"10\""),
            "{svg}"
        );
        assert!(
            svg.contains("<title>m60000 UTC: 10 inbound</title>"),
            "{svg}"
        );
        // 10 tops the axis: that point sits on the plot's top line.
        assert!(svg.contains("cy=\"14.0\""), "{svg}");
        // A gap breaks the line: one polyline through the first two points.
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert!(svg.contains("outbound &lt;b&gt;") && !svg.contains("<b>"));
        assert!(svg.contains(">m0<") && svg.contains(">m120000<") && !svg.contains(">m60000<"));
        assert!(svg.contains("inbound: 14 in all"), "{svg}");
        assert!(!svg.contains("style="), "the CSP forbids inline styles");
    }

    #[test]
    fn bars_carry_their_rows_and_values() {
        let rows = [
            Row {
                label: "join".into(),
                bars: vec![("inbound", "#3b7dd8", 12.0)],
            },
            Row {
                label: "stop".into(),
                bars: vec![("inbound", "#3b7dd8", 6.0)],
            },
        ];
        let svg = bar_chart("k", "Top keywords", "messages", &rows, &|v| format!("{v}"));
        assert!(svg.contains("data-row=\"join\" data-series=\"inbound\" data-value=\"12\""));
        assert!(
            svg.contains("<title>join: 12 inbound messages</title>"),
            "{svg}"
        );
        // 12 of a 20 scale: 60 % of the plot's width.
        let plot = WIDTH - 140.0 - RIGHT - 70.0;
        assert!(
            svg.contains(&format!("width=\"{:.1}\"", plot * 0.6)),
            "{svg}"
        );
        let empty = bar_chart("k", "Top keywords", "messages", &[], &|v| format!("{v}"));
        assert!(empty.contains("nothing to show yet") && !empty.contains("class=\"bar\""));
    }
}
