//! `ferry apply --simulate[=SCENARIO]`: the plan → simulator mapping.
//!
//! Owns: turning a plan into a whm-sim [`Scenario`] (every source a remote
//! holding every account and package the plan lists, no faults, a time
//! scale at which a simulated hour passes in 3.6 real seconds, HTTPS with a
//! generated CA when the plan's target is https), and the credentials of a
//! rehearsal. Lives here, not in `sim`: the simulator knows nothing of
//! plans.
//!
//! Credentials ([`rehearsal_for`]): each secret reference of the plan that
//! resolves on this machine is used, and the simulator is seeded with it, so
//! a rehearsal exercises the real secret path (resolution, the
//! `Authorization` header, passwords in POST bodies, scrubbing) and a wrong
//! variable shows up as a refused login. A reference that does not resolve
//! (a fresh machine, a CI job for pull requests without secrets) gets a
//! generated stand-in, which the simulator is seeded with instead; the run
//! says so in one line. A rehearsal never fails for a missing secret.

use std::path::Path;

use rand::Rng;

use super::resolve::login_with;
use crate::client::{SshAuth, SshLogin};
use crate::plan::{LoadedPlan, Plan};
use crate::secret::{Secret, SecretRef, SecretWarning};
use crate::sim::{AccountSpec, RemoteSpec, Scenario, Size, SshSpec, TlsMode};

/// A rehearsal: the simulator's scenario and what ferry presents to it.
pub struct Rehearsal {
    pub scenario: Scenario,
    /// One login per plan source, same order.
    pub logins: Vec<SshLogin>,
    pub token_user: String,
    pub token: Secret,
    /// One line for the operator: whose credentials the rehearsal uses.
    pub note: String,
    /// Findings of resolution a real run would report too (a secret file
    /// others can read).
    pub warnings: Vec<String>,
}

/// A generated credential for a reference that does not resolve here.
/// Random, so that it is registered for scrubbing like any secret without
/// redacting an ordinary word.
fn stand_in() -> Secret {
    let tail: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    Secret::new(format!("ferry-stand-in-{tail}"))
}

/// The rehearsal of a loaded plan: [`rehearsal`]'s scenario, seeded with
/// the plan's credentials where they resolve and stand-ins elsewhere.
pub fn rehearsal_for(loaded: &LoadedPlan) -> Rehearsal {
    let plan = &loaded.plan;
    let mut scenario = rehearsal(plan);
    let mut sw: Vec<SecretWarning> = Vec::new();
    let mut total = 0usize;
    let mut missing: Vec<String> = Vec::new();
    let mut value = |r: &SecretRef, sw: &mut Vec<SecretWarning>| -> Secret {
        total += 1;
        match r.resolve(&loaded.base_dir, sw) {
            Ok(s) => s,
            Err(_) => {
                missing.push(r.to_string());
                stand_in()
            }
        }
    };
    let token = value(&plan.target.token, &mut sw);
    scenario.tokens[0].token = token.expose().to_string();
    let mut logins = Vec::new();
    for (i, s) in plan.sources.iter().enumerate() {
        let mut ignored = Vec::new();
        let login = login_with(s, i, |r, _| Some(value(r, &mut sw)), &mut ignored);
        let login = login.unwrap_or_else(|| SshLogin {
            // A shape validation refuses; kept total for library callers.
            user: s.ssh.user.clone(),
            port: s.ssh.port,
            auth: SshAuth::Password(stand_in()),
            escalation: None,
        });
        scenario.remotes[i].ssh = Some(ssh_spec(&login));
        logins.push(login);
    }
    let note = match (total, missing.len()) {
        (_, 0) => format!(
            "credentials: the plan's own (its {total} secret references resolve here, and the simulator accepts only them)"
        ),
        (t, m) if t == m => format!(
            "credentials: generated stand-ins (none of the plan's {t} secret references resolves here: {})",
            list(&missing)
        ),
        (t, m) => format!(
            "credentials: the plan's where they resolve ({} of {t}), generated stand-ins for {m} that do not: {}",
            t - m,
            list(&missing)
        ),
    };
    Rehearsal {
        scenario,
        logins,
        token_user: plan.target.user.clone(),
        token,
        note,
        warnings: sw.into_iter().map(|w| format!("warning: {w}")).collect(),
    }
}

/// At most three references, then a count.
fn list(refs: &[String]) -> String {
    let mut s = refs.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if refs.len() > 3 {
        s.push_str(&format!(" and {} more", refs.len() - 3));
    }
    s
}

/// What the simulated remote accepts: exactly this login.
fn ssh_spec(login: &SshLogin) -> SshSpec {
    let (password, sshkey_name, sshkey_passphrase) = match &login.auth {
        SshAuth::Password(p) => (Some(p.expose().to_string()), None, None),
        SshAuth::Key { name, passphrase } => (
            None,
            Some(name.clone()),
            passphrase.as_ref().map(|p| p.expose().to_string()),
        ),
    };
    let root_password = login
        .escalation
        .as_ref()
        .and_then(|(_, pw)| pw.as_ref())
        .map(|p| p.expose().to_string());
    SshSpec {
        user: login.user.clone(),
        port: login.port,
        password,
        sshkey_name,
        sshkey_passphrase,
        root_password,
    }
}

/// The rehearsal scenario for a plan.
pub fn rehearsal(plan: &Plan) -> Scenario {
    let remotes = plan
        .sources
        .iter()
        .map(|s| {
            let mut r = RemoteSpec::new(s.host.clone());
            r.packages = s.packages.clone();
            r.accounts = s
                .accounts
                .iter()
                .map(|e| {
                    let a = e.account();
                    let mut spec = AccountSpec::new(a.user.clone());
                    if let Some(d) = &a.domain {
                        spec.domain = Some(d.clone());
                    }
                    if let Some(size) = a.size {
                        spec.size = Size(size.max(1));
                    }
                    spec.package = a.package.clone();
                    if let Some(o) = &a.owner {
                        spec.owner = o.clone();
                    }
                    spec
                })
                .collect();
            r
        })
        .collect();
    let mut scenario = Scenario::rehearsal(
        &target_hostname(&plan.target.url),
        &plan.target.user,
        stand_in().expose(),
        remotes,
    );
    // The plan's target speaks https: so does its stand-in (a CA generated
    // at start-up, trusted by this run only).
    if plan.target.url.trim().starts_with("https://") {
        scenario.tls = TlsMode::SelfSigned;
    }
    scenario
}

/// Reads a scenario file for `--simulate=SCENARIO`.
pub fn load_scenario(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read scenario {}: {e}", path.display()))?;
    Scenario::from_yaml(&text).map_err(|e| format!("scenario {}: {e}", path.display()))
}

/// The token user and token ferry uses against the scenario's target.
pub fn credentials(scenario: &Scenario) -> (String, Secret) {
    let t = scenario
        .tokens
        .first()
        .map(|t| (t.user.clone(), t.token.clone()))
        .map(|(user, token)| (user, Secret::new(token)))
        .unwrap_or_else(|| ("root".into(), stand_in()));
    (t.0, t.1)
}

/// The SSH login for each plan source: the scenario's credentials for that
/// host if it lists any, else a placeholder the simulator accepts.
pub fn logins(plan: &Plan, scenario: &Scenario) -> Vec<SshLogin> {
    plan.sources
        .iter()
        .map(|s| {
            let spec = scenario
                .remotes
                .iter()
                .find(|r| r.host == s.host || r.ip.as_deref() == Some(s.host.as_str()))
                .and_then(|r| r.ssh.clone());
            match spec {
                Some(spec) => login_from(&spec),
                None => SshLogin {
                    user: s.ssh.user.clone(),
                    port: s.ssh.port,
                    auth: SshAuth::Password(stand_in()),
                    escalation: None,
                },
            }
        })
        .collect()
}

fn login_from(spec: &SshSpec) -> SshLogin {
    let auth = match (&spec.password, &spec.sshkey_name) {
        (Some(pw), _) => SshAuth::Password(Secret::new(pw.clone())),
        (None, Some(name)) => SshAuth::Key {
            name: name.clone(),
            passphrase: spec.sshkey_passphrase.clone().map(Secret::new),
        },
        (None, None) => SshAuth::Password(stand_in()),
    };
    let escalation = (spec.user != "root").then(|| match &spec.root_password {
        Some(pw) => (crate::client::Escalation::Su, Some(Secret::new(pw.clone()))),
        None => (crate::client::Escalation::Sudo, None),
    });
    SshLogin {
        user: spec.user.clone(),
        port: spec.port,
        auth,
        escalation,
    }
}

fn target_hostname(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host = rest.split(['/', ':']).next().unwrap_or("target");
    if host.is_empty() {
        "target.example.net".into()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_that_resolve_seed_the_simulator_the_others_get_stand_ins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "file-token-XYZ-123\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.path().join("tok");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let plan = dir.path().join("p.yaml");
        std::fs::write(
            &plan,
            "version: 1\ntarget:\n  url: https://whm.example.net:2087\n  token: {file: tok}\n\
             sources:\n  - name: old1\n    host: old1.example.com\n    \
             ssh: {user: admin, password: {env: FERRY_T_SIM_UNSET_1}, root_escalation_method: su, \
             root_password: {env: FERRY_T_SIM_UNSET_2}}\n    accounts: [a]\n",
        )
        .unwrap();
        let loaded = crate::plan::load(&plan).unwrap();
        let r = rehearsal_for(&loaded);
        assert_eq!(r.scenario.tokens[0].token, "file-token-XYZ-123");
        assert_eq!(r.token.expose(), "file-token-XYZ-123");
        assert_eq!(r.scenario.tls, TlsMode::SelfSigned);
        assert!(
            r.note.contains("(1 of 3)")
                && r.note.contains("{env: FERRY_T_SIM_UNSET_1}")
                && r.note.contains("{env: FERRY_T_SIM_UNSET_2}"),
            "{}",
            r.note
        );
        // The simulated remote accepts exactly the stand-ins ferry sends.
        let spec = r.scenario.remotes[0].ssh.clone().unwrap();
        let login = &r.logins[0];
        assert_eq!(spec.user, "admin");
        match &login.auth {
            SshAuth::Password(p) => {
                assert_eq!(spec.password.as_deref(), Some(p.expose()));
                assert!(p.expose().starts_with("ferry-stand-in-"));
            }
            other => panic!("{other:?}"),
        }
        let (_, su) = login.escalation.as_ref().unwrap();
        assert_eq!(
            spec.root_password.as_deref(),
            su.as_ref().map(|s| s.expose())
        );
        // Stand-ins are registered secrets too.
        assert_eq!(
            crate::secret::scrub(&format!("pw {}", spec.password.unwrap())),
            "pw [REDACTED]"
        );
        r.scenario.validate().unwrap();
    }

    #[test]
    fn every_planned_account_and_package_is_on_its_remote() {
        let loaded = crate::plan::load(Path::new("plans/single-server.yaml")).unwrap();
        let sc = rehearsal(&loaded.plan);
        assert_eq!(sc.hostname, "whm.example.net");
        assert_eq!(sc.remotes.len(), 1);
        let r = &sc.remotes[0];
        assert_eq!(r.host, "old1.example.com");
        assert_eq!(r.packages, vec!["basic", "business"]);
        let users: Vec<_> = r.accounts.iter().map(|a| a.user.as_str()).collect();
        assert_eq!(users, vec!["example", "shop", "blog", "photos"]);
        assert_eq!(r.accounts[1].package.as_deref(), Some("business"));
        assert_eq!(r.accounts[1].size, Size(4294967296));
        assert!(sc.faults.fail_items.is_empty());
        sc.validate().unwrap();
        let logins = logins(&loaded.plan, &sc);
        assert_eq!(logins.len(), 1);
    }
}
