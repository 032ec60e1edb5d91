//! How final output is written, one way for each thing: text is built in a `String` with
//! [`append!`] and [`appendln!`] (then printed once by the command), and every table, aligned for
//! a terminal or in GitHub's markdown, is a [`Table`].
//!
//! Writing into a `String` cannot fail, so the macros take the `fmt::Result` away in one place
//! instead of an `expect` or a `let _ =` at each line.

use std::fmt::Write as _;

/// `write!` into a `String`: `append!(out, "{x} ")`.
macro_rules! append {
    ($out:expr, $($arg:tt)*) => {{
        use $crate::render::Append as _;
        $out.append_fmt(::std::format_args!($($arg)*))
    }};
}

/// `writeln!` into a `String`: `appendln!(out, "{x}")`, or `appendln!(out)` for an empty line.
macro_rules! appendln {
    ($out:expr) => {
        $crate::render::append!($out, "\n")
    };
    ($out:expr, $($arg:tt)*) => {{
        $crate::render::append!($out, $($arg)*);
        $crate::render::append!($out, "\n");
    }};
}

pub(crate) use {append, appendln};

/// What the macros call, on a `String` or a `&mut String` alike.
pub trait Append {
    fn append_fmt(&mut self, text: std::fmt::Arguments<'_>);
}

impl Append for String {
    fn append_fmt(&mut self, text: std::fmt::Arguments<'_>) {
        self.write_fmt(text)
            .expect("writing to a String cannot fail");
    }
}

/// A header and rows of cells, every row as long as the header.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; its cells are written as given (escaping them is the caller's).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let row: Vec<String> = cells.into_iter().map(Into::into).collect();
        debug_assert_eq!(row.len(), self.header.len(), "a row as long as the header");
        self.rows.push(row);
    }

    /// Whether it has no row (the header aside).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// For a terminal: the header, then a line per row, each column padded to its widest cell
    /// (in characters) and two spaces apart, no line ending in a space.
    pub fn aligned(&self) -> String {
        let mut widths = vec![0; self.header.len()];
        for row in self.lines() {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in self.lines() {
            let mut line = String::new();
            for (cell, w) in row.iter().zip(&widths) {
                append!(line, "{cell:<w$}  ");
            }
            appendln!(out, "{}", line.trim_end());
        }
        out
    }

    /// For a pull request: GitHub's markdown table, `| a | b |` lines under the `|---|` one.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let mut lines = self.lines();
        if let Some(header) = lines.next() {
            appendln!(out, "| {} |", header.join(" | "));
        }
        appendln!(out, "|{}", "---|".repeat(self.header.len()));
        for row in lines {
            appendln!(out, "| {} |", row.join(" | "));
        }
        out
    }

    fn lines(&self) -> impl Iterator<Item = &Vec<String>> {
        std::iter::once(&self.header).chain(&self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(&["NAME", "KERNEL", "NOTE"]);
        t.row(["hello-kmod", "5.14.0", ""]);
        t.row(["é", "6.12.0-55.el10", "last"]);
        t
    }

    #[test]
    fn aligned_pads_every_column_to_its_widest_cell_in_characters() {
        assert_eq!(
            table().aligned(),
            "NAME        KERNEL          NOTE\nhello-kmod  5.14.0\né           6.12.0-55.el10  last\n"
        );
    }

    #[test]
    fn markdown_is_one_line_per_row_under_the_rule() {
        assert_eq!(
            table().markdown(),
            "| NAME | KERNEL | NOTE |\n|---|---|---|\n| hello-kmod | 5.14.0 |  |\n| é | 6.12.0-55.el10 | last |\n"
        );
    }

    #[test]
    fn the_macros_append_text_and_lines() {
        let mut out = String::new();
        append!(out, "{}-", 1);
        appendln!(out, "{}", 2);
        appendln!(out);
        let by_ref = &mut out;
        appendln!(by_ref, "end");
        assert_eq!(out, "1-2\n\nend\n");
    }
}
