//! Opening a file driver-matrix reads as data at a path others can write (the lock and its
//! writer's lock in the matrix directory, run records in a shared directory): a symbolic link
//! at the path is refused, never followed (`O_NOFOLLOW`); opening never blocks on a FIFO
//! (`O_NONBLOCK`); and only a regular file is handed back, with its metadata, for the caller's
//! own checks (owner, link count, size).

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Why a path was not opened as a regular file.
#[derive(Debug)]
pub enum Refused {
    /// A symbolic link is at the path.
    Link,
    /// Something other than a regular file is (a directory, a FIFO, a device, a socket).
    NotRegular,
    /// Opening or reading the metadata failed (`NotFound` among others).
    Io(std::io::Error),
}

/// Opens `path` with `options` (read, write, create: the caller's), never through a link and
/// never blocking, and returns it only when it is a regular file.
pub fn open_regular(path: &Path, options: &mut OpenOptions) -> Result<(File, Metadata), Refused> {
    let file = match options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Refused::Link),
        Err(e) => return Err(Refused::Io(e)),
    };
    let meta = file.metadata().map_err(Refused::Io)?;
    if !meta.is_file() {
        return Err(Refused::NotRegular);
    }
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> Result<(File, Metadata), Refused> {
        open_regular(path, OpenOptions::new().read(true))
    }

    #[test]
    fn only_a_regular_file_is_opened_and_no_link_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(read(&file).is_ok());
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(matches!(read(&link), Err(Refused::Link)));
        assert!(matches!(read(dir.path()), Err(Refused::NotRegular)));
        let fifo = dir.path().join("p");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path this test owns.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(
            matches!(read(&fifo), Err(Refused::NotRegular)),
            "no block on a FIFO"
        );
        match read(&dir.path().join("none")) {
            Err(Refused::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
    }
}
