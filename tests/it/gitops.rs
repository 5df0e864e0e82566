//! The example GitHub Actions workflow (issue 7.3) is valid YAML, wires the
//! plan's secrets, the journal and the exit codes, and every `ferry` command
//! it runs works: each is run for real against the example plan (`apply`
//! with `--simulate`, since CI's servers are not here).

use std::path::{Path, PathBuf};

use ferry::secret::SecretRef;
use serde_json::Value;

const WORKFLOW: &str = "examples/github-actions/ferry.yml";

/// What `$FERRY_JOURNAL` stands for here (CI's repository variable).
const STAND_IN_DB: &str = "postgres://ferry@db.example.net:5432/ferry";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workflow() -> Value {
    let text = std::fs::read_to_string(repo().join(WORKFLOW)).unwrap();
    serde_saphyr::from_str::<Value>(&text).expect("the workflow is valid YAML")
}

fn steps<'a>(wf: &'a Value, job: &str) -> &'a Vec<Value> {
    wf["jobs"][job]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("job {job} has steps"))
}

fn step<'a>(wf: &'a Value, job: &str, name: &str) -> (usize, &'a Value) {
    steps(wf, job)
        .iter()
        .enumerate()
        .find(|(_, s)| s["name"] == name)
        .unwrap_or_else(|| panic!("job {job} has a step {name:?}"))
}

/// Splits one shell command line into words: whitespace-separated, with
/// double-quoted words and `$NAME` / `"$NAME"` taken from `env`.
fn words(line: &str, env: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut out = Vec::new();
    for w in line.split_whitespace() {
        let w = w.trim_matches('"');
        if let Some(name) = w.strip_prefix('$') {
            out.push(env(name));
        } else {
            out.push(w.to_string());
        }
    }
    out
}

/// Every `ferry …` command of the workflow, in order: (job, argv). A line
/// is cut at a redirection, a pipe or `||`/`&&`.
fn ferry_commands(wf: &Value) -> Vec<(String, Vec<String>)> {
    let plan = wf["env"]["PLAN"].as_str().expect("env.PLAN").to_string();
    let env = move |name: &str| -> String {
        match name {
            "PLAN" => plan.clone(),
            // A repository variable in CI: the run's database.
            "FERRY_JOURNAL" => STAND_IN_DB.to_string(),
            other => panic!("unknown variable ${other} in a ferry command"),
        }
    };
    let mut out = Vec::new();
    for (job, j) in wf["jobs"].as_object().unwrap() {
        for s in j["steps"].as_array().unwrap() {
            let Some(run) = s["run"].as_str() else {
                continue;
            };
            let joined = run.replace("\\\n", " ");
            for line in joined.lines().map(str::trim) {
                if !line.starts_with("ferry ") {
                    continue;
                }
                let cmd = line
                    .split(['>', '|'])
                    .next()
                    .unwrap()
                    .split("&&")
                    .next()
                    .unwrap();
                out.push((job.clone(), words(cmd, &env)));
            }
        }
    }
    out
}

/// Environment variables the plan's secret references name.
fn secret_env_names(plan: &Path) -> Vec<String> {
    let loaded = ferry::plan::load(plan).expect("the example plan is valid");
    let p = &loaded.plan;
    let mut refs = vec![Some(p.target.token.clone())];
    for s in &p.sources {
        refs.push(s.ssh.password.clone());
        refs.push(s.ssh.sshkey_passphrase.clone());
        refs.push(s.ssh.root_password.clone());
    }
    refs.into_iter()
        .flatten()
        .filter_map(|r| match r {
            SecretRef::Env(name) => Some(name),
            SecretRef::File(_) => None,
        })
        .collect()
}

#[test]
fn workflow_triggers_secrets_journal_and_exit_codes() {
    let wf = workflow();
    assert!(
        wf["on"]["pull_request"].is_object(),
        "runs on pull requests"
    );
    assert_eq!(
        wf["on"]["push"]["branches"][0], "main",
        "applies on push to main"
    );
    let plan = wf["env"]["PLAN"].as_str().unwrap();
    assert!(repo().join(plan).is_file(), "env.PLAN {plan} exists");

    // Each secret the plan references is exported, by the same name, from
    // the CI secret store, to the apply step only.
    let (apply_at, apply) = step(&wf, "apply", "Apply");
    let names = secret_env_names(&repo().join(plan));
    assert!(!names.is_empty());
    for name in &names {
        assert_eq!(
            apply["env"][name].as_str(),
            Some(format!("${{{{ secrets.{name} }}}}").as_str()),
            "the Apply step exports {name} from secrets"
        );
    }
    // Secrets only where they are used: the plan's in Apply; the journal's
    // database password in the two steps that open the journal.
    for (job, j) in wf["jobs"].as_object().unwrap() {
        for s in j["steps"].as_array().unwrap() {
            let mut s = s.clone();
            if s["name"] == "Apply" {
                continue;
            }
            if s["name"] == "Report" && job == "apply" {
                assert_eq!(s["env"]["PGPASSWORD"], "${{ secrets.PGPASSWORD }}");
                s["env"].as_object_mut().unwrap().remove("PGPASSWORD");
            }
            let text = serde_json::to_string(&s).unwrap();
            assert!(
                !text.contains("secrets."),
                "{job}/{}: secrets only in Apply",
                s["name"]
            );
        }
    }
    assert_eq!(apply["env"]["PGPASSWORD"], "${{ secrets.PGPASSWORD }}");
    let run = apply["run"].as_str().unwrap();
    assert!(run.contains("--output json"));
    assert!(
        run.contains("set +e"),
        "the exit code is kept for the report and the Result step"
    );
    assert!(
        run.contains("--lock-timeout"),
        "a killed runner's lease is waited for"
    );

    // The journal lives in PostgreSQL: nothing carries it between runs.
    assert_eq!(
        wf["jobs"]["apply"]["env"]["FERRY_JOURNAL"],
        "${{ vars.FERRY_JOURNAL }}"
    );
    let text = serde_json::to_string(&wf).unwrap();
    assert!(!text.contains("actions/cache"), "no cache juggling");
    assert!(!text.contains(".ferry"), "no journal file to keep");
    let (_, upload) = step(&wf, "apply", "Keep the report and the events");
    assert_eq!(upload["if"], "always()");
    let paths = upload["with"]["path"].as_str().unwrap();
    for p in ["ferry-report.html", "ferry-events.jsonl"] {
        assert!(paths.contains(p), "artifact keeps {p}");
    }
    let (report_at, report) = step(&wf, "apply", "Report");
    assert_eq!(report["if"], "always()");
    assert!(report_at > apply_at, "the report reads what apply recorded");

    // One apply at a time; the job ends with apply's own exit code.
    assert_eq!(
        wf["jobs"]["apply"]["concurrency"]["cancel-in-progress"],
        false
    );
    let (result_at, result) = step(&wf, "apply", "Result");
    assert_eq!(
        result_at,
        steps(&wf, "apply").len() - 1,
        "Result is the last step"
    );
    let script = result["run"].as_str().unwrap();
    for code in ["0)", "3)", "4)", "6)", "exit \"$CODE\""] {
        assert!(script.contains(code), "Result handles {code}");
    }
    // Pull requests validate, plan and rehearse; merges apply and report.
    let cmds = ferry_commands(&wf);
    let of = |job: &str| -> Vec<String> {
        cmds.iter()
            .filter(|(j, _)| j == job)
            .map(|(_, argv)| argv[1..].join(" "))
            .collect()
    };
    assert_eq!(
        of("review"),
        [
            "validate plans/*.yaml".to_string(),
            format!("plan {plan} --format markdown"),
            format!("apply --simulate {plan} --journal rehearsal.journal --output json"),
            format!("report {plan} --journal rehearsal.journal --html rehearsal-report.html"),
        ]
    );
    assert_eq!(
        of("apply"),
        [
            format!("apply {plan} --journal {STAND_IN_DB} --lock-timeout 2m --output json"),
            format!("report {plan} --journal {STAND_IN_DB} --html ferry-report.html"),
        ]
    );

    // Exit codes are documented in the file for whoever copies it.
    let text = std::fs::read_to_string(repo().join(WORKFLOW)).unwrap();
    for code in 0..=6 {
        assert!(
            text.contains(&format!("#   {code}  ")),
            "exit code {code} documented"
        );
    }
}
#[test]
fn every_ferry_command_is_a_valid_invocation() {
    let wf = workflow();
    let cmds = ferry_commands(&wf);
    let subcommands: Vec<&str> = cmds.iter().map(|(_, argv)| argv[1].as_str()).collect();
    for want in ["validate", "plan", "apply", "report"] {
        assert!(
            subcommands.contains(&want),
            "the workflow runs ferry {want}"
        );
    }
    for (job, argv) in &cmds {
        if let Err(e) = ferry::cli::command().try_get_matches_from(argv) {
            panic!(
                "{job}: `{}` is not a valid invocation:\n{e}",
                argv.join(" ")
            );
        }
    }
}

/// Runs every `ferry` command of the workflow, in order, job by job, in a
/// scratch copy of the repository's plans: `validate` (the shell's glob
/// expanded), `plan --format markdown`, the rehearsal and its report, then
/// the apply job's `apply` — with `--simulate` added, since CI's servers
/// are not here, and the default journal, so the `report` after it reads
/// the same journal as in CI.
#[test]
fn every_ferry_command_of_the_workflow_runs() {
    let wf = workflow();
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans");
    std::fs::create_dir(&plans).unwrap();
    let mut yamls = Vec::new();
    for e in std::fs::read_dir(repo().join("plans")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            std::fs::copy(&p, plans.join(p.file_name().unwrap())).unwrap();
            yamls.push(format!(
                "plans/{}",
                p.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    yamls.sort();
    let plan = wf["env"]["PLAN"].as_str().unwrap().to_string();
    let stem = Path::new(&plan)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let mut ran = Vec::new();
    for (job, argv) in ferry_commands(&wf) {
        let mut args: Vec<String> = Vec::new();
        for a in &argv[1..] {
            if a == "plans/*.yaml" {
                args.extend(yamls.iter().cloned());
            } else if a == STAND_IN_DB {
                // No database here: the rehearsal writes the run's journal
                // to a file, and the report step reads it (tests/it/pg.rs
                // runs the same commands against a real PostgreSQL).
                std::fs::create_dir_all(dir.path().join("plans/.ferry")).unwrap();
                args.push(format!("plans/.ferry/{stem}.journal"));
            } else {
                args.push(a.clone());
            }
        }
        if job == "apply" && args[0] == "apply" {
            assert!(!args.iter().any(|a| a.starts_with("--simulate")));
            args.insert(1, "--simulate".into());
        }
        let out = assert_cmd::Command::cargo_bin("ferry")
            .unwrap()
            .current_dir(dir.path())
            .args(&args)
            .env("NO_COLOR", "1")
            .env_remove("WHM_TOKEN")
            .output()
            .unwrap();
        let shown = format!(
            "{job}: ferry {}\n--- stdout\n{}\n--- stderr\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{shown}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        match args[0].as_str() {
            "plan" => assert!(
                stdout.contains('#') && stdout.contains('|'),
                "markdown: {shown}"
            ),
            "apply" => {
                let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
                assert_eq!(last["event"], "run_finished", "{shown}");
                assert_eq!(last["status"], "succeeded", "{shown}");
            }
            "report" => {
                let html = args.iter().skip_while(|a| *a != "--html").nth(1).unwrap();
                let page = std::fs::read_to_string(dir.path().join(html)).unwrap();
                assert!(page.contains("Rehearsal report — simulated run"), "{shown}");
            }
            _ => {}
        }
        ran.push(format!("{job}: {}", args[0]));
    }
    // Jobs come in name order (a JSON map); steps in their order.
    assert_eq!(
        ran,
        [
            "apply: apply",
            "apply: report",
            "review: validate",
            "review: plan",
            "review: apply",
            "review: report",
        ]
    );
}
