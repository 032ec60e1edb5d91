//! The buildah command lines of one job: `buildah build` then `buildah push`. Pure: the same
//! job gives the same argv, which is what `--dry-run` prints and the snapshots hold.
//!
//! Storage driver and isolation are not chosen here: buildah reads `STORAGE_DRIVER` and
//! `BUILDAH_ISOLATION` from its environment, so the machine decides. Extra environment for
//! buildah (a generated `registries.conf` for mirrors, say) goes through [`Buildah::env`].

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::matrix::{Driver, RegistrySettings};
use crate::plan::Job;
use crate::render::append;

/// The labels every image carries, so that the registry alone can tell what it was built from.
pub mod label {
    pub const DRIVER: &str = "io.driver-matrix.driver";
    pub const KERNEL: &str = "io.driver-matrix.kernel";
    pub const ARCH: &str = "io.driver-matrix.arch";
    pub const DTK: &str = "io.driver-matrix.dtk";
    pub const INPUTS: &str = "io.driver-matrix.inputs";
}

/// How buildah is run on this machine; the same for every job of a run.
#[derive(Debug, Clone)]
pub struct Buildah {
    /// The program, `buildah` (found through `PATH`) unless told otherwise.
    pub program: OsString,
    /// Registry credentials, passed as `--authfile` when one was found.
    pub authfile: Option<PathBuf>,
    /// `--cert-dir`: CA certificates for every registry, instead of `/etc/containers/certs.d`.
    pub cert_dir: Option<PathBuf>,
    /// `--timestamp` for reproducible images, from `SOURCE_DATE_EPOCH` when it is set.
    pub timestamp: Option<u64>,
    /// Extra environment for every buildah process, on top of this process's own.
    pub env: Vec<(OsString, OsString)>,
    /// Secrets named on the command line (`build --secret ID=PATH`): given to every build, in
    /// place of a driver's secret of the same id.
    pub secrets: BTreeMap<String, PathBuf>,
    /// Driver name → the ignore file of its context (`--ignorefile`), the one list the inputs
    /// hash applies too (see `crate::inputs::ContextFilter`).
    pub ignorefiles: BTreeMap<String, PathBuf>,
}

impl Default for Buildah {
    fn default() -> Self {
        Buildah {
            program: "buildah".into(),
            authfile: None,
            cert_dir: None,
            timestamp: None,
            env: Vec::new(),
            secrets: BTreeMap::new(),
            ignorefiles: BTreeMap::new(),
        }
    }
}

/// Everything the command lines of one job depend on.
pub struct Spec<'a> {
    pub job: &'a Job,
    pub driver: &'a Driver,
    /// `[registries]` of the matrix: which hosts are insecure.
    pub registries: &'a BTreeMap<String, RegistrySettings>,
    pub buildah: &'a Buildah,
    /// Where `buildah push --digestfile` writes the pushed manifest's digest.
    pub digestfile: &'a Path,
}

/// One process to run: argv and extra environment, never a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
}

impl Invocation {
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// The command line as a shell would take it, for messages, logs and `--dry-run`.
    pub fn display(&self) -> String {
        let env = self
            .env
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), quote(v)));
        let argv = std::iter::once(quote(&self.program)).chain(self.args.iter().map(|a| quote(a)));
        env.chain(argv).collect::<Vec<_>>().join(" ")
    }
}

impl std::fmt::Display for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

/// Quotes one word for a POSIX shell, leaving common safe words bare. A word with control
/// characters is written `$'...'` with `\xHH` escapes, so that printing a command line never
/// sends an escape sequence to the terminal and the line still pastes into bash.
pub fn quote(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.into_owned()
    } else if s.chars().any(|c| c.is_control()) {
        let mut out = String::from("$'");
        for c in s.chars() {
            match c {
                '\\' | '\'' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        append!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        out.push('\'');
        out
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A secret named on the command line, `--secret ID=PATH`: a regular file anywhere (the CI
/// case: a key mounted outside the checkout), resolved to its canonical path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliSecret {
    pub id: String,
    pub path: PathBuf,
}

impl std::str::FromStr for CliSecret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((id, path)) = s.split_once('=') else {
            return Err("expected `ID=PATH`, like `signing-key=/run/secrets/key.priv`".into());
        };
        if !crate::domain::is_secret_id(id) {
            return Err(format!(
                "`{id}` is not a valid secret id (letters, digits, `.`, `_` or `-`)"
            ));
        }
        let has_separator = |p: &str| p.contains([',', '=']);
        if path.is_empty() || has_separator(path) {
            return Err(format!(
                "secret path `{path}` is empty or contains `,` or `=`, which buildah would read as more options"
            ));
        }
        let resolved = Path::new(path)
            .canonicalize()
            .map_err(|e| format!("secret file `{path}`: {e}"))?;
        if !resolved.is_file() {
            return Err(format!("secret `{path}` is not a regular file"));
        }
        if has_separator(&resolved.to_string_lossy()) {
            return Err(format!(
                "secret `{path}` resolves to `{}`, whose path contains `,` or `=`",
                resolved.display()
            ));
        }
        Ok(CliSecret {
            id: id.to_string(),
            path: resolved,
        })
    }
}

struct Args(Vec<OsString>);

impl Args {
    fn flag(&mut self, name: &str, value: impl Into<OsString>) -> &mut Self {
        self.0.push(name.into());
        self.0.push(value.into());
        self
    }

    fn word(&mut self, word: impl Into<OsString>) -> &mut Self {
        self.0.push(word.into());
        self
    }
}

/// Credentials and CA certificates. No `--tls-verify`: insecure hosts are insecure through the
/// generated registries.conf, for that host only, so every other pull keeps its TLS checks.
fn common(args: &mut Args, buildah: &Buildah) {
    if let Some(auth) = &buildah.authfile {
        args.flag("--authfile", auth);
    }
    if let Some(dir) = &buildah.cert_dir {
        args.flag("--cert-dir", dir);
    }
}

/// The labels of a job's image, on every route that builds it (`build`, a BuildConfig).
pub fn labels(job: &Job) -> [(&'static str, String); 5] {
    [
        (label::DRIVER, job.driver.clone()),
        (label::KERNEL, job.kernel.to_string()),
        (label::ARCH, job.arch.to_string()),
        (label::DTK, job.dtk.to_string()),
        (label::INPUTS, job.inputs.to_string()),
    ]
}

/// `buildah build` of the job, tagged with its image reference.
pub fn build(spec: &Spec<'_>) -> Invocation {
    let job = spec.job;
    let mut a = Args(vec!["build".into()]);
    a.flag(
        "--file",
        spec.driver.context.join(&spec.driver.containerfile),
    )
    .flag("--platform", job.arch.platform());
    for (k, v) in &job.build_args() {
        a.flag("--build-arg", format!("{k}={v}"));
    }
    for (k, v) in labels(job) {
        a.flag("--label", format!("{k}={v}"));
    }
    // Ids and paths hold no `,` or `=` (the matrix and `--secret` refuse them), so each value
    // is exactly one secret, whatever buildah makes of its options.
    let mut secrets = spec.driver.secrets.clone();
    secrets.extend(spec.buildah.secrets.clone());
    for (id, path) in &secrets {
        let mut s = OsString::from(format!("id={id},src="));
        s.push(path);
        a.flag("--secret", s);
    }
    if let Some(ignore) = spec.buildah.ignorefiles.get(&spec.driver.name) {
        a.flag("--ignorefile", ignore);
    }
    common(&mut a, spec.buildah);
    if let Some(t) = spec.buildah.timestamp {
        a.flag("--timestamp", t.to_string());
    }
    a.flag("--tag", job.image.to_string())
        .word(&spec.driver.context);
    Invocation {
        program: spec.buildah.program.clone(),
        args: a.0,
        env: spec.buildah.env.clone(),
    }
}

pub use crate::names::UNCONFIRMED_TAG;

/// `buildah push` of the job's image to [`UNCONFIRMED_TAG`] of its repository, recording the
/// pushed digest in `spec.digestfile`. buildah 1.28 cannot push by digest alone (it refuses
/// `repo@sha256:...` for an image it must compress, and has no `@@unknown-digest@@`), so the
/// job's own tag is left alone here and moved to that digest after the read-back.
pub fn push(spec: &Spec<'_>) -> Invocation {
    let image = &spec.job.image;
    let mut a = Args(vec!["push".into()]);
    a.flag("--digestfile", spec.digestfile);
    common(&mut a, spec.buildah);
    let staged = image
        .with_tag(UNCONFIRMED_TAG)
        .expect("the unconfirmed tag is a valid tag");
    a.word(image.to_string()).word(format!("docker://{staged}"));
    Invocation {
        program: spec.buildah.program.clone(),
        args: a.0,
        env: spec.buildah.env.clone(),
    }
}

#[cfg(test)]
mod tests;
