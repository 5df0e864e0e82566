//! Text from a server is data: escaping it before it reaches a terminal or
//! a text log.
//!
//! Owns: the one rule for showing untrusted text (a WHM `reason`, a
//! `master.log` line, a state name, anything a source or the target said)
//! to a person. A compromised or buggy server must not be able to move the
//! cursor, clear the screen, retitle the window or hide a line by sending
//! ESC, CR, BS, BEL, NUL, DEL or a C1 control (U+0080–U+009F, among them
//! the one-byte CSI U+009B). Each such character is shown as an escape —
//! `\x1b`, `\r`, `\0`, `\t`, `\x7f`, `\u{9b}` — and everything else is kept,
//! so the text stays readable and greppable.
//!
//! Does not own: JSON output (serde escapes control characters already, so
//! `--output json` carries the server's text exactly), HTML (the report
//! escapes for HTML), or the journal (which keeps what the server said).
//!
//! Both functions are idempotent (an escape is made of printable
//! characters) and borrow when there is nothing to escape.

use std::borrow::Cow;
use std::fmt::Write;

/// One value shown on one line (a reason, a message, a state): every
/// control character is escaped, the line feed included, so a server
/// cannot forge a line of ferry's output.
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// The width of a table column of such values as shown (escaped, counted
/// in characters), at least `min` and at most `max`.
pub fn column_width<'a>(cells: impl IntoIterator<Item = &'a str>, min: usize, max: usize) -> usize {
    cells
        .into_iter()
        .map(|c| line(c).chars().count())
        .max()
        .unwrap_or(min)
        .clamp(min, max)
}

/// Text that may legitimately span lines (ferry's own messages with a
/// server's words inside): like [`line`], but a line feed is kept.
pub fn text(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

fn escape(s: &str, keep_newline: bool) -> Cow<'_, str> {
    let bad = |c: char| c.is_control() && !(keep_newline && c == '\n');
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !bad(c) {
            out.push(c);
            continue;
        }
        match c {
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_as_escapes() {
        let hostile = "ok\x1b[2J\rgone\0\x07\u{9b}31m\x7f\tend\nnext";
        let l = line(hostile);
        assert_eq!(l, "ok\\x1b[2J\\rgone\\0\\x07\\u{9b}31m\\x7f\\tend\\nnext");
        assert!(!l.chars().any(char::is_control), "{l}");
        let t = text(hostile);
        assert!(t.ends_with("end\nnext"), "{t}");
        assert_eq!(t.chars().filter(|c| c.is_control()).count(), 1);
        // Idempotent, and borrowed when clean.
        assert_eq!(line(&l), l);
        assert!(matches!(line("plain – ünïcode ✓"), Cow::Borrowed(_)));
    }
}
