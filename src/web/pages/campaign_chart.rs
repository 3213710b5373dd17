//! A campaign's messages sent per minute over the last hour, as an SVG bar
//! chart drawn on the server (no script; colours and sizes are SVG
//! attributes, which the Content-Security-Policy allows, not `style`).

use crate::web::html::time;

/// Minutes the chart shows, the current one last.
pub(super) const MINUTES: i64 = 60;

const WIDTH: i64 = 640;
const HEIGHT: i64 = 220;
const LEFT: i64 = 52;
const RIGHT: i64 = 12;
const TOP: i64 = 14;
const BOTTOM: i64 = 44;

/// The smallest of 1, 2, 5, 10, 20, 50… at or above `n` (at least 1).
fn nice_ceiling(n: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= n {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// `HH:MM` (UTC) of a minute since the epoch.
fn clock(minute: i64) -> String {
    time(minute * 60_000)[11..16].to_owned()
}

/// The chart of `per_minute` ((minute since the epoch, messages sent),
/// any order) for the [`MINUTES`] minutes up to the one of `now_ms`.
pub(super) fn per_minute_chart(per_minute: &[(i64, u64)], now_ms: i64) -> String {
    let last = now_ms.div_euclid(60_000);
    let first = last - MINUTES + 1;
    let shown: Vec<(i64, u64)> = per_minute
        .iter()
        .copied()
        .filter(|(m, n)| (first..=last).contains(m) && *n > 0)
        .collect();
    let total: u64 = shown.iter().map(|(_, n)| n).sum();
    let top = nice_ceiling(shown.iter().map(|(_, n)| *n).max().unwrap_or(0));
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let slot = plot_w as f64 / MINUTES as f64;
    let base = TOP + plot_h;
    let mut out = format!(
        "<svg id=\"chart\" class=\"chart\" role=\"img\" aria-labelledby=\"chart-title chart-desc\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" xmlns=\"http://www.w3.org/2000/svg\" \
         font-family=\"system-ui, sans-serif\" font-size=\"11\" fill=\"#222\">\n\
         <title id=\"chart-title\">Messages sent per minute, {} to {} UTC</title>\n\
         <desc id=\"chart-desc\">{total} messages sent in the last {MINUTES} minutes</desc>\n",
        clock(first),
        clock(last),
    );
    // Horizontal grid lines with their values: 0, half, top.
    let mut ticks = vec![0, top / 2, top];
    ticks.dedup();
    for value in ticks {
        let y = base as f64 - value as f64 * plot_h as f64 / top as f64;
        out += &format!(
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text class=\"y-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{value}</text>\n",
            WIDTH - RIGHT,
            LEFT - 6,
            y + 4.0
        );
    }
    for (minute, n) in &shown {
        let h = *n as f64 * plot_h as f64 / top as f64;
        let x = LEFT as f64 + (minute - first) as f64 * slot + 1.0;
        out += &format!(
            "<rect class=\"bar\" data-minute=\"{at}\" data-count=\"{n}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#3b7dd8\">\
             <title>{at} UTC: {n} sent</title></rect>\n",
            base as f64 - h,
            (slot - 2.0).max(1.0),
            at = clock(*minute),
        );
    }
    // Axes, a time label every 15 minutes, the axes' names.
    out += &format!(
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{base}\" stroke=\"#555\"/>\
         <line x1=\"{LEFT}\" x2=\"{}\" y1=\"{base}\" y2=\"{base}\" stroke=\"#555\"/>\n",
        WIDTH - RIGHT
    );
    for minute in first..=last {
        if minute.rem_euclid(15) != 0 {
            continue;
        }
        let x = LEFT as f64 + (minute - first) as f64 * slot + slot / 2.0;
        out += &format!(
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{base}\" y2=\"{}\" stroke=\"#555\"/>\
             <text class=\"x-tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            base + 4,
            base + 16,
            clock(minute)
        );
    }
    out += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time (UTC), one bar per minute</text>\n\
         <text x=\"12\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {})\">messages sent</text>\n</svg>",
        LEFT + plot_w / 2,
        HEIGHT - 6,
        TOP + plot_h / 2,
        TOP + plot_h / 2
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_are_round() {
        let got: Vec<u64> = [0, 1, 2, 3, 7, 10, 11, 120, 999].map(nice_ceiling).to_vec();
        assert_eq!(got, [1, 1, 2, 5, 10, 10, 20, 200, 1000]);
    }

    #[test]
    fn the_last_hour_is_drawn_to_scale() {
        // 2024-02-29 10:30:20 UTC.
        let now = 1_709_164_800_000 + (10 * 60 + 30) * 60_000 + 20_000;
        let minute = now / 60_000;
        let data = [
            (minute - 60, 500), // 61 minutes ago: not shown
            (minute - 59, 4),
            (minute - 1, 10),
            (minute, 3),
            (minute + 1, 7), // a clock ahead: not shown
        ];
        let svg = per_minute_chart(&data, now);
        assert_eq!(svg.matches("class=\"bar\"").count(), 3, "{svg}");
        assert!(
            svg.contains("data-minute=\"09:31\" data-count=\"4\""),
            "{svg}"
        );
        assert!(
            svg.contains("data-minute=\"10:29\" data-count=\"10\""),
            "{svg}"
        );
        // The tallest bar fills the plot: the top is 10.
        assert!(svg.contains("height=\"162.0\" fill"), "{svg}");
        assert!(
            svg.contains(">17 messages sent in the last 60 minutes<"),
            "{svg}"
        );
        for tick in [
            ">09:45<", ">10:00<", ">10:15<", ">10:30<", ">10<", ">5<", ">0<",
        ] {
            assert!(svg.contains(tick), "{tick} missing from {svg}");
        }
        assert!(svg.contains("time (UTC)") && svg.contains("messages sent<"));
        assert!(!svg.contains("style="), "the CSP forbids inline styles");
        let empty = per_minute_chart(&[], now);
        assert!(!empty.contains("class=\"bar\""));
        assert!(empty.contains(">0 messages sent in the last 60 minutes<"));
    }
}
