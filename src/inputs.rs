//! The `inputs` hash: one digest over everything a build reads, so that an image is rebuilt
//! exactly when something it was built from changed.
//!
//! The hash covers the files of the build context (relative paths, sorted; contents; the
//! executable bit; symlink targets; directories) that the context's one ignore list lets
//! through (`ignore.rs`: its `.containerignore` or `.dockerignore`, then driver-matrix's own
//! files; buildah is given the same list with `--ignorefile`), the containerfile's path and contents, every build arg
//! (reserved and the driver's own), the DTK by digest, the kernel and the arch. It does not
//! depend on where the checkout lives, on timestamps, or on the order of keys in matrix.toml.
//! Secrets are never read here: a secret file that lies inside a context is left out of its
//! digest. Only regular files, directories and symlinks are taken; anything else (a FIFO, a
//! socket, a device) is refused without being opened, since reading it could block forever.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::domain::{Arch, Digest};

mod ignore;
pub use ignore::{
    ContextFilter, IGNORE_FILES, IgnoreRules, OwnFiles, ignore_candidates, ignore_file_in_effect,
};

/// Version of the hash layout; bump when what goes into the hash changes.
const LAYOUT: &str = "driver-matrix inputs v1";

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InputsError {
    #[error("cannot read `{path}` while hashing the build context")]
    #[diagnostic(code(driver_matrix::inputs::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` in a build context is {kind}, not a regular file, directory or symlink")]
    #[diagnostic(
        code(driver_matrix::inputs::special_file),
        help("remove it from the context, or list it in `.containerignore`")
    )]
    Special { path: PathBuf, kind: &'static str },

    #[error("`{path}` in a build context is another name of the secret file `{secret}`")]
    #[diagnostic(
        code(driver_matrix::inputs::secret_link),
        help(
            "a hard link to a secret would ship it with `COPY .`: remove the link, or list it in `.containerignore`"
        )
    )]
    SecretLink { path: PathBuf, secret: PathBuf },

    #[error("bad pattern `{pattern}` in `{file}`: {message}")]
    #[diagnostic(code(driver_matrix::inputs::ignore))]
    Pattern {
        file: PathBuf,
        pattern: String,
        message: String,
    },
}

/// What a file that is neither regular, a directory nor a symlink is, for messages.
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// The digest of a build context: every file, directory and symlink that buildah would send,
/// with the containerfile always included.
pub fn hash_context(context: &Path, containerfile: &str) -> Result<Digest, InputsError> {
    let filter = ContextFilter::new(context, containerfile, &OwnFiles::default())?;
    hash_filtered(context, containerfile, &filter, &[])
}

/// The digest of what `filter` lets through of `context`, leaving out the files at `secrets`
/// (canonical paths): a secret is not an input, and its contents must not reach a digest.
/// (Validation already refuses a secret inside a context that its ignore file does not
/// exclude; this is the second line.)
pub fn hash_filtered(
    context: &Path,
    containerfile: &str,
    filter: &ContextFilter,
    secrets: &[&Path],
) -> Result<Digest, InputsError> {
    let mut entries: BTreeMap<String, String> = BTreeMap::new();
    // The secrets' files by device and inode: another name for one of them (a hard link) in
    // the context would be sent to buildah and hashed under that name.
    let ids: Vec<((u64, u64), &Path)> = secrets
        .iter()
        .filter_map(|s| std::fs::metadata(s).ok().map(|m| ((m.dev(), m.ino()), *s)))
        .collect();
    let walker = walkdir::WalkDir::new(context)
        .follow_links(false)
        .min_depth(1);
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(context).to_path_buf();
            InputsError::Io {
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
                path,
            }
        })?;
        let rel = entry
            .path()
            .strip_prefix(context)
            .expect("walkdir yields paths below its root")
            .to_string_lossy()
            .replace('\\', "/");
        if rel != containerfile && filter.is_ignored(&rel) {
            continue;
        }
        let ft = entry.file_type();
        if ft.is_file() && secrets.contains(&entry.path()) {
            continue;
        }
        if ft.is_file() && !ids.is_empty() {
            check_not_secret(&entry, &ids)?;
        }
        let record = record(&entry)?;
        entries.insert(rel, record);
    }
    let mut h = Sha256::new();
    h.update(LAYOUT.as_bytes());
    h.update(b"\ncontext\n");
    for (path, record) in &entries {
        // Length-prefixed so that no path/record pair can be confused with another.
        h.update(format!("{}:{path} {}:{record}\n", path.len(), record.len()).as_bytes());
    }
    Ok(Digest::from_sha256_hex(&hex::encode(h.finalize())).expect("sha256 output is a digest"))
}

/// Refuses a context file that is one of the secrets' files under another name.
fn check_not_secret(
    entry: &walkdir::DirEntry,
    ids: &[((u64, u64), &Path)],
) -> Result<(), InputsError> {
    let meta = metadata(entry)?;
    match ids.iter().find(|(id, _)| *id == (meta.dev(), meta.ino())) {
        Some((_, secret)) => Err(InputsError::SecretLink {
            path: entry.path().to_path_buf(),
            secret: secret.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// The metadata of a context entry as the walk reads it, its error naming the path.
fn metadata(entry: &walkdir::DirEntry) -> Result<std::fs::Metadata, InputsError> {
    entry.metadata().map_err(|e| InputsError::Io {
        path: entry.path().to_path_buf(),
        source: e
            .into_io_error()
            .unwrap_or_else(|| std::io::Error::other("metadata")),
    })
}

/// What the hash records of one context entry: a symlink's target, a directory, or a regular
/// file's executable bit and contents. Anything else (a FIFO, a device, a socket) is refused
/// without being opened.
fn record(entry: &walkdir::DirEntry) -> Result<String, InputsError> {
    let ft = entry.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(entry.path()).map_err(|source| InputsError::Io {
            path: entry.path().to_path_buf(),
            source,
        })?;
        return Ok(format!("link {}", target.to_string_lossy()));
    }
    if ft.is_dir() {
        return Ok("dir".to_string());
    }
    if !ft.is_file() {
        return Err(InputsError::Special {
            path: entry.path().to_path_buf(),
            kind: kind_of(&ft),
        });
    }
    let meta = metadata(entry)?;
    let exec = meta.permissions().mode() & 0o111 != 0;
    Ok(format!(
        "file {} {}",
        if exec { "x" } else { "-" },
        hash_file(entry.path())?
    ))
}

/// Every driver's context digest, with the matrix file and the lockfile beside it as
/// driver-matrix's own files (see [`context_digests_with`]).
pub fn context_digests(
    matrix: &crate::matrix::Matrix,
) -> Result<BTreeMap<String, Digest>, InputsError> {
    let own = OwnFiles {
        matrix: Some(matrix.path.clone()),
        lockfile: Some(matrix.path.with_file_name("matrix.lock")),
        cache_dir: None,
    };
    context_digests_with(matrix, &own)
}

/// Every driver's context digest, hashed in parallel, each through its [`ContextFilter`].
pub fn context_digests_with(
    matrix: &crate::matrix::Matrix,
    own: &OwnFiles,
) -> Result<BTreeMap<String, Digest>, InputsError> {
    crate::parallel::map(&matrix.drivers, crate::parallel::cpu(), |d| {
        let secrets: Vec<&Path> = d.secrets.values().map(PathBuf::as_path).collect();
        let filter = ContextFilter::new(&d.context, &d.containerfile, own)?;
        let digest = hash_filtered(&d.context, &d.containerfile, &filter, &secrets)?;
        Ok((d.name.clone(), digest))
    })
    .into_iter()
    .collect()
}

/// Writes the ignore file of every driver (see [`ContextFilter::text`]) under `dir`, named by
/// its contents; returns driver name → path, for buildah's `--ignorefile`.
pub fn write_ignore_files(
    matrix: &crate::matrix::Matrix,
    own: &OwnFiles,
    dir: &Path,
) -> Result<BTreeMap<String, PathBuf>, InputsError> {
    let mut out = BTreeMap::new();
    for d in &matrix.drivers {
        let text = ContextFilter::new(&d.context, &d.containerfile, own)?.text();
        out.insert(d.name.clone(), ignore::write(dir, &text)?);
    }
    Ok(out)
}

/// Opens `path` for reading, refusing anything but a regular file. The open does not block and
/// the check is made on what was opened, so a file swapped for a FIFO after a directory walk
/// saw it is refused too.
fn open_regular(path: &Path) -> Result<std::fs::File, InputsError> {
    let err = |source| InputsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(err)?;
    let ft = f.metadata().map_err(err)?.file_type();
    if !ft.is_file() {
        return Err(InputsError::Special {
            path: path.to_path_buf(),
            kind: kind_of(&ft),
        });
    }
    Ok(f)
}

fn hash_file(path: &Path) -> Result<String, InputsError> {
    let err = |source| InputsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = open_regular(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// What every job of a driver reads besides the per-job values: its context, containerfile
/// and own build args.
pub struct DriverInputs<'a> {
    pub context: &'a Digest,
    pub containerfile: &'a str,
    /// The driver's own build args (reserved names excluded by validation).
    pub build_args: &'a BTreeMap<String, String>,
}

/// What differs between the jobs of a driver: the platform and the reserved build args
/// (`DTK_IMAGE` and `DTK_AUTO` are the DTK, `KERNEL_VERSION` and `KERNEL_FULL_VERSION` the
/// kernel, `RHEL_VERSION` the RHEL version).
pub struct JobInputs<'a> {
    pub arch: Arch,
    pub dtk: &'a str,
    pub kernel: &'a str,
    pub rhel: &'a str,
}

/// Feeds `key` and `value` length-prefixed, so that no two field lists hash alike.
fn field(h: &mut Sha256, key: &[u8], value: &[u8]) {
    h.update((key.len() as u64).to_le_bytes());
    h.update(key);
    h.update((value.len() as u64).to_le_bytes());
    h.update(value);
}

/// The hash state after a driver's shared inputs; every job of the driver continues from a
/// copy of it, so the shared part is hashed once per driver, not once per job.
pub fn driver_hasher(d: &DriverInputs<'_>) -> Sha256 {
    let mut h = Sha256::new();
    h.update(LAYOUT.as_bytes());
    h.update(b"\njob\n");
    field(&mut h, b"context", d.context.as_str().as_bytes());
    field(&mut h, b"containerfile", d.containerfile.as_bytes());
    for (k, v) in d.build_args {
        field(&mut h, format!("arg {k}").as_bytes(), v.as_bytes());
    }
    h
}

/// The job's `inputs` hash, continuing from its driver's [`driver_hasher`].
pub fn hash_job(driver: &Sha256, job: &JobInputs<'_>) -> Digest {
    let mut h = driver.clone();
    field(&mut h, b"platform", job.arch.platform().as_bytes());
    field(&mut h, b"dtk", job.dtk.as_bytes());
    field(&mut h, b"kernel", job.kernel.as_bytes());
    field(&mut h, b"rhel", job.rhel.as_bytes());
    Digest::from_sha256_bytes(&h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hard_link_to_a_secret_is_refused_and_the_secret_itself_skipped() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(ctx.join("keys")).unwrap();
        std::fs::write(ctx.join("Containerfile"), "FROM scratch\n").unwrap();
        let outside = dir.path().join("signing.key");
        std::fs::write(&outside, "secret").unwrap();
        let filter = ContextFilter::new(&ctx, "Containerfile", &OwnFiles::default()).unwrap();
        let plain = hash_filtered(&ctx, "Containerfile", &filter, &[&outside]).unwrap();
        std::fs::hard_link(&outside, ctx.join("keys/copy")).unwrap();
        match hash_filtered(&ctx, "Containerfile", &filter, &[&outside]) {
            Err(InputsError::SecretLink { path, secret }) => {
                assert_eq!(path, ctx.join("keys/copy"));
                assert_eq!(secret, outside);
            }
            other => panic!("{other:?}"),
        }
        // The secret's own path inside a context is skipped, not refused.
        std::fs::remove_file(ctx.join("keys/copy")).unwrap();
        std::fs::write(ctx.join("keys/own"), "another").unwrap();
        let own = ctx.join("keys/own");
        let skipped = hash_filtered(&ctx, "Containerfile", &filter, &[&own]).unwrap();
        std::fs::remove_file(&own).unwrap();
        assert_eq!(
            skipped,
            hash_filtered(&ctx, "Containerfile", &filter, &[]).unwrap()
        );
        assert_eq!(plain, skipped, "as if the secret were not there");
    }

    #[test]
    fn a_file_that_became_a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fifo = dir.path().join("pipe");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("no NUL");
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // What the walk would open had the file been swapped after it looked.
        match hash_file(&fifo) {
            Err(InputsError::Special { kind, .. }) => assert_eq!(kind, "a FIFO"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn job_hash_depends_on_every_field() {
        let ctx = Digest::sha256(b"ctx");
        let args = BTreeMap::from([("VERSION".to_string(), "1.0".to_string())]);
        let d = DriverInputs {
            context: &ctx,
            containerfile: "Containerfile",
            build_args: &args,
        };
        let job = JobInputs {
            arch: Arch::X86_64,
            dtk: "quay.io/x/dtk@sha256:aa",
            kernel: "6.1.0-50-amd64",
            rhel: "9.2",
        };
        let h = hash_job(&driver_hasher(&d), &job);
        assert_eq!(h, hash_job(&driver_hasher(&d), &job), "deterministic");
        let other_ctx = Digest::sha256(b"ctx2");
        assert_ne!(
            h,
            hash_job(
                &driver_hasher(&DriverInputs {
                    context: &other_ctx,
                    ..d
                }),
                &job
            )
        );
        assert_ne!(
            h,
            hash_job(
                &driver_hasher(&DriverInputs {
                    containerfile: "Dockerfile",
                    ..d
                }),
                &job
            )
        );
        let args2 = BTreeMap::from([("VERSION".to_string(), "1.1".to_string())]);
        assert_ne!(
            h,
            hash_job(
                &driver_hasher(&DriverInputs {
                    build_args: &args2,
                    ..d
                }),
                &job
            )
        );
        // A key and a value cannot trade bytes.
        let shifted = BTreeMap::from([("VERSION1".to_string(), ".0".to_string())]);
        assert_ne!(
            h,
            hash_job(
                &driver_hasher(&DriverInputs {
                    build_args: &shifted,
                    ..d
                }),
                &job
            )
        );
        let prefix = driver_hasher(&d);
        assert_ne!(
            h,
            hash_job(
                &prefix,
                &JobInputs {
                    arch: Arch::Aarch64,
                    ..job
                }
            )
        );
        assert_ne!(
            h,
            hash_job(
                &prefix,
                &JobInputs {
                    dtk: "quay.io/x/dtk@sha256:ab",
                    ..job
                }
            )
        );
        assert_ne!(
            h,
            hash_job(
                &prefix,
                &JobInputs {
                    kernel: "6.1.0-51-amd64",
                    ..job
                }
            )
        );
        assert_ne!(h, hash_job(&prefix, &JobInputs { rhel: "9.4", ..job }));
    }
}
