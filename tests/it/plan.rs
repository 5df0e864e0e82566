//! `ferry validate`, `ferry plan` and `ferry schema`, run as a user runs
//! them: the real binary, real files.
//!
//! The bad-plan corpus lives in `tests/fixtures/bad-plans/*.yaml`. Line 2 of
//! each file states what `ferry validate` must say, as `|`-separated parts:
//! * `expect: L:C fragment` — a diagnostic at line L, column C whose message
//!   contains `fragment`;
//! * `problems: N` — exactly N diagnostics;
//! * `absent: text` — `text` (a secret written in the plan) appears nowhere
//!   in the output.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ferry(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("ferry").expect("ferry binary");
    c.current_dir(dir);
    c
}

struct Expect {
    line: usize,
    column: usize,
    fragment: String,
}

struct Spec {
    expects: Vec<Expect>,
    problems: Option<usize>,
    absent: Vec<String>,
}

fn spec(bytes: &[u8]) -> Spec {
    let text = String::from_utf8_lossy(bytes);
    let line2 = text.lines().nth(1).unwrap_or("");
    let body = line2
        .strip_prefix("# ")
        .unwrap_or_else(|| panic!("line 2 is not an expectation: {line2}"));
    let mut s = Spec {
        expects: Vec::new(),
        problems: None,
        absent: Vec::new(),
    };
    for part in body.split(" | ") {
        let (key, value) = part.split_once(": ").expect("key: value");
        match key {
            "expect" => {
                let (pos, fragment) = value.split_once(' ').expect("L:C fragment");
                let (l, c) = pos.split_once(':').expect("L:C");
                s.expects.push(Expect {
                    line: l.parse().expect("line"),
                    column: c.parse().expect("column"),
                    fragment: fragment.to_string(),
                });
            }
            "problems" => s.problems = Some(value.parse().expect("count")),
            "absent" => s.absent.push(value.to_string()),
            other => panic!("unknown expectation `{other}`"),
        }
    }
    assert!(!s.expects.is_empty(), "no `expect:` in {body}");
    s
}

#[test]
fn every_bad_plan_exits_2_and_names_the_right_place() {
    let dir = root().join("tests/fixtures/bad-plans");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} bad plans", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let spec = spec(&std::fs::read(path).unwrap());

        let json = ferry(&dir)
            .args(["validate", "--output", "json", &name])
            .output()
            .unwrap();
        let text = ferry(&dir).args(["validate", &name]).output().unwrap();
        if json.status.code() != Some(2) || text.status.code() != Some(2) {
            failures.push(format!(
                "{name}: exit {:?}/{:?}, want 2",
                json.status.code(),
                text.status.code()
            ));
            continue;
        }
        let diags: serde_json::Value = match serde_json::from_slice(&json.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: stdout is not JSON: {e}"));
                continue;
            }
        };
        let diags = diags.as_array().cloned().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&text.stderr);
        for e in &spec.expects {
            let hit = diags.iter().any(|d| {
                d["line"] == e.line
                    && d["column"] == e.column
                    && d["file"] == name.as_str()
                    && d["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(&e.fragment))
            });
            if !hit {
                failures.push(format!(
                    "{name}: no diagnostic {}:{} containing {:?}; got {}",
                    e.line,
                    e.column,
                    e.fragment,
                    serde_json::to_string(&diags).unwrap()
                ));
            }
            // The human form names file:line:column too.
            let at = format!("{name}:{}:{}", e.line, e.column);
            if !stderr.contains(&at) {
                failures.push(format!("{name}: human output lacks {at}:\n{stderr}"));
            }
        }
        if let Some(n) = spec.problems
            && diags.len() != n
        {
            failures.push(format!(
                "{name}: {} problems, want {n}: {}",
                diags.len(),
                serde_json::to_string(&diags).unwrap()
            ));
        }
        for secret in &spec.absent {
            for out in [&json.stdout, &json.stderr, &text.stdout, &text.stderr] {
                if String::from_utf8_lossy(out).contains(secret.as_str()) {
                    failures.push(format!("{name}: output shows the secret {secret:?}"));
                }
            }
        }
        for d in &diags {
            for key in ["file", "line", "column", "message", "path", "help"] {
                if d.get(key).is_none() {
                    failures.push(format!("{name}: diagnostic without `{key}`: {d}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn example_plans_validate() {
    let out = ferry(&root())
        .args([
            "validate",
            "plans/single-server.yaml",
            "plans/consolidation.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("plans/consolidation.yaml: valid (3 sources, 12 accounts"));
    let json = ferry(&root())
        .args(["validate", "--output", "json", "plans/consolidation.yaml"])
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&json.stdout).trim(), "[]");
}

#[test]
fn every_plan_in_plans_dir_validates() {
    let dir = root().join("plans");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            n += 1;
            let out = ferry(&root()).arg("validate").arg(&p).output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.starts_with("# yaml-language-server: $schema=../schemas/plan.schema.json"),
                "{} lacks the schema modeline",
                p.display()
            );
        }
    }
    assert!(n >= 2);
}

#[test]
fn validate_reports_every_file() {
    let dir = root().join("tests/fixtures/bad-plans");
    let out = ferry(&dir)
        .args([
            "validate",
            "--output",
            "json",
            "../../../plans/single-server.yaml",
            "version-2.yaml",
            "package-not-listed.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let diags: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let files: std::collections::BTreeSet<&str> =
        diags.iter().filter_map(|d| d["file"].as_str()).collect();
    assert_eq!(
        files.into_iter().collect::<Vec<_>>(),
        vec!["package-not-listed.yaml", "version-2.yaml"]
    );
}

#[test]
fn a_missing_file_is_an_invalid_plan() {
    let out = ferry(&root())
        .args(["validate", "plans/does-not-exist.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read the plan"), "{stderr}");
}

#[test]
fn all_problems_of_a_plan_are_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("p.yaml");
    std::fs::write(
        &plan,
        "version: 1
target: {url: 'http://whm.example.net', token: {env: T}}
sources:
  - name: old1
    host: old1.example.com
    ssh: {password: {env: P}}
    packages: [gold]
    accounts:
      - {user: shop, package: silver}
      - {user: blog, owner: blog}
  - name: old2
    host: old2.example.com
    ssh: {password: {env: P}}
    after: [old9]
    accounts: [shop]
",
    )
    .unwrap();
    let out = ferry(dir.path())
        .args(["validate", "--output", "json", "p.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let diags: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(u64, u64, String)> = diags
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (2, 15, "target.url".to_string()),
            (9, 31, "sources[0].accounts[0].package".to_string()),
            (10, 29, "sources[0].accounts[1].owner".to_string()),
            (14, 13, "sources[1].after[0]".to_string()),
            (15, 16, "sources[1].accounts[0]".to_string()),
        ],
        "{diags:#?}"
    );
}

const FORMATS: [&str; 4] = ["text", "json", "dot", "markdown"];

fn plan_output(plan: &str, format: &str) -> String {
    let out = ferry(&root())
        .args(["plan", plan, "--format", format])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn plan_snapshots() {
    for plan in ["single-server", "consolidation"] {
        for format in FORMATS {
            let out = plan_output(&format!("plans/{plan}.yaml"), format);
            insta::assert_snapshot!(format!("plan-{plan}-{format}"), out);
        }
    }
}

#[test]
fn plan_output_is_deterministic() {
    for format in FORMATS {
        let a = plan_output("plans/consolidation.yaml", format);
        let b = plan_output("plans/consolidation.yaml", format);
        assert_eq!(a, b, "{format}");
    }
}

#[test]
fn plan_json_is_json_and_lists_every_step_once() {
    let out = plan_output("plans/consolidation.yaml", "json");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps = v["steps"].as_array().unwrap();
    let mut ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "step ids are unique");
    assert!(ids.contains(&"old1/s1/enqueue/agency"));
    assert!(ids.contains(&"old3/s1/package/gold"));
}

#[test]
fn plan_of_an_invalid_plan_exits_2_with_the_place() {
    let dir = root().join("tests/fixtures/bad-plans");
    let out = ferry(&dir)
        .args(["plan", "package-not-listed.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("package-not-listed.yaml:14:31"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn schema_prints_the_committed_schema() {
    let out = ferry(&root()).arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let committed = std::fs::read_to_string(root().join("schemas/plan.schema.json")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

#[test]
fn help_texts_show_examples() {
    for cmd in ["validate", "plan", "schema"] {
        let out = ferry(&root()).args([cmd, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Examples:") && text.contains(&format!("ferry {cmd}")),
            "{cmd}: {text}"
        );
    }
}

/// A plan of more than 200 accounts prints one line per source (accounts,
/// size, sessions) unless `--detail`; a smaller one is unchanged.
#[test]
fn a_large_plan_is_summarised_per_source_unless_detail() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = crate::kit::world::Fleet::standard(3, 100);
    std::fs::write(
        dir.path().join("big.yaml"),
        fleet.plan_yaml("https://whm.example.net:2087"),
    )
    .unwrap();
    let out = ferry(dir.path())
        .args(["plan", "big.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Sources (summarised: 300 accounts;"),
        "{text}"
    );
    let total: u64 = fleet.sources[1].accounts.iter().map(|a| a.size).sum();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("old2 — old2.example.com"))
        .unwrap_or_else(|| panic!("{text}"));
    // as many sessions as the compiled plan has for old2 (10 of 10, or 11
    // when its last is among the run's tail and split in two)
    let json = ferry(dir.path())
        .args(["plan", "big.yaml", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let sessions = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["key"].as_str().is_some_and(|k| k.starts_with("old2/")))
        .count();
    assert!((10..=11).contains(&sessions), "{sessions}");
    assert!(
        line.contains("100 accounts")
            && line.contains(&ferry::graph::render::human_size(total))
            && line.contains(&format!("{sessions} sessions")),
        "{line}"
    );
    assert!(!text.contains("Sessions in order"), "{text}");
    assert!(text.lines().count() < 40, "{text}");

    let out = ferry(dir.path())
        .args(["plan", "big.yaml", "--detail"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let detail = String::from_utf8(out.stdout).unwrap();
    assert!(detail.contains("Sessions in order"), "{detail}");
    assert!(detail.contains("s2u99"), "{detail}");
    assert!(detail.lines().count() > 300);
}
