//! The fleet view, above the timeline: how busy the target's restore slots
//! were over the run, and one summary row per source.
//!
//! Owns: the restore-slot chart (inline SVG) and the per-source table. Does
//! not own: the per-session lanes (`timeline`), or where the restore times
//! come from (`ops::report` reads them from the journal's `item_outcome`
//! records, which took them from `master.log`).
//!
//! The chart counts the accounts whose RESTORE had begun and not ended, by
//! the target's own clock (`master.log`'s `time`; on a rehearsal, the
//! simulator's, so simulated hours show as hours), averaged over each of
//! [`COLUMNS`] slices of the window (so a 10,000-account run stays a small
//! SVG, and a slice shows how full it was on average). Its band is the
//! most restores the run saw at once: WHM's API does not say how many
//! restores a target takes, and the peak is the best evidence of it (the
//! plan's own ceiling, `target_sessions` × the largest `restore_threads`,
//! is named beside it). Every gap below the band is a slot left idle, the
//! time the scheduler exists to win back; the utilisation printed under it
//! is the restore time summed over the accounts ÷ (peak × the window from
//! the first restore's start to the last one's end). A run that never
//! filled the target's slots has a low peak, and so overstates it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::timeline::{PAD_RIGHT as RIGHT, WIDTH};
use super::{AccountState, RunView, esc, human_bytes, human_duration};

/// The chart's left gutter (counts), top margin, plot height, axis band.
const LEFT: f64 = 48.0;
const TOP: f64 = 14.0;
const PLOT: f64 = 150.0;
const AXIS: f64 = 26.0;

pub(super) fn section(h: &mut String, view: &RunView) {
    h.push_str("<section id=\"fleet\">\n<h2>Fleet</h2>\n");
    slots(h, view);
    sources_table(h, view);
    h.push_str("</section>\n");
}

/// Columns of the chart: the occupancy is averaged over each.
const COLUMNS: usize = 450;

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
    let o = Occupancy::of(&spans);
    let x = |f: f64| LEFT + f * (WIDTH - LEFT - RIGHT);
    let top = f64::from(o.peak.max(1));
    let y = |n: f64| TOP + PLOT - n / top * PLOT;
    let height = TOP + PLOT + AXIS;
    let _ = writeln!(
        h,
        "<figure class=\"slots\"><svg viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\" role=\"img\" \
         aria-label=\"Restores running on the target over {} (peak {})\" preserveAspectRatio=\"xMinYMin meet\">",
        esc(&human_duration(o.window)),
        o.peak
    );
    // The band: the slots the target showed it has (the run's peak).
    let _ = writeln!(
        h,
        "<rect class=\"slots-band\" x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{PLOT:.1}\"/>\
         <line class=\"slots-line\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
        y(top),
        WIDTH - LEFT - RIGHT,
        y(top),
        WIDTH - RIGHT,
        y(top),
    );
    // The mean occupancy of each column, as an area.
    let n = o.columns.len() as f64;
    let mut d = format!("M{:.1} {:.1}", x(0.0), y(0.0));
    for (i, v) in o.columns.iter().enumerate() {
        let _ = write!(
            d,
            " L{:.1} {:.2} L{:.1} {:.2}",
            x(i as f64 / n),
            y(*v),
            x((i + 1) as f64 / n),
            y(*v)
        );
    }
    let _ = write!(d, " L{:.1} {:.1} Z", x(1.0), y(0.0));
    let _ = writeln!(h, "<path class=\"slots-used\" d=\"{d}\"/>");
    // Axes: counts on the left, elapsed time (server clock) below.
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
        o.peak
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let _ = writeln!(
            h,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{}\">{}</text>",
            x(f),
            y(0.0) + 18.0,
            match i {
                0 => "start",
                4 => "end",
                _ => "middle",
            },
            if i == 0 {
                "0".to_string()
            } else {
                esc(&human_duration(f * o.window))
            }
        );
    }
    h.push_str("</svg></figure>\n");
    let mut line = format!(
        "{} restores over {} by the target's clock; at most {} at once",
        spans.len(),
        human_duration(o.window),
        o.peak
    );
    if let Some(s) = view.restore_slots {
        let _ = write!(line, " (the plan allows {s})");
    }
    let _ = write!(
        line,
        "; those {} slots were busy {:.0}% of the window",
        o.peak,
        100.0 * o.utilisation()
    );
    let _ = writeln!(h, "<p class=\"hint\">{}.</p>", esc(&line));
}

/// Restores at once over a window, from their spans.
#[derive(Debug)]
pub(super) struct Occupancy {
    /// From the first start to the last end, seconds (at least 1).
    pub window: f64,
    /// The most restores at once.
    pub peak: u32,
    /// The mean number running in each of [`COLUMNS`] equal slices.
    pub columns: Vec<f64>,
    /// Restore time summed over the spans, seconds.
    pub busy: f64,
}

impl Occupancy {
    pub(super) fn of(spans: &[(f64, f64)]) -> Occupancy {
        let t0 = spans.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
        let t1 = spans.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
        let window = (t1 - t0).max(1.0);
        // +1 at each start, −1 at each end; an end sorts before a start at
        // the same instant (a slot handed on is not two restores at once).
        let mut steps: Vec<(f64, i32)> =
            spans.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
        steps.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (mut level, mut peak) = (0i32, 0i32);
        for (_, d) in &steps {
            level += d;
            peak = peak.max(level);
        }
        let width = window / COLUMNS as f64;
        let mut columns = vec![0.0; COLUMNS];
        let mut busy = 0.0;
        for &(s, e) in spans {
            busy += e - s;
            let (a, b) = ((s - t0) / width, (e - t0) / width);
            let first = (a.floor() as usize).min(COLUMNS - 1);
            let last = (b.ceil() as usize).clamp(first + 1, COLUMNS);
            for (c, v) in columns.iter_mut().enumerate().take(last).skip(first) {
                let overlap = (b.min(c as f64 + 1.0) - a.max(c as f64)).max(0.0);
                *v += overlap;
            }
        }
        Occupancy {
            window,
            peak: peak.max(0) as u32,
            columns,
            busy,
        }
    }

    /// Restore time ÷ (peak × window).
    pub(super) fn utilisation(&self) -> f64 {
        if self.peak == 0 {
            return 0.0;
        }
        self.busy / (f64::from(self.peak) * self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occupancy_counts_restores_at_once_and_their_mean_per_column() {
        // Two at once for the first half, one for the second; an end and a
        // start at the same instant are not two at once.
        let o = Occupancy::of(&[(0.0, 50.0), (0.0, 100.0), (50.0, 100.0), (100.0, 200.0)]);
        assert_eq!(o.peak, 2);
        assert_eq!(o.window, 200.0);
        assert_eq!(o.busy, 300.0);
        assert!((o.utilisation() - 0.75).abs() < 1e-9);
        assert!((o.columns[0] - 2.0).abs() < 1e-9, "{:?}", &o.columns[..3]);
        assert!((o.columns[COLUMNS - 1] - 1.0).abs() < 1e-9);
        let mean: f64 = o.columns.iter().sum::<f64>() / COLUMNS as f64;
        assert!((mean - 1.5).abs() < 1e-9, "{mean}");
    }
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
