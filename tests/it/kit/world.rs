//! Helpers for the executor's end-to-end tests: a whm-sim hosted by the test
//! process on its own tokio runtime (so it survives every kill of ferry), a
//! plan and a matching scenario generated from one fleet description, and
//! `ferry` run as a real process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry::sim::{AccountSpec, RemoteSpec, Scenario, SimServer, Size, SshSpec};
use serde_json::Value;

pub use super::{SSH_PW, TOKEN};

/// One account of a fleet.
#[derive(Debug, Clone)]
pub struct Acct {
    pub user: String,
    pub localuser: Option<String>,
    pub package: Option<String>,
    pub owner: Option<String>,
    pub size: u64,
}

impl Acct {
    pub fn new(user: &str) -> Acct {
        Acct {
            user: user.into(),
            localuser: None,
            package: None,
            owner: None,
            size: 50_000_000,
        }
    }
    pub fn target(&self) -> &str {
        self.localuser.as_deref().unwrap_or(&self.user)
    }
}

/// One source of a fleet.
#[derive(Debug, Clone)]
pub struct Src {
    pub name: String,
    pub host: String,
    pub packages: Vec<String>,
    pub after: Vec<String>,
    pub accounts: Vec<Acct>,
}

/// Sources and accounts, rendered both as a plan and as a scenario.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub sources: Vec<Src>,
    pub policy: String,
    pub concurrency: String,
    pub session: String,
}

impl Fleet {
    /// Issue 4's shape: `n_sources` sources with `per_source` accounts,
    /// packages `gold`/`silver` on each, a reseller `resell1` on old1 owning
    /// three of its accounts, one renamed account (`shop` → `shop2`), and
    /// the last source in an `after` wave behind the first.
    pub fn standard(n_sources: usize, per_source: usize) -> Fleet {
        let mut sources = Vec::new();
        for s in 1..=n_sources {
            let name = format!("old{s}");
            let mut accounts = Vec::new();
            for i in 0..per_source {
                let mut a = Acct::new(&format!("s{s}u{i:02}"));
                a.package = Some(if i % 2 == 0 { "gold" } else { "silver" }.into());
                a.size = 20_000_000 + (i as u64 % 7) * 10_000_000;
                accounts.push(a);
            }
            if s == 1 && per_source >= 5 {
                accounts[0].user = "resell1".into();
                for a in accounts.iter_mut().skip(1).take(3) {
                    a.owner = Some("resell1".into());
                }
                accounts[4].user = "shop".into();
                accounts[4].localuser = Some("shop2".into());
            }
            sources.push(Src {
                host: format!("{name}.example.com"),
                after: if s == n_sources && n_sources > 1 {
                    vec!["old1".into()]
                } else {
                    vec![]
                },
                name,
                packages: vec!["gold".into(), "silver".into()],
                accounts,
            });
        }
        Fleet {
            sources,
            policy: "on_error: pause\n  poll_interval: 40ms\n  stall_timeout: 20s\n  \
                     retries: {attempts: 8, initial_backoff: 5ms, max_backoff: 100ms}"
                .into(),
            concurrency: "target_sessions: 3\n  source_sessions: 1\n  batch_size: 10".into(),
            session: "{transfer_threads: 2, restore_threads: 2}".into(),
        }
    }

    pub fn target_users(&self) -> Vec<String> {
        self.sources
            .iter()
            .flat_map(|s| s.accounts.iter().map(|a| a.target().to_string()))
            .collect()
    }

    pub fn account(&self, target: &str) -> &Acct {
        self.sources
            .iter()
            .flat_map(|s| &s.accounts)
            .find(|a| a.target() == target)
            .expect("known account")
    }

    /// The scenario: every remote holds its accounts and packages and
    /// accepts root with [`SSH_PW`].
    pub fn scenario(&self, time_scale: f64) -> Scenario {
        let remotes = self
            .sources
            .iter()
            .map(|s| {
                let mut r = RemoteSpec::new(s.host.clone());
                r.ssh = Some(SshSpec {
                    user: "root".into(),
                    port: 22,
                    password: Some(SSH_PW.into()),
                    sshkey_name: None,
                    sshkey_passphrase: None,
                    root_password: None,
                });
                r.packages = s.packages.clone();
                r.accounts = s
                    .accounts
                    .iter()
                    .map(|a| {
                        let mut spec = AccountSpec::new(a.user.clone());
                        spec.size = Size(a.size);
                        spec.package = a.package.clone();
                        spec.owner = a.owner.clone().unwrap_or_else(|| "root".into());
                        spec
                    })
                    .collect();
                r
            })
            .collect();
        let mut sc = Scenario {
            time_scale,
            remotes,
            ..Scenario::default()
        };
        sc.target.max_restores = 4;
        sc
    }

    /// The plan, pointing at `url`.
    pub fn plan_yaml(&self, url: &str) -> String {
        let mut y = format!(
            "version: 1\ntarget:\n  url: {url}\n  token: {{env: FERRY_TEST_TOKEN}}\n\
             defaults:\n  session: {}\nsources:\n",
            self.session
        );
        for s in &self.sources {
            y += &format!(
                "  - name: {}\n    host: {}\n    ssh: {{user: root, password: {{env: FERRY_TEST_SSH}}}}\n",
                s.name, s.host
            );
            if !s.after.is_empty() {
                y += &format!("    after: [{}]\n", s.after.join(", "));
            }
            y += &format!("    packages: [{}]\n    accounts:\n", s.packages.join(", "));
            for a in &s.accounts {
                let mut fields = vec![format!("user: {}", a.user)];
                if let Some(l) = &a.localuser {
                    fields.push(format!("localuser: {l}"));
                }
                if let Some(p) = &a.package {
                    fields.push(format!("package: {p}"));
                }
                if let Some(o) = &a.owner {
                    fields.push(format!("owner: {o}"));
                }
                fields.push(format!("size: {}", a.size));
                y += &format!("      - {{{}}}\n", fields.join(", "));
            }
        }
        y += &format!(
            "policy:\n  {}\nconcurrency:\n  {}\n",
            self.policy, self.concurrency
        );
        y
    }
}

/// The scenario's account `user` on whichever remote holds it.
pub fn remote_account<'a>(sc: &'a mut Scenario, user: &str) -> &'a mut AccountSpec {
    sc.remotes
        .iter_mut()
        .flat_map(|r| r.accounts.iter_mut())
        .find(|a| a.user == user)
        .unwrap_or_else(|| panic!("no account {user} in the scenario"))
}

/// A simulator on its own runtime, a temp dir with the plan, and ferry.
pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub sim: Option<SimServer>,
    pub dir: tempfile::TempDir,
    pub plan: PathBuf,
    pub fleet: Fleet,
    pub url: String,
}

impl World {
    pub fn start(fleet: Fleet, scenario: Scenario) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = rt
            .block_on(SimServer::start(scenario))
            .expect("whm-sim starts");
        let url = sim.base_url().to_string();
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("fleet.yaml");
        std::fs::write(&plan, fleet.plan_yaml(&url)).unwrap();
        World {
            rt,
            sim: Some(sim),
            dir,
            plan,
            fleet,
            url,
        }
    }

    pub fn sim(&self) -> &SimServer {
        self.sim.as_ref().expect("running")
    }

    /// Rewrites the plan (after changing the fleet).
    pub fn write_plan(&mut self, fleet: Fleet) {
        std::fs::write(&self.plan, fleet.plan_yaml(&self.url)).unwrap();
        self.fleet = fleet;
    }

    pub fn journal(&self) -> PathBuf {
        self.dir.path().join(".ferry/fleet.journal")
    }

    /// `ferry ARGS` in the world's directory, with the plan's secrets set.
    pub fn ferry(&self, args: &[&str]) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("ferry"));
        c.current_dir(self.dir.path())
            .args(args)
            .env("FERRY_TEST_TOKEN", TOKEN)
            .env("FERRY_TEST_SSH", SSH_PW)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    /// `ferry apply fleet.yaml ARGS` to the end.
    pub fn apply(&self, extra: &[&str]) -> Output {
        run_bounded(self.ferry(&apply_args(extra)), Duration::from_secs(120))
    }

    /// Starts `ferry apply` in the background (stdout and stderr to files).
    pub fn spawn_apply(&self, extra: &[&str], tag: &str) -> Child {
        let args = apply_args(extra);
        let out = std::fs::File::create(self.dir.path().join(format!("{tag}.out"))).unwrap();
        let err = std::fs::File::create(self.dir.path().join(format!("{tag}.err"))).unwrap();
        self.ferry(&args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("ferry starts")
    }

    pub fn state(&self) -> Value {
        self.sim().state()
    }

    pub fn status(&self) -> Value {
        let out = self
            .ferry(&["status", "fleet.yaml", "--output", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "status: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("status prints JSON")
    }

    /// Journal records of one type, as JSON.
    pub fn records(&self, kind: &str) -> Vec<Value> {
        journal_records(&self.journal())
            .into_iter()
            .filter(|r| r["rec"]["type"] == kind)
            .collect()
    }

    /// Waits until `cond(state)` or panics after `timeout`.
    pub fn wait_for(&self, timeout: Duration, what: &str, cond: impl Fn(&Value) -> bool) {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if cond(&self.state()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}: {:#}", self.state());
    }

    /// Every account of `users` restored exactly once, present, with its
    /// package and owner; nothing else restored.
    pub fn assert_exactly_once(&self, users: &[String]) {
        let st = self.state();
        let accounts = st["accounts"].as_object().expect("accounts");
        for u in users {
            let a = &accounts
                .get(u)
                .unwrap_or_else(|| panic!("{u} missing from the target: {st:#}"));
            // A failed restore (an injected failure, an abort) may precede
            // the one that completed; never two that began unprompted.
            let started = a["restores_started"].as_u64().unwrap();
            let failed = a["restores_failed"].as_u64().unwrap_or(0);
            assert_eq!(started - failed, 1, "{u} restores_started: {a}");
            assert_eq!(a["restores_completed"], 1, "{u} restores_completed: {a}");
            assert_eq!(a["present"], true, "{u} not present: {a}");
            let spec = self.fleet.account(u);
            if let Some(p) = &spec.package {
                assert_eq!(a["package"], p.as_str(), "{u} package: {a}");
            }
            let owner = spec.owner.as_deref().unwrap_or("root");
            assert_eq!(a["owner"], owner, "{u} owner: {a}");
        }
    }

    /// Every account of `users` restored exactly once and never failed:
    /// `restores_started == restores_completed == 1`.
    pub fn assert_strictly_once(&self, users: &[String]) {
        self.assert_exactly_once(users);
        let st = self.state();
        for u in users {
            assert_eq!(
                st["accounts"][u]["restores_started"], 1,
                "{u}: {}",
                st["accounts"][u]
            );
        }
    }

    /// `ferry status` agrees: succeeded, every account transferred.
    pub fn assert_status_succeeded(&self, users: &[String]) {
        let s = self.status();
        assert_eq!(s["status"], "succeeded", "{s:#}");
        for u in users {
            assert_eq!(s["accounts"][u]["state"], "transferred", "{u}: {s:#}");
        }
        assert_eq!(s["counts"]["transferred"], users.len());
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.take() {
            self.rt.block_on(sim.shutdown());
        }
    }
}

/// `apply fleet.yaml EXTRA`, with a 2 s request timeout unless given.
fn apply_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["apply", "fleet.yaml"];
    if !extra.contains(&"--request-timeout") {
        args.extend(["--request-timeout", "2s"]);
    }
    args.extend_from_slice(extra);
    args
}

/// The journal's lines as JSON (a torn last line is skipped).
pub fn journal_records(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return vec![];
    };
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for a child started by [`World::spawn_apply`] (at most 2 min).
pub fn wait_child(mut child: Child, w: &World, tag: &str) -> Output {
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            kill9(&mut child);
            panic!("ferry ({tag}) did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |ext: &str| std::fs::read(w.dir.path().join(format!("{tag}.{ext}"))).unwrap();
    Output {
        status,
        stdout: read("out"),
        stderr: read("err"),
    }
}

/// Runs a command to its end, killing it (and failing the test) after
/// `limit`: a hung ferry must not hang the test suite.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .expect("ferry starts");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            kill9(&mut child);
            panic!(
                "ferry did not finish within {limit:?}\n--- stderr\n{}",
                std::fs::read_to_string(&e).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    }
}

/// stdout + stderr of a finished process, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `--output json` events of a finished apply.
pub fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Counts of each value of `key` in a list of JSON objects.
pub fn tally(items: &[Value], key: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i[key].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    m
}

/// Sends SIGKILL to a child and reaps it.
pub fn kill9(child: &mut Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
}
