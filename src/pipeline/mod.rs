//! The run that every command shares, in the order it happens:
//!
//! ```text
//! Session::open ── takes the writer's lock (commands that write), then reads matrix + lock once
//!      │
//!      ├─ resolve  ── releases → payload, DTK, kernel (registry, cache)      [resolve.rs]
//!      ├─ plan     ── matrix × releases → jobs, each compared with the lock   [crate::plan]
//!      ├─ truth    ── the lock a run from scratch would write, before builds  [truth.rs]
//!      ├─ build    ── freshness, buildah, confirm each pushed image, record   [build.rs]
//!      └─ collect  ── the images from the registry alone                      [collect.rs]
//! ```
//!
//! Commands (`crate::commands`) parse flags, call these functions and render what they return;
//! nothing here prints.

pub mod build;
pub mod channel;
pub mod cluster;
pub mod collect;
pub mod locked;
pub mod resolve;
pub mod truth;
pub use crate::lock::writer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::domain::Digest;
use crate::error::Result;
use crate::lock::{self, Lock};
use crate::matrix::{self, Matrix, Problem};
use crate::plan::{self, Plan, PlanInput};
use crate::registry::{Client, ClientOptions};
use crate::release::Cache;
pub use resolve::{Resolution, kernel_warnings};
pub use writer::Wait;

/// Where a run reads and writes, and how it may reach the network.
#[derive(Debug, Clone)]
pub struct Options {
    pub matrix: PathBuf,
    /// `--lockfile`; else `matrix.lock` beside the matrix.
    pub lockfile: Option<PathBuf>,
    pub authfile: Option<PathBuf>,
    /// `--cert-dir`: CA certificates for every registry.
    pub cert_dir: Option<PathBuf>,
    /// `--cache-dir`; else the user cache directory's `driver-matrix/`.
    pub cache_dir: Option<PathBuf>,
    pub offline: bool,
    /// What a writer does when another writer holds the lock.
    pub wait: Wait,
}

impl Options {
    pub fn lock_path(&self) -> PathBuf {
        match &self.lockfile {
            Some(p) => p.clone(),
            None => self.matrix.with_file_name("matrix.lock"),
        }
    }

    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.cache_dir.clone().or_else(Cache::default_dir)
    }
}

/// The registry client of a run: `registries` (the matrix's mirrors and insecure hosts), then
/// `--authfile` and `--cert-dir`. Every command that reads a registry makes it here.
pub fn client(
    opts: &Options,
    registries: BTreeMap<String, crate::matrix::RegistrySettings>,
) -> Result<Client> {
    Ok(Client::new(ClientOptions {
        registries,
        authfile: opts.authfile.clone(),
        cert_dir: opts.cert_dir.clone(),
        ..ClientOptions::default()
    })?)
}

/// Whether the run writes the lock, and as which command (for the writer's note).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write(&'static str),
}

/// One run: the matrix and the lock, read once, and (for writers) the writer's lock held until
/// the session ends.
pub struct Session {
    pub opts: Options,
    pub matrix: Matrix,
    /// What loading the matrix noticed (the caller shows them).
    pub warnings: Vec<Problem>,
    /// The lock as it was when the run started (read under the writer's lock).
    pub lock: Lock,
    client: OnceLock<Client>,
    writer: Option<writer::Writer>,
}

/// A plan and what it was made from.
pub struct Planned {
    pub resolution: Resolution,
    /// Each driver's context digest.
    pub contexts: BTreeMap<String, Digest>,
    pub plan: Plan,
}

impl Session {
    /// Loads the matrix; a writer then takes the writer's lock (calling `waiting` with the
    /// holder's note if it must wait), and only then reads the lock.
    pub fn open(opts: Options, access: Access, waiting: impl FnOnce(&str)) -> Result<Session> {
        let loaded = matrix::load(&opts.matrix)?;
        let lock_path = opts.lock_path();
        let writer = match access {
            Access::Read => None,
            Access::Write(command) => Some(writer::Writer::acquire(
                &lock_path, command, opts.wait, waiting,
            )?),
        };
        let lock = lock::read(&lock_path)?;
        Ok(Session {
            opts,
            matrix: loaded.matrix,
            warnings: loaded.warnings,
            lock,
            client: OnceLock::new(),
            writer,
        })
    }

    pub fn lock_path(&self) -> PathBuf {
        self.opts.lock_path()
    }

    /// driver-matrix's own files, which no build context counts as inputs.
    pub fn own_files(&self) -> crate::inputs::OwnFiles {
        crate::inputs::OwnFiles {
            matrix: Some(self.opts.matrix.clone()),
            lockfile: Some(self.lock_path()),
            cache_dir: self.opts.cache_dir(),
        }
    }

    /// The registry client of this run (mirrors, insecure hosts, credentials), made once.
    pub fn client(&self) -> Result<&Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let c = client(&self.opts, self.matrix.registries.clone())?;
        Ok(self.client.get_or_init(|| c))
    }

    /// The client if one was made (for `-v` statistics).
    pub fn client_if_used(&self) -> Option<&Client> {
        self.client.get()
    }

    pub fn cache(&self) -> Cache {
        match self.opts.cache_dir() {
            Some(dir) => Cache::new(dir),
            None => Cache::disabled(),
        }
    }

    /// Resolves the releases (reporting each to `progress`) and plans the jobs for them: what
    /// every command that plans starts from.
    pub fn planned(&self, progress: &dyn crate::progress::Reporter) -> Result<Planned> {
        let resolution = self.resolve(progress)?;
        self.plan(resolution)
    }

    /// Plans the jobs for `resolution` against the lock the run started with; the releases
    /// every driver excludes leave the resolution (and so the lock), once planned.
    pub fn plan(&self, mut resolution: Resolution) -> Result<Planned> {
        let contexts = crate::inputs::context_digests_with(&self.matrix, &self.own_files())?;
        let plan = plan::plan(&PlanInput {
            matrix: &self.matrix,
            versions: &resolution.versions,
            releases: &resolution.releases,
            contexts: &contexts,
            lock: &self.lock,
        })?;
        resolution.releases = plan::exclude::kept_releases(&self.matrix, &resolution.releases);
        Ok(Planned {
            resolution,
            contexts,
            plan,
        })
    }

    /// Writes `lock` (atomically, only when its bytes change); returns whether it changed.
    /// Only a session that holds the writer's lock may write.
    pub fn write(&self, lock: &Lock) -> Result<bool> {
        assert!(
            self.writer.is_some(),
            "only a session opened for writing writes the lock"
        );
        Ok(lock::write_if_changed(&self.lock_path(), lock)?)
    }

    /// `lock` without the images the registry no longer has at their digest (one `HEAD`
    /// each); unchanged `--offline`.
    pub fn without_missing(&self, mut lock: Lock) -> Result<Lock> {
        if self.opts.offline || lock.images.is_empty() {
            return Ok(lock);
        }
        let client = self.client()?;
        let present = crate::parallel::map(&lock.images, crate::parallel::NETWORK, |i| {
            crate::registry::has_digest(client, &i.image, &i.digest)
        });
        let present = present
            .into_iter()
            .collect::<std::result::Result<Vec<bool>, _>>()
            .map_err(crate::buildah::BuildError::from)?;
        let mut keep = present.into_iter();
        lock.images.retain(|_| keep.next().unwrap_or(true));
        Ok(lock)
    }

    /// The lock as its file holds it now, rendered (empty when there is none), for `--locked`.
    pub fn current_text(&self) -> String {
        std::fs::read_to_string(self.lock_path()).unwrap_or_default()
    }
}

/// What `--locked` reports when the lock would change, one item per change:
/// `added 4.16.3 (x86_64)`, `image hello-kmod/<kernel>/x86_64 would serve +4.16.3`.
pub fn describe_changes(old: &Lock, new: &Lock) -> Vec<String> {
    use crate::lock::diff::{ImageChangeKind, ReleaseChangeKind};
    let d = lock::diff(old, new);
    let mut out: Vec<String> = d
        .releases
        .iter()
        .map(|r| {
            let what = match r.kind {
                ReleaseChangeKind::Added => "added".to_string(),
                ReleaseChangeKind::Removed => "removed".to_string(),
                ReleaseChangeKind::Changed => format!("changed ({})", r.fields.join(", ")),
            };
            format!("{what} {} ({})", r.version, r.place())
        })
        .collect();
    for drv in &d.drivers {
        for c in &drv.images {
            let id = format!("image {}/{}/{}", drv.driver, c.kernel, c.arch);
            let list = |vs: &[crate::domain::Version]| {
                vs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut serves = Vec::new();
            if !c.releases_added.is_empty() {
                serves.push(format!("+{}", list(&c.releases_added)));
            }
            if !c.releases_removed.is_empty() {
                serves.push(format!("-{}", list(&c.releases_removed)));
            }
            out.push(match c.kind {
                ImageChangeKind::Added => format!("{id} added"),
                ImageChangeKind::Removed => format!("{id} removed"),
                ImageChangeKind::Rebuilt => format!("{id} rebuilt"),
                ImageChangeKind::Releases => format!("{id} serves {}", serves.join(" ")),
            });
        }
    }
    out
}
