//! `ferry apply --simulate[=SCENARIO]`: the plan → simulator mapping.
//!
//! Owns: turning a plan into a whm-sim [`Scenario`] (every source a remote
//! holding every account and package the plan lists, credentials accepted,
//! no faults, a time scale at which a simulated hour passes in 3.6 real
//! seconds), and the SSH logins ferry presents to the simulated remotes.
//! Lives here, not in `sim`: the simulator knows nothing of plans.
//!
//! Plan secrets are never resolved for a rehearsal: the simulator's own
//! token is used, and the remotes accept any SSH credentials (or, with a
//! scenario file, the credentials that file lists for them).

use std::path::Path;

use crate::client::{SshAuth, SshLogin};
use crate::plan::Plan;
use crate::secret::Secret;
use crate::sim::{AccountSpec, RemoteSpec, Scenario, Size, SshSpec};

/// The token a rehearsal's simulator accepts (it never leaves the process).
const REHEARSAL_TOKEN: &str = "ferry-rehearsal-token";

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
    Scenario::rehearsal(
        &target_hostname(&plan.target.url),
        &plan.target.user,
        REHEARSAL_TOKEN,
        remotes,
    )
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
        .unwrap_or_else(|| ("root".into(), REHEARSAL_TOKEN.into()));
    (t.0, Secret::new(t.1))
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
                    auth: SshAuth::Password(Secret::new("simulated")),
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
        (None, None) => SshAuth::Password(Secret::new("simulated")),
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
