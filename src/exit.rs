//! Exit codes of the public contract: a leaf module, so that every layer can name its codes
//! without depending on the crate's top-level error.

pub const OK: i32 = 0;
/// A build or verification failed.
pub const FAILED: i32 = 1;
/// Usage or matrix error.
pub const USAGE: i32 = 2;
/// The lock is out of date under `--locked`.
pub const LOCKED: i32 = 3;
/// A registry, network or authentication failure.
pub const REGISTRY: i32 = 4;
/// Interrupted (Ctrl-C).
pub const INTERRUPTED: i32 = 130;
