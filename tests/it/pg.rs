//! The journal in PostgreSQL (issue 13), against the real server on
//! 127.0.0.1:5432: a fresh database per test (dropped after), ferry as a
//! real process, every respawn from a new, empty working folder, and
//! whm-sim's own record as the oracle.
//!
//! Where no server is reachable these tests print why and pass, unless
//! `FERRY_REQUIRE_PG=1` (as `.ci/run` sets): then that is a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::kit::*;

const PG_HOST: &str = "127.0.0.1";
const PG_PORT: u16 = 5432;

/// A database of its own, dropped at the end of the test.
struct PgDb {
    name: String,
}

impl PgDb {
    /// A fresh database, or `None` (with the reason printed) where no
    /// server answers; a failure under `FERRY_REQUIRE_PG=1`.
    fn fresh(test: &str) -> Option<PgDb> {
        let probe = psql("postgres", "SELECT 1");
        if let Err(why) = probe {
            let msg = format!("{test}: skipped, no PostgreSQL at {PG_HOST}:{PG_PORT} ({why})");
            if std::env::var("FERRY_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("{msg}, and FERRY_REQUIRE_PG=1 requires it");
            }
            eprintln!("{msg}");
            return None;
        }
        let name = format!(
            "ferry_t_{}_{:08x}",
            std::process::id(),
            rand::rng().random::<u32>()
        );
        psql("postgres", &format!("CREATE DATABASE {name}")).expect("CREATE DATABASE");
        Some(PgDb { name })
    }

    fn url(&self) -> String {
        self.url_via(PG_PORT)
    }

    fn url_via(&self, port: u16) -> String {
        format!("postgres://root@{PG_HOST}:{port}/{}", self.name)
    }

    fn sql(&self, q: &str) -> String {
        psql(&self.name, q).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    /// The database, as `pg_dump` writes it.
    fn dump(&self) -> String {
        let out = Command::new("pg_dump")
            .args(["-h", PG_HOST, "-p", &PG_PORT.to_string(), "-d", &self.name])
            .output()
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(db: &str, q: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-h",
            PG_HOST,
            "-p",
            &PG_PORT.to_string(),
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            q,
        ])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `journal:` for a plan.
fn journal_yaml(url: &str, lease: &str) -> String {
    format!("journal:\n  postgres: {{url: \"{url}\"}}\n  lease: {lease}\n")
}

/// Writes the world's plan with its journal in `url`.
fn plan_in_db(w: &World, url: &str, lease: &str) {
    let yaml = w.fleet.plan_yaml(&w.url) + &journal_yaml(url, lease);
    std::fs::write(&w.plan, yaml).unwrap();
}

/// A new, empty working folder holding only a copy of the plan (what a
/// fresh CI runner has after checking out the repository).
fn fresh_folder(w: &World) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(&w.plan, d.path().join("fleet.yaml")).unwrap();
    d
}

/// `ferry ARGS` in `dir`, with the plan's secrets set.
fn ferry_in(w: &World, dir: &Path, args: &[&str]) -> Command {
    let mut c = w.ferry(args);
    c.current_dir(dir);
    c
}

fn apply_in(w: &World, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["apply", "fleet.yaml", "--request-timeout", "2s"];
    args.extend_from_slice(extra);
    run_bounded(ferry_in(w, dir, &args), Duration::from_secs(120))
}

fn spawn_in(w: &World, dir: &Path, extra: &[&str]) -> Child {
    let mut args = vec!["apply", "fleet.yaml", "--request-timeout", "2s"];
    args.extend_from_slice(extra);
    ferry_in(w, dir, &args)
        .stdout(std::fs::File::create(dir.join("apply.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("apply.err")).unwrap())
        .spawn()
        .expect("ferry starts")
}

fn wait_exit(mut child: Child, dir: &Path, limit: Duration) -> (Option<i32>, String) {
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            kill9(&mut child);
            panic!("ferry did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::fs::read_to_string(dir.join("apply.err")).unwrap_or_default();
    (status.code(), err)
}

fn status_in(w: &World, dir: &Path) -> serde_json::Value {
    let out = run_bounded(
        ferry_in(w, dir, &["status", "fleet.yaml", "--output", "json"]),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "status: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("status prints JSON")
}

fn slow_fleet(n_sources: usize, per_source: usize, scale: u64) -> Fleet {
    let mut fleet = Fleet::standard(n_sources, per_source);
    fleet.concurrency = "target_sessions: 2\n  source_sessions: 1\n  batch_size: 3".into();
    for a in fleet.sources.iter_mut().flat_map(|s| s.accounts.iter_mut()) {
        a.size *= scale;
    }
    fleet
}

/// Records of `kind` in `run` (0 before ferry created the tables).
fn records_of(db: &PgDb, run: &str, kind: &str) -> usize {
    psql(
        &db.name,
        &format!(
            "SELECT count(*) FROM ferry_records WHERE run = '{run}' AND rec::jsonb->>'type' = '{kind}'"
        ),
    )
    .map_or(0, |n| n.parse().unwrap())
}

/// A run from start to end with the journal in the database; `status` from
/// another folder agrees; no second apply while the lease is held.
#[test]
fn pg_apply_runs_exactly_once_and_a_second_apply_is_refused_naming_the_holder() {
    let Some(db) = PgDb::fresh("pg_apply") else {
        return;
    };
    let fleet = slow_fleet(2, 5, 6);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    plan_in_db(&w, &db.url(), "5s");
    let a = fresh_folder(&w);
    let child = spawn_in(&w, a.path(), &[]);
    // Wait until the first apply holds the lease and has begun.
    let t0 = Instant::now();
    while psql(
        &db.name,
        "SELECT count(*) FROM ferry_leases WHERE holder_pid IS NOT NULL",
    )
    .map_or(true, |n| n != "1")
        && t0.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let b = fresh_folder(&w);
    let out = apply_in(&w, b.path(), &[]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains(&format!("pid {}", child.id())) && msg.contains("token 1"),
        "{msg}"
    );
    let (code, err) = wait_exit(child, a.path(), Duration::from_secs(120));
    assert_eq!(code, Some(0), "{err}");
    let users = fleet.target_users();
    w.assert_strictly_once(&users);
    // No journal file anywhere: the run lives in the database.
    assert!(!a.path().join(".ferry/fleet.journal").exists());
    assert!(!w.journal().exists());
    let c = fresh_folder(&w);
    let s = status_in(&w, c.path());
    assert_eq!(s["status"], "succeeded", "{s:#}");
    for u in &users {
        assert_eq!(s["accounts"][u]["state"], "transferred", "{u}: {s:#}");
    }
    // The lease was released at exit, and the records are a gapless history.
    assert_eq!(
        db.sql("SELECT count(*) FROM ferry_leases WHERE holder_pid IS NOT NULL"),
        "0"
    );
    assert_eq!(
        db.sql("SELECT max(seq) = count(*) FROM ferry_records WHERE run = 'fleet'"),
        "t"
    );
    // The report and the plan's progress, from the database.
    let out = run_bounded(
        ferry_in(&w, c.path(), &["report", "fleet.yaml", "--html", "r.html"]),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "report: {}", text(&out));
    let page = std::fs::read_to_string(c.path().join("r.html")).unwrap();
    assert!(
        page.contains(users[0].as_str()),
        "the report names the accounts"
    );
    let out = run_bounded(
        ferry_in(
            &w,
            c.path(),
            &["plan", "fleet.yaml", "--journal", &db.url()],
        ),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "plan: {}", text(&out));
    assert!(!text(&out).contains("without progress"), "{}", text(&out));
    // A later apply takes the next token and has nothing to do.
    let out = apply_in(&w, c.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(db.sql("SELECT token FROM ferry_leases"), "2");
    w.assert_strictly_once(&users);
}

/// SIGKILL at seeded moments, each respawn from a new, empty folder,
/// waiting out the dead holder's lease with `--lock-timeout`.
#[test]
fn pg_sigkill_at_seeded_moments_each_respawn_in_a_fresh_folder() {
    let Some(db) = PgDb::fresh("pg_sigkill") else {
        return;
    };
    let fleet = slow_fleet(2, 6, 8);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    plan_in_db(&w, &db.url(), "2s");
    let mut rng = ChaCha8Rng::seed_from_u64(20261202);
    let kinds = [
        "session_create_intent",
        "enqueue_intent",
        "start_intent",
        "session_state",
        "item_outcome",
        "session_finished",
    ];
    let mut kills = 0;
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(170),
            "no success after {kills} kills"
        );
        let dir = fresh_folder(&w);
        let mut child = spawn_in(&w, dir.path(), &["--lock-timeout", "30s"]);
        let aim = (kills < 6).then(|| {
            let kind = kinds[rng.random_range(0..kinds.len())];
            let fallback = Duration::from_millis(rng.random_range(2500..4000));
            (kind, records_of(&db, "fleet", kind) + 1, fallback)
        });
        let started = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                let err = std::fs::read_to_string(dir.path().join("apply.err")).unwrap();
                assert_eq!(st.code(), Some(0), "after {kills} kills: {err}");
                break;
            }
            if let Some((kind, at, fallback)) = aim
                && (records_of(&db, "fleet", kind) >= at || started.elapsed() > fallback)
            {
                kill9(&mut child);
                kills += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if aim.is_none()
            || child
                .try_wait()
                .unwrap()
                .is_some_and(|s| s.code() == Some(0))
        {
            break;
        }
    }
    assert!(kills >= 4, "only {kills} kills");
    let users = fleet.target_users();
    w.assert_strictly_once(&users);
    let s = status_in(&w, fresh_folder(&w).path());
    assert_eq!(s["status"], "succeeded", "{s:#}");
}

/// A holder frozen (SIGSTOP) past its lease is taken over; thawed, it
/// finds its lease gone and exits 6 without another request to WHM.
#[test]
fn pg_a_frozen_holder_is_fenced_after_takeover() {
    let Some(db) = PgDb::fresh("pg_sigstop") else {
        return;
    };
    let fleet = slow_fleet(1, 6, 8);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    plan_in_db(&w, &db.url(), "2s");
    let a = fresh_folder(&w);
    let child = spawn_in(&w, a.path(), &[]);
    let t0 = Instant::now();
    while records_of(&db, "fleet", "session_started") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no session started");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, libc::SIGSTOP);
    let b = fresh_folder(&w);
    let out = apply_in(&w, b.path(), &["--lock-timeout", "30s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = fleet.target_users();
    w.assert_strictly_once(&users);
    let requests = w.sim().requests().as_array().map_or(0, |a| a.len());
    let records = db.sql("SELECT count(*) FROM ferry_records");
    signal(&child, libc::SIGCONT);
    let (code, err) = wait_exit(child, a.path(), Duration::from_secs(60));
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("lost the run `fleet`'s lease"), "{err}");
    assert_eq!(
        w.sim().requests().as_array().map_or(0, |a| a.len()),
        requests,
        "the thawed holder sent a request"
    );
    assert_eq!(db.sql("SELECT count(*) FROM ferry_records"), records);
    w.assert_strictly_once(&users);
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill({sig})");
}

/// `ferry pause` from a folder that has nothing but the plan reaches the
/// apply running elsewhere, through the database.
#[test]
fn pg_pause_from_another_folder() {
    let Some(db) = PgDb::fresh("pg_pause") else {
        return;
    };
    let fleet = slow_fleet(1, 6, 20);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    plan_in_db(&w, &db.url(), "5s");
    let a = fresh_folder(&w);
    let child = spawn_in(&w, a.path(), &[]);
    let t0 = Instant::now();
    while records_of(&db, "fleet", "session_started") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no session started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let b = fresh_folder(&w);
    let out = run_bounded(
        ferry_in(&w, b.path(), &["pause", "fleet.yaml"]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out));
    let (code, err) = wait_exit(child, a.path(), Duration::from_secs(60));
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(records_of(&db, "fleet", "pause_requested"), 1);
    assert_eq!(
        db.sql("SELECT count(*) FROM ferry_controls WHERE consumed_at IS NULL"),
        "0"
    );
    // Resumed from yet another folder.
    let out = apply_in(&w, fresh_folder(&w).path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.assert_exactly_once(&fleet.target_users());
}

/// force-unlock frees a dead holder's lease with its token, and refuses
/// any other token.
#[test]
fn pg_force_unlock_needs_the_current_token() {
    let Some(db) = PgDb::fresh("pg_unlock") else {
        return;
    };
    let fleet = slow_fleet(1, 4, 8);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    plan_in_db(&w, &db.url(), "1h");
    let a = fresh_folder(&w);
    let mut child = spawn_in(&w, a.path(), &[]);
    let t0 = Instant::now();
    while records_of(&db, "fleet", "session_created") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no session created");
        std::thread::sleep(Duration::from_millis(10));
    }
    kill9(&mut child);
    let b = fresh_folder(&w);
    let out = apply_in(&w, b.path(), &[]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(text(&out).contains("force-unlock PLAN 1"), "{}", text(&out));
    let wrong = run_bounded(
        ferry_in(&w, b.path(), &["force-unlock", "fleet.yaml", "7"]),
        Duration::from_secs(30),
    );
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("not the current lease"),
        "{}",
        text(&wrong)
    );
    assert_eq!(
        db.sql("SELECT holder_pid FROM ferry_leases"),
        child.id().to_string()
    );
    let right = run_bounded(
        ferry_in(&w, b.path(), &["force-unlock", "fleet.yaml", "1"]),
        Duration::from_secs(30),
    );
    assert_eq!(right.status.code(), Some(0), "{}", text(&right));
    let out = apply_in(&w, b.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(db.sql("SELECT token FROM ferry_leases"), "2");
    w.assert_strictly_once(&fleet.target_users());
}

/// Two plans, one database: two runs side by side, neither sees the
/// other's records or lease.
#[test]
fn pg_two_plans_in_one_database() {
    let Some(db) = PgDb::fresh("pg_two") else {
        return;
    };
    let fleet = slow_fleet(1, 4, 2);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    plan_in_db(&w, &db.url(), "5s");
    let dir = fresh_folder(&w);
    // The second plan: the same fleet under another name, on its own sim.
    let mut other = fleet.clone();
    for a in other.sources.iter_mut().flat_map(|s| s.accounts.iter_mut()) {
        a.user = format!("z{}", a.user);
        a.localuser = a.localuser.as_ref().map(|l| format!("z{l}"));
        if let Some(o) = &a.owner {
            a.owner = Some(format!("z{o}"));
        }
    }
    let w2 = World::start(other.clone(), other.scenario(0.05));
    let yaml =
        format!("name: second\n{}", w2.fleet.plan_yaml(&w2.url)) + &journal_yaml(&db.url(), "5s");
    std::fs::write(dir.path().join("second.yaml"), yaml).unwrap();
    let first = spawn_in(&w, dir.path(), &[]);
    let out = run_bounded(
        ferry_in(&w2, dir.path(), &["apply", "second.yaml"]),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (code, err) = wait_exit(first, dir.path(), Duration::from_secs(120));
    assert_eq!(code, Some(0), "{err}");
    w.assert_strictly_once(&fleet.target_users());
    w2.assert_strictly_once(&other.target_users());
    assert_eq!(
        db.sql("SELECT string_agg(run, ',' ORDER BY run) FROM ferry_runs"),
        "fleet,second"
    );
    let s = status_in(&w, dir.path());
    assert_eq!(s["counts"]["transferred"], fleet.target_users().len());
    for u in other.target_users() {
        assert!(
            s["accounts"].get(&u).is_none(),
            "{u} in the first plan's status"
        );
    }
}

/// The WHM token, the SSH password and the database password appear in no
/// row of the database.
#[test]
fn pg_no_secret_in_any_row() {
    let Some(db) = PgDb::fresh("pg_secrets") else {
        return;
    };
    let fleet = slow_fleet(1, 3, 1);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    let yaml = w.fleet.plan_yaml(&w.url)
        + &format!(
            "journal:\n  postgres:\n    url: \"{}\"\n    password: {{env: FERRY_TEST_PG_PW}}\n",
            db.url()
        );
    std::fs::write(&w.plan, yaml).unwrap();
    let dir = fresh_folder(&w);
    let mut cmd = ferry_in(&w, dir.path(), &["apply", "fleet.yaml"]);
    cmd.env("FERRY_TEST_PG_PW", "pg-pass-0b5cure");
    let out = run_bounded(cmd, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dump = db.dump();
    assert!(dump.contains("session_created"), "the dump holds the run");
    for secret in [TOKEN, SSH_PW, "pg-pass-0b5cure"] {
        assert!(!dump.contains(secret), "{secret} in the database");
    }
    // A record missing from the middle is refused, naming its seq.
    db.sql("DELETE FROM ferry_records WHERE seq = 3");
    let mut cmd = ferry_in(&w, dir.path(), &["status", "fleet.yaml"]);
    cmd.env("FERRY_TEST_PG_PW", "pg-pass-0b5cure");
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("damaged at seq 3"), "{}", text(&out));
}

/// A password in `--journal`'s URL is refused (exit 2) before anything is
/// sent, and not echoed.
#[test]
fn pg_a_password_in_the_journal_url_is_refused() {
    let fleet = slow_fleet(1, 2, 1);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    let out = w.apply(&["--journal", "postgres://root:hunter2-x@127.0.0.1/none"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("contains a password"), "{}", text(&out));
    assert!(!text(&out).contains("hunter2-x"), "{}", text(&out));
    assert_eq!(w.sim().requests().as_array().map_or(0, |a| a.len()), 0);
}

/// A TCP proxy to PostgreSQL whose connections the test can cut.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let conns: Arc<std::sync::Mutex<Vec<TcpStream>>> = Arc::default();
        let (d, c) = (down.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect((PG_HOST, PG_PORT)) else {
                    continue;
                };
                {
                    let mut g = c.lock().unwrap();
                    g.push(client.try_clone().unwrap());
                    g.push(server.try_clone().unwrap());
                }
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy { port, down, conns }
    }

    /// Closes every connection and refuses new ones.
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

/// The database gone for seconds mid-run: the writes wait and retry, no
/// request leaves without its intent, the run ends exactly once. Gone for
/// longer than the retries: exit 1, and the next apply resumes.
#[test]
fn pg_database_cut_mid_run() {
    let Some(db) = PgDb::fresh("pg_outage") else {
        return;
    };
    let proxy = Proxy::start();
    let fleet = slow_fleet(2, 4, 8);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    plan_in_db(&w, &db.url_via(proxy.port), "30s");
    let a = fresh_folder(&w);
    let child = spawn_in(&w, a.path(), &[]);
    let t0 = Instant::now();
    while records_of(&db, "fleet", "session_started") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no session started");
        std::thread::sleep(Duration::from_millis(10));
    }
    proxy.cut();
    std::thread::sleep(Duration::from_secs(3));
    proxy.restore();
    let (code, err) = wait_exit(child, a.path(), Duration::from_secs(120));
    assert_eq!(code, Some(0), "{err}");
    w.assert_strictly_once(&fleet.target_users());
    // Every session WHM knows was announced by an intent in the database.
    let intents: usize = records_of(&db, "fleet", "session_create_intent");
    let sessions = w.state()["sessions"].as_array().map_or(0, |m| m.len());
    assert!(
        sessions <= intents,
        "{sessions} sessions, {intents} intents"
    );

    // Now for longer than the retries last (about 15 s): exit 1.
    let fleet2 = slow_fleet(1, 4, 8);
    let w2 = World::start(fleet2.clone(), fleet2.scenario(0.05));
    let yaml = format!("name: long\n{}", w2.fleet.plan_yaml(&w2.url))
        + &journal_yaml(&db.url_via(proxy.port), "30s");
    std::fs::write(&w2.plan, yaml).unwrap();
    let b = fresh_folder(&w2);
    let child = spawn_in(&w2, b.path(), &[]);
    let t0 = Instant::now();
    while records_of(&db, "long", "session_started") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no session started");
        std::thread::sleep(Duration::from_millis(10));
    }
    proxy.cut();
    let (code, err) = wait_exit(child, b.path(), Duration::from_secs(90));
    proxy.restore();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("did not answer"), "{err}");
    let out = apply_in(&w2, fresh_folder(&w2).path(), &["--lock-timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w2.assert_strictly_once(&fleet2.target_users());
}

/// `ferry journal copy` moves a run from a file into the database and back,
/// never over an existing run; the copy in the database is resumed as the
/// run itself.
#[test]
fn pg_journal_copy_both_ways() {
    let Some(db) = PgDb::fresh("pg_copy") else {
        return;
    };
    let fleet = slow_fleet(1, 3, 1);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let file = w.journal().display().to_string();
    let n = journal_records(&w.journal()).len();
    let copy = |from: &str, to: &str| {
        run_bounded(
            w.ferry(&["journal", "copy", from, to]),
            Duration::from_secs(30),
        )
    };
    let out = copy(&file, &db.url());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        db.sql("SELECT count(*) FROM ferry_records WHERE run = 'fleet'"),
        n.to_string()
    );
    let again = copy(&file, &db.url());
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("already exists"), "{}", text(&again));
    // The copy is the run: status and apply read it from any folder.
    let dir = fresh_folder(&w);
    let out = run_bounded(
        ferry_in(
            &w,
            dir.path(),
            &[
                "status",
                "fleet.yaml",
                "--journal",
                &db.url(),
                "--output",
                "json",
            ],
        ),
        Duration::from_secs(30),
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(s["status"], "succeeded", "{s:#}");
    let out = apply_in(&w, dir.path(), &["--journal", &db.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.assert_strictly_once(&fleet.target_users());
    // And back out, times kept.
    let back = dir.path().join("back.journal");
    let out = copy(&format!("{}#fleet", db.url()), &back.display().to_string());
    assert!(out.status.success(), "{}", text(&out));
    let original = journal_records(&w.journal());
    let copied = journal_records(&back);
    assert!(
        copied.len() > original.len(),
        "the resumed apply's records too"
    );
    for (a, b) in original.iter().zip(&copied) {
        assert_eq!(a["ts"], b["ts"]);
        assert_eq!(a["rec"], b["rec"]);
    }
    let over = copy(&format!("{}#fleet", db.url()), &back.display().to_string());
    assert_eq!(over.status.code(), Some(2), "{}", text(&over));
}

/// The plan's `journal:` is checked like every other key: file, line and
/// column, what is wrong and how to fix it, exit 2, the password masked.
#[test]
fn pg_a_bad_journal_key_is_a_plan_error_with_its_position() {
    let fleet = slow_fleet(1, 2, 1);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    let base = w.fleet.plan_yaml(&w.url);
    let line = base.lines().count() + 3;
    std::fs::write(
        &w.plan,
        base + "journal:\n  postgres:\n    url: postgres://ferry:sekrit-pw@db.example.net/ferry\n  lease: 10ms\n",
    )
    .unwrap();
    let out = run_bounded(
        w.ferry(&["validate", "fleet.yaml"]),
        Duration::from_secs(30),
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("contains a password"), "{shown}");
    assert!(shown.contains(&format!("fleet.yaml:{line}:")), "{shown}");
    assert!(shown.contains("out of range"), "{shown}");
    assert!(!shown.contains("sekrit-pw"), "{shown}");
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(w.sim().requests().as_array().map_or(0, |a| a.len()), 0);
}

/// `--lock-timeout` waits for a file journal's lock too, then resumes
/// (nothing is left to do) instead of exiting 6.
#[test]
fn lock_timeout_waits_for_a_file_journal_too() {
    let fleet = slow_fleet(1, 6, 20);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    let first = w.spawn_apply(&[], "first");
    let t0 = Instant::now();
    while !w.journal().exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no journal");
        std::thread::sleep(Duration::from_millis(10));
    }
    let refused = w.apply(&[]);
    assert_eq!(refused.status.code(), Some(6), "{}", text(&refused));
    let waited = w.apply(&["--lock-timeout", "60s"]);
    assert_eq!(waited.status.code(), Some(0), "{}", text(&waited));
    let out = wait_child(first, &w, "first");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.assert_strictly_once(&fleet.target_users());
}

/// `ferry verify` reads the run from the database too, from any folder,
/// and sends one `accountsummary` per transferred account.
#[test]
fn pg_verify_reads_the_run_from_the_database() {
    let Some(db) = PgDb::fresh("pg_verify") else {
        return;
    };
    let fleet = Fleet::standard(1, 6);
    let w = World::start(fleet.clone(), fleet.scenario(0.002));
    plan_in_db(&w, &db.url(), "5s");
    let a = fresh_folder(&w);
    let out = apply_in(&w, a.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = w.sim().requests().as_array().unwrap().len();
    let b = fresh_folder(&w);
    let plan = w.plan.to_str().unwrap().to_string();
    let out = ferry_in(&w, b.path(), &["verify", &plan]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for u in fleet.target_users() {
        assert!(stdout.contains(&format!("✓ {u} ")), "{u}: {stdout}");
    }
    let after = w.sim().requests().as_array().unwrap().len();
    assert_eq!(after - before, fleet.target_users().len());
}

/// Eight ferry processes' first connections to one empty database at the
/// same instant: the migrations run once (under their advisory lock), every
/// connection succeeds, and the schema ends at one row per migration. Then
/// a schema newer than this ferry is refused with the upgrade advice.
#[test]
fn pg_concurrent_first_connections_migrate_once() {
    use ferry::journal::pg::{DEFAULT_LEASE, Db, Location};
    let Some(db) = PgDb::fresh("pg_concurrent_first_connections_migrate_once") else {
        return;
    };
    let loc = Arc::new(Location::new(&db.url(), None, None, DEFAULT_LEASE).expect("a good URL"));
    let start = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (loc, start) = (loc.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                Db::connect(&loc).map(|_| ()).map_err(|e| e.to_string())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .expect("no panic")
            .expect("every first connection migrates or waits");
    }
    let rows = db.sql("SELECT count(*) || ' ' || max(version) FROM ferry_schema");
    let mut it = rows.split_whitespace();
    let (count, max) = (it.next().unwrap(), it.next().unwrap());
    assert_eq!(count, max, "one row per migration, none twice: {rows}");
    assert!(max.parse::<u32>().unwrap() >= 1);
    for table in ["ferry_leases", "ferry_records"] {
        assert_eq!(
            db.sql(&format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = '{table}'"
            ))
            .trim(),
            "1",
            "{table} exists once"
        );
    }

    db.sql("INSERT INTO ferry_schema (version) VALUES (9999)");
    let e = Db::connect(&loc)
        .map(|_| ())
        .expect_err("a newer schema is refused");
    let msg = e.to_string();
    assert!(
        msg.contains("9999") && msg.contains("upgrade ferry"),
        "the refusal names the version and the fix: {msg}"
    );
}
