//! `ferry check` as a user runs it: the real binary, a plan file whose
//! target is an in-process whm-sim, secrets in environment variables set
//! only for the child process.

use std::time::Duration;

use assert_cmd::Command;
use ferry::sim::{Scenario, SimServer, TlsMode};
use serde_json::Value;

const TOKEN: &str = "tok-Ck4-check-test";
const PW1: &str = "pw1-Ck4-check-test";
const PW2: &str = "pw2-Ck4-check-test";

fn scenario() -> Scenario {
    Scenario::from_yaml(&format!(
        r#"
tokens: [{{user: root, token: {TOKEN}}}]
time_scale: 0.001
target: {{existing_accounts: [taken]}}
remotes:
  - host: old1.example.com
    ssh: {{user: root, password: {PW1}}}
    packages: [pkg1]
    accounts:
      - {{user: alpha, package: pkg1}}
      - {{user: beta, package: pkg1}}
  - host: old2.example.com
    ssh: {{user: root, password: {PW2}}}
    accounts:
      - {{user: gamma}}
"#
    ))
    .expect("scenario")
}

/// A plan for the scenario. `old1_accounts` is YAML for old1's account list.
fn plan(url: &str, tls: &str, old1_packages: &str, old1_accounts: &str) -> String {
    format!(
        r#"version: 1
target:
  url: {url}
  user: root
  token: {{env: CHECK_T_TOKEN}}
{tls}
sources:
  - name: old1
    host: old1.example.com
    ssh: {{user: root, password: {{env: CHECK_T_PW1}}}}
    packages: {old1_packages}
    accounts: {old1_accounts}
  - name: old2
    host: old2.example.com
    ssh: {{user: root, password: {{env: CHECK_T_PW2}}}}
    accounts: [gamma]
policy:
  retries: {{attempts: 3, initial_backoff: 10ms, max_backoff: 50ms}}
"#
    )
}

const GOOD_ACCOUNTS: &str = "[alpha, {user: beta, localuser: beta2, package: pkg1}]";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The output line of `check` about `subject`, with verdict `mark`.
    fn line(&self, check: &str, subject: &str, mark: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() >= 3
                    && cols[0] == check
                    && (cols[1] == subject || cols[1].starts_with(&format!("{subject}:")))
                    && cols[2] == mark
            })
            .unwrap_or_else(|| panic!("no `{check} {subject} {mark}` line in:\n{}", self.stdout))
    }

    fn assert_no_secret(&self) {
        for s in [TOKEN, PW1, PW2, "wrong-Ck4-password"] {
            assert!(!self.stdout.contains(s), "{s} in stdout");
            assert!(!self.stderr.contains(s), "{s} in stderr");
        }
    }
}

/// Runs `ferry check` on `plan_text` in a temp dir with the given
/// environment (only for the child).
async fn ferry_check(plan_text: String, env: Vec<(&'static str, String)>, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.yaml"), plan_text).unwrap();
    run_in(dir, env, args).await
}

async fn run_in(dir: tempfile::TempDir, env: Vec<(&'static str, String)>, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    // The simulator runs on this test's runtime; the blocking child process
    // waits on another thread.
    tokio::task::spawn_blocking(move || {
        let mut c = Command::cargo_bin("ferry").unwrap();
        c.current_dir(dir.path())
            .arg("check")
            .arg("plan.yaml")
            .args(&args)
            .env_remove("CHECK_T_TOKEN")
            .env_remove("CHECK_T_PW1")
            .env_remove("CHECK_T_PW2")
            .env("RUST_LOG", "ferry=trace")
            .timeout(Duration::from_secs(60));
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

fn good_env() -> Vec<(&'static str, String)> {
    vec![
        ("CHECK_T_TOKEN", TOKEN.into()),
        ("CHECK_T_PW1", PW1.into()),
        ("CHECK_T_PW2", PW2.into()),
    ]
}

async fn start(s: Scenario) -> SimServer {
    ferry::client::tls::install_crypto_provider();
    SimServer::start(s).await.unwrap()
}

fn api_requests(sim: &SimServer) -> Vec<Value> {
    sim.requests().as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_green() {
    let sim = start(scenario()).await;
    let r = ferry_check(
        plan(sim.base_url(), "", "[pkg1]", GOOD_ACCOUNTS),
        good_env(),
        &[],
    )
    .await;
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains('✗'), "{}", r.stdout);
    r.line("target", "127.0.0.1", "✓");
    r.line("credentials", "old1", "✓");
    r.line("credentials", "old2", "✓");
    r.line("analysis", "old1", "✓");
    r.line("account", "old1", "✓");
    r.line("package", "old1", "✓");
    let line = r.line("username", "old1", "✓");
    assert!(line.contains("all 2 target username(s)"), "{line}");
    r.line("username", "old2", "✓");
    assert!(r.stdout.contains("✓ ready: all"), "{}", r.stdout);
    r.assert_no_secret();

    // Read-only: analysis sessions never started (aborted while PENDING →
    // FAILED), nothing enqueued, nothing restored.
    let state = sim.state();
    let sessions = state["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{state:#}");
    for s in sessions {
        assert_eq!(s["state"], "FAILED", "{s}");
        assert!(s["started_at"].is_null(), "{s}");
        assert!(s["items"].as_array().unwrap().is_empty(), "{s}");
    }
    let reqs = api_requests(&sim);
    for r in &reqs {
        let f = r["function"].as_str().unwrap();
        assert!(
            !matches!(f, "start_transfer_session" | "enqueue_transfer_item"),
            "check must not {f}"
        );
        assert_eq!(r["query_keys"], serde_json::json!(["api.version"]));
    }
    assert!(!sim.requests().to_string().contains(PW1));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_green_as_json() {
    let sim = start(scenario()).await;
    let r = ferry_check(
        plan(sim.base_url(), "", "[pkg1]", GOOD_ACCOUNTS),
        good_env(),
        &["--output", "json"],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let events: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let (last, findings) = events.split_last().unwrap();
    assert_eq!(last["event"], "check_finished");
    assert_eq!(last["status"], "passed");
    assert_eq!(last["failed"], 0);
    assert!(findings.len() >= 8);
    for f in findings {
        assert_eq!(f["event"], "check");
        assert_eq!(f["verdict"], "pass", "{f}");
        assert!(f["ts"].is_string());
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_source_password() {
    let sim = start(scenario()).await;
    let mut env = good_env();
    env[2].1 = "wrong-Ck4-password".into();
    let r = ferry_check(plan(sim.base_url(), "", "[pkg1]", GOOD_ACCOUNTS), env, &[]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let line = r.line("credentials", "old2", "✗");
    assert!(line.contains("Permission denied"), "{line}");
    assert!(
        line.contains("fix:") && line.contains("sources[1] (old2).ssh"),
        "{line}"
    );
    // The analysis of old2 is skipped, old1 is unaffected.
    r.line("analysis", "old2", "–");
    r.line("credentials", "old1", "✓");
    r.line("account", "old1", "✓");
    assert!(r.stdout.contains("✗ not ready"), "{}", r.stdout);
    r.assert_no_secret();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_taken_on_the_target() {
    let sim = start(scenario()).await;
    let accounts = "[{user: alpha, localuser: taken}, beta]";
    let r = ferry_check(
        plan(sim.base_url(), "", "[pkg1]", accounts),
        good_env(),
        &[],
    )
    .await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let line = r.line("username", "taken", "✗");
    assert!(line.contains("already exists on the target"), "{line}");
    assert!(line.contains("old1/alpha → taken"), "{line}");
    assert!(
        line.contains("fix:") && line.contains("localuser"),
        "{line}"
    );
    let line = r.line("username", "old1", "✓");
    assert!(line.contains("1 of 2"), "{line}");
    assert!(r.stdout.contains("✗ not ready: 1 of"), "{}", r.stdout);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_and_package_missing_from_their_source() {
    let sim = start(scenario()).await;
    let r = ferry_check(
        plan(sim.base_url(), "", "[pkg1, pkg9]", "[alpha, ghost, beta]"),
        good_env(),
        &[],
    )
    .await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let line = r.line("account", "old1/ghost", "✗");
    assert!(
        line.contains("does not exist on old1.example.com"),
        "{line}"
    );
    assert!(line.contains("fix:"), "{line}");
    let line = r.line("package", "old1/pkg9", "✗");
    assert!(line.contains("fix:"), "{line}");
    // Exactly those two fail.
    assert_eq!(
        r.stdout.matches('✗').count(),
        3,
        "2 lines + verdict:\n{}",
        r.stdout
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_is_exit_2_before_any_request() {
    let sim = start(scenario()).await;
    let env = vec![("CHECK_T_TOKEN", TOKEN.to_string())];
    let r = ferry_check(plan(sim.base_url(), "", "[pkg1]", GOOD_ACCOUNTS), env, &[]).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("CHECK_T_PW1"), "{}", r.stderr);
    assert!(r.stderr.contains("CHECK_T_PW2"), "{}", r.stderr);
    assert!(api_requests(&sim).is_empty(), "nothing may be sent");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_token_is_tried_once_and_stops_everything() {
    let sim = start(scenario()).await;
    let mut env = good_env();
    env[0].1 = "not-the-token".into();
    let r = ferry_check(plan(sim.base_url(), "", "[pkg1]", GOOD_ACCOUNTS), env, &[]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let line = r.line("target", "127.0.0.1", "✗");
    assert!(line.contains("refused the API token"), "{line}");
    assert!(line.contains("fix:"), "{line}");
    assert_eq!(api_requests(&sim).len(), 1, "one attempt, nothing else");
    sim.shutdown().await;
}

fn tls_sim_scenario() -> Scenario {
    let mut s = scenario();
    s.tls = TlsMode::SelfSigned;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_ca_with_ca_file_and_insecure() {
    let sim = start(tls_sim_scenario()).await;
    let url = sim.base_url().to_string();
    assert!(url.starts_with("https://"));

    // No CA: refused, the message names the host and the fix.
    let r = ferry_check(plan(&url, "", "[pkg1]", GOOD_ACCOUNTS), good_env(), &[]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let line = r.line("target", "127.0.0.1", "✗");
    let host = url.trim_start_matches("https://");
    assert!(line.contains(host), "{line}");
    assert!(line.contains("target.tls.ca_file"), "{line}");
    assert!(api_requests(&sim).is_empty());

    // ca_file next to the plan: accepted.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("whm-ca.pem"), sim.ca_pem().unwrap()).unwrap();
    std::fs::write(
        dir.path().join("plan.yaml"),
        plan(
            &url,
            "  tls: {ca_file: whm-ca.pem}",
            "[pkg1]",
            GOOD_ACCOUNTS,
        ),
    )
    .unwrap();
    let r = run_in(dir, good_env(), &[]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("NOT verified"));

    // insecure: accepted, with a warning.
    let r = ferry_check(
        plan(&url, "  tls: {insecure: true}", "[pkg1]", GOOD_ACCOUNTS),
        good_env(),
        &[],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("NOT verified"), "{}", r.stderr);
    r.assert_no_secret();
    sim.shutdown().await;
}

#[test]
fn http_to_a_non_loopback_host_is_refused_without_sending() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.yaml"),
        plan("http://192.0.2.7:2086", "", "[pkg1]", GOOD_ACCOUNTS),
    )
    .unwrap();
    let out = Command::cargo_bin("ferry")
        .unwrap()
        .current_dir(dir.path())
        .args(["check", "plan.yaml"])
        .envs(good_env())
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("192.0.2.7"), "{err}");
}
