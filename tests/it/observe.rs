//! Watching a run (issue: metrics and notifications): `apply
//! --metrics-textfile`, `--metrics-listen`, `--metrics-push` and the
//! plan's `notify:` commands, with `ferry` run as a real process against a
//! whm-sim hosted by the test.
//!
//! The metrics text is read with [`parse`], a strict parser of the
//! Prometheus text format 0.0.4 written here (stricter than node_exporter's:
//! it refuses any `#` line other than HELP and TYPE, so OpenMetrics' `# EOF`
//! and `# UNIT` fail, a sample without a TYPE, a timestamp, a counter not
//! named `…_total`, a histogram whose buckets do not add up).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry::sim::{FailItem, FailStage};
use serde_json::Value;

use crate::kit::*;

/// Real seconds per simulated second that make a 6-account run last a
/// couple of seconds.
const SLOW: f64 = 0.15;
const FAST: f64 = 0.005;

// ------------------------------------------------------------ the parser

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Clone, Default)]
struct MetricFamily {
    kind: String,
    help: Option<String>,
    samples: Vec<Sample>,
}

type Families = BTreeMap<String, MetricFamily>;

fn valid_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_start = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    chars.next().is_some_and(ok_start) && chars.all(|c| ok_start(c) || c.is_ascii_digit())
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if v.contains(['p', 'P', '_']) => Err(format!("bad value `{v}`")),
        _ => v.parse().map_err(|_| format!("bad value `{v}`")),
    }
}

/// `name{a="1",b="2"} value` → (name, labels, value).
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name, true) {
        return Err(format!("invalid metric name `{name}`"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut r = r;
        loop {
            if let Some(after) = r.strip_prefix('}') {
                r = after;
                break;
            }
            let eq = r.find('=').ok_or("label without `=`")?;
            let lname = &r[..eq];
            if !valid_name(lname, false) || lname == "__name__" {
                return Err(format!("invalid label name `{lname}`"));
            }
            r = r[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("unterminated label value".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((_, '\n')) => return Err("newline in a label value".into()),
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.insert(lname.to_string(), value).is_some() {
                return Err(format!("duplicate label `{lname}`"));
            }
            r = &r[end + 1..];
            if let Some(after) = r.strip_prefix(',') {
                if after.starts_with('}') {
                    return Err("trailing comma in labels".into());
                }
                r = after;
            } else if !r.starts_with('}') {
                return Err("expected `,` or `}` after a label".into());
            }
        }
        rest = r;
    }
    let v = rest
        .strip_prefix(' ')
        .ok_or("expected one space before the value")?;
    if v.contains(' ') {
        return Err("a timestamp (or junk) after the value".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(v)?,
    })
}

/// The family a sample belongs to, given the TYPEs seen.
fn family_of<'a>(fams: &'a Families, sample: &str) -> Option<&'a str> {
    if let Some((k, f)) = fams.get_key_value(sample)
        && f.kind != "histogram"
    {
        return Some(k);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix)
            && let Some((k, f)) = fams.get_key_value(base)
            && (f.kind == "histogram" || (f.kind == "summary" && suffix != "_bucket"))
        {
            return Some(k);
        }
    }
    None
}

/// Parses the Prometheus text format 0.0.4, strictly.
fn parse(text: &str) -> Result<Families, String> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err("the text must end with a newline".into());
    }
    let mut fams = Families::new();
    let mut current: Option<String> = None;
    let mut closed: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.splitn(4, ' ');
            let (Some(""), Some(kw), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(at("a comment other than HELP or TYPE".into()));
            };
            let arg = parts.next().unwrap_or("");
            if !valid_name(name, true) {
                return Err(at(format!("invalid metric name `{name}`")));
            }
            if closed.iter().any(|c| c == name) {
                return Err(at("the family appears twice".into()));
            }
            if current.as_deref() != Some(name)
                && let Some(prev) = current.replace(name.to_string())
            {
                closed.push(prev);
            }
            let f = fams.entry(name.to_string()).or_default();
            if !f.samples.is_empty() {
                return Err(at("HELP or TYPE after the family's samples".into()));
            }
            match kw {
                "HELP" => {
                    if f.help.is_some() {
                        return Err(at("second HELP".into()));
                    }
                    let mut help = String::new();
                    let mut chars = arg.chars();
                    while let Some(c) = chars.next() {
                        match (c, c == '\\') {
                            (_, true) => match chars.next() {
                                Some('\\') => help.push('\\'),
                                Some('n') => help.push('\n'),
                                other => return Err(at(format!("bad escape in HELP: {other:?}"))),
                            },
                            (c, false) => help.push(c),
                        }
                    }
                    f.help = Some(help);
                }
                "TYPE" => {
                    if !f.kind.is_empty() {
                        return Err(at("second TYPE".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                        return Err(at(format!("unknown type `{arg}`")));
                    }
                    if arg == "counter" && !name.ends_with("_total") {
                        return Err(at("a counter not named …_total".into()));
                    }
                    f.kind = arg.to_string();
                }
                _ => return Err(at(format!("unknown comment keyword `{kw}`"))),
            }
            continue;
        }
        let s = parse_sample(line).map_err(at)?;
        let fam = family_of(&fams, &s.name)
            .map(str::to_string)
            .ok_or_else(|| at("a sample without a TYPE".into()))?;
        if current.as_deref() != Some(fam.as_str()) {
            return Err(at(format!(
                "a sample of `{fam}` outside its family's block"
            )));
        }
        let f = fams.get_mut(&fam).expect("family");
        if f.samples
            .iter()
            .any(|o| o.name == s.name && o.labels == s.labels)
        {
            return Err(at("duplicate series".into()));
        }
        if f.kind == "histogram" && s.name.ends_with("_bucket") && !s.labels.contains_key("le") {
            return Err(at("a bucket without `le`".into()));
        }
        f.samples.push(s);
    }
    for (name, f) in &fams {
        if f.kind.is_empty() {
            return Err(format!("`{name}` has no TYPE"));
        }
        if f.kind == "histogram" {
            check_histogram(name, f)?;
        }
    }
    Ok(fams)
}

fn check_histogram(name: &str, f: &MetricFamily) -> Result<(), String> {
    let base = |s: &Sample| {
        let mut l = s.labels.clone();
        l.remove("le");
        l
    };
    let mut groups: BTreeMap<Vec<(String, String)>, Vec<&Sample>> = BTreeMap::new();
    for s in &f.samples {
        groups
            .entry(base(s).into_iter().collect())
            .or_default()
            .push(s);
    }
    for (labels, samples) in groups {
        let mut last = 0.0;
        let mut inf = None;
        let mut bound = f64::NEG_INFINITY;
        for s in samples.iter().filter(|s| s.name.ends_with("_bucket")) {
            let le = parse_value(&s.labels["le"])?;
            if le <= bound {
                return Err(format!("{name}{labels:?}: buckets out of order"));
            }
            bound = le;
            if s.value < last {
                return Err(format!("{name}{labels:?}: buckets not cumulative"));
            }
            last = s.value;
            if le == f64::INFINITY {
                inf = Some(s.value);
            }
        }
        let count = samples.iter().find(|s| s.name.ends_with("_count"));
        let sum = samples.iter().find(|s| s.name.ends_with("_sum"));
        match (inf, count, sum) {
            (Some(i), Some(c), Some(_)) if i == c.value => {}
            _ => {
                return Err(format!(
                    "{name}{labels:?}: no +Inf bucket, _count or _sum, or they differ"
                ));
            }
        }
    }
    Ok(())
}

/// The value of `family{labels…}` (the `plan` label aside).
fn get(f: &Families, name: &str, labels: &[(&str, &str)]) -> f64 {
    let fam = family_of(f, name).unwrap_or_else(|| panic!("no family for {name}"));
    f[fam]
        .samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
        .value
}

/// The sum of every sample of `name`.
fn sum(f: &Families, name: &str) -> f64 {
    family_of(f, name).map_or(0.0, |fam| {
        f[fam]
            .samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    })
}

#[test]
fn the_strict_parser_refuses_what_node_exporter_would_misread() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert!(parse(good).is_ok());
    for bad in [
        "# HELP a A.\n# TYPE a counter\na_total 2\n", // OpenMetrics counter naming
        "# TYPE a gauge\na 1\n# EOF\n",               // OpenMetrics end marker
        "# TYPE a gauge\n# UNIT a seconds\na 1\n",    // OpenMetrics unit
        "a 1\n",                                      // no TYPE
        "# TYPE a gauge\na 1 1700000000000\n",        // timestamp
        "# TYPE a gauge\na{x=\"1\",} 1\n",            // trailing comma
        "# TYPE a gauge\na 1\na 2\n",                 // duplicate series
        "# TYPE a gauge\na 1",                        // no final newline
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad:?}");
    }
}

// ------------------------------------------------------------ helpers

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `GET path` on 127.0.0.1:port: (status, content type, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    Ok((status, ctype, body.to_string()))
}

/// What a fake Pushgateway received: method, path, content type, body.
type Pushes = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// A Pushgateway stand-in on 127.0.0.1: answers every request 200 and
/// records it. Lives as long as the test process.
fn fake_pushgateway() -> (String, Pushes) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let got: Pushes = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let head_end = loop {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let header = |name: &str| {
                head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
            };
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + len {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let mut first = head.lines().next().unwrap_or("").split(' ');
            let method = first.next().unwrap_or("").to_string();
            let path = first.next().unwrap_or("").to_string();
            let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
            g.lock().unwrap().push((
                method,
                path,
                header("content-type").unwrap_or_default(),
                body,
            ));
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

/// Waits for `child`, calling `each` every 10 ms while it runs.
fn while_running(child: &mut std::process::Child, mut each: impl FnMut()) {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "apply did not finish"
        );
        each();
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for s in [TOKEN, SSH_PW] {
        assert!(!text.contains(s), "{what} contains a secret: {text}");
    }
}

/// No label value names an account of the fleet.
fn assert_no_account_label(f: &Families, fleet: &Fleet) {
    let users: Vec<String> = fleet
        .sources
        .iter()
        .flat_map(|s| {
            s.accounts
                .iter()
                .flat_map(|a| [a.user.clone(), a.target().to_string()])
        })
        .collect();
    for fam in f.values() {
        for s in &fam.samples {
            for v in s.labels.values() {
                assert!(!users.contains(v), "{} has an account label: {v}", s.name);
            }
        }
    }
}

fn account_states(f: &Families) -> [f64; 4] {
    ["pending", "in_progress", "transferred", "failed"]
        .map(|st| get(f, "ferry_accounts", &[("state", st), ("plan", "fleet")]))
}

// ------------------------------------------------------------ metrics

/// The textfile is rewritten while the run goes: every version read is
/// complete, strict Prometheus text; the accounts move from pending to
/// transferred; the request counter only grows; the last version says the
/// run succeeded.
#[test]
fn metrics_textfile_follows_the_run() {
    let fleet = Fleet::standard(1, 6);
    let w = World::start(fleet.clone(), fleet.scenario(SLOW));
    std::fs::create_dir(w.dir.path().join("textfile")).unwrap();
    let prom = w.dir.path().join("textfile/ferry.prom");
    let mut child = w.spawn_apply(&["--metrics-textfile", "textfile/ferry.prom"], "tf");
    let mut versions: Vec<String> = Vec::new();
    while_running(&mut child, || {
        if let Ok(t) = std::fs::read_to_string(&prom)
            && versions.last() != Some(&t)
        {
            versions.push(t);
        }
    });
    let out = wait_child(child, &w, "tf");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let last = std::fs::read_to_string(&prom).unwrap();
    if versions.last() != Some(&last) {
        versions.push(last.clone());
    }
    assert!(versions.len() >= 3, "only {} versions seen", versions.len());
    let parsed: Vec<Families> = versions
        .iter()
        .map(|t| parse(t).unwrap_or_else(|e| panic!("{e}\n{t}")))
        .collect();
    let total = fleet.target_users().len() as f64;
    let mut requests = 0.0;
    let mut saw_unfinished = false;
    for (f, t) in parsed.iter().zip(&versions) {
        assert_no_secret("the textfile", t);
        assert_no_account_label(f, &fleet);
        for fam in f.values() {
            for s in &fam.samples {
                assert_eq!(
                    s.labels.get("plan").map(String::as_str),
                    Some("fleet"),
                    "{s:?}"
                );
            }
        }
        let states = account_states(f);
        assert_eq!(states.iter().sum::<f64>(), total, "{t}");
        saw_unfinished |= states[2] < total;
        let r = sum(f, "ferry_whm_requests_total");
        assert!(r >= requests, "requests went down: {t}");
        requests = r;
    }
    assert!(saw_unfinished, "never saw the run before its end");
    let f = parsed.last().unwrap();
    assert_eq!(account_states(f), [0.0, 0.0, total, 0.0], "{last}");
    assert!(sum(&parsed[0], "ferry_whm_requests_total") < requests);
    for function in [
        "create_remote_root_transfer_session",
        "enqueue_transfer_item",
        "start_transfer_session",
        "get_transfer_session_state",
        "listaccts",
    ] {
        assert!(
            get(
                f,
                "ferry_whm_requests_total",
                &[("function", function), ("outcome", "ok")]
            ) >= 1.0,
            "{function}: {last}"
        );
        assert!(
            get(
                f,
                "ferry_whm_request_duration_seconds_count",
                &[("function", function)]
            ) >= 1.0
        );
    }
    let size: u64 = fleet
        .sources
        .iter()
        .flat_map(|s| &s.accounts)
        .map(|a| a.size)
        .sum();
    assert_eq!(get(f, "ferry_bytes_total", &[]), size as f64);
    assert_eq!(get(f, "ferry_bytes_done", &[]), size as f64);
    assert!(get(f, "ferry_journal_fsync_seconds_count", &[]) >= 1.0);
    assert_eq!(get(f, "ferry_run_status", &[("status", "succeeded")]), 1.0);
    assert_eq!(get(f, "ferry_run_status", &[("status", "running")]), 0.0);
    assert!(get(f, "ferry_sessions", &[("state", "COMPLETED")]) >= 1.0);
    let started = get(f, "ferry_run_started_timestamp_seconds", &[]);
    let finished = get(f, "ferry_run_finished_timestamp_seconds", &[]);
    assert!(
        started > 1.7e9 && finished >= started,
        "{started} {finished}"
    );
    assert_eq!(
        get(&parsed[0], "ferry_run_finished_timestamp_seconds", &[]),
        0.0
    );
    // The temporary files are gone; only the textfile is left.
    let names: Vec<String> = std::fs::read_dir(w.dir.path().join("textfile"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["ferry.prom"]);
}

/// `/metrics` answers while the run lasts (strict text, the Prometheus
/// content type), the port is closed once apply exits, and the final
/// metrics were pushed to the Pushgateway as the run's group.
#[test]
fn metrics_endpoint_lives_as_long_as_the_run_and_the_push_arrives() {
    let fleet = Fleet::standard(1, 6);
    let w = World::start(fleet.clone(), fleet.scenario(SLOW));
    let port = free_port();
    let (gateway, pushes) = fake_pushgateway();
    let listen = format!("127.0.0.1:{port}");
    let mut child = w.spawn_apply(
        &["--metrics-listen", &listen, "--metrics-push", &gateway],
        "listen",
    );
    let mut answers = Vec::new();
    let mut other = None;
    while_running(&mut child, || {
        if let Ok(a) = http_get(port, "/metrics")
            && a.0 == 200
        {
            answers.push(a);
            if other.is_none() {
                other = http_get(port, "/").ok();
            }
        }
    });
    let out = wait_child(child, &w, "listen");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !answers.is_empty(),
        "/metrics never answered: {}",
        text(&out)
    );
    for (_, ctype, body) in &answers {
        assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
        let f = parse(body).unwrap_or_else(|e| panic!("{e}\n{body}"));
        assert_no_secret("/metrics", body);
        assert_no_account_label(&f, &fleet);
        assert!(account_states(&f).iter().sum::<f64>() > 0.0);
    }
    assert_eq!(other.map(|o| o.0), Some(404));
    // Gone with the process.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open"
    );
    // The push: one PUT of the group {job="ferry", plan="fleet"}.
    let pushes = pushes.lock().unwrap().clone();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let (method, path, ctype, body) = &pushes[0];
    assert_eq!(method, "PUT");
    assert_eq!(path, "/metrics/job/ferry/plan/fleet");
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert_no_secret("the push", body);
    let f = parse(body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    let total = fleet.target_users().len() as f64;
    assert_eq!(account_states(&f), [0.0, 0.0, total, 0.0]);
    assert_eq!(get(&f, "ferry_run_status", &[("status", "succeeded")]), 1.0);
}

/// Exports that fail are warnings: the run ends as it would have.
#[test]
fn metrics_failures_are_warnings_not_failures() {
    let fleet = Fleet::standard(1, 3);
    let w = World::start(fleet.clone(), fleet.scenario(FAST));
    let closed = format!("http://127.0.0.1:{}", free_port());
    // A port that is taken.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let out = w.apply(&[
        "--metrics-textfile",
        "no/such/dir/ferry.prom",
        "--metrics-push",
        &closed,
        "--metrics-listen",
        &taken_addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: metrics: cannot write the textfile no/such/dir/ferry.prom"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "warning: metrics: the push to the Pushgateway at {closed}/ failed"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("warning: metrics: cannot listen on {taken_addr}")),
        "{err}"
    );
    // One textfile warning, not one per change.
    assert_eq!(err.matches("cannot write the textfile").count(), 1, "{err}");
    w.assert_status_succeeded(&fleet.target_users());
}

#[test]
fn metrics_flags_are_checked_before_anything_runs() {
    let fleet = Fleet::standard(1, 1);
    let w = World::start(fleet.clone(), fleet.scenario(FAST));
    for args in [
        ["--metrics-listen", "localhost"],
        ["--metrics-push", "pushgateway:9091"],
    ] {
        let out = w.apply(&args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    }
    assert!(!w.journal().exists());
}

// ------------------------------------------------------------ notify

/// Writes `name` in the world's directory, executable.
fn script(w: &World, name: &str, body: &str) {
    let p = w.dir.path().join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn with_notify(w: &World, notify: &str) {
    let yaml = w.fleet.plan_yaml(&w.url) + "notify:\n" + notify;
    std::fs::write(&w.plan, yaml).unwrap();
}

/// What the notification script recorded: (event, stdin, environment).
fn received(dir: &Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    for n in names {
        let stem = n.strip_suffix(".json").unwrap();
        let event = stem.split('.').next().unwrap().to_string();
        let stdin = std::fs::read_to_string(dir.join(&n)).unwrap();
        let env = std::fs::read_to_string(dir.join(format!("{stem}.env"))).unwrap_or_default();
        out.push((event, stdin, env));
    }
    out
}

/// A paused run: the command gets `run_paused` naming the failing account,
/// as the very object `--output json` prints, on stdin; its environment
/// has ferry's variables but not the ones the plan's secrets name.
#[test]
fn notify_tells_of_a_paused_run_without_the_plans_secrets() {
    let fleet = Fleet::standard(1, 6);
    let mut sc = fleet.scenario(FAST);
    sc.faults.fail_items.insert(
        "s1u05".into(),
        FailItem {
            message: "Disk quota exceeded".into(),
            times: 9,
            stage: FailStage::Restore,
        },
    );
    let w = World::start(fleet.clone(), sc);
    script(
        &w,
        "notify.sh",
        "d=\"$(dirname \"$0\")/got\"; mkdir -p \"$d\"\n\
         cat > \"$d/$FERRY_EVENT.$$.json\"\n\
         env > \"$d/$FERRY_EVENT.$$.env\"",
    );
    with_notify(
        &w,
        "  - events: [run_paused, item_failed, run_finished]\n    command: [./notify.sh]\n    timeout: 10s\n",
    );
    let out = w.apply(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let ev = events(&out);
    let got = received(&w.dir.path().join("got"));
    let kinds: Vec<&str> = got.iter().map(|(k, _, _)| k.as_str()).collect();
    for k in ["run_paused", "item_failed", "run_finished"] {
        assert!(
            kinds.contains(&k),
            "{k} not received: {kinds:?}\n{}",
            text(&out)
        );
    }
    for (kind, stdin, env) in &got {
        assert_no_secret("a notification's input", stdin);
        assert_no_secret("a notification's environment", env);
        // Exactly one JSON line, the object --output json printed.
        assert!(
            stdin.ends_with('\n') && stdin.matches('\n').count() == 1,
            "{stdin:?}"
        );
        let mut v: Value = serde_json::from_str(stdin).unwrap();
        assert_eq!(v["event"], kind.as_str());
        humantime::parse_rfc3339(v["ts"].as_str().unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("ts");
        let same = ev.iter().any(|e| {
            let mut e = e.clone();
            e.as_object_mut().unwrap().remove("ts");
            e == v
        });
        assert!(same, "{v} is not an event of --output json");
        let vars: Vec<&str> = env
            .lines()
            .filter_map(|l| l.split_once('=').map(|p| p.0))
            .collect();
        assert!(
            vars.contains(&"FERRY_EVENT") && vars.contains(&"NO_COLOR"),
            "{env}"
        );
        assert!(
            !vars.contains(&"FERRY_TEST_TOKEN") && !vars.contains(&"FERRY_TEST_SSH"),
            "{env}"
        );
    }
    let paused = &got.iter().find(|(k, _, _)| k == "run_paused").unwrap().1;
    let v: Value = serde_json::from_str(paused).unwrap();
    assert!(v["reason"].as_str().unwrap().contains("s1u05"), "{v}");
    let finished = &got.iter().find(|(k, _, _)| k == "run_finished").unwrap().1;
    assert!(finished.contains("\"status\":\"paused\""), "{finished}");
}

/// Commands that fail, hang or do not exist are warning lines; the run
/// ends with its own exit code, the hanging one is killed with everything
/// it started, and apply does not wait for it longer than its timeout.
#[test]
fn notify_commands_that_fail_or_hang_do_not_disturb_the_run() {
    let fleet = Fleet::standard(1, 4);
    let w = World::start(fleet.clone(), fleet.scenario(FAST));
    with_notify(
        &w,
        "  - events: [run_started, item_succeeded, run_finished]\n    command: [sh, -c, \"echo nope >&2; exit 7\"]\n\
         \x20 - events: [run_finished]\n    command: [sh, -c, \"sleep 60 & echo $! > sleeper.pid; wait\"]\n    timeout: 1s\n\
         \x20 - events: [run_finished]\n    command: [./no-such-hook]\n",
    );
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "warning: notify: `sh` (notify[0]) for run_started: exit status: 7 (stderr: nope)"
        ),
        "{err}"
    );
    assert!(err.contains("for item_succeeded: exit status: 7"), "{err}");
    assert!(
        err.contains("(notify[1]) for run_finished: killed after its timeout of 1s"),
        "{err}"
    );
    assert!(
        err.contains("(notify[2]) for run_finished: cannot run it"),
        "{err}"
    );
    w.assert_status_succeeded(&fleet.target_users());
    // The sleeper, started in the background by the killed shell, is gone.
    let pid: i32 = std::fs::read_to_string(w.dir.path().join("sleeper.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its new parent to reap it.
        let zombie = state
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if state.is_empty() || zombie {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the sleeper {pid} survived: {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
