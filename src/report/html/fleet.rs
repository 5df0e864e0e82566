//! The fleet view, above the timeline: how busy the target's restore slots
//! were over the run, and one summary row per source.
//!
//! Owns: the restore-slot chart (inline SVG) and the per-source table. Does
//! not own: the per-session lanes (`timeline`), or where the restore times
//! come from (`ops::report` reads them from the journal's `item_outcome`
//! records, which took them from `master.log`).
//!
//! The chart counts, at each instant, the accounts whose RESTORE had begun
//! and not ended, by the target's own clock (`master.log`'s `time`; on a
//! rehearsal, the simulator's, so simulated hours show as hours). Its band
//! is the most restores the plan lets run at once (`target_sessions` × the
//! largest `restore_threads`): every gap below it is a slot left idle, the
//! time the scheduler exists to win back. The utilisation printed under it
//! is the restore time summed over the accounts ÷ (slots × the window from
//! the first restore's start to the last one's end).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{AccountState, RunView, esc, human_bytes, human_duration};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 18.0;
const TOP: f64 = 14.0;
const PLOT: f64 = 150.0;
const AXIS: f64 = 26.0;

pub(super) fn section(h: &mut String, view: &RunView) {
    h.push_str("<section id=\"fleet\">\n<h2>Fleet</h2>\n");
    slots(h, view);
    sources_table(h, view);
    h.push_str("</section>\n");
}

/// The restore-slot chart and its utilisation line.
fn slots(h: &mut String, view: &RunView) {
    let spans: Vec<(f64, f64)> = view.accounts.iter().filter_map(|a| a.restore).collect();
    if spans.is_empty() {
        h.push_str(
            "<p class=\"hint\">No restore has been dated yet (the journal takes each account's \
             restore times from <code>master.log</code> when it ends).</p>\n",
        );
        return;
    }
    let t0 = spans.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let t1 = spans.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    let window = (t1 - t0).max(1.0);
    // +1 at each start, −1 at each end; an end sorts before a start at the
    // same instant (a slot handed on is not two restores at once).
    let mut steps: Vec<(f64, i32)> = spans.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
    steps.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut level = 0i32;
    let mut peak = 0i32;
    let mut points: Vec<(f64, i32)> = vec![(t0, 0)];
    for (t, d) in steps {
        level += d;
        peak = peak.max(level);
        points.push((t, level));
    }
    let slots = view.restore_slots.map(|s| s as i32);
    let top = peak.max(slots.unwrap_or(0)).max(1) as f64;
    let x = |t: f64| LEFT + (t - t0) / window * (WIDTH - LEFT - RIGHT);
    let y = |n: f64| TOP + PLOT - n / top * PLOT;
    let height = TOP + PLOT + AXIS;
    let _ = writeln!(
        h,
        "<figure class=\"slots\"><svg viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\" role=\"img\" \
         aria-label=\"Restores running on the target over {} (peak {peak})\" preserveAspectRatio=\"xMinYMin meet\">",
        esc(&human_duration(window))
    );
    // The band: the plan's ceiling.
    if let Some(s) = slots {
        let _ = writeln!(
            h,
            "<rect class=\"slots-band\" x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>\
             <line class=\"slots-line\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{s} slot{}</text>",
            y(f64::from(s)),
            WIDTH - LEFT - RIGHT,
            y(0.0) - y(f64::from(s)),
            y(f64::from(s)),
            WIDTH - RIGHT,
            y(f64::from(s)),
            WIDTH - RIGHT - 4.0,
            y(f64::from(s)) - 4.0,
            if s == 1 { "" } else { "s" }
        );
    }
    // The occupancy as a step area.
    let mut d = format!("M{:.1} {:.1}", x(t0), y(0.0));
    let mut last = 0;
    for &(t, n) in &points {
        let _ = write!(
            d,
            " L{:.1} {:.1} L{:.1} {:.1}",
            x(t),
            y(f64::from(last)),
            x(t),
            y(f64::from(n))
        );
        last = n;
    }
    let _ = write!(d, " L{:.1} {:.1} Z", x(t1), y(0.0));
    let _ = writeln!(h, "<path class=\"slots-used\" d=\"{d}\"/>");
    // Axes: counts on the left, elapsed time below.
    let _ = writeln!(
        h,
        "<line class=\"axis-line\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
         <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0</text>\
         <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        y(0.0),
        WIDTH - RIGHT,
        y(0.0),
        LEFT - 6.0,
        y(0.0) + 4.0,
        LEFT - 6.0,
        y(top) + 8.0,
        top as i32
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let _ = writeln!(
            h,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{}\">{}</text>",
            x(t0 + f * window),
            y(0.0) + 18.0,
            match i {
                0 => "start",
                4 => "end",
                _ => "middle",
            },
            if i == 0 {
                "0".to_string()
            } else {
                esc(&human_duration(f * window))
            }
        );
    }
    h.push_str("</svg></figure>\n");
    let busy: f64 = spans.iter().map(|(s, e)| e - s).sum();
    let mut line = format!(
        "{} restores over {} by the target's clock; at most {peak} at once",
        spans.len(),
        human_duration(window)
    );
    if let Some(s) = slots.filter(|s| *s > 0) {
        let _ = write!(
            line,
            "; the plan's {s} restore slots were busy {:.0}% of that window",
            100.0 * busy / (f64::from(s) * window)
        );
    }
    let _ = writeln!(h, "<p class=\"hint\">{}.</p>", esc(&line));
}

/// What one source's row adds up.
#[derive(Default)]
struct Row {
    sessions: usize,
    accounts: usize,
    transferred: usize,
    failed: usize,
    bytes: u64,
    first: Option<f64>,
    last: Option<f64>,
}

fn sources_table(h: &mut String, view: &RunView) {
    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    for s in &view.sessions {
        rows.entry(&s.source).or_default().sessions += 1;
    }
    for a in &view.accounts {
        let r = rows.entry(&a.source).or_default();
        r.accounts += 1;
        match a.state {
            AccountState::Transferred => {
                r.transferred += 1;
                r.bytes += a.size.unwrap_or(0);
            }
            AccountState::Failed => r.failed += 1,
            _ => {}
        }
        if let Some((s, e)) = a.restore {
            r.first = Some(r.first.map_or(s, |f: f64| f.min(s)));
            r.last = Some(r.last.map_or(e, |l: f64| l.max(e)));
        }
    }
    let _ = writeln!(
        h,
        "<table class=\"sources\"><thead><tr><th scope=\"col\">Source</th>\
         <th scope=\"col\" class=\"num\">Sessions</th><th scope=\"col\" class=\"num\">Accounts</th>\
         <th scope=\"col\" class=\"num\">Transferred</th><th scope=\"col\" class=\"num\">Failed</th>\
         <th scope=\"col\" class=\"num\">Pending</th><th scope=\"col\" class=\"num\">Data moved</th>\
         <th scope=\"col\" class=\"num\">Restoring for</th></tr></thead><tbody>"
    );
    for (name, r) in &rows {
        let pending = r.accounts - r.transferred - r.failed;
        let span = match (r.first, r.last) {
            (Some(f), Some(l)) => human_duration(l - f),
            _ => "—".into(),
        };
        let _ = writeln!(
            h,
            "<tr{}><td class=\"mono\"><a href=\"#src-{}\">{}</a></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            if r.failed > 0 {
                " class=\"has-failed\""
            } else {
                ""
            },
            super::anchor(name),
            esc(name),
            r.sessions,
            r.accounts,
            r.transferred,
            r.failed,
            pending,
            esc(&human_bytes(r.bytes)),
            esc(&span),
        );
    }
    h.push_str("</tbody></table>\n");
}
