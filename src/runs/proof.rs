//! What proves that a process is a killed run's: a marker that only the processes that run
//! started carry in their environment, and a record that only this user can have written.
//!
//! Every buildah a run starts gets the run's marker, `dm-<pid>-<start>-<token>.invalid` (the
//! token is 128 random bits drawn when the run starts and kept in its record), twice: as
//! `DRIVER_MATRIX_RUN`, and as one more entry of `no_proxy`, the one variable buildah passes on
//! to the processes of a `RUN` step (a host under `.invalid` never exists, so the entry changes
//! nothing a proxy does). A process is signalled only when its `/proc/PID/environ` holds the
//! marker of the dead run whose record named it; one whose environment cannot be read or lacks
//! the marker is never signalled, whatever a record says.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::RunId;
use crate::data_file::open_regular;

/// The variable that carries the marker into buildah.
pub const VAR: &str = "DRIVER_MATRIX_RUN";

/// The variable buildah passes on to a `RUN` step's processes.
pub const NO_PROXY: &str = "no_proxy";

/// The most of a record that is read: a record bigger than this is not one this tool wrote.
const RECORD_MAX: u64 = 1 << 20;

/// The most of a process's environment that is read.
const ENVIRON_MAX: u64 = 4 << 20;

/// A run's token: 32 lowercase hex digits from the kernel's random source.
pub fn new_token() -> Option<String> {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer it is given.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    (usize::try_from(n).ok() == Some(bytes.len())).then(|| hex::encode(bytes))
}

/// Whether `token` has the shape [`new_token`] gives.
pub fn is_token(token: &str) -> bool {
    token.len() == 32 && crate::domain::is_lower_hex(token)
}

/// The marker of `run` with `token`.
pub fn marker(run: RunId, token: &str) -> String {
    format!("dm-{}-{}-{token}.invalid", run.pid, run.start)
}

/// `no_proxy` for a buildah of this run: the one it would have had, plus `marker`; `None`
/// when the marker must not be added (`*`, which means every host only when it stands alone).
pub fn no_proxy_with(marker: &str) -> Option<String> {
    let base = std::env::var("no_proxy")
        .ok()
        .or_else(|| std::env::var("NO_PROXY").ok())
        .unwrap_or_default();
    match base.trim() {
        "" => Some(marker.to_string()),
        "*" => None,
        b => Some(format!("{b},{marker}")),
    }
}

/// Equality that takes as long whatever the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an environment block (`KEY=value\0...`) carries `marker`, as [`VAR`] or as an
/// entry of `no_proxy` / `NO_PROXY`.
pub fn carries(environ: &[u8], marker: &str) -> bool {
    let marker = marker.as_bytes();
    let mut found = false;
    for var in environ.split(|&b| b == 0) {
        let Some(eq) = var.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (key, value) = (&var[..eq], &var[eq + 1..]);
        if key == VAR.as_bytes() {
            found |= same(value, marker);
        } else if key.eq_ignore_ascii_case(NO_PROXY.as_bytes()) {
            for entry in value.split(|&b| b == b',') {
                found |= same(entry.trim_ascii(), marker);
            }
        }
    }
    found
}

/// A process, held by a pidfd so that a signal can never reach another process that got its
/// id.
pub struct Process {
    pub pid: i32,
    fd: OwnedFd,
}

impl Process {
    pub fn open(pid: i32) -> Option<Process> {
        // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
        // SAFETY: the descriptor was just created and is owned by nothing else.
        Some(Process {
            pid,
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Whether this process carries `marker`. Read after the pidfd was opened: if the id was
    /// taken by another process since, the signal below goes to the one the pidfd holds (which
    /// is gone) and reaches nobody.
    pub fn carries(&self, marker: &str) -> bool {
        let Ok(file) = File::open(format!("/proc/{}/environ", self.pid)) else {
            return false;
        };
        let mut environ = Vec::new();
        if file.take(ENVIRON_MAX).read_to_end(&mut environ).is_err() {
            return false;
        }
        carries(&environ, marker)
    }

    /// Sends `sig` to this process (never to another that got its id).
    pub fn signal(&self, sig: i32) -> bool {
        // SAFETY: pidfd_send_signal takes a descriptor we own, a signal number and no info.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        r == 0
    }
}

/// This process's effective user.
pub fn me() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Whether `dir` is a directory (not a link to one) of this user.
pub fn is_own_dir(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == me())
}

/// What is at a record's path.
pub enum Opened {
    /// A regular file of this user, read whole (within [`RECORD_MAX`]).
    Ours(String),
    /// A regular file of this user that is no record (too big, not text): to be removed.
    Garbage,
    /// Anything else (another user's file, a FIFO, a link, a directory): never read, never
    /// removed.
    NotOurs,
}

/// Opens a record without following a link or blocking on a FIFO, and reads it only if it is
/// a regular file of this user.
pub fn open_record(path: &Path) -> Opened {
    let Ok((file, meta)) = open_regular(path, std::fs::OpenOptions::new().read(true)) else {
        return Opened::NotOurs;
    };
    if meta.uid() != me() {
        return Opened::NotOurs;
    }
    if meta.len() > RECORD_MAX {
        return Opened::Garbage;
    }
    let mut text = String::new();
    match file.take(RECORD_MAX).read_to_string(&mut text) {
        Ok(_) => Opened::Ours(text),
        Err(_) => Opened::Garbage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_found_only_whole() {
        let run = RunId { pid: 42, start: 7 };
        let token = new_token().unwrap();
        assert!(is_token(&token));
        let m = marker(run, &token);
        let env = |s: &str| s.replace(';', "\0").into_bytes();
        assert!(carries(&env(&format!("A=1;{VAR}={m};B=2")), &m));
        assert!(carries(&env(&format!("no_proxy=a.example, {m};X=1")), &m));
        assert!(carries(&env(&format!("NO_PROXY={m}")), &m));
        assert!(!carries(&env(&format!("{VAR}={m}x")), &m));
        assert!(!carries(&env(&format!("no_proxy={m}.example")), &m));
        assert!(!carries(&env(&format!("OTHER={m}")), &m));
        let other = marker(RunId { pid: 43, start: 7 }, &token);
        assert!(!carries(&env(&format!("{VAR}={other}")), &m));
        assert!(!is_token("ABCDEF0123456789abcdef0123456789"));
        assert!(!is_token("abc"));
    }
}
