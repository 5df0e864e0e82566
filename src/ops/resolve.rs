//! From a loaded plan to what the client needs: secret references resolved
//! into [`Secret`]s, the CA file read, SSH logins built, warnings collected.
//!
//! Owns: the one place commands that talk to servers (`check`, `apply`,
//! `pause`, `abort`) turn `plan::Target` and `plan::Ssh` into
//! `client::ClientConfig` and `client::SshLogin`. Every missing secret is
//! reported at once, before any request is sent, naming the reference and
//! never a value.
//!
//! Does not own: the client itself, or printing warnings (the command's
//! report carries them to `cli`).

use std::path::Path;

use crate::client::{ClientConfig, SshAuth, SshLogin};
use crate::plan::{Plan, Source, Ssh};
use crate::secret::{Secret, SecretRef, SecretWarning};

/// The plan's servers, ready for the client.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub target: ClientConfig,
    /// One login per `plan.sources[i]`, same order.
    pub sources: Vec<SshLogin>,
    /// Things the operator must hear on every run (an unverified TLS
    /// connection, a secret file others can read).
    pub warnings: Vec<String>,
}

/// Everything that stopped the resolution (all problems, not only the
/// first). Names references and files, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ResolveError {
    pub problems: Vec<String>,
}

/// Resolves the target's and every source's secrets. `base_dir` is the plan
/// file's directory (relative `{file: …}` and `tls.ca_file` paths).
pub fn resolve(plan: &Plan, base_dir: &Path) -> Result<Resolved, ResolveError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut sw: Vec<SecretWarning> = Vec::new();

    let token = take(
        &plan.target.token,
        "target.token",
        base_dir,
        &mut sw,
        &mut problems,
    );
    let tls = plan.target.tls.clone().unwrap_or_default();
    let mut ca_pem = None;
    if let Some(ca) = &tls.ca_file {
        let path = if ca.is_absolute() {
            ca.clone()
        } else {
            base_dir.join(ca)
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => ca_pem = Some(text),
            Err(e) => problems.push(format!(
                "target.tls.ca_file: cannot read `{}`: {} (give the path of the CA certificate in PEM form, relative to the plan)",
                path.display(),
                e.kind()
            )),
        }
    }
    if tls.insecure {
        warnings.push(insecure_warning(&plan.target.url));
    }

    let mut sources = Vec::new();
    for (i, s) in plan.sources.iter().enumerate() {
        if let Some(login) = ssh_login(s, i, base_dir, &mut sw, &mut problems) {
            sources.push(login);
        }
    }
    warnings.extend(sw.into_iter().map(|w| format!("warning: {w}")));
    if !problems.is_empty() {
        return Err(ResolveError { problems });
    }
    let mut target = ClientConfig::new(
        plan.target.url.clone(),
        plan.target.user.clone(),
        token.expect("no problems means the token resolved"),
    );
    target.ca_pem = ca_pem;
    target.insecure = tls.insecure;
    Ok(Resolved {
        target,
        sources,
        warnings,
    })
}

fn take(
    r: &SecretRef,
    field: &str,
    base: &Path,
    warnings: &mut Vec<SecretWarning>,
    problems: &mut Vec<String>,
) -> Option<Secret> {
    match r.resolve(base, warnings) {
        Ok(s) => Some(s),
        Err(e) => {
            problems.push(format!("{field}: {e}"));
            None
        }
    }
}

/// The SSH login of source `i`.
fn ssh_login(
    s: &Source,
    i: usize,
    base: &Path,
    warnings: &mut Vec<SecretWarning>,
    problems: &mut Vec<String>,
) -> Option<SshLogin> {
    let mut found = Vec::new();
    let login = login_with(
        s,
        i,
        |r, field| take(r, field, base, warnings, &mut found),
        problems,
    );
    problems.extend(found);
    login
}

/// The field name of source `i`'s SSH setting `f`, as messages name it:
/// `sources[0] (old1).ssh.password`.
pub(crate) fn ssh_field(s: &Source, i: usize, f: &str) -> String {
    format!("sources[{i}] ({}).ssh.{f}", s.name)
}

/// Builds source `i`'s login from its `ssh` settings, asking `get` for the
/// value of each secret reference (with its field name); `None` from `get`
/// means that reference failed (and `get` said why). Shared by the real
/// resolution and the rehearsal's (which answers with stand-ins).
pub(crate) fn login_with(
    s: &Source,
    i: usize,
    mut get: impl FnMut(&SecretRef, &str) -> Option<Secret>,
    problems: &mut Vec<String>,
) -> Option<SshLogin> {
    let Ssh {
        user,
        port,
        password,
        sshkey_name,
        sshkey_passphrase,
        root_escalation_method,
        root_password,
    } = &s.ssh;
    let mut ok = true;
    let mut value = |r: &Option<SecretRef>, f: &str| -> Option<Secret> {
        let r = r.as_ref()?;
        let v = get(r, &ssh_field(s, i, f));
        ok &= v.is_some();
        v
    };
    let password = value(password, "password");
    let passphrase = value(sshkey_passphrase, "sshkey_passphrase");
    let root_pw = value(root_password, "root_password");
    let auth = match (password, sshkey_name) {
        (Some(pw), _) => SshAuth::Password(pw),
        (None, Some(name)) => SshAuth::Key {
            name: name.clone(),
            passphrase,
        },
        (None, None) => {
            if ok {
                problems.push(format!(
                    "{}: give `password: {{env: NAME}}` or `sshkey_name`",
                    ssh_field(s, i, "").trim_end_matches('.')
                ));
            }
            return None;
        }
    };
    if !ok {
        return None;
    }
    let escalation = root_escalation_method.map(|m| (m, root_pw));
    Some(SshLogin {
        user: user.clone(),
        port: *port,
        auth,
        escalation,
    })
}

/// The warning of every run with `tls.insecure: true` (`apply`, `check`,
/// `pause`, `abort`).
pub(crate) fn insecure_warning(url: &str) -> String {
    format!(
        "warning: target.tls.insecure is set: the certificate of {url} is NOT verified, so anyone on the network path \
         could read the API token and the source passwords; use target.tls.ca_file instead"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml_token_env: &str, src_env: &str) -> Plan {
        serde_json::from_value(serde_json::json!({
            "version": 1,
            "target": {"url": "https://whm.example.net:2087", "token": {"env": yaml_token_env},
                       "tls": {"insecure": true}},
            "sources": [{"name": "old1", "host": "old1.example.com",
                         "ssh": {"user": "admin", "password": {"env": src_env},
                                 "root_escalation_method": "sudo"},
                         "accounts": ["a"]}]
        }))
        .unwrap()
    }

    #[test]
    fn every_missing_secret_is_named_at_once() {
        let p = plan("FERRY_T_RESOLVE_UNSET_1", "FERRY_T_RESOLVE_UNSET_2");
        let e = resolve(&p, Path::new(".")).unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        assert!(e.problems[0].contains("FERRY_T_RESOLVE_UNSET_1"), "{e}");
        assert!(e.problems[1].contains("FERRY_T_RESOLVE_UNSET_2"), "{e}");
        assert!(e.problems[1].contains("old1"), "{e}");
    }

    #[test]
    fn resolves_and_warns_about_insecure() {
        // PATH and HOME exist in any test environment; their values never
        // appear in the result's Debug.
        let p = plan("PATH", "HOME");
        let r = resolve(&p, Path::new(".")).unwrap();
        assert!(r.target.insecure);
        assert!(r.warnings.iter().any(|w| w.contains("NOT verified")));
        assert!(matches!(r.sources[0].auth, SshAuth::Password(_)));
        assert_eq!(
            r.sources[0].escalation.as_ref().unwrap().0,
            crate::client::Escalation::Sudo
        );
        let dbg = format!("{r:?}");
        assert!(!dbg.contains(&std::env::var("PATH").unwrap()), "{dbg}");
    }
}
