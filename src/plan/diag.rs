//! Diagnostics: what is wrong with a plan, where, and how to fix it.
//!
//! Owns: the [`Diagnostic`] record (file, 1-based line and column, message,
//! help, document path), the [`Diagnostics`] collection that keeps the source
//! text for snippets, and the two renderings: human (miette, with a source
//! snippet) and JSON (`{file,line,column,message,path,help}`, for
//! `ferry validate --output json`). Does not own: printing (`cli` prints the
//! strings made here) or deciding what is wrong (`parse`, `rules`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};
use serde::Serialize;

/// One problem in a plan file.
///
/// `line` and `column` are 1-based; the column counts characters (not bytes),
/// as editors do. `path` is the node's place in the document, such as
/// `sources[1].accounts[3].package` (empty for the whole document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub path: String,
    /// How to fix it; `null` in JSON when there is nothing to add.
    pub help: Option<String>,
    /// Length in characters of the offending text (for the snippet's
    /// underline); 0 when unknown. Not part of the JSON form.
    #[serde(skip)]
    pub len: usize,
}

impl fmt::Display for Diagnostic {
    /// `file:line:column: message` (and the help on a second line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in one or more plan files, in file then line order,
/// with the files' text kept for rendering snippets.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    /// File name → its text (only files that were valid UTF-8).
    sources: BTreeMap<String, Arc<str>>,
    /// File name → spans (line, column, length in chars) to mask with `*`
    /// in snippets: secret values written in the plan, which must not be
    /// copied into terminals and CI logs.
    masks: BTreeMap<String, Vec<(usize, usize, usize)>>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Diagnostics::default()
    }

    /// Remembers a file's text so that its diagnostics render with snippets.
    pub fn add_source(&mut self, file: &str, text: &str) {
        self.sources
            .entry(file.to_string())
            .or_insert_with(|| Arc::from(text));
    }

    /// Masks `len` characters from (`line`, `column`) of `file` in snippets.
    pub fn mask(&mut self, file: &str, line: usize, column: usize, len: usize) {
        self.masks
            .entry(file.to_string())
            .or_default()
            .push((line, column, len));
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Appends another collection (e.g. the problems of the next file).
    pub fn extend(&mut self, other: Diagnostics) {
        for (k, v) in other.sources {
            self.sources.entry(k).or_insert(v);
        }
        for (k, v) in other.masks {
            self.masks.entry(k).or_default().extend(v);
        }
        self.items.extend(other.items);
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Sorts by file, line, column, then message, and drops exact repeats,
    /// so the output is stable whatever order the rules ran in.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            (&a.file, a.line, a.column, &a.message).cmp(&(&b.file, b.line, b.column, &b.message))
        });
        self.items.dedup();
    }

    /// The diagnostics as a JSON array of `{file,line,column,message,path,help}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.items).expect("diagnostics serialize")
    }

    /// Human rendering: one miette report per problem, with a snippet of the
    /// file around the offending node, then a summary line.
    pub fn render_human(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_context_lines(2);
        let mut out = String::new();
        let masked: BTreeMap<&str, Arc<str>> = self
            .sources
            .iter()
            .map(|(f, t)| {
                let t = yaml_lines(t);
                let t = match self.masks.get(f) {
                    Some(m) if !m.is_empty() => mask_text(&t, m),
                    _ => t,
                };
                (f.as_str(), Arc::from(t))
            })
            .collect();
        for d in &self.items {
            match masked.get(d.file.as_str()) {
                Some(text) => {
                    let report = to_miette(d, text);
                    if handler.render_report(&mut out, report.as_ref()).is_err() {
                        out.push_str(&format!("{d}\n"));
                    }
                }
                None => out.push_str(&format!("  × {d}\n")),
            }
            out.push('\n');
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// `2 problems in plans/a.yaml, 1 problem in plans/b.yaml`.
    pub fn summary(&self) -> String {
        let mut per_file: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &self.items {
            *per_file.entry(&d.file).or_default() += 1;
        }
        let parts: Vec<String> = per_file
            .iter()
            .map(|(f, n)| format!("{n} problem{} in {f}", if *n == 1 { "" } else { "s" }))
            .collect();
        format!("error: {}", parts.join(", "))
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// `text` with the characters of each (line, column, len) span replaced by
/// `*` (line breaks kept), so positions in characters do not move.
fn mask_text(text: &str, spans: &[(usize, usize, usize)]) -> String {
    let starts: std::collections::HashMap<(usize, usize), usize> =
        spans.iter().map(|&(l, c, len)| ((l, c), len)).collect();
    let mut out = String::with_capacity(text.len());
    let (mut line, mut col) = (1usize, 1usize);
    let mut active: usize = 0; // characters left to mask
    for c in text.chars() {
        if let Some(&len) = starts.get(&(line, col)) {
            active = active.max(len);
        }
        if c == '\n' {
            out.push(c);
            line += 1;
            col = 1;
            active = active.saturating_sub(1);
            continue;
        }
        if active > 0 {
            out.push('*');
            active -= 1;
        } else {
            out.push(c);
        }
        col += 1;
    }
    out
}

/// `text` with each lone `\r` (a line break in YAML, not in miette) turned
/// into `\n`: same length, so offsets hold, and lines count alike.
fn yaml_lines(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if c == '\r' && b.get(i + 1) != Some(&b'\n') {
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out
}

/// Byte offset of 1-based (`line`, `column`), the column counted in chars.
/// Clamped to the text, so a position past the end lands on the last byte.
/// Lines end at `\n` (a `\r` before it is part of the break); call it on
/// text passed through [`yaml_lines`] when lone `\r`s may occur.
pub fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col = column.saturating_sub(1);
            let within = l
                .char_indices()
                .nth(col)
                .map(|(b, _)| b)
                .unwrap_or_else(|| l.trim_end_matches(['\n', '\r']).len());
            return offset + within;
        }
        offset += l.len();
    }
    text.len()
}

fn to_miette(d: &Diagnostic, text: &Arc<str>) -> miette::Report {
    let start = byte_offset(text, d.line, d.column);
    // Underline `len` characters, stopping at the end of the line.
    let rest = &text[start..];
    let line_end = rest.find('\n').unwrap_or(rest.len());
    let len_bytes = rest[..line_end]
        .char_indices()
        .nth(d.len.max(1))
        .map(|(b, _)| b)
        .unwrap_or(line_end);
    let label = if d.path.is_empty() {
        "here".to_string()
    } else {
        d.path.clone()
    };
    let mut md = MietteDiagnostic::new(d.message.clone()).with_label(LabeledSpan::new(
        Some(label),
        start,
        len_bytes,
    ));
    if let Some(h) = &d.help {
        md = md.with_help(h.clone());
    }
    miette::Report::new(md).with_source_code(NamedSource::new(&d.file, text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_offset_counts_chars_and_clamps() {
        let t = "ab\nçd: x\n";
        assert_eq!(byte_offset(t, 1, 1), 0);
        assert_eq!(byte_offset(t, 2, 1), 3);
        assert_eq!(byte_offset(t, 2, 2), 5); // after the 2-byte 'ç'
        assert_eq!(byte_offset(t, 2, 99), 9); // end of line 2
        assert_eq!(byte_offset(t, 9, 1), t.len());
    }

    #[test]
    fn masks_keep_positions() {
        let t = "a: 1\ntoken: hunter2\nb: ç\n";
        assert_eq!(mask_text(t, &[(2, 8, 7)]), "a: 1\ntoken: *******\nb: ç\n");
    }

    #[test]
    fn json_has_the_contract_keys() {
        let mut ds = Diagnostics::new();
        ds.push(Diagnostic {
            file: "p.yaml".into(),
            line: 3,
            column: 5,
            message: "m".into(),
            path: "sources[0]".into(),
            help: None,
            len: 2,
        });
        let v: serde_json::Value = serde_json::from_str(&ds.to_json()).unwrap();
        let o = v[0].as_object().unwrap();
        let mut keys: Vec<_> = o.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["column", "file", "help", "line", "message", "path"]);
    }
}
