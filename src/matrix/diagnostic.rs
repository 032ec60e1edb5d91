//! Matrix problems as miette diagnostics that point into the file.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity};

/// One problem in the matrix file, with the places it concerns.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Problem {
    pub message: String,
    pub labels: Vec<LabeledSpan>,
    pub help: Option<String>,
    pub severity: Severity,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            labels: Vec::new(),
            help: None,
            severity: Severity::Error,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::new(message)
        }
    }

    pub fn label(mut self, span: impl Into<Range<usize>>, text: impl Into<String>) -> Self {
        let span = span.into();
        self.labels.push(LabeledSpan::new(
            Some(text.into()),
            span.start,
            span.end.saturating_sub(span.start),
        ));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets `help` only if the problem has none yet.
    pub fn help_opt(mut self, help: Option<String>) -> Self {
        if self.help.is_none() {
            self.help = help;
        }
        self
    }

    /// The first byte offset it points at, to report problems in file order.
    pub fn offset(&self) -> usize {
        self.labels.first().map_or(0, |l| l.offset())
    }
}

impl Diagnostic for Problem {
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

/// Every problem found in a matrix file, reported together.
#[derive(Debug, thiserror::Error)]
#[error("{}", summary(.path, .problems))]
pub struct MatrixError {
    pub path: PathBuf,
    pub source_code: Arc<NamedSource<String>>,
    pub problems: Vec<Problem>,
}

fn summary(path: &std::path::Path, problems: &[Problem]) -> String {
    match problems.len() {
        1 => format!(
            "`{}` has a problem: {}",
            path.display(),
            problems[0].message
        ),
        n => format!("`{}` has {n} problems", path.display()),
    }
}

impl Diagnostic for MatrixError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new("driver_matrix::matrix"))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&*self.source_code)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        match self.problems.as_slice() {
            [one] => one
                .help
                .as_ref()
                .map(|h| Box::new(h) as Box<dyn std::fmt::Display>),
            _ => None,
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        match self.problems.as_slice() {
            [one] => Diagnostic::labels(one),
            _ => None,
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        match self.problems.len() {
            1 => None,
            _ => Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic))),
        }
    }
}
