//! `build`: which selected jobs are fresh, the lock brought up to date before anything is
//! built ([`super::truth`]), the buildah runs, and each pushed image confirmed and recorded.
//!
//! An image enters the lock only after its push, once its modules have been read back from the
//! registry and every one was built for the job's kernel (`vermagic`): that is what confirms a
//! kernel the resolver could only read from an unverified prefix of a DTK layer, and what keeps
//! a wrong build out of the lock. `collect` applies the same rule.
//!
//! The job's tag follows the lock: buildah pushes to the repository's unconfirmed tag
//! ([`command::UNCONFIRMED_TAG`]), and the job's tag is moved to the pushed digest (the same
//! manifest bytes, checked against it) only once the image is confirmed, then the image is
//! recorded. A refused image leaves the tag where it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::truth::{self, Scope};
use super::{Planned, Session};
use crate::buildah::executor::PushedError;
use crate::buildah::{
    self, BuildError, Buildah, Cancel, Executor, Outcome, Reporter, Task, command, registries,
};
use crate::domain::Digest;
use crate::error::{Error, Result};
use crate::lock::{Lock, LockedImage};
use crate::matrix::Matrix;
use crate::plan::Selection;
use crate::plan::{Job, State};
use crate::registry::{self, Client};

/// Registry checks wait on the network; this many run at once.
const CHECK_THREADS: usize = crate::parallel::NETWORK;

/// What `build` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub selection: Selection,
    pub force: bool,
    /// Push and record (not `--no-push`).
    pub push: bool,
    /// Jobs at once.
    pub jobs: usize,
    pub fail_fast: bool,
    /// Secrets named on the command line (`build --secret ID=PATH`), for every build.
    pub secrets: BTreeMap<String, PathBuf>,
}

/// What to do with a selected job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The lock's image is current and the registry still has it.
    Fresh(Digest),
    /// Build it, and why.
    Build(Why),
}

/// Why a selected job is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The lock holds no image for it.
    New,
    /// The lock's image was built from other inputs.
    InputsChanged,
    /// The lock's image is current, but the registry no longer has its digest.
    Missing,
    /// `--force`.
    Forced,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Why::New => "new",
            Why::InputsChanged => "inputs changed",
            Why::Missing => "missing from the registry",
            Why::Forced => "forced",
        })
    }
}

/// A build, decided but not started.
pub struct Prepared<'p> {
    /// The selected jobs, in plan order, with what to do with each.
    pub selected: Vec<(&'p Job, Decision)>,
    /// The lock before anything is built: the truth of the current plan for what was selected,
    /// without images the registry no longer has.
    pub base: Lock,
    /// One task per job to build, in plan order.
    pub tasks: Vec<Task>,
    /// The credentials file the tasks name; a merged one is removed when this is dropped.
    authfile: Option<registry::ToolAuthfile>,
}

impl Prepared<'_> {
    /// A warning per credential helper that failed when its answer was asked for buildah: its
    /// host gets no credentials in the builds.
    pub fn credential_warnings(&self) -> Vec<crate::matrix::Problem> {
        let failed = self
            .authfile
            .as_ref()
            .map_or(&[][..], |a| a.failed_helpers());
        failed
            .iter()
            .map(|why| {
                crate::matrix::Problem::warning(format!("{why}; buildah gets no credentials for its host"))
                    .help("fix or remove the helper's entry in `credHelpers`, or pass a credentials file with `--authfile`")
            })
            .collect()
    }

    /// `driver/kernel/arch (why)` of every job that would be built.
    pub fn to_build(&self) -> Vec<String> {
        self.selected
            .iter()
            .filter_map(|(j, d)| match d {
                Decision::Build(why) => Some(format!("{} ({why})", j.id())),
                Decision::Fresh(_) => None,
            })
            .collect()
    }
}

/// A `--secret` file inside a driver's build context is refused, as a matrix secret is, unless
/// the context's ignore file excludes it: buildah would be sent it and the inputs hash read it.
pub fn refuse_shipped_secrets(matrix: &Matrix, secrets: &[buildah::CliSecret]) -> Result<()> {
    for s in secrets {
        for d in &matrix.drivers {
            if let Some(rel) = crate::matrix::shipped_secret(&d.context, &d.containerfile, &s.path)?
            {
                return Err(Error::usage(
                    format!(
                        "`--secret {}` names `{}`, inside the build context of driver `{}`, and its ignore file does not exclude it",
                        s.id,
                        s.path.display(),
                        d.name
                    ),
                    Some(format!(
                        "add `{rel}` to `{}`, or keep the secret outside the context",
                        crate::inputs::ignore_file_in_effect(&d.context, &d.containerfile)
                            .display()
                    )),
                ));
            }
        }
    }
    Ok(())
}

/// Decides every selected job and renders the buildah commands of those to build.
pub fn prepare<'p>(session: &Session, planned: &'p Planned, req: &Request) -> Result<Prepared<'p>> {
    let plan = &planned.plan;
    let selected: Vec<&Job> = plan
        .jobs
        .iter()
        .filter(|j| req.selection.contains(j))
        .collect();
    let decisions = decide(session, &selected, req.force)?;
    let selected: Vec<(&Job, Decision)> = selected.into_iter().zip(decisions).collect();
    let mut base = truth::reconcile(
        &session.lock,
        &planned.resolution.releases,
        plan,
        &req.selection as &dyn Scope,
    );
    // An image the registry no longer has leaves the lock now; its rebuild puts it back.
    base.images.retain(|i| {
        !selected
            .iter()
            .any(|(j, d)| j.key() == i.key() && *d == Decision::Build(Why::Missing))
    });
    let (buildah, authfile) = buildah(session)?;
    // The contexts' ignore lists, for buildah's `--ignorefile`; only when something is built.
    let ignorefiles = if selected
        .iter()
        .any(|(_, d)| matches!(d, Decision::Build(_)))
    {
        crate::inputs::write_ignore_files(
            &session.matrix,
            &session.own_files(),
            &cache_dir(session)?.join("ignore"),
        )?
    } else {
        Default::default()
    };
    let buildah = Buildah {
        secrets: req.secrets.clone(),
        ignorefiles,
        ..buildah
    };
    let logs = cache_dir(session)?.join("logs").join(run_id());
    let tasks = selected
        .iter()
        .filter(|(_, d)| matches!(d, Decision::Build(_)))
        .map(|(job, _)| task(&session.matrix, job, &buildah, &logs, req.push))
        .collect();
    Ok(Prepared {
        selected,
        base,
        tasks,
        authfile,
    })
}

/// Fresh or not, per selected job; one registry check per job the plan calls fresh.
fn decide(session: &Session, selected: &[&Job], force: bool) -> Result<Vec<Decision>> {
    let must_check =
        !force && !session.opts.offline && selected.iter().any(|j| j.state == State::Fresh);
    let client = if must_check {
        Some(session.client()?)
    } else {
        None
    };
    let lock = session.lock.image_index();
    let decisions = crate::parallel::map(selected, CHECK_THREADS, |job| {
        if force {
            return Ok(Decision::Build(Why::Forced));
        }
        let locked = match (job.state, lock.get(&job.key()).copied()) {
            (State::New, _) | (_, None) => return Ok(Decision::Build(Why::New)),
            (State::Stale, _) => return Ok(Decision::Build(Why::InputsChanged)),
            (State::Fresh, Some(l)) => l,
        };
        let present = match client {
            Some(c) => registry::has_digest(c, &locked.image, &locked.digest)?,
            None => true,
        };
        Ok(if present {
            Decision::Fresh(locked.digest.clone())
        } else {
            Decision::Build(Why::Missing)
        })
    });
    decisions
        .into_iter()
        .map(|d: std::result::Result<Decision, buildah::StoreError>| {
            d.map_err(|e| Error::from(BuildError::from(e)))
        })
        .collect()
}

/// Writes the base lock, runs the tasks, and records each confirmed push. Outcomes come back in
/// task order.
pub fn build_and_record(
    session: &Session,
    prepared: &Prepared<'_>,
    req: &Request,
    reporter: &dyn Reporter,
    cancel: &Arc<Cancel>,
) -> Result<Vec<Outcome>> {
    let book = if req.push {
        session.write(&prepared.base)?;
        Some(Book {
            lock: Mutex::new(prepared.base.clone()),
            session,
        })
    } else {
        None
    };
    let client = match (&book, prepared.tasks.is_empty()) {
        (Some(_), false) => Some(session.client()?),
        _ => None,
    };
    let cache = session.cache();
    let on_pushed = |task: &Task, digest: &Digest| -> std::result::Result<(), PushedError> {
        let (Some(book), Some(client)) = (&book, client) else {
            return Ok(());
        };
        let not_recorded = |why| NotRecorded {
            digest: digest.clone(),
            why,
        };
        let image = task.job.locked(digest.clone());
        confirm(client, &cache, &session.matrix, &image)
            .map_err(|e| not_recorded(NotRecordedWhy::Unconfirmed(e)))?;
        // The tag moves only now: until here the image sits under the unconfirmed tag, so a
        // refused image is never what `<image>:<tag>` names. Recorded after the move, so the
        // lock never names an image its tag does not hold.
        client
            .tag_manifest(&image.image, digest)
            .map_err(|e| not_recorded(NotRecordedWhy::Tag(Box::new(e))))?;
        book.record(image)
            .map_err(|e| not_recorded(NotRecordedWhy::Lock(Box::new(e))))?;
        Ok(())
    };
    if prepared.tasks.is_empty() {
        return Ok(Vec::new());
    }
    let executor = Executor {
        jobs: req.jobs.max(1),
        fail_fast: req.fail_fast,
        cancel: Arc::clone(cancel),
    };
    Ok(executor.build_all(&prepared.tasks, reporter, &on_pushed))
}

/// A pushed image that did not enter the lock.
#[derive(Debug, thiserror::Error)]
#[error("pushed as {digest}, but not recorded in the lock")]
pub struct NotRecorded {
    pub digest: Digest,
    #[source]
    pub why: NotRecordedWhy,
}

#[derive(Debug, thiserror::Error)]
pub enum NotRecordedWhy {
    #[error(transparent)]
    Unconfirmed(#[from] Unconfirmed),
    #[error("its tag could not be moved to it")]
    Tag(#[source] Box<crate::registry::RegistryError>),
    #[error("the lock could not be written")]
    Lock(#[source] Box<Error>),
}

/// Why a pushed or found image may not enter the lock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unconfirmed {
    /// Reading it back failed (network, or bytes that do not match their digest).
    #[error("cannot read it back from the registry")]
    Registry(#[source] crate::verify::RegistryFailure),
    /// Its modules were not built for its kernel, or are missing.
    #[error("its modules do not confirm kernel `{kernel}` (expected {expected}): {findings}")]
    Modules {
        kernel: String,
        /// The driver's `modules`, or "at least one module".
        expected: String,
        findings: String,
    },
    /// Its modules break the driver's signing rule (`signed = true`, `signing-cert`).
    #[error("its modules break the signing rule of driver `{driver}`: {findings}")]
    Signing { driver: String, findings: String },
}

/// Reads `image` back from the registry and checks that its modules were built for its
/// kernel and satisfy the driver's signing rule; the reason it may not enter the lock
/// otherwise.
pub fn confirm(
    client: &Client,
    cache: &crate::release::Cache,
    matrix: &Matrix,
    image: &LockedImage,
) -> std::result::Result<(), Unconfirmed> {
    let modules = matrix.modules_of(&image.driver);
    let (checked, findings) = crate::verify::deep_check(client, cache, image, modules);
    confirm_findings(findings, &checked, matrix, image, modules)
}

/// [`confirm`] of an image whose manifest was just read by tag (`collect`): not read again.
pub fn confirm_manifest(
    client: &Client,
    cache: &crate::release::Cache,
    matrix: &Matrix,
    image: &LockedImage,
    manifest: &crate::registry::ImageManifest,
) -> std::result::Result<(), Unconfirmed> {
    let modules = matrix.modules_of(&image.driver);
    let (checked, findings) =
        crate::verify::deep_check_manifest(client, cache, image, manifest, modules);
    confirm_findings(findings, &checked, matrix, image, modules)
}

/// What the findings of reading `image` back say: a registry failure, modules that do not
/// confirm its kernel, modules the driver's signing rule refuses, or nothing wrong.
fn confirm_findings(
    findings: Vec<crate::verify::Finding>,
    checked: &[crate::verify::Checked],
    matrix: &Matrix,
    image: &LockedImage,
    modules: &[String],
) -> std::result::Result<(), Unconfirmed> {
    if let Some(crate::verify::Finding::Registry(e)) = findings
        .iter()
        .find(|f| matches!(f, crate::verify::Finding::Registry(_)))
    {
        return Err(Unconfirmed::Registry(e.clone()));
    }
    let describe = |fs: &[crate::verify::Finding]| -> Vec<String> {
        fs.iter()
            .filter(|f| f.is_error())
            .map(crate::verify::Finding::describe)
            .collect()
    };
    let errors = describe(&findings);
    if !errors.is_empty() {
        let expected = if modules.is_empty() {
            "at least one module".to_string()
        } else {
            let names: Vec<String> = modules
                .iter()
                .map(|m| format!("`{}`", crate::text::escape_line(m)))
                .collect();
            names.join(", ")
        };
        return Err(Unconfirmed::Modules {
            kernel: image.kernel.to_string(),
            expected,
            findings: errors.join("; "),
        });
    }
    let signing = matrix.expect_of(&image.driver).signing;
    let refused = signing.map_or_else(Vec::new, |s| {
        describe(&crate::verify::check_signatures(&s, checked))
    });
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Unconfirmed::Signing {
            driver: image.driver.clone(),
            findings: refused.join("; "),
        })
    }
}

/// The lock while a build runs: every confirmed image is written the moment it is, so an
/// interrupted or killed run leaves a lock that names everything it pushed.
struct Book<'s> {
    lock: Mutex<Lock>,
    session: &'s Session,
}

impl Book<'_> {
    fn record(&self, image: LockedImage) -> Result<()> {
        let mut lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        lock.upsert_image(image);
        self.session.write(&lock)?;
        Ok(())
    }
}

/// buildah's settings for this run: the credentials the native client uses (merged into one
/// private file, which lives as long as the returned value), `--cert-dir`,
/// `SOURCE_DATE_EPOCH`, and the generated registries.conf (the machine's plus the matrix's
/// mirrors and insecure hosts; TLS is relaxed per host there, never for the whole build).
fn buildah(session: &Session) -> Result<(Buildah, Option<registry::ToolAuthfile>)> {
    let mut env = Vec::new();
    let has_rules = session
        .matrix
        .registries
        .values()
        .any(|r| r.mirror.is_some() || r.insecure);
    if has_rules {
        let machine = registries::machine_config()?;
        if let Some(text) = registries::render(&session.matrix.registries, &machine) {
            let path = registries::write(&cache_dir(session)?, &text)?;
            env.push(("CONTAINERS_REGISTRIES_CONF".into(), path.into_os_string()));
        }
    }
    // The run's client answers for the credentials, so a helper it asked is not asked again.
    let authfile = session
        .client()?
        .tool_authfile(session.opts.authfile.as_deref())?;
    let buildah = Buildah {
        authfile: authfile.as_ref().map(|a| a.path().to_path_buf()),
        cert_dir: session.opts.cert_dir.clone(),
        timestamp: source_date_epoch()?,
        env,
        ..Buildah::default()
    };
    Ok((buildah, authfile))
}

fn task(matrix: &Matrix, job: &Job, buildah: &Buildah, logs: &Path, push: bool) -> Task {
    let driver = matrix
        .driver(&job.driver)
        .expect("every job comes from a driver of the matrix");
    let stem = format!("{}_{}_{}", job.driver, job.kernel.normalized(), job.arch);
    let digestfile = logs.join(format!("{stem}.digest"));
    let spec = command::Spec {
        job,
        driver,
        registries: &matrix.registries,
        buildah,
        digestfile: &digestfile,
    };
    Task {
        job: job.clone(),
        build: command::build(&spec),
        push: push.then(|| (command::push(&spec), digestfile.clone())),
        log: logs.join(format!("{stem}.log")),
    }
}

/// `--cache-dir`, else `driver-matrix` in the user's cache directory.
fn cache_dir(session: &Session) -> Result<PathBuf> {
    session
        .opts
        .cache_dir()
        .ok_or_else(|| BuildError::NoCacheDir.into())
}

/// `SOURCE_DATE_EPOCH`, the reproducible-builds convention, as buildah's `--timestamp`.
fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v.trim().parse().map(Some).map_err(|_| {
            Error::usage(
                format!("`SOURCE_DATE_EPOCH={v}` is not a number of seconds"),
                Some("set it to seconds since 1970, or unset it".into()),
            )
        }),
        _ => Ok(None),
    }
}

/// A name for this run's log directory: UTC time and process id, `20260131T235959Z-4242`.
fn run_id() -> String {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact: String = stamp.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    format!("{compact}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_are_compact_utc_times() {
        let id = super::run_id();
        let (stamp, pid) = id.split_once('-').unwrap();
        assert_eq!(stamp.len(), "20260131T235959Z".len(), "{id}");
        assert!(stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T', "{id}");
        assert_eq!(pid, std::process::id().to_string());
    }
}
