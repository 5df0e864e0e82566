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
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
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

#[cfg(test)]
mod tests {
    use super::*;

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
