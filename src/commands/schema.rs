//! `driver-matrix schema`: the JSON Schema of matrix.toml.

use crate::error::Result;
use crate::exit::ExitCode;

pub fn run() -> Result<ExitCode> {
    print!("{}", crate::matrix::schema_text());
    Ok(ExitCode::Ok)
}
