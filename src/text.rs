//! Text from outside (registry messages, tar paths, image labels, a module's `vermagic`, log
//! lines of a build) made safe to print on a terminal: control characters are shown as escapes
//! (`\x1b`, `\u{9b}`) instead of being interpreted, so nothing read from a registry can move
//! the cursor, rewrite a line, set the window title or hide text.
//!
//! Only human output goes through here; JSON output is escaped by serde.

use std::borrow::Cow;
use std::fmt::{self, Display};

use miette::{Diagnostic, LabeledSpan, Severity, SourceCode};

use crate::render::append;

/// Whether `c` must not reach a terminal as is: C0 controls, DEL and C1 controls.
fn is_control(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}')
}

fn escape_with(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_control(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_control(c) || keep(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            append!(out, "\\x{:02x}", c as u32);
        } else {
            append!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// Text of several lines: newlines and tabs stay, every other control character is escaped.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| c == '\n' || c == '\t')
}

/// One field of a line (a path, a label, a `vermagic`): every control character is escaped,
/// newlines and tabs too, so a value cannot start a line of its own.
pub fn escape_line(s: &str) -> Cow<'_, str> {
    escape_with(s, |_| false)
}

/// JSON text with the characters serde_json leaves raw inside strings (DEL, the C1 controls,
/// U+2028 and U+2029) written as `\u` escapes: the same value to every JSON reader, and nothing
/// a terminal or a JavaScript reader acts on. JSON's structure is ASCII, so these can only be
/// inside strings.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    let raw = |c: char| matches!(c, '\x7f'..='\u{9f}' | '\u{2028}' | '\u{2029}');
    if !json.chars().any(raw) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if raw(c) {
            append!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An error in a causal chain, its message already escaped.
#[derive(Debug)]
struct Cause {
    message: String,
    next: Option<Box<Cause>>,
}

impl Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.next.as_deref().map(|c| c as _)
    }
}

fn chain(e: Option<&dyn std::error::Error>) -> Option<Box<Cause>> {
    let e = e?;
    Some(Box::new(Cause {
        message: escape(&e.to_string()).into_owned(),
        next: chain(e.source()),
    }))
}

/// A diagnostic whose every text (message, help, labels, causes, related problems) is escaped
/// with [`escape`]; the source code it points into is the original's. Render errors through
/// this, never the original, where the text may hold registry data.
pub struct Escaped {
    /// The original, kept for its source code (related diagnostics have none of their own).
    inner: Option<Box<dyn Diagnostic + Send + Sync>>,
    message: String,
    code: Option<String>,
    severity: Option<Severity>,
    help: Option<String>,
    url: Option<String>,
    labels: Vec<LabeledSpan>,
    cause: Option<Box<Cause>>,
    diagnostic_source: Option<Box<Escaped>>,
    related: Vec<Escaped>,
}

impl Escaped {
    pub fn new<E: Diagnostic + Send + Sync + 'static>(e: E) -> Self {
        let mut escaped = Self::snapshot(&e);
        escaped.inner = Some(Box::new(e));
        escaped
    }

    fn snapshot(d: &dyn Diagnostic) -> Self {
        let text = |t: Box<dyn Display + '_>| escape(&t.to_string()).into_owned();
        let labels = d.labels().map_or_else(Vec::new, |it| {
            it.map(|l| {
                let label = l.label().map(|t| escape(t).into_owned());
                if l.primary() {
                    LabeledSpan::new_primary_with_span(label, *l.inner())
                } else {
                    LabeledSpan::new_with_span(label, *l.inner())
                }
            })
            .collect()
        });
        Escaped {
            inner: None,
            message: escape(&d.to_string()).into_owned(),
            code: d.code().map(text),
            severity: d.severity(),
            help: d.help().map(text),
            url: d.url().map(text),
            labels,
            cause: chain(d.source()),
            diagnostic_source: d.diagnostic_source().map(|s| Box::new(Self::snapshot(s))),
            related: d
                .related()
                .map_or_else(Vec::new, |it| it.map(Self::snapshot).collect()),
        }
    }
}

impl fmt::Debug for Escaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Display for Escaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Escaped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as _)
    }
}

fn boxed(s: &Option<String>) -> Option<Box<dyn Display + '_>> {
    s.as_ref().map(|s| Box::new(s) as Box<dyn Display>)
}

impl Diagnostic for Escaped {
    fn code<'a>(&'a self) -> Option<Box<dyn Display + 'a>> {
        boxed(&self.code)
    }

    fn severity(&self) -> Option<Severity> {
        self.severity
    }

    fn help<'a>(&'a self) -> Option<Box<dyn Display + 'a>> {
        boxed(&self.help)
    }

    fn url<'a>(&'a self) -> Option<Box<dyn Display + 'a>> {
        boxed(&self.url)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.inner.as_ref().and_then(|e| e.source_code())
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(self.related.iter().map(|r| r as &dyn Diagnostic)))
        }
    }

    fn diagnostic_source(&self) -> Option<&dyn Diagnostic> {
        self.diagnostic_source.as_deref().map(|d| d as _)
    }
}

/// `error: cause: cause`, on one line: an error with every source it carries.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource};

    #[test]
    fn controls_are_escaped_and_text_is_kept() {
        assert_eq!(escape("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
        assert!(matches!(escape("a\nb\tc"), Cow::Borrowed(_)));
        assert_eq!(
            escape("\x1b[2J\x1b]0;pwned\x07x"),
            r"\x1b[2J\x1b]0;pwned\x07x"
        );
        assert_eq!(escape("a\rb\x7f\u{9b}31m"), r"a\x0db\x7f\u{9b}31m");
        assert_eq!(escape_line("a\nb\tc"), r"a\x0ab\x09c");
    }

    #[test]
    fn json_keeps_its_value_and_loses_its_raw_controls() {
        let v = serde_json::json!({ "k": "a\x1b\x7f\u{85}\u{9b}\u{2028}\u{2029}é\n" });
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.contains('\u{9b}'), "serde_json leaves C1 raw: {text}");
        let out = escape_json(&text);
        assert!(
            !out.chars()
                .any(|c| is_control(c) || c == '\u{2028}' || c == '\u{2029}'),
            "{out}"
        );
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, v);
        assert!(matches!(escape_json("{\"a\": \"é\"}"), Cow::Borrowed(_)));
    }

    #[derive(Debug, thiserror::Error, Diagnostic)]
    #[error("registry says \x1b[31mred\x1b[0m")]
    #[diagnostic(help("try \x1b]0;title\x07"))]
    struct Hostile {
        #[source_code]
        src: NamedSource<String>,
        #[label("here \x1b[8mhidden")]
        at: miette::SourceSpan,
        #[source]
        cause: std::io::Error,
    }

    fn render(d: &dyn Diagnostic) -> String {
        let mut out = String::new();
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, d)
            .unwrap();
        out
    }

    #[test]
    fn a_rendered_error_holds_no_escape_character() {
        let hostile = || Hostile {
            src: NamedSource::new("m.toml", "key = \"value\"\n".to_string()),
            at: (0, 3).into(),
            cause: std::io::Error::other("body: \x1b[2Jcleared"),
        };
        assert!(
            render(&hostile()).contains('\x1b'),
            "the fixture is hostile"
        );
        let out = render(&Escaped::new(hostile()));
        assert!(!out.contains('\x1b'), "{out}");
        for text in [
            r"\x1b[31mred",
            r"\x1b]0;title\x07",
            r"\x1b[8mhidden",
            r"\x1b[2Jcleared",
            "key = \"value\"",
        ] {
            assert!(out.contains(text), "{text} missing from {out}");
        }
    }
}
