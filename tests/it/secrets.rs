//! Issue 6: secrets never leak, certificates are checked.
//!
//! The leak tests run ferry as a real process with distinctive secret values
//! (a token from a `{file: …}` reference, a root password, a key
//! passphrase, a password full of characters that URL-encode, an `su` root
//! password), `RUST_LOG=trace` and `--output json`, then search every
//! artifact — stdout (JSON events), stderr (trace logs, human lines), the
//! journal, `ferry status --output json`, the HTML report, the simulator's
//! `/__sim/requests`, and `/proc/<pid>/cmdline` read while ferry runs — for
//! each secret in every encoding it could take (raw, form-urlencoded with
//! `+` or `%20`, JSON- and Debug-escaped, base64 and base64url at each of
//! the three alignments). One hit fails the test.
//!
//! The TLS tests run `ferry apply` against whm-sim with `tls: self_signed`:
//! refused without `ca_file`, accepted with it, accepted with `insecure:
//! true` (warned and journaled), and `http://` to another host refused at
//! validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry::sim::{
    AccountSpec, FailItem, FailStage, FaultSpec, RemoteSpec, Scenario, SimServer, SshSpec, TlsMode,
    TokenSpec,
};
use rand::Rng;
use serde_json::Value;

use crate::kit::{journal_records, text};

// ---------------------------------------------------------------- secrets

/// The run's secrets, each distinctive and random per test.
struct Secrets {
    token: String,
    root_pw: String,
    key_pass: String,
    /// Characters that URL-encode: `@`, space, `&`, `=`, `%`.
    admin_pw: String,
    su_pw: String,
}

impl Secrets {
    fn new() -> Secrets {
        let r = || -> String {
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(12)
                .map(char::from)
                .collect()
        };
        Secrets {
            token: format!("TOKEN-{}-SECRET", r()),
            root_pw: format!("ROOTPW-{}", r()),
            key_pass: format!("KEYPASS-{}", r()),
            admin_pw: format!("p@ss w0rd&=%-{}", r()),
            su_pw: format!("SUPW-{}", r()),
        }
    }

    fn all(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("token", &self.token),
            ("root_pw", &self.root_pw),
            ("key_pass", &self.key_pass),
            ("admin_pw", &self.admin_pw),
            ("su_pw", &self.su_pw),
        ]
    }

    /// The environment of every ferry process (the token comes from a file).
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LEAK_ROOT_PW", self.root_pw.clone()),
            ("LEAK_KEY_PASS", self.key_pass.clone()),
            ("LEAK_ADMIN_PW", self.admin_pw.clone()),
            ("LEAK_SU_PW", self.su_pw.clone()),
            ("RUST_LOG", "trace".into()),
            ("NO_COLOR", "1".into()),
        ]
    }

    /// Writes the token file (mode 0600) into `dir`.
    fn write_token(&self, dir: &Path) {
        let p = dir.join("token.secret");
        std::fs::write(&p, format!("{}\n", self.token)).unwrap();
        chmod(&p, 0o600);
    }
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The part of `base64(prefix + value + suffix)` that depends only on
/// `value`, for a value starting at byte offset `k` mod 3 of the encoded
/// data: whatever surrounds it, this text appears.
fn base64_core(value: &str, k: usize, alphabet: &[u8; 64]) -> String {
    let mut data = vec![0u8; k];
    data.extend_from_slice(value.as_bytes());
    let enc = base64(&data, alphabet);
    // Drop the first group (mixes the prefix) when k > 0, and the last
    // group (mixes what follows).
    let start = if k == 0 { 0 } else { 4 };
    let full_groups = data.len() / 3;
    let end = full_groups * 4;
    enc[start..end.max(start)].to_string()
}

/// Every form in which `value` could appear: (encoding name, text).
fn encodings(value: &str) -> Vec<(String, String)> {
    let form: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let json = serde_json::to_string(value).unwrap();
    let debug = format!("{value:?}");
    let mut out = vec![
        ("raw".to_string(), value.to_string()),
        ("form-urlencoded".into(), form.clone()),
        ("percent-encoded".into(), form.replace('+', "%20")),
        ("json-escaped".into(), json[1..json.len() - 1].to_string()),
        (
            "debug-escaped".into(),
            debug[1..debug.len() - 1].to_string(),
        ),
    ];
    for k in 0..3 {
        out.push((format!("base64@{k}"), base64_core(value, k, B64)));
        out.push((format!("base64url@{k}"), base64_core(value, k, B64URL)));
    }
    for (name, e) in &out {
        assert!(
            e.len() >= 8,
            "{name} of a secret is too short to search for"
        );
    }
    out
}

/// Named artifacts to search.
#[derive(Default)]
struct Artifacts(Vec<(String, Vec<u8>)>);

impl Artifacts {
    fn add(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.0.push((name.into(), bytes.into()));
    }

    fn add_file(&mut self, name: &str, path: &Path) {
        let bytes =
            std::fs::read(path).unwrap_or_else(|e| panic!("{name} ({}): {e}", path.display()));
        assert!(!bytes.is_empty(), "{name} is empty");
        self.add(name, bytes);
    }

    /// Every file under `dir` (the journal, its lock, a control request…).
    fn add_dir(&mut self, name: &str, dir: &Path) {
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let file = p.file_name().unwrap().to_string_lossy().into_owned();
                self.add(format!("{name}/{file}"), std::fs::read(&p).unwrap());
                n += 1;
            }
        }
        assert!(n > 0, "{name} is empty");
    }

    fn add_output(&mut self, name: &str, out: &Output) {
        self.add(format!("{name} stdout"), out.stdout.clone());
        self.add(format!("{name} stderr"), out.stderr.clone());
    }

    /// Every (secret, encoding, artifact) hit, by name only.
    fn hits(&self, secrets: &[(&str, &str)]) -> Vec<String> {
        let mut hits = Vec::new();
        for (sname, value) in secrets {
            for (ename, enc) in encodings(value) {
                for (aname, bytes) in &self.0 {
                    if String::from_utf8_lossy(bytes).contains(enc.as_str()) {
                        hits.push(format!("{sname} ({ename}) in {aname}"));
                    }
                }
            }
        }
        hits
    }

    /// Searches every artifact for every encoding of every secret; panics
    /// with the list of hits (names only, never the secret). Prints what
    /// was searched.
    fn assert_no_secret(&self, secrets: &Secrets) {
        let all = secrets.all();
        let hits = self.hits(&all);
        assert!(hits.is_empty(), "secrets leaked:\n{}", hits.join("\n"));
        let needles: usize = all.iter().map(|(_, v)| encodings(v).len()).sum();
        let bytes: usize = self.0.iter().map(|(_, b)| b.len()).sum();
        eprintln!(
            "searched {} artifacts ({bytes} bytes) for {} secrets x {} encodings = {needles} needles: 0 hits\n  {}",
            self.0.len(),
            all.len(),
            needles / all.len(),
            self.names().join("\n  ")
        );
    }

    fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// The search itself finds every encoding, wherever a secret sits in a
/// larger text (base64 at any offset): the leak tests cannot pass vacuously.
#[test]
fn the_search_finds_each_encoding_at_any_offset() {
    let s = Secrets::new();
    for (name, value) in s.all() {
        let mut a = Artifacts::default();
        a.add(
            "form body",
            format!("user=root&password={}&port=22", {
                let f: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
                f
            }),
        );
        a.add(
            "json",
            serde_json::json!({ "m": format!("x {value} y") }).to_string(),
        );
        for prefix in ["", "w", "wh", "whm root:"] {
            let raw = format!("{prefix}{value}!");
            a.add(
                format!("base64 after {prefix:?}"),
                base64(raw.as_bytes(), B64),
            );
            a.add(
                format!("base64url after {prefix:?}"),
                base64(raw.as_bytes(), B64URL),
            );
        }
        let hits = a.hits(&[(name, value)]);
        for artifact in a.names() {
            assert!(
                hits.iter().any(|h| h.ends_with(&format!(" in {artifact}"))),
                "{name} not found in {artifact}: {hits:?}"
            );
        }
    }
}

// ---------------------------------------------------------------- plans

/// Three sources, one per way to log in: root with a password, root with a
/// key and passphrase, a user escalating with `su`.
fn plan_yaml(url: &str, tls: &str) -> String {
    format!(
        "version: 1
target:
  url: {url}
  token: {{file: token.secret}}
{tls}sources:
  - name: old1
    host: old1.example.com
    ssh: {{user: root, password: {{env: LEAK_ROOT_PW}}}}
    packages: [gold]
    accounts: [{{user: a1, package: gold}}, a2, a3]
  - name: old2
    host: old2.example.com
    ssh: {{user: root, sshkey_name: id_ferry, sshkey_passphrase: {{env: LEAK_KEY_PASS}}}}
    accounts: [b1, b2, b3]
  - name: old3
    host: old3.example.com
    ssh: {{user: admin, password: {{env: LEAK_ADMIN_PW}}, root_escalation_method: su, root_password: {{env: LEAK_SU_PW}}}}
    accounts: [c1, c2, c3]
policy:
  on_error: pause
  poll_interval: 40ms
  retries: {{attempts: 10, initial_backoff: 5ms, max_backoff: 100ms}}
concurrency: {{target_sessions: 3, source_sessions: 1, batch_size: 10}}
"
    )
}

const ACCOUNTS: [&str; 9] = ["a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "c3"];

/// The scenario matching [`plan_yaml`], accepting exactly the secrets.
fn scenario(s: &Secrets, tls: TlsMode) -> Scenario {
    let ssh = |user: &str, password: Option<&str>, key: Option<(&str, &str)>, su: Option<&str>| {
        Some(SshSpec {
            user: user.into(),
            port: 22,
            password: password.map(str::to_string),
            sshkey_name: key.map(|k| k.0.to_string()),
            sshkey_passphrase: key.map(|k| k.1.to_string()),
            root_password: su.map(str::to_string),
        })
    };
    let remote = |host: &str, prefix: char| {
        let mut r = RemoteSpec::new(host);
        r.accounts = (1..=3)
            .map(|i| AccountSpec::new(format!("{prefix}{i}")))
            .collect();
        r
    };
    let mut old1 = remote("old1.example.com", 'a');
    old1.ssh = ssh("root", Some(&s.root_pw), None, None);
    old1.packages = vec!["gold".into()];
    old1.accounts[0].package = Some("gold".into());
    let mut old2 = remote("old2.example.com", 'b');
    old2.ssh = ssh("root", None, Some(("id_ferry", &s.key_pass)), None);
    let mut old3 = remote("old3.example.com", 'c');
    old3.ssh = ssh("admin", Some(&s.admin_pw), None, Some(&s.su_pw));
    Scenario {
        tls,
        tokens: vec![TokenSpec {
            user: "root".into(),
            token: s.token.clone(),
        }],
        time_scale: 0.01,
        remotes: vec![old1, old2, old3],
        ..Scenario::default()
    }
}

// ---------------------------------------------------------------- running

fn ferry(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("ferry"));
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .stdin(Stdio::null());
    c
}

/// Runs ferry to its end (2 min at most), reading `/proc/<pid>/cmdline`
/// while it runs. Returns the output and every cmdline read.
fn run_watching(mut cmd: Command) -> (Output, Vec<Vec<u8>>) {
    let tmp = tempfile::tempdir().unwrap();
    let (o, e) = (tmp.path().join("out"), tmp.path().join("err"));
    let mut child = cmd
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .expect("ferry starts");
    let proc_cmdline = PathBuf::from(format!("/proc/{}/cmdline", child.id()));
    let mut cmdlines = Vec::new();
    let t0 = Instant::now();
    let status = loop {
        // Read before reaping: until `try_wait` reaps it the pid is ours.
        if let Ok(c) = std::fs::read(&proc_cmdline)
            && !c.is_empty()
        {
            cmdlines.push(c);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ferry did not finish in time\n{}",
                std::fs::read_to_string(&e).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    };
    (out, cmdlines)
}

fn run(cmd: Command) -> Output {
    run_watching(cmd).0
}

fn events(out: &Output) -> Vec<Value> {
    crate::kit::events(out)
}

/// The distinct contents of `/proc/<pid>/cmdline` read while ferry ran.
fn add_cmdlines(a: &mut Artifacts, name: &str, cmdlines: &[Vec<u8>]) {
    assert!(
        !cmdlines.is_empty(),
        "{name}: /proc/<pid>/cmdline was never read while ferry ran"
    );
    let mut distinct: Vec<&Vec<u8>> = Vec::new();
    for c in cmdlines {
        if !distinct.contains(&c) {
            distinct.push(c);
        }
    }
    for c in distinct {
        let shown = String::from_utf8_lossy(c).replace('\0', " ");
        assert!(shown.contains("apply"), "{shown}");
        a.add(
            format!(
                "{name} /proc/pid/cmdline (read {} times while running)",
                cmdlines.iter().filter(|x| *x == c).count()
            ),
            c.clone(),
        );
    }
}

/// A whm-sim on its own runtime (it outlives every ferry process).
struct Sim {
    rt: tokio::runtime::Runtime,
    server: Option<SimServer>,
}

impl Sim {
    fn start(sc: Scenario) -> Sim {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(SimServer::start(sc)).expect("whm-sim starts");
        Sim {
            rt,
            server: Some(server),
        }
    }
    fn server(&self) -> &SimServer {
        self.server.as_ref().unwrap()
    }
    fn url(&self) -> String {
        self.server().base_url().to_string()
    }
    /// `POST /__sim/faults` over the wire (TLS when the sim speaks it).
    fn set_faults(&self, faults: &FaultSpec) {
        let status = self.rt.block_on(async {
            let whm = crate::kit::Whm::new(&self.url(), self.server().ca_pem(), None);
            let resp = whm
                .client
                .post(format!("{}/__sim/faults", self.url()))
                .json(faults)
                .send()
                .await
                .unwrap();
            resp.status()
        });
        assert_eq!(status, 200);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

/// Every account of [`ACCOUNTS`] present on the target.
fn assert_all_present(state: &Value) {
    for u in ACCOUNTS {
        assert_eq!(state["accounts"][u]["present"], true, "{u}: {state:#}");
    }
}

// ---------------------------------------------------------------- tests

/// (a) A full rehearsal whose references resolve to the secrets: the
/// in-process simulator is seeded with them (so it accepts nothing else),
/// and no artifact holds one.
#[test]
fn rehearsal_with_real_secrets_leaks_nothing() {
    let s = Secrets::new();
    let dir = tempfile::tempdir().unwrap();
    s.write_token(dir.path());
    std::fs::write(
        dir.path().join("plan.yaml"),
        plan_yaml("https://whm.example.net:2087", ""),
    )
    .unwrap();
    let env = s.env();
    let (out, cmdlines) = run_watching(ferry(
        dir.path(),
        &env,
        &[
            "apply",
            "--simulate",
            "plan.yaml",
            "--output",
            "json",
            "--log-format",
            "json",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let json_logs = err
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["level"].is_string()))
        .count();
    assert!(
        json_logs > 100,
        "--log-format json: {json_logs} JSON log lines"
    );
    assert!(
        err.contains("credentials: the plan's own (its 5 secret references resolve here"),
        "{err}"
    );
    // trace really was on: the WHM client's own lines are there.
    assert!(
        err.contains("TRACE"),
        "RUST_LOG=trace produced no trace lines"
    );
    assert!(err.contains("whm call ok"), "no client log lines");
    let ev = events(&out);
    assert_eq!(ev.last().unwrap()["status"], "succeeded");
    assert_eq!(ev.last().unwrap()["accounts"]["transferred"], 9);

    let journal = dir.path().join(".ferry/plan.simulate.journal");
    let status = run(ferry(
        dir.path(),
        &env,
        &[
            "status",
            "plan.yaml",
            "--output",
            "json",
            "--journal",
            ".ferry/plan.simulate.journal",
        ],
    ));
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let report = run(ferry(
        dir.path(),
        &env,
        &[
            "report",
            "plan.yaml",
            "--html",
            "report.html",
            "--journal",
            ".ferry/plan.simulate.journal",
        ],
    ));
    assert_eq!(report.status.code(), Some(0), "{}", text(&report));

    let mut a = Artifacts::default();
    a.add_output("apply --simulate", &out);
    a.add_dir(".ferry", &dir.path().join(".ferry"));
    a.add_output("status --output json", &status);
    a.add_output("report", &report);
    a.add_file("report.html", &dir.path().join("report.html"));
    add_cmdlines(&mut a, "apply --simulate", &cmdlines);
    a.assert_no_secret(&s);
    assert_eq!(mode_of(&journal), 0o600);
    assert_eq!(mode_of(&dir.path().join("report.html")), 0o600);
}

/// A rehearsal on a fresh machine (no variable set, no secret file) runs on
/// generated stand-ins and says so in one line.
#[test]
fn rehearsal_without_secrets_uses_stand_ins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.yaml"),
        plan_yaml("https://whm.example.net:2087", ""),
    )
    .unwrap();
    let out = run(ferry(
        dir.path(),
        &[],
        &["apply", "--simulate", "plan.yaml", "--output", "json"],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = err.lines().filter(|l| l.contains("stand-ins")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("none of the plan's 5 secret references resolves here")
            && lines[0].contains("{file: token.secret}")
            && lines[0].contains("{env: LEAK_ROOT_PW}"),
        "{}",
        lines[0]
    );
    let last = events(&out).pop().expect("events");
    assert_eq!(last["status"], "succeeded", "{last}");
    assert_eq!(last["accounts"]["transferred"], 9, "{last}");
}

/// (b) A run against whm-sim over TLS with HTTP 500s, resets and latency,
/// an account whose failure message echoes the `su` password (policy
/// `pause`, exit 3), then `apply` again to finish. The echoed secret is
/// scrubbed before the journal and the events; no artifact holds a secret;
/// the simulator saw every password only in POST bodies.
#[test]
fn tls_run_with_faults_and_a_pause_leaks_nothing() {
    let s = Secrets::new();
    let sim = Sim::start(scenario(&s, TlsMode::SelfSigned));
    let url = sim.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let dir = tempfile::tempdir().unwrap();
    s.write_token(dir.path());
    std::fs::write(
        dir.path().join("whm-ca.pem"),
        sim.server().ca_pem().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("plan.yaml"),
        plan_yaml(&url, "  tls: {ca_file: whm-ca.pem}\n"),
    )
    .unwrap();
    let env = s.env();

    // The read-only preflight sends every password too.
    let check = run(ferry(
        dir.path(),
        &env,
        &["check", "plan.yaml", "--output", "json"],
    ));
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));

    sim.set_faults(&FaultSpec {
        seed: 11,
        http_500: 0.05,
        reset: 0.03,
        latency_ms: [0, 10],
        fail_items: BTreeMap::from([(
            "c2".to_string(),
            FailItem {
                // A server that echoes a parameter in its reason.
                message: format!("su: Authentication failure for password “{}”", s.su_pw),
                times: 1,
                stage: FailStage::Transfer,
            },
        )]),
        ..FaultSpec::default()
    });
    let args = [
        "apply",
        "plan.yaml",
        "--output",
        "json",
        "--request-timeout",
        "3s",
    ];
    let (first, cmdlines1) = run_watching(ferry(dir.path(), &env, &args));
    assert_eq!(first.status.code(), Some(3), "{}", text(&first));
    let ev = events(&first);
    let failed = ev
        .iter()
        .find(|e| e["event"] == "item_failed")
        .expect("item_failed");
    assert_eq!(failed["account"], "c2");
    assert_eq!(
        failed["message"],
        "su: Authentication failure for password “[REDACTED]”"
    );
    let (second, cmdlines2) = run_watching(ferry(dir.path(), &env, &args));
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let state = sim.server().state();
    assert_all_present(&state);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("TRACE"),
        "RUST_LOG=trace produced no trace lines"
    );

    let journal = dir.path().join(".ferry/plan.journal");
    let outcome = journal_records(&journal)
        .into_iter()
        .find(|r| r["rec"]["type"] == "item_outcome" && r["rec"]["account"] == "c2")
        .expect("c2's failure is journaled");
    assert_eq!(
        outcome["rec"]["message"],
        "su: Authentication failure for password “[REDACTED]”"
    );
    let status = run(ferry(
        dir.path(),
        &env,
        &["status", "plan.yaml", "--output", "json"],
    ));
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let report = run(ferry(
        dir.path(),
        &env,
        &["report", "plan.yaml", "--html", "report.html"],
    ));
    assert_eq!(report.status.code(), Some(0), "{}", text(&report));
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        html.contains("[REDACTED]"),
        "the echoed failure is in the report, scrubbed"
    );

    // What the simulator saw: only `api.version` in a query string, every
    // password only in a POST body, and (the test oracle itself) never a
    // password value in the inspection output.
    let requests = sim.server().requests();
    let list = requests.as_array().unwrap();
    assert!(list.len() > 50, "{}", list.len());
    let faults = list.iter().filter(|r| !r["fault"].is_null()).count();
    assert!(faults > 0, "no fault struck");
    let mut saw_password = 0;
    for r in list {
        assert_eq!(r["method"], "POST", "{r}");
        assert_eq!(r["query_keys"], serde_json::json!(["api.version"]), "{r}");
        for k in ["password", "root_password", "sshkey_passphrase"] {
            if let Some(v) = r["params"].get(k) {
                assert!(r["body_keys"].as_array().unwrap().iter().any(|b| b == k));
                assert_eq!(v, "[redacted]", "{r}");
                saw_password += 1;
            }
        }
    }
    assert!(
        saw_password >= 6,
        "passwords were sent {saw_password} times"
    );

    let mut a = Artifacts::default();
    a.add_output("check", &check);
    a.add_output("apply #1", &first);
    a.add_output("apply #2", &second);
    a.add_dir(".ferry", &dir.path().join(".ferry"));
    a.add_output("status --output json", &status);
    a.add_output("report", &report);
    a.add_file("report.html", &dir.path().join("report.html"));
    a.add("/__sim/requests", serde_json::to_vec(&requests).unwrap());
    add_cmdlines(&mut a, "apply #1", &cmdlines1);
    add_cmdlines(&mut a, "apply #2", &cmdlines2);
    a.assert_no_secret(&s);
    assert_eq!(mode_of(&journal), 0o600);
    assert_eq!(mode_of(&dir.path().join("report.html")), 0o600);
}

/// The journal writer scrubs a registered secret from the server's text
/// (in-process: `encode` is what `apply` writes with).
#[test]
fn journal_lines_never_hold_a_registered_secret() {
    use ferry::journal::record::{ItemResult, Record};
    let secret = ferry::secret::Secret::new("JOURNAL-SECRET-5d4c3b");
    let rec = Record::ItemOutcome {
        restore: None,
        session: "old1/s1".into(),
        account: Some("shop2".into()),
        package: None,
        result: ItemResult::Failed,
        message: Some(format!("bad password “{}”", secret.expose())),
        log: Vec::new(),
    };
    let line = ferry::journal::file::encode(7, "2026-11-30T00:00:00.000Z", &rec);
    let text = String::from_utf8(line).unwrap();
    assert!(!text.contains("JOURNAL-SECRET-5d4c3b"), "{text}");
    assert!(text.contains("bad password “[REDACTED]”"), "{text}");
    // Still a valid record (checksum over the scrubbed body).
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["rec"]["account"], "shop2");
}

// ---------------------------------------------------------------- TLS

/// A small plan (old1 only) for the TLS tests, `FERRY_TLS_TOKEN` and
/// `FERRY_TLS_PW` as its secrets.
fn tls_plan(url: &str, tls: &str) -> String {
    format!(
        "version: 1
target:
  url: {url}
  token: {{env: FERRY_TLS_TOKEN}}
{tls}sources:
  - name: old1
    host: old1.example.com
    ssh: {{user: root, password: {{env: FERRY_TLS_PW}}}}
    accounts: [a1, a2]
policy:
  poll_interval: 40ms
  retries: {{attempts: 3, initial_backoff: 5ms, max_backoff: 50ms}}
"
    )
}

fn tls_sim() -> (Sim, Vec<(&'static str, String)>) {
    let mut r = RemoteSpec::new("old1.example.com");
    r.ssh = Some(SshSpec {
        user: "root".into(),
        port: 22,
        password: Some("tls-test-pw".into()),
        sshkey_name: None,
        sshkey_passphrase: None,
        root_password: None,
    });
    r.accounts = vec![AccountSpec::new("a1"), AccountSpec::new("a2")];
    let sc = Scenario {
        tls: TlsMode::SelfSigned,
        tokens: vec![TokenSpec {
            user: "root".into(),
            token: "tls-test-token".into(),
        }],
        time_scale: 0.01,
        remotes: vec![r],
        ..Scenario::default()
    };
    let env = vec![
        ("FERRY_TLS_TOKEN", "tls-test-token".to_string()),
        ("FERRY_TLS_PW", "tls-test-pw".to_string()),
        ("NO_COLOR", "1".to_string()),
    ];
    (Sim::start(sc), env)
}

fn apply_in(dir: &Path, env: &[(&str, String)], plan: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
    let mut args = vec!["apply", "plan.yaml", "--request-timeout", "3s"];
    args.extend_from_slice(extra);
    run(ferry(dir, env, &args))
}

/// A self-signed target without `ca_file`: refused before any request,
/// exit 1, the message names the host and the fix; nothing transferred.
#[test]
fn apply_refuses_an_unverified_certificate() {
    let (sim, env) = tls_sim();
    let url = sim.url();
    let host = url.trim_start_matches("https://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = apply_in(dir.path(), &env, &tls_plan(&url, ""), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS handshake with"), "{err}");
    assert!(err.contains(&host), "names the host: {err}");
    assert!(err.contains("target.tls.ca_file"), "names the fix: {err}");
    assert_eq!(
        sim.server().requests().as_array().unwrap().len(),
        0,
        "no request may reach the server"
    );
    let state = sim.server().state();
    assert_eq!(state["accounts"].as_object().unwrap().len(), 0, "{state:#}");
}

/// With the sim's CA as `ca_file`: verified, transferred, no warning.
#[test]
fn apply_accepts_a_certificate_from_ca_file() {
    let (sim, env) = tls_sim();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), sim.server().ca_pem().unwrap()).unwrap();
    let out = apply_in(
        dir.path(),
        &env,
        &tls_plan(&sim.url(), "  tls: {ca_file: ca.pem}\n"),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("NOT verified"));
    let state = sim.server().state();
    for u in ["a1", "a2"] {
        assert_eq!(state["accounts"][u]["present"], true, "{state:#}");
    }
    let started = journal_records(&dir.path().join(".ferry/plan.journal"))
        .into_iter()
        .find(|r| r["rec"]["type"] == "run_started")
        .unwrap();
    assert_eq!(started["rec"]["tls_insecure"], false);
}

/// `insecure: true`: works, warns on stderr and as a `warning` event on
/// every run, and the journal records it.
#[test]
fn apply_with_insecure_works_warns_and_is_journaled() {
    let (sim, env) = tls_sim();
    let dir = tempfile::tempdir().unwrap();
    let plan = tls_plan(&sim.url(), "  tls: {insecure: true}\n");
    let out = apply_in(dir.path(), &env, &plan, &["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NOT verified"), "{err}");
    let warning = events(&out)
        .into_iter()
        .find(|e| e["event"] == "warning" && e["message"].as_str().unwrap().contains("insecure"))
        .expect("a warning event");
    assert!(warning["message"].as_str().unwrap().contains("ca_file"));
    let started = journal_records(&dir.path().join(".ferry/plan.journal"))
        .into_iter()
        .find(|r| r["rec"]["type"] == "run_started")
        .unwrap();
    assert_eq!(started["rec"]["tls_insecure"], true);

    // Every run warns: a second apply (nothing left to do) too, in text.
    let again = apply_in(dir.path(), &env, &plan, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("NOT verified"));
}

/// `http://` to a host that is not loopback: refused at validation (exit
/// 2, file:line:col), before any secret is resolved or anything sent.
#[test]
fn apply_refuses_plain_http_to_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let out = apply_in(
        dir.path(),
        &[],
        &tls_plan("http://whm.example.net:2086", ""),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plan.yaml:3:8"), "file:line:col: {err}");
    assert!(err.contains("https://"), "{err}");
    // The missing secrets were never looked at: validation came first.
    assert!(!err.contains("is not set"), "{err}");
}
