//! The one writer of a lockfile. Every command that writes `matrix.lock` (`resolve`, `build`,
//! `collect`) holds an advisory lock (flock) on the sidecar `matrix.lock.lock` for its whole
//! read-modify-write: it takes the lock *before* reading the lockfile, so nothing another writer
//! recorded meanwhile can be lost. The lockfile itself is replaced by rename on every write, so a
//! lock on it would be a lock on a file that no longer exists.
//!
//! The holder writes who it is (process id and command) into the sidecar, so that a second
//! writer can say whom it waits for.
//!
//! The sidecar's path comes from the matrix directory, which contributors write: it is opened
//! without following a link (`O_NOFOLLOW`) and without blocking on a FIFO, and must be a regular
//! file with no other name, so that truncating the note never reaches another file.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::data_file::{Refused, open_regular};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum WriterError {
    #[error("cannot lock `{path}`")]
    #[diagnostic(
        code(driver_matrix::lock::guard),
        help("the directory of the lockfile must be writable")
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the writer's lock `{path}` is {what}")]
    #[diagnostic(
        code(driver_matrix::lock::guard_not_a_file),
        help(
            "driver-matrix makes this file itself beside the lockfile and follows no link there: remove `{}` and run again",
            path.display()
        )
    )]
    NotAFile { path: PathBuf, what: &'static str },

    #[error("another driver-matrix is writing this lock ({holder})")]
    #[diagnostic(
        code(driver_matrix::lock::busy),
        help("wait for it to finish, or run without `--no-wait` to wait for it")
    )]
    Busy { holder: String },
}

/// What to do when another writer holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Wait for it (after telling the caller who holds it).
    Yes,
    /// Fail at once (`--no-wait`).
    No,
}

/// The held writer's lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Writer {
    file: File,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The note names a holder only while there is one (best effort: a killed process
        // leaves it, and then nobody reads it, because the lock itself is free).
        let _ = self.file.set_len(0);
    }
}

/// `matrix.lock.lock` beside `matrix.lock`.
pub fn guard_path(lock_path: &Path) -> PathBuf {
    let mut name = lock_path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    lock_path.with_file_name(name)
}

/// flock(2), which `File::lock` wraps from Rust 1.89 (the crate's MSRV is 1.85).
fn flock(file: &File, op: i32) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor this `File` owns; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Who holds the lock, as its holder wrote it (`pid 4242: driver-matrix build`).
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.take(256).read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "holder unknown".to_string()
    } else {
        // Written by another process: nothing in it reaches a terminal raw.
        text.chars().filter(|c| !c.is_control()).collect()
    }
}

impl Writer {
    /// Takes the writer's lock of `lock_path` for `command`. When another process holds it:
    /// with [`Wait::Yes`] calls `waiting` with who holds it and blocks; with [`Wait::No`] fails.
    pub fn acquire(
        lock_path: &Path,
        command: &str,
        wait: Wait,
        waiting: impl FnOnce(&str),
    ) -> Result<Writer, WriterError> {
        let path = guard_path(lock_path);
        let io = |source| WriterError::Io {
            path: path.clone(),
            source,
        };
        let not_a_file = |what| WriterError::NotAFile {
            path: path.clone(),
            what,
        };
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).read(true).write(true);
        let (mut file, meta) = match open_regular(&path, &mut options) {
            Ok(opened) => opened,
            Err(Refused::Link) => return Err(not_a_file("a symbolic link")),
            Err(Refused::NotRegular) => return Err(not_a_file("not a regular file")),
            Err(Refused::Io(e)) => return Err(io(e)),
        };
        if meta.nlink() > 1 {
            return Err(not_a_file("a hard link to another file"));
        }
        match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let who = holder(&mut file);
                if wait == Wait::No {
                    return Err(WriterError::Busy { holder: who });
                }
                waiting(&who);
                flock(&file, libc::LOCK_EX).map_err(io)?;
            }
            Err(e) => return Err(io(e)),
        }
        // Best effort: the note only serves messages.
        let note = format!("pid {}: driver-matrix {command}\n", std::process::id());
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = file.write_all(note.as_bytes());
        let _ = file.flush();
        Ok(Writer { file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("matrix.lock");
        let first = Writer::acquire(&lock, "build", Wait::No, |_| {}).unwrap();
        // flock locks belong to open file descriptions: a second open in this process
        // conflicts just as another process would.
        match Writer::acquire(&lock, "resolve", Wait::No, |_| {}) {
            Err(WriterError::Busy { holder }) => {
                assert_eq!(
                    holder,
                    format!("pid {}: driver-matrix build", std::process::id())
                );
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        Writer::acquire(&lock, "resolve", Wait::No, |_| {}).unwrap();
    }

    #[test]
    fn a_link_at_the_writers_lock_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "precious\n").unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir(&project).unwrap();
        let lock = project.join("matrix.lock");
        std::os::unix::fs::symlink("../victim.txt", guard_path(&lock)).unwrap();
        match Writer::acquire(&lock, "resolve", Wait::No, |_| {}) {
            Err(WriterError::NotAFile { what, .. }) => assert_eq!(what, "a symbolic link"),
            other => panic!("expected NotAFile, got {other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        // A hard link would be truncated just the same.
        std::fs::remove_file(guard_path(&lock)).unwrap();
        std::fs::hard_link(&victim, guard_path(&lock)).unwrap();
        assert!(Writer::acquire(&lock, "resolve", Wait::No, |_| {}).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        // A FIFO does not hang the writer.
        std::fs::remove_file(guard_path(&lock)).unwrap();
        let c = std::ffi::CString::new(guard_path(&lock).into_os_string().into_encoded_bytes())
            .unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path it is given.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(Writer::acquire(&lock, "resolve", Wait::No, |_| {}).is_err());
    }

    #[test]
    fn a_waiting_writer_proceeds_once_the_first_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("matrix.lock");
        let first = Writer::acquire(&lock, "build", Wait::No, |_| {}).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = lock.clone();
        let t = std::thread::spawn(move || {
            Writer::acquire(&path, "collect", Wait::Yes, |who| {
                tx.send(who.to_string()).unwrap()
            })
            .unwrap();
        });
        let who = rx.recv().unwrap();
        assert!(who.ends_with("driver-matrix build"), "{who}");
        drop(first);
        t.join().unwrap();
    }
}
