//! Text a plugin (or the upstream behind it) chose, made safe for a log line or a page: control
//! characters are escaped where guest data enters the host, so a `\n` in an upstream's
//! `error_description` cannot write a forged log line and an ANSI sequence cannot repaint a
//! terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a log line as is: C0/C1 controls (newline, carriage return, tab,
/// escape, ...), DEL, the Unicode line and paragraph separators, and the bidirectional
/// overrides and isolates that make a line read other than it is.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character written as an escape (`\n`, `\r`, `\t`, `\u{1b}`), so it
/// stays on one line and reads as what it is; borrowed when there is nothing to escape.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for an owned string, reusing it when there is nothing to escape.
pub(crate) fn escape_owned(text: String) -> String {
    match escape(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => escaped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        let cases = [
            ("plain text, ünïcode ✓", "plain text, ünïcode ✓"),
            (
                "denied\n2026-01-01T00:00:00Z  INFO portcullis: admin logged in",
                "denied\\n2026-01-01T00:00:00Z  INFO portcullis: admin logged in",
            ),
            ("a\rb\tc", "a\\rb\\tc"),
            ("\u{1b}[31mred\u{1b}[0m", "\\u{1b}[31mred\\u{1b}[0m"),
            ("x\u{0}y\u{7f}z\u{85}", "x\\u{0}y\\u{7f}z\\u{85}"),
            ("line\u{2028}sep \u{202e}desrever", "line\\u{2028}sep \\u{202e}desrever"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
            assert_eq!(escape_owned(input.to_string()), want, "{input:?}");
        }
        assert!(matches!(escape("nothing to do"), Cow::Borrowed(_)));
    }
}
