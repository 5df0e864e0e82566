//! The timeline: inline SVG, one lane per session grouped by source, a bar
//! from creation to the end coloured by the session's outcome, pauses
//! hatched with a pause mark and a resume mark, and the run's own pauses as
//! dashed lines across every lane. Styled by the page's CSS (classes only),
//! so print CSS applies too.
//!
//! At fleet scale (more than [`FOLD_AT`] sources) each source's lanes are
//! folded under a summary line of their own (`<details>`), on the same time
//! axis, and the sessions table is folded too: 400 nearly empty lanes say
//! less than the fleet view above them (`fleet`).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Pause, RunView, SessionView, esc, human_duration, secs_between, utc};

/// The drawing width of the page's charts (the fleet view's too).
pub(super) const WIDTH: f64 = 960.0;
const GUTTER: f64 = 200.0;
/// Their right margin.
pub(super) const PAD_RIGHT: f64 = 18.0;
const AXIS: f64 = 34.0;
const GROUP_HEAD: f64 = 24.0;
const LANE: f64 = 26.0;
const BAR: f64 = 12.0;
/// More sources than this: one folded timeline per source.
pub(super) const FOLD_AT: usize = 10;

/// How a session ended, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Ok,
    /// Completed, but some of its accounts failed.
    Warn,
    Failed,
    Paused,
    Running,
}

impl Outcome {
    fn of(s: &SessionView) -> Outcome {
        match s.state.as_str() {
            "FAILED" | "ABORTED" | "ABORTING" => Outcome::Failed,
            "COMPLETED" if s.failed > 0 => Outcome::Warn,
            "COMPLETED" => Outcome::Ok,
            "PAUSED" | "PAUSING" => Outcome::Paused,
            _ => Outcome::Running,
        }
    }
    fn class(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Warn => "warn",
            Outcome::Failed => "failed",
            Outcome::Paused => "paused",
            Outcome::Running => "running",
        }
    }
    fn words(self) -> &'static str {
        match self {
            Outcome::Ok => "completed",
            Outcome::Warn => "completed, with failed accounts",
            Outcome::Failed => "failed or aborted",
            Outcome::Paused => "paused",
            Outcome::Running => "running",
        }
    }
}

struct Scale {
    t0: SystemTime,
    span: f64,
}

impl Scale {
    fn x(&self, t: SystemTime) -> f64 {
        let f = (secs_between(self.t0, t) / self.span).clamp(0.0, 1.0);
        GUTTER + f * (WIDTH - GUTTER - PAD_RIGHT)
    }
}

/// A "nice" tick step (milliseconds) giving at most ~8 ticks over `span`
/// seconds. Rehearsals on the simulator last seconds; real runs, hours.
fn tick_step_ms(span: f64) -> u64 {
    const STEPS: [u64; 26] = [
        10,
        20,
        50,
        100,
        200,
        500,
        1_000,
        2_000,
        5_000,
        10_000,
        15_000,
        30_000,
        60_000,
        120_000,
        300_000,
        600_000,
        900_000,
        1_800_000,
        3_600_000,
        7_200_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        172_800_000,
        604_800_000,
    ];
    STEPS
        .into_iter()
        .find(|s| span * 1000.0 / *s as f64 <= 8.0)
        .unwrap_or(604_800_000)
}

fn tick_label(t: SystemTime, step_ms: u64, span: f64) -> String {
    let s = humantime::format_rfc3339_millis(t).to_string(); // 2026-11-30T01:45:02.250Z
    if span >= 86_400.0 {
        format!("{} {}", &s[5..10], &s[11..16])
    } else if step_ms < 100 {
        s[11..23].to_string()
    } else if step_ms < 1_000 {
        s[11..21].to_string()
    } else if step_ms < 60_000 {
        s[11..19].to_string()
    } else {
        s[11..16].to_string()
    }
}

pub(super) fn section(h: &mut String, view: &RunView) {
    let _ = write!(
        h,
        "<section id=\"timeline\">\n<h2>Timeline <span class=\"count\">{} session{}</span></h2>\n",
        view.sessions.len(),
        if view.sessions.len() == 1 { "" } else { "s" }
    );
    if view.sessions.is_empty() {
        h.push_str("<p class=\"hint\">No transfer session has been created yet.</p>\n</section>\n");
        return;
    }
    let mut sources: Vec<&str> = view.sessions.iter().map(|s| s.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    if sources.len() <= FOLD_AT {
        svg(h, view, None);
        legend(h);
        sessions_table(h, view);
    } else {
        legend(h);
        for src in sources {
            let of: Vec<&SessionView> = view.sessions.iter().filter(|s| s.source == src).collect();
            let failed: usize = of.iter().map(|s| s.failed).sum();
            let accounts: usize = of.iter().map(|s| s.accounts).sum();
            let _ = writeln!(
                h,
                "<details class=\"source-lanes\" id=\"src-{}\"><summary><span class=\"mono\">{}</span> — {} session{}, {accounts} account{} enqueued{}</summary>",
                super::anchor(src),
                esc(src),
                of.len(),
                if of.len() == 1 { "" } else { "s" },
                if accounts == 1 { "" } else { "s" },
                if failed > 0 {
                    format!(", <span class=\"lane-failed\">{failed} failed</span>")
                } else {
                    String::new()
                }
            );
            svg(h, view, Some(src));
            h.push_str("</details>\n");
        }
        h.push_str("<details class=\"all-sessions\"><summary>Every session, with its WHM id and times</summary>\n");
        sessions_table(h, view);
        h.push_str("</details>\n");
    }
    h.push_str("</section>\n");
}

/// The sessions as a table: their WHM ids and exact times, which the
/// timeline only shows on hover (and paper has no hover).
fn sessions_table(h: &mut String, view: &RunView) {
    let (start, end) = view.span();
    let same_day = utc(start)[..10] == utc(end)[..10];
    let when = |t: Option<SystemTime>| match t {
        None => "—".to_string(),
        Some(t) if same_day => utc(t)[11..19].to_string(),
        Some(t) => utc(t)[5..19].to_string(),
    };
    let mut ordered: Vec<&SessionView> = view.sessions.iter().collect();
    ordered.sort_by(|a, b| (&a.source, a.created_at).cmp(&(&b.source, b.created_at)));
    h.push_str(
        "<table class=\"sessions\"><thead><tr><th scope=\"col\">Session</th><th scope=\"col\">WHM transfer session id</th>\
         <th scope=\"col\">State</th><th scope=\"col\">Created</th><th scope=\"col\">Started</th><th scope=\"col\">Finished</th>\
         <th scope=\"col\" class=\"num\">Accounts</th><th scope=\"col\" class=\"num\">Failed</th></tr></thead><tbody>\n",
    );
    for s in ordered {
        let outcome = Outcome::of(s);
        let mut state = esc(&s.state);
        if !s.pauses.is_empty() {
            let n = s.pauses.len();
            state.push_str(&format!(
                " <span class=\"note\">· paused {n} time{}</span>",
                if n == 1 { "" } else { "s" }
            ));
        }
        if let Some(r) = &s.replaces {
            state.push_str(&format!(
                " <span class=\"note\">· took over from {}</span>",
                esc(r)
            ));
        }
        let _ = writeln!(
            h,
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"state\"><span class=\"dot {}\"></span>{state}</td>\
             <td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&s.name),
            esc(s.id.as_deref().unwrap_or("—")),
            outcome.class(),
            when(Some(s.created_at)),
            when(s.started_at),
            when(s.finished_at),
            s.accounts,
            s.failed,
        );
    }
    h.push_str("</tbody></table>\n");
}

/// The lanes of every session, or of one source's (`only`), on the run's
/// time axis.
fn svg(h: &mut String, view: &RunView, only: Option<&str>) {
    let (start, end) = view.span();
    let span = secs_between(start, end).max(0.05);
    let sc = Scale { t0: start, span };

    // Sources in order of their first session; sessions in creation order.
    let mut sources: Vec<&str> = Vec::new();
    let mut ordered: Vec<&SessionView> = view
        .sessions
        .iter()
        .filter(|s| only.is_none_or(|o| s.source == o))
        .collect();
    ordered.sort_by_key(|s| s.created_at);
    for s in &ordered {
        if !sources.contains(&s.source.as_str()) {
            sources.push(&s.source);
        }
    }
    let height = AXIS + sources.len() as f64 * GROUP_HEAD + ordered.len() as f64 * LANE + 8.0;
    let plot_bottom = height - 4.0;
    let _ = write!(
        h,
        "<figure class=\"timeline\"><svg viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\" role=\"img\" \
         aria-label=\"Timeline of {} transfer sessions from {} to {}\" preserveAspectRatio=\"xMinYMin meet\">\n\
         <defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
         <rect width=\"6\" height=\"6\" class=\"hatch-bg\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" class=\"hatch-line\"/></pattern></defs>\n",
        ordered.len(),
        esc(&utc(start)),
        esc(&utc(end))
    );

    // Axis: ticks on whole multiples of the step, in UTC.
    let step = tick_step_ms(span);
    let ms0 = start
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let last_ms = ms0 + (span * 1000.0) as u64;
    let mut tick = ms0.div_ceil(step) * step;
    h.push_str("<g class=\"axis\">\n");
    let _ = writeln!(
        h,
        "<line class=\"axis-line\" x1=\"{GUTTER}\" y1=\"{a}\" x2=\"{r}\" y2=\"{a}\"/>",
        a = AXIS - 6.0,
        r = WIDTH - PAD_RIGHT
    );
    while tick <= last_ms {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(tick);
        let x = sc.x(t);
        let _ = writeln!(
            h,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{plot_bottom}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            AXIS - 6.0,
            AXIS - 12.0,
            esc(&tick_label(t, step, span))
        );
        tick += step;
    }
    h.push_str("</g>\n");

    // The run's pauses: a shaded band and dashed lines across every lane.
    let mut label_room = [0.0; 2];
    for p in &view.run_pauses {
        run_pause(h, &sc, p, end, plot_bottom, &mut label_room);
    }

    let mut y = AXIS;
    for src in &sources {
        let _ = writeln!(
            h,
            "<g class=\"source\"><text class=\"source-name\" x=\"6\" y=\"{:.1}\">{}</text>\
             <line class=\"source-rule\" x1=\"6\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\"/></g>",
            y + 16.0,
            esc(src),
            y + GROUP_HEAD - 2.0,
            WIDTH - PAD_RIGHT,
            y + GROUP_HEAD - 2.0
        );
        y += GROUP_HEAD;
        for s in ordered.iter().filter(|s| s.source == *src) {
            lane(h, &sc, s, y, end);
            y += LANE;
        }
    }
    h.push_str("</svg></figure>\n");
}

/// `label_room`: per label row, the x from which a new label does not
/// overlap the last one (a label with no room is left out; every pause
/// keeps its tooltip).
fn run_pause(
    h: &mut String,
    sc: &Scale,
    p: &Pause,
    end: SystemTime,
    bottom: f64,
    label_room: &mut [f64; 2],
) {
    let x1 = sc.x(p.at);
    let x2 = sc.x(p.until.unwrap_or(end));
    let title = match p.until {
        Some(u) => format!(
            "Run paused {} → resumed {} ({}): {}",
            utc(p.at),
            utc(u),
            human_duration(secs_between(p.at, u)),
            p.reason
        ),
        None => format!("Run paused {}: {}", utc(p.at), p.reason),
    };
    let _ = write!(
        h,
        "<g class=\"run-pause\"><title>{}</title>\
         <rect class=\"run-pause-band\" x=\"{x1:.1}\" y=\"{AXIS}\" width=\"{:.1}\" height=\"{:.1}\"/>\
         <line class=\"run-pause-line\" x1=\"{x1:.1}\" y1=\"{AXIS}\" x2=\"{x1:.1}\" y2=\"{bottom}\"/>",
        esc(&title),
        (x2 - x1).max(0.0),
        bottom - AXIS,
    );
    // Right of its line, or left of it near the right edge; on the lower
    // row, or the upper one when the lower is taken.
    let mut label = |h: &mut String, x: f64, text: &str| {
        let w = 6.5 * text.len() as f64;
        let (from, anchor, tx) = if x + 3.0 + w <= WIDTH - PAD_RIGHT {
            (x + 3.0, "start", x + 3.0)
        } else {
            (x - 3.0 - w, "end", x - 3.0)
        };
        for (row, room) in label_room.iter_mut().enumerate() {
            if from >= *room {
                let _ = write!(
                    h,
                    "<text class=\"run-pause-label\" x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{text}</text>",
                    bottom - 3.0 - 12.0 * row as f64
                );
                *room = from + w + 4.0;
                break;
            }
        }
    };
    label(h, x1, "paused");
    if p.until.is_some() {
        let _ = write!(
            h,
            "<line class=\"run-resume-line\" x1=\"{x2:.1}\" y1=\"{AXIS}\" x2=\"{x2:.1}\" y2=\"{bottom}\"/>"
        );
        label(h, x2, "resumed");
    }
    h.push_str("</g>\n");
}

fn lane(h: &mut String, sc: &Scale, s: &SessionView, y: f64, end: SystemTime) {
    let outcome = Outcome::of(s);
    let cls = outcome.class();
    let mid = y + LANE / 2.0;
    let top = mid - BAR / 2.0;
    let last = s.finished_at.unwrap_or(end);

    let mut title = format!(
        "{}{} — {} ({})\ncreated {}",
        s.name,
        s.id.as_deref()
            .map(|i| format!(" · {i}"))
            .unwrap_or_default(),
        s.state,
        outcome.words(),
        utc(s.created_at)
    );
    if let Some(t) = s.started_at {
        let _ = write!(title, "\nstarted {}", utc(t));
    }
    if let Some(t) = s.finished_at {
        let _ = write!(
            title,
            "\nfinished {} (after {})",
            utc(t),
            human_duration(secs_between(s.created_at, t))
        );
    }
    let _ = write!(title, "\n{} accounts, {} failed", s.accounts, s.failed);
    for p in &s.pauses {
        match p.until {
            Some(u) => {
                let _ = write!(title, "\npaused {} → resumed {}", utc(p.at), utc(u));
            }
            None => {
                let _ = write!(title, "\npaused {}", utc(p.at));
            }
        }
    }
    if let Some(r) = &s.replaces {
        let _ = write!(title, "\ntook over the unfinished accounts of {r}");
    }

    let _ = write!(
        h,
        "<g class=\"lane {cls}\" data-session=\"{}\"><title>{}</title>\
         <text class=\"lane-name\" x=\"18\" y=\"{:.1}\">{}</text>\
         <text class=\"lane-count\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} acct{}</text>",
        esc(&s.name),
        esc(&title),
        mid + 4.0,
        esc(&s.name),
        GUTTER - 10.0,
        mid + 4.0,
        s.accounts,
        if s.failed > 0 {
            format!(
                " · <tspan class=\"lane-failed\">{} failed</tspan>",
                s.failed
            )
        } else {
            String::new()
        },
    );
    // Waiting for the server to start it (PENDING / queued).
    let started = s.started_at.unwrap_or(last);
    let (xc, xs, xe) = (sc.x(s.created_at), sc.x(started), sc.x(last));
    if xs > xc {
        let _ = write!(
            h,
            "<rect class=\"seg-wait\" x=\"{xc:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{BAR}\" rx=\"2\"/>",
            xs - xc
        );
    }
    if s.started_at.is_some() {
        let _ = write!(
            h,
            "<rect class=\"seg seg-{cls}\" x=\"{xs:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{BAR}\" rx=\"2\"/>",
            (xe - xs).max(1.5)
        );
    }
    for p in &s.pauses {
        let (xp, xr) = (sc.x(p.at), sc.x(p.until.unwrap_or(last)));
        let _ = write!(
            h,
            "<rect class=\"seg-paused\" x=\"{xp:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{BAR}\"/>\
             <g class=\"mark pause-mark\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"2\" height=\"7\"/><rect x=\"{:.1}\" y=\"{:.1}\" width=\"2\" height=\"7\"/></g>",
            (xr - xp).max(1.0),
            xp - 3.0,
            top - 9.0,
            xp + 1.0,
            top - 9.0
        );
        if p.until.is_some() {
            let _ = write!(
                h,
                "<path class=\"mark resume-mark\" d=\"M{:.1} {:.1} l7 3.5 l-7 3.5 z\"/>",
                xr - 2.0,
                top - 9.0
            );
        }
    }
    h.push_str("</g>\n");
}

fn legend(h: &mut String) {
    h.push_str(
        "<ul class=\"legend\">\
         <li><span class=\"sw ok\"></span>completed</li>\
         <li><span class=\"sw warn\"></span>completed, some accounts failed</li>\
         <li><span class=\"sw failed\"></span>failed or aborted</li>\
         <li><span class=\"sw running\"></span>running</li>\
         <li><span class=\"sw paused\"></span>paused</li>\
         <li><span class=\"sw wait\"></span>waiting to start</li>\
         <li><span class=\"glyph\">❚❚</span>pause</li>\
         <li><span class=\"glyph\">▶</span>resume</li>\
         <li><span class=\"sw run-pause\"></span>whole run paused</li>\
         </ul>\n<p class=\"hint screen-only\">Hover a lane for its session id and exact times.</p>\n",
    );
}
