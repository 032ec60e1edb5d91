//! Exit codes of the public contract: one enum, a leaf module. Commands return one; an error is
//! mapped to one only in `error.rs`; `main.rs` turns it into the process's status.

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    /// A build or verification failed.
    Failed = 1,
    /// Usage or matrix error.
    Usage = 2,
    /// The lock is out of date under `--locked`.
    Locked = 3,
    /// A registry, network or authentication failure.
    Registry = 4,
    /// Interrupted (Ctrl-C).
    Interrupted = 130,
}

impl ExitCode {
    /// The process's exit status.
    pub fn code(self) -> i32 {
        self as i32
    }
}

#[cfg(test)]
mod tests {
    use super::ExitCode;

    #[test]
    fn the_codes_are_the_contracts() {
        let codes = [
            ExitCode::Ok,
            ExitCode::Failed,
            ExitCode::Usage,
            ExitCode::Locked,
            ExitCode::Registry,
            ExitCode::Interrupted,
        ]
        .map(ExitCode::code);
        assert_eq!(codes, [0, 1, 2, 3, 4, 130]);
    }
}
