//! The `driver-matrix` binary: parse arguments, run, render any error, exit with the contract's
//! code.

use std::io::IsTerminal;

use driver_matrix::cli::ColorChoice;
use driver_matrix::exit::ExitCode;

#[allow(clippy::print_stderr)] // the one place an error is rendered
fn main() {
    let cli = match driver_matrix::cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Ok
            };
            let _ = e.print();
            std::process::exit(code.code());
        }
    };
    let color = match cli.global.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stderr().is_terminal()
        }
    };
    miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(color)
                .terminal_links(false)
                // Wrap at spaces only: a kernel (`5.14.0-427.40.1.el9_4.x86_64`), a digest or a
                // reference stays whole on its line, so a search of a CI log finds it.
                .word_separator(textwrap::WordSeparator::AsciiSpace)
                .word_splitter(textwrap::WordSplitter::NoHyphenation)
                .break_words(false)
                .build(),
        )
    }))
    .expect("the hook is set once, before any report");
    let code = match driver_matrix::commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            eprintln!(
                "{:?}",
                miette::Report::new(driver_matrix::text::Escaped::new(e))
            );
            code
        }
    };
    std::process::exit(code.code());
}
