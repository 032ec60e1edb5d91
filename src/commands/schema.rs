//! `driver-matrix schema`: the JSON Schema of matrix.toml.

use crate::error::Result;

pub fn run() -> Result<i32> {
    print!("{}", crate::matrix::schema_text());
    Ok(0)
}
