//! Secret references and secret values.
//!
//! Owns: the plan's way of *naming* a secret ([`SecretRef`]: `{env: NAME}` or
//! `{file: PATH}`), resolving a reference into a value ([`SecretRef::resolve`]),
//! and the in-memory wrapper for values ([`Secret`]) whose `Debug` and
//! `Display` print a placeholder.
//!
//! Does not own: where secrets go on the wire (that is `client`: only the
//! `Authorization` header and POST bodies), nor the plan rule that refuses a
//! literal secret (that is `plan::rules`).
//!
//! A resolution error names the *reference* (the variable or the path), never
//! the value, so it may be printed anywhere.
//!
//! Also owns the last line of defence: every [`Secret::new`] registers its
//! value in a process-wide registry, and [`scrub`] replaces any registered
//! value — raw, URL-encoded (`+` or `%20` for a space), JSON- or
//! Debug-escaped — by `[REDACTED]`. `cli` scrubs everything it renders
//! (errors, events, log lines, the panic message); the journal writer scrubs
//! the server's free text before it is written. Nothing *should* ever reach
//! those places: scrubbing is for what a server echoes back, or a bug.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// How a plan names a secret. Plans never contain the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum SecretRef {
    /// The value of an environment variable of the `ferry` process.
    #[serde(rename = "env")]
    Env(String),
    /// The contents of a file (one trailing newline is removed). A relative
    /// path is relative to the plan file's directory.
    #[serde(rename = "file")]
    File(PathBuf),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "{{env: {name}}}"),
            SecretRef::File(path) => write!(f, "{{file: {}}}", path.display()),
        }
    }
}

/// Why a reference could not be resolved. Names the reference, never a value.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "secret {reference}: environment variable `{name}` is not set (export it before running ferry)"
    )]
    EnvMissing { reference: String, name: String },
    #[error("secret {reference}: environment variable `{name}` is empty")]
    EnvEmpty { reference: String, name: String },
    #[error("secret {reference}: cannot read `{path}`: {reason}")]
    FileUnreadable {
        reference: String,
        path: String,
        reason: String,
    },
    #[error("secret {reference}: file `{path}` is empty")]
    FileEmpty { reference: String, path: String },
}

/// A non-fatal finding while resolving (e.g. a secret file others can read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretWarning(pub String);

impl fmt::Display for SecretWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SecretRef {
    /// Resolves the reference. `base` is the directory relative file paths
    /// are taken from (the plan's directory). Warnings (a world- or
    /// group-readable secret file) are pushed to `warnings`.
    pub fn resolve(
        &self,
        base: &Path,
        warnings: &mut Vec<SecretWarning>,
    ) -> Result<Secret, SecretError> {
        let reference = self.to_string();
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if v.is_empty() => Err(SecretError::EnvEmpty {
                    reference,
                    name: name.clone(),
                }),
                Ok(v) => Ok(Secret::new(v)),
                Err(_) => Err(SecretError::EnvMissing {
                    reference,
                    name: name.clone(),
                }),
            },
            SecretRef::File(path) => {
                let full = if path.is_absolute() {
                    path.clone()
                } else {
                    base.join(path)
                };
                let shown = full.display().to_string();
                let unreadable = |e: std::io::Error| SecretError::FileUnreadable {
                    reference: reference.clone(),
                    path: shown.clone(),
                    reason: e.kind().to_string(),
                };
                let meta = std::fs::metadata(&full).map_err(unreadable)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = meta.permissions().mode();
                    if mode & 0o077 != 0 {
                        warnings.push(SecretWarning(format!(
                            "secret file `{shown}` can be read by other users (mode {:o}); run `chmod 600 {shown}`",
                            mode & 0o777
                        )));
                    }
                }
                #[cfg(not(unix))]
                let _ = (&meta, &warnings);
                let mut text = std::fs::read_to_string(&full).map_err(unreadable)?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                if text.is_empty() {
                    return Err(SecretError::FileEmpty {
                        reference,
                        path: shown,
                    });
                }
                Ok(Secret::new(text))
            }
        }
    }
}

/// A secret value in memory. `Debug` and `Display` print `[REDACTED]`; it is
/// not `Serialize`, so it cannot reach the journal or a JSON event. Zeroed on
/// drop (via `secrecy`).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value and registers it for [`scrub`] (values shorter than
    /// [`MIN_SCRUB_LEN`] are too short to search for and are not).
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Secret(SecretString::from(value))
    }

    /// The value, for the one place that must put it on the wire.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Secrets shorter than this are not registered for [`scrub`]: replacing
/// every `ab` of every message would make messages unreadable and protects
/// nothing a 3-character password could.
pub const MIN_SCRUB_LEN: usize = 4;

/// What [`scrub`] puts in place of a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Every form of every registered secret, longest first (so a secret that
/// contains another is replaced whole). Process-wide and never shrinks: a
/// run resolves a handful of secrets.
static REGISTRY: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// The forms in which `value` could appear in text ferry renders: raw,
/// `application/x-www-form-urlencoded` (space as `+`), percent-encoded
/// (space as `%20`), inside a JSON string, inside a Rust `{:?}` string.
fn forms(value: &str) -> Vec<String> {
    let form: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let percent = form.replace('+', "%20");
    let json = serde_json::to_string(value).unwrap_or_default();
    let debug = format!("{value:?}");
    let strip = |s: &str| s[1..s.len() - 1].to_string();
    let mut out = vec![value.to_string(), form, percent];
    if json.len() >= 2 {
        out.push(strip(&json));
    }
    out.push(strip(&debug));
    out.sort();
    out.dedup();
    out
}

/// Adds `value` to the registry [`scrub`] uses. Idempotent.
pub fn register(value: &str) {
    if value.chars().count() < MIN_SCRUB_LEN {
        return;
    }
    let new = forms(value);
    let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    let before = reg.len();
    for f in new {
        if !reg.contains(&f) {
            reg.push(f);
        }
    }
    if reg.len() != before {
        reg.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }
}

/// Whether `text` contains any registered secret, in any form.
pub fn mentions_secret(text: &str) -> bool {
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    reg.iter().any(|f| text.contains(f.as_str()))
}

/// `text` with every registered secret, in any of its forms, replaced by
/// `[REDACTED]`. Borrows when there is nothing to replace (the usual case).
pub fn scrub(text: &str) -> Cow<'_, str> {
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    if !reg.iter().any(|f| text.contains(f.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for f in reg.iter() {
        if out.contains(f.as_str()) {
            out = out.replace(f.as_str(), REDACTED);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_every_form_of_a_registered_secret() {
        let s = Secret::new("p@ss w0rd&=%\"q");
        let raw = s.expose();
        for text in [
            format!("reason: {raw}."),
            "user=root&password=p%40ss+w0rd%26%3D%25%22q".to_string(),
            "password=p%40ss%20w0rd%26%3D%25%22q".to_string(),
            serde_json::json!({ "message": format!("bad {raw}") }).to_string(),
            format!("{:?}", format!("x {raw} y")),
        ] {
            let out = scrub(&text);
            assert!(out.contains(REDACTED), "{text} -> {out}");
            assert!(!out.contains("w0rd"), "{text} -> {out}");
            assert!(mentions_secret(&text));
        }
        let clean = "nothing to see here";
        assert!(matches!(scrub(clean), Cow::Borrowed(_)));
        assert!(!mentions_secret(clean));
    }

    #[test]
    fn short_values_are_not_registered() {
        let _s = Secret::new("ab9");
        assert_eq!(scrub("ab9 and more"), "ab9 and more");
    }

    #[test]
    fn a_longer_secret_containing_a_shorter_one_is_replaced_whole() {
        let _a = Secret::new("inner-SECRET-77");
        let _b = Secret::new("outer-inner-SECRET-77-tail");
        assert_eq!(
            scrub("x outer-inner-SECRET-77-tail y inner-SECRET-77"),
            "x [REDACTED] y [REDACTED]"
        );
    }

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(format!("{s}"), "[REDACTED]");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn missing_env_names_the_variable_not_a_value() {
        let r = SecretRef::Env("FERRY_TEST_SURELY_UNSET_VAR".into());
        let err = r.resolve(Path::new("."), &mut vec![]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("FERRY_TEST_SURELY_UNSET_VAR"), "{text}");
        assert!(text.contains("not set"), "{text}");
    }

    #[test]
    fn file_secret_strips_one_newline_and_warns_when_readable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "abc\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let mut w = vec![];
        let s = SecretRef::File("tok".into())
            .resolve(dir.path(), &mut w)
            .unwrap();
        assert_eq!(s.expose(), "abc");
        #[cfg(unix)]
        assert_eq!(w.len(), 1, "{w:?}");
    }
}
