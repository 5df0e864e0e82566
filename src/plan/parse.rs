//! YAML → [`Plan`], with every problem located at file:line:column.
//!
//! Owns: the YAML reader's settings (limits against hostile input, strict
//! booleans, duplicate keys refused), turning the reader's first error into a
//! [`Diagnostic`] that says what is wrong and how to fix it, and — when the
//! document reads — running every semantic rule (`rules`) and locating each
//! problem with `locate`. Does not own: the rules themselves, or files
//! (`plan::load` reads the bytes).
//!
//! Why only one error when the document does not read: serde-saphyr stops at
//! the first syntax or type error. A structural pass over the raw tree then
//! adds the other unknown keys and wrong types it can see (`structure`), so a
//! plan with three misspelt keys shows three errors in one run.
//!
//! Nothing here may panic on any input: the fuzz target `plan_load` feeds
//! arbitrary bytes to [`parse_bytes`].

use serde_saphyr::{Budget, DuplicateKeyPolicy, Error as YamlError, Options};

use super::diag::{Diagnostic, Diagnostics};
use super::locate::{Anchor, DocPath, Pos, Seg, SourceIndex};
use super::model::{LITERAL_SECRET, Plan};
use super::rules::{self, Problem};

/// Largest plan file read (bytes). A 100,000-account plan is about 10 MB.
pub const MAX_PLAN_BYTES: usize = 256 * 1024 * 1024;

/// The reader's settings. The budget is raised from serde-saphyr's defaults
/// (250,000 nodes) so a plan of 100,000 detailed accounts reads, while the
/// nesting depth stays low: a plan is at most 6 levels deep.
fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_nodes = 50_000_000;
    budget.max_events = 100_000_000;
    budget.max_total_scalar_bytes = MAX_PLAN_BYTES;
    budget.max_depth = 64;
    budget.max_documents = 2;
    let mut o = Options::default();
    o.budget = Some(budget);
    o.duplicate_keys = DuplicateKeyPolicy::Error;
    // `no`, `on`, `yes` stay strings (YAML 1.2): a user named `no` is a user.
    o.strict_booleans = true;
    o.with_snippet = false;
    o.emit_comments = false;
    o
}

/// Parses and validates a plan held in memory. `file_name` is used only in
/// diagnostics.
pub fn parse(file_name: &str, text: &str) -> Result<Plan, Diagnostics> {
    let mut diags = Diagnostics::new();
    diags.add_source(file_name, text);
    if text.len() > MAX_PLAN_BYTES {
        diags.push(whole_file(
            file_name,
            format!(
                "the plan is too large ({} bytes; at most {MAX_PLAN_BYTES})",
                text.len()
            ),
            Some("split the migration into several plans".into()),
        ));
        return Err(diags);
    }
    match serde_saphyr::from_str_with_options::<Plan>(text, options()) {
        Ok(plan) => {
            let problems = rules::check(&plan);
            if problems.is_empty() {
                return Ok(plan);
            }
            let idx = SourceIndex::build(text);
            mask_secrets(&mut diags, file_name, &idx);
            for p in problems {
                diags.push(locate_problem(file_name, &idx, p));
            }
        }
        Err(e) => {
            let idx = SourceIndex::build(text);
            mask_secrets(&mut diags, file_name, &idx);
            let first = from_yaml_error(file_name, text, &idx, &e);
            // Required keys explained by the first error's misspelling are
            // not reported again as missing.
            for p in super::structure::check(text, &idx) {
                if p.message.starts_with("missing key") && first.message.starts_with("unknown key")
                {
                    let missing = p.message.split('`').nth(1).unwrap_or("");
                    if first.message.contains(&format!("did you mean `{missing}`")) {
                        continue;
                    }
                }
                let d = locate_problem(file_name, &idx, p);
                if d.line != first.line || d.column != first.column {
                    diags.push(d);
                }
            }
            diags.push(first);
        }
    }
    diags.sort();
    Err(diags)
}

fn mask_secrets(diags: &mut Diagnostics, file: &str, idx: &SourceIndex) {
    for (pos, len) in super::structure::secret_spans(idx) {
        diags.mask(file, pos.line, pos.column, len);
    }
}

/// Like [`parse`], for raw bytes: refuses non-UTF-8 input with the position
/// of the first bad byte.
pub fn parse_bytes(file_name: &str, bytes: &[u8]) -> Result<Plan, Diagnostics> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(file_name, text),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            // The prefix is valid UTF-8 by construction.
            let prefix = std::str::from_utf8(good).unwrap_or_default();
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            let bad = bytes[e.valid_up_to()];
            let mut diags = Diagnostics::new();
            diags.add_source(file_name, &String::from_utf8_lossy(bytes));
            diags.push(Diagnostic {
                file: file_name.to_string(),
                line,
                column,
                message: format!("the plan is not valid UTF-8: byte 0x{bad:02X} here"),
                path: String::new(),
                help: Some(
                    "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 plan.yaml`)".into(),
                ),
                len: 1,
            });
            Err(diags)
        }
    }
}

/// A problem with the file as a whole (unreadable, too large, not UTF-8),
/// shown at its first line.
pub(crate) fn whole_file(file: &str, message: String, help: Option<String>) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        line: 1,
        column: 1,
        message,
        path: String::new(),
        help,
        len: 0,
    }
}

/// A rule's problem → a diagnostic at its node.
pub(crate) fn locate_problem(file: &str, idx: &SourceIndex, p: Problem) -> Diagnostic {
    let at = idx.locate(&p.path, p.anchor);
    Diagnostic {
        file: file.to_string(),
        line: at.pos.line,
        column: at.pos.column,
        message: p.message,
        path: p.path.to_string(),
        help: p.help,
        len: at.len,
    }
}

/// The last mapping key of a path (`package` for `sources[0].accounts[1].package`).
fn leaf_key(path: &DocPath) -> Option<&str> {
    path.0.iter().rev().find_map(|s| match s {
        Seg::Key(k) => Some(k.as_str()),
        Seg::Index(_) => None,
    })
}

/// The closest mapping at or above `path`.
fn enclosing_map(idx: &SourceIndex, mut path: DocPath) -> DocPath {
    while !path.0.is_empty() && !idx.is_map(&path) {
        path = path.parent();
    }
    path
}

/// Converts serde-saphyr's error into our words. The reader's own text is
/// used only for syntax errors, which it describes well.
fn from_yaml_error(file: &str, text: &str, idx: &SourceIndex, e: &YamlError) -> Diagnostic {
    let e = e.without_snippet();
    let (line, column) = e
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .filter(|(l, c)| *l > 0 && *c > 0)
        .unwrap_or((1, 1));
    let pos = Pos { line, column };
    let (mut path, mut on_key) = idx.path_at(pos);
    // A type error about a mapping is reported where the mapping starts,
    // which is also where its first key is: it is about the mapping.
    let about_mapping = match e {
        YamlError::SerdeInvalidType { unexpected, .. } => unexpected == "map",
        YamlError::Unexpected { expected, .. } => !expected.contains("mapping"),
        _ => false,
    };
    if on_key && about_mapping {
        path = path.parent();
        on_key = false;
    }
    let here = idx.locate(&path, if on_key { Anchor::Key } else { Anchor::Value });
    let mut d = Diagnostic {
        file: file.to_string(),
        line,
        column,
        message: String::new(),
        path: path.to_string(),
        help: None,
        len: if here.pos == pos { here.len } else { 1 },
    };
    let field = leaf_key(&path).unwrap_or("value").to_string();
    // "`version`", or "an entry of `accounts`" for a list item.
    let subject = match path.0.last() {
        Some(Seg::Index(_)) => format!("an entry of `{field}`"),
        Some(Seg::Key(_)) => format!("`{field}`"),
        None => "the plan".to_string(),
    };
    match e {
        YamlError::SerdeUnknownField {
            field: key,
            expected,
            ..
        } => {
            let (m, h) = unknown_key(key, expected);
            d.message = m;
            d.help = Some(h);
        }
        YamlError::SerdeMissingField { field: missing, .. } => {
            // The reader points somewhere inside the mapping; point at the
            // mapping itself (its key, or its first line).
            let map = enclosing_map(idx, if on_key { path.parent() } else { path });
            let at = idx.locate(&map, Anchor::Key);
            d.line = at.pos.line;
            d.column = at.pos.column;
            d.len = at.len;
            d.path = map.to_string();
            let what = if map.0.is_empty() {
                "the plan".to_string()
            } else {
                format!("`{map}`")
            };
            d.message = format!("missing key `{missing}` in {what}");
            d.help = Some(missing_help(missing));
        }
        YamlError::DuplicateMappingKey { key, .. } => {
            let k = key.clone().unwrap_or_else(|| "?".into());
            d.message = format!("duplicate key `{k}`");
            d.help = Some(
                "a key may appear only once in a mapping; remove one of the two \
                 (YAML would otherwise keep only the last one silently)"
                    .into(),
            );
        }
        YamlError::InvalidScalar { ty, .. } => {
            d.message = format!("{subject} must be {}", scalar_kind(ty));
            if matches!(*ty, "u8" | "u16" | "u32" | "u64") {
                d.help = Some(number_help(&field));
            }
        }
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let choices = quoted_list(expected);
            d.message = format!("`{variant}` is not a valid `{field}`");
            d.help = Some(match suggest(variant, expected) {
                Some(s) => format!("did you mean `{s}`? `{field}` is one of {choices}"),
                None => format!("`{field}` is one of {choices}"),
            });
        }
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => {
            d.message = format!(
                "{subject} must be {}, not {}",
                human_expected(expected),
                human_unexpected(unexpected)
            );
        }
        YamlError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => {
            d.message = format!(
                "invalid `{field}`: {}; expected {}",
                human_unexpected(unexpected),
                human_expected(expected)
            );
        }
        YamlError::Unexpected { expected, .. } if *expected == "mapping end" => {
            // Only a one-key mapping (a secret reference) stops early.
            d.message = format!("unexpected key `{field}`: this mapping takes one key");
            d.help = Some(
                "a secret reference is either `{env: NAME}` or `{file: PATH}`, not both".into(),
            );
        }
        YamlError::Unexpected { expected, .. } => {
            d.message = format!("{subject} must be {}", human_expected(expected));
        }
        YamlError::NullIntoString { .. } => {
            d.message = format!("`{field}` is empty");
            d.help = Some(format!("give `{field}` a value, or remove the key"));
        }
        YamlError::Budget { breach, .. } => {
            use serde_saphyr::budget::BudgetBreach as B;
            let (m, h) = match breach {
                B::Depth { .. } => (
                    "the plan is nested too deeply (more than 64 levels)",
                    "a plan is at most 6 levels deep; check the brackets and indentation",
                ),
                B::Aliases { .. }
                | B::Anchors { .. }
                | B::AliasAnchorRatio { .. }
                | B::MergeKeys { .. } => (
                    "the plan uses too many YAML aliases or merge keys",
                    "write the repeated parts out, or split the plan",
                ),
                _ => (
                    "the plan is too large",
                    "split the migration into several plans",
                ),
            };
            d.message = m.into();
            d.help = Some(h.into());
        }
        YamlError::MultipleDocuments { .. } => {
            d.message = "the file holds more than one YAML document (`---`)".into();
            d.help = Some("a plan is one document: remove the second `---` and what follows, or split it into another file".into());
        }
        YamlError::Eof { .. } => {
            let blank = text
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
            d.message = if blank {
                "the plan is empty".into()
            } else {
                "the plan ends too early".into()
            };
            d.help = Some(missing_help("version"));
        }
        YamlError::Message { msg, .. } if msg == LITERAL_SECRET => {
            d.message = format!("`{field}`: {LITERAL_SECRET}");
            d.help = Some(secret_help(
                &field,
                &super::structure::env_hint(idx, &path, &field),
            ));
            d.len = here.len.max(1);
        }
        other => {
            let raw = strip_location(&other.to_string());
            if raw.contains("tab") {
                d.message = "a tab character is used for indentation".into();
                // The reader may notice the tab late (at the end of the
                // previous scalar): point at the tab itself.
                if let Some((l, c)) = find_indent_tab(text, line) {
                    d.line = l;
                    d.column = c;
                    d.len = 1;
                    d.path = idx.path_at(Pos { line: l, column: c }).0.to_string();
                }
                d.help = Some(
                    "YAML indentation must use spaces; replace the tab(s) on this line with spaces"
                        .into(),
                );
            } else if raw.contains("recursion limit") {
                d.message = "the plan is nested too deeply".into();
                d.help = Some("a plan is at most 6 levels deep; check the brackets".into());
            } else if raw.contains("did not find expected") && raw.contains("block") {
                d.message = "this line is not indented like the lines around it".into();
                d.help = Some(format!(
                    "align it with the other keys of its mapping (or the `-` of its list); the YAML reader says: {raw}"
                ));
            } else if is_syntax(other) {
                d.message = format!("YAML syntax error: {raw}");
                d.help = Some(
                    "check the indentation, colons and brackets on this line and the one before"
                        .into(),
                );
            } else if raw.starts_with("invalid duration") {
                d.message = format!("`{field}`: {raw}");
            } else {
                d.message = raw;
            }
        }
    }
    if d.message.is_empty() {
        d.message = strip_location(&e.to_string());
    }
    d
}

/// The first tab in the leading whitespace of `line` or the two after it:
/// (line, column), 1-based.
fn find_indent_tab(text: &str, line: usize) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .skip(line.saturating_sub(1))
        .take(3)
        .find_map(|(i, l)| {
            let lead: String = l.chars().take_while(|c| c.is_whitespace()).collect();
            lead.chars().position(|c| c == '\t').map(|c| (i + 1, c + 1))
        })
}

fn is_syntax(e: &YamlError) -> bool {
    matches!(
        e,
        YamlError::ExternalMessage { .. }
            | YamlError::UnexpectedSequenceEnd { .. }
            | YamlError::UnexpectedMappingEnd { .. }
            | YamlError::ContainerEndMismatch { .. }
            | YamlError::UnknownAnchor { .. }
    )
}

/// serde-saphyr appends ` at line N, column M`; we print positions ourselves.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains("column") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // `notify:` entries say `events:`, not `on:` (which YAML 1.1 tools read
    // as `true`); `on` is too short to be near `events` by spelling.
    if word == "on"
        && let Some(events) = candidates.iter().find(|c| **c == "events")
    {
        return Some(events);
    }
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

pub(crate) fn unknown_key(key: &str, expected: &[&str]) -> (String, String) {
    let allowed = quoted_list(expected);
    match suggest(key, expected) {
        Some(s) => (
            format!("unknown key `{key}`; did you mean `{s}`?"),
            format!("the keys allowed here are {allowed}"),
        ),
        None => (
            format!("unknown key `{key}`"),
            format!("the keys allowed here are {allowed}"),
        ),
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn scalar_kind(ty: &str) -> String {
    match ty {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" => "a whole number from 0 to 18446744073709551615".into(),
        "bool" => "`true` or `false`".into(),
        "string" | "str" => "text".into(),
        other => format!("a valid {other}"),
    }
}

fn number_help(field: &str) -> String {
    match field {
        "size" => "`size` is the account's size in bytes, e.g. `size: 1073741824` for 1 GiB".into(),
        "version" => "write `version: 1`".into(),
        "port" => "an SSH port, e.g. `port: 22`".into(),
        _ => format!("write `{field}` as a plain number without quotes or units"),
    }
}

fn human_expected(expected: &str) -> String {
    match expected {
        "string scalar" | "a string scalar" | "scalar" => {
            "a single value, not a list or mapping".into()
        }
        "mapping" | "mapping start" => "a mapping (`key: value` lines or `{key: value}`)".into(),
        "sequence" | "sequence start" => "a list (`- item` lines or `[a, b]`)".into(),
        "struct Plan" => {
            "a mapping with `version`, `target` and `sources` (see plans/ for examples)".into()
        }
        e if e.starts_with("struct ") => "a mapping (`key: value` lines)".into(),
        "a sequence" => "a list (`- item` lines or `[a, b]`)".into(),
        "a string" => "text".into(),
        "a boolean" => "`true` or `false`".into(),
        e if e.starts_with("enum ") => "one of its allowed words".into(),
        e => e.to_string(),
    }
}

fn human_unexpected(unexpected: &str) -> String {
    match unexpected {
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        "unit value" => "empty".into(),
        u => u.to_string(),
    }
}

pub(crate) fn missing_help(field: &str) -> String {
    match field {
        "version" => "plans start with `version: 1`".into(),
        "target" => "add the target server:\n  target:\n    url: https://whm.example.net:2087\n    token: {env: WHM_TOKEN}".into(),
        "url" => "add the target's WHM URL, e.g. `url: https://whm.example.net:2087`".into(),
        "token" => "add the WHM API token as a reference, e.g. `token: {env: WHM_TOKEN}`".into(),
        "sources" => "add the servers to move from:\n  sources:\n    - name: old1\n      host: old1.example.com\n      ssh: {password: {env: OLD1_ROOT_PASSWORD}}\n      accounts: [example]".into(),
        "name" => "give the source a short unique name, e.g. `name: old1`".into(),
        "host" => "add the source's host name or IP address, e.g. `host: old1.example.com`".into(),
        "ssh" => "add how the target logs in to the source, e.g. `ssh: {password: {env: OLD1_ROOT_PASSWORD}}`".into(),
        "accounts" => "list the accounts to move, e.g. `accounts: [example, shop]`".into(),
        "user" => "name the account on the source, e.g. `user: shop`".into(),
        other => format!("add `{other}`"),
    }
}

/// How to write a secret reference for `field`, suggesting variable `var`.
pub(crate) fn secret_help(field: &str, var: &str) -> String {
    format!(
        "write `{field}: {{env: {var}}}` and export {var} before running ferry, \
         or `{field}: {{file: secrets/{field}}}` (a file relative to the plan, mode 600)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(
            suggest("acounts", &["name", "host", "accounts"]),
            Some("accounts")
        );
        assert_eq!(suggest("zzz", &["name", "host", "accounts"]), None);
    }

    #[test]
    fn strip_location_removes_the_readers_suffix() {
        assert_eq!(strip_location("bad thing at line 3, column 4"), "bad thing");
        assert_eq!(strip_location("no position"), "no position");
    }
}
