//! A structural pass over a document that did not deserialize, driven by the
//! committed JSON Schema, so that one run reports every misspelt key, every
//! missing required key, every mapping-vs-list mix-up, every misspelt choice
//! (`on_error: pauze`) and every literal secret — not only the first one,
//! where serde stopped.
//!
//! Owns: walking [`SourceIndex`] alongside `schemas/plan.schema.json`. It only
//! reports what it is sure of: a node whose schema is ambiguous (several
//! `oneOf` branches fit) is not looked into, and scalar contents are checked
//! only against `enum`/`const` word lists (number syntax is serde's job).
//! The first error (serde's) is always reported too, so nothing is lost if
//! this pass misses something.
//!
//! This is where runtime validation against the committed schema adds value
//! beyond the typed parse: the typed parse gives exact positions and wording,
//! the schema gives breadth.

use serde_json::Value;

use super::locate::{DocPath, Kind, SourceIndex};
use super::parse::{secret_help, unknown_key};
use super::rules::Problem;
use crate::plan::locate::Anchor;
use crate::plan::model::LITERAL_SECRET;

/// Keys whose value is a secret reference.
pub(crate) const SECRET_KEYS: &[&str] =
    &["token", "password", "sshkey_passphrase", "root_password"];

/// Where secret values are written in the document: any plain value of a
/// secret key, and a URL with `user:password@`. These are masked in
/// snippets, whatever the diagnostic.
pub(crate) fn secret_spans(idx: &SourceIndex) -> Vec<(super::locate::Pos, usize)> {
    let mut out = Vec::new();
    let Some(root) = idx.root() else {
        return out;
    };
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        for (child, key) in idx.children(n) {
            match idx.kind(child) {
                Kind::Map | Kind::Seq => stack.push(child),
                Kind::Scalar => {
                    let secret = key.is_some_and(|k| SECRET_KEYS.contains(&k))
                        || idx.scalar(child).is_some_and(|v| {
                            v.contains("://")
                                && v.split("://").nth(1).is_some_and(|r| {
                                    r.split(['/', '?', '#'])
                                        .next()
                                        .is_some_and(|a| a.contains('@'))
                                })
                        });
                    if secret && idx.scalar(child).is_some() {
                        out.push(idx.extent(child));
                    }
                }
                Kind::Alias => {}
            }
        }
    }
    out
}

pub(crate) fn check(_text: &str, idx: &SourceIndex) -> Vec<Problem> {
    let Ok(schema) = serde_json::from_str::<Value>(super::schema::COMMITTED) else {
        return Vec::new();
    };
    let Some(root) = idx.root() else {
        return Vec::new();
    };
    if !idx.complete() {
        return Vec::new();
    }
    let mut out = Vec::new();
    // Explicit stack: (node, its schema, its path). Schemas are borrowed
    // from `schema`, which lives for the whole walk.
    let mut stack: Vec<(usize, &Value, DocPath)> = vec![(root, &schema, DocPath::root())];
    let mut budget = 1_000_000usize; // nodes visited at most (hostile input)
    while let Some((node, sch, path)) = stack.pop() {
        if budget == 0 {
            break;
        }
        budget -= 1;
        let kind = idx.kind(node);
        if kind == Kind::Alias {
            continue;
        }
        let field = field_name(&path);
        // Literal secrets, wherever a secret reference belongs.
        if kind == Kind::Scalar
            && idx.scalar(node).is_some()
            && let Some(k) = leaf(&path)
            && mentions_secret(&schema, sch, 0)
        {
            out.push(Problem {
                path: path.clone(),
                anchor: Anchor::Value,
                message: format!("`{k}`: {LITERAL_SECRET}"),
                help: Some(secret_help(k, &env_hint(idx, &path, k))),
            });
            continue;
        }
        // A word from a fixed list (`on_error: pause`): the branches of an
        // enum are all `const`s, so check the word before resolving.
        if kind == Kind::Scalar
            && let Some(v) = idx.scalar(node)
        {
            let words = words_deep(&schema, sch);
            if !words.is_empty() {
                if !words.contains(&v) {
                    out.push(bad_word(&path, &field, v, &words));
                }
                continue;
            }
        }
        let is_null = idx.scalar(node).is_none();
        // The branch of the schema the node fits, or the types it should have.
        let fitted = match resolve(&schema, sch, node, idx) {
            Ok(s) => {
                let types = types_of(s);
                if !types.is_empty() && !kind_fits(kind, is_null, &types) {
                    Err(types)
                } else {
                    Ok(s)
                }
            }
            Err(Unsettled::Ambiguous) => continue,
            Err(Unsettled::Nothing(types)) => Err(types),
        };
        let sch = match fitted {
            Ok(s) => s,
            Err(types) => {
                wrong_type(&mut out, &path, &field, &types, kind, is_null);
                continue;
            }
        };
        match kind {
            Kind::Map => {
                let props = sch.get("properties").and_then(Value::as_object);
                let closed = sch.get("additionalProperties") == Some(&Value::Bool(false));
                let mut present = Vec::new();
                // Required keys explained by a misspelt key (`hots` for
                // `host`): reported once, as the misspelling.
                let mut explained: Vec<&str> = Vec::new();
                for (child, key) in idx.children(node) {
                    let Some(key) = key else { continue };
                    present.push(key.to_string());
                    let cpath = path.key(key);
                    match props.and_then(|p| p.get(key)) {
                        Some(ps) => stack.push((child, ps, cpath)),
                        None if closed => {
                            let expected: Vec<&str> = props
                                .map(|p| p.keys().map(String::as_str).collect())
                                .unwrap_or_default();
                            if let Some(s) = super::parse::suggest(key, &expected) {
                                explained.push(s);
                            }
                            let (message, help) = unknown_key(key, &expected);
                            out.push(Problem {
                                path: cpath,
                                anchor: Anchor::Key,
                                message,
                                help: Some(help),
                            });
                        }
                        None => {}
                    }
                }
                if let Some(req) = sch.get("required").and_then(Value::as_array) {
                    for r in req.iter().filter_map(Value::as_str) {
                        if !present.iter().any(|p| p == r) && !explained.contains(&r) {
                            let what = if path.0.is_empty() {
                                "the plan".to_string()
                            } else {
                                format!("`{path}`")
                            };
                            out.push(Problem {
                                path: path.clone(),
                                anchor: Anchor::Key,
                                message: format!("missing key `{r}` in {what}"),
                                help: Some(super::parse::missing_help(r)),
                            });
                        }
                    }
                }
            }
            Kind::Seq => {
                if let Some(items) = sch.get("items") {
                    for (i, (child, _)) in idx.children(node).enumerate() {
                        stack.push((child, items, path.index(i)));
                    }
                }
            }
            Kind::Scalar | Kind::Alias => {}
        }
    }
    out
}

/// A variable name to suggest for the secret at `path`: `WHM_TOKEN` for the
/// target's token, `OLD1_ROOT_PASSWORD`-style names for a source's secrets.
pub(crate) fn env_hint(idx: &SourceIndex, path: &DocPath, key: &str) -> String {
    use super::locate::Seg;
    let source_name = match path.0.as_slice() {
        [Seg::Key(s), Seg::Index(i), ..] if s == "sources" => idx.root().and_then(|r| {
            let (list, _) = idx.children(r).find(|(_, k)| *k == Some("sources"))?;
            let (src, _) = idx.children(list).nth(*i)?;
            let (name, _) = idx.children(src).find(|(_, k)| *k == Some("name"))?;
            idx.scalar(name).map(str::to_string)
        }),
        _ => None,
    };
    let what = match key {
        "token" => return "WHM_TOKEN".into(),
        "password" => "SSH_PASSWORD".to_string(),
        other => other.to_ascii_uppercase(),
    };
    match source_name {
        Some(n) => super::rules::env_name(&n, &what),
        None => what,
    }
}

/// "`field` must be a mapping, not a list". A null where something is
/// expected is left out: serde says it better.
fn wrong_type(
    out: &mut Vec<Problem>,
    path: &DocPath,
    field: &str,
    types: &[&str],
    kind: Kind,
    is_null: bool,
) {
    if kind == Kind::Scalar && is_null {
        return;
    }
    out.push(Problem {
        path: path.clone(),
        anchor: Anchor::Value,
        message: format!(
            "`{field}` must be {}, not {}",
            describe(types),
            kind_name(kind)
        ),
        help: None,
    });
}

fn leaf(path: &DocPath) -> Option<&str> {
    match path.0.last() {
        Some(super::locate::Seg::Key(k)) => Some(k),
        _ => None,
    }
}

/// "`ssh`", or "an entry of `accounts`" for a list item.
fn field_name(path: &DocPath) -> String {
    use super::locate::Seg;
    match path.0.last() {
        Some(Seg::Key(k)) => k.clone(),
        Some(Seg::Index(_)) => match path.0.iter().rev().nth(1) {
            Some(Seg::Key(k)) => format!("{k}[]"),
            _ => "item".into(),
        },
        None => "the plan".into(),
    }
}

/// Why a node's schema could not be settled.
enum Unsettled<'a> {
    /// Several branches fit: the node is not looked into.
    Ambiguous,
    /// No branch fits: the node is of the wrong kind; these kinds would do.
    Nothing(Vec<&'a str>),
}

/// Follows `$ref`s and picks the one `oneOf`/`anyOf` branch that fits the
/// node: first by kind (mapping, list, value), then among mappings by
/// which branch knows all the node's keys.
fn resolve<'a>(
    root: &'a Value,
    mut sch: &'a Value,
    node: usize,
    idx: &SourceIndex,
) -> Result<&'a Value, Unsettled<'a>> {
    let kind = idx.kind(node);
    let null = kind == Kind::Scalar && idx.scalar(node).is_none();
    for _ in 0..32 {
        sch = deref(root, sch);
        let branches = sch
            .get("oneOf")
            .or_else(|| sch.get("anyOf"))
            .and_then(Value::as_array);
        let Some(branches) = branches else {
            return Ok(sch);
        };
        let by_kind: Vec<&Value> = branches
            .iter()
            .filter(|b| {
                let t = types_of(deref(root, b));
                t.is_empty() || kind_fits(kind, null, &t)
            })
            .collect();
        let pick = match by_kind.len() {
            0 => {
                let mut all = Vec::new();
                for b in branches {
                    all.extend(types_of(deref(root, b)));
                }
                return Err(Unsettled::Nothing(all));
            }
            1 => by_kind[0],
            _ if kind == Kind::Map => {
                let keys: Vec<&str> = idx.children(node).filter_map(|(_, k)| k).collect();
                let by_keys: Vec<&Value> = by_kind
                    .iter()
                    .copied()
                    .filter(|b| {
                        deref(root, b)
                            .get("properties")
                            .and_then(Value::as_object)
                            .is_some_and(|p| keys.iter().all(|k| p.contains_key(*k)))
                    })
                    .collect();
                if by_keys.len() != 1 {
                    return Err(Unsettled::Ambiguous);
                }
                by_keys[0]
            }
            _ => return Err(Unsettled::Ambiguous),
        };
        sch = pick;
    }
    Err(Unsettled::Ambiguous)
}

/// Does `sch` (or one of its `anyOf` branches) describe a secret reference
/// (`oneOf` with an `env` branch)?
fn mentions_secret(root: &Value, sch: &Value, depth: usize) -> bool {
    let sch = deref(root, sch);
    if depth > 8 {
        return false;
    }
    let branches = |k: &str| sch.get(k).and_then(Value::as_array);
    if branches("oneOf").is_some_and(|bs| {
        bs.iter()
            .any(|b| deref(root, b).pointer("/properties/env").is_some())
    }) {
        return true;
    }
    branches("anyOf").is_some_and(|bs| bs.iter().any(|b| mentions_secret(root, b, depth + 1)))
}

fn deref<'a>(root: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..32 {
        match v
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/"))
        {
            Some(p) => match p.split('/').try_fold(root, |v, k| v.get(k)) {
                Some(n) => v = n,
                None => return v,
            },
            None => return v,
        }
    }
    v
}

fn types_of(sch: &Value) -> Vec<&str> {
    match sch.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => {
            if sch.get("enum").is_some() || sch.get("const").is_some() {
                vec!["string"]
            } else {
                Vec::new()
            }
        }
    }
}

/// The words a scalar may be, when the schema is a fixed list: an `enum`,
/// a `const`, or `oneOf`/`anyOf` branches that are all such lists (a `null`
/// branch aside). Empty when the value is not restricted to words.
fn words_deep<'a>(root: &'a Value, sch: &'a Value) -> Vec<&'a str> {
    let sch = deref(root, sch);
    if let Some(e) = sch.get("enum").and_then(Value::as_array) {
        return e.iter().filter_map(Value::as_str).collect();
    }
    if let Some(c) = sch.get("const").and_then(Value::as_str) {
        return vec![c];
    }
    let Some(branches) = sch
        .get("oneOf")
        .or_else(|| sch.get("anyOf"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut words = Vec::new();
    for b in branches {
        let b = deref(root, b);
        if types_of(b) == ["null"] {
            continue;
        }
        let w = words_deep(root, b);
        if w.is_empty() {
            return Vec::new();
        }
        words.extend(w);
    }
    words
}

fn bad_word(path: &DocPath, field: &str, v: &str, words: &[&str]) -> Problem {
    let list = words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let help = match super::parse::suggest(v, words) {
        Some(s) => format!("did you mean `{s}`? `{field}` is one of {list}"),
        None => format!("`{field}` is one of {list}"),
    };
    Problem {
        path: path.clone(),
        anchor: Anchor::Value,
        message: format!("`{v}` is not a valid `{field}`"),
        help: Some(help),
    }
}

fn kind_fits(kind: Kind, null: bool, types: &[&str]) -> bool {
    match kind {
        Kind::Map => types.contains(&"object"),
        Kind::Seq => types.contains(&"array"),
        Kind::Scalar if null => types.contains(&"null"),
        Kind::Scalar => types
            .iter()
            .any(|t| matches!(*t, "string" | "integer" | "number" | "boolean")),
        Kind::Alias => true,
    }
}

fn describe(types: &[&str]) -> String {
    let t: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
    match t.as_slice() {
        ["object"] => "a mapping (`key: value` lines or `{key: value}`)".into(),
        ["array"] => "a list (`- item` lines or `[a, b]`)".into(),
        ["integer"] => "a number".into(),
        ["boolean"] => "`true` or `false`".into(),
        ["string"] => "a single value".into(),
        _ => "a single value".into(),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Map => "a mapping",
        Kind::Seq => "a list",
        Kind::Scalar => "a single value",
        Kind::Alias => "an alias",
    }
}
