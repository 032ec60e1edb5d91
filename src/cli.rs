//! The command line: clap types only, no behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Build kernel driver containers for every OpenShift release, from one declarative matrix.
#[derive(Debug, Parser)]
#[command(name = "driver-matrix", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// The global options each command does not honour, by clap id: hidden from its `--help` (and
/// its subcommands'), so that the help shows what the command reads. They are still accepted
/// anywhere, as the contract's global options, so a script that passes them to every command
/// keeps working.
const NOT_HONOURED: &[(&str, &[&str])] = &[
    ("releases", &["lockfile", "cache_dir", "offline", "no_wait"]),
    ("plan", &["no_wait"]),
    ("verify", &["offline", "no_wait"]),
    ("collect", &["offline"]),
    (
        "diff",
        &["authfile", "cert_dir", "cache_dir", "offline", "no_wait"],
    ),
    ("export", &["no_wait"]),
    (
        "schema",
        &[
            "matrix",
            "lockfile",
            "authfile",
            "cert_dir",
            "cache_dir",
            "offline",
            "no_wait",
        ],
    ),
    (
        "init",
        &[
            "matrix",
            "lockfile",
            "authfile",
            "cert_dir",
            "cache_dir",
            "offline",
            "no_wait",
        ],
    ),
    (
        "completions",
        &[
            "matrix",
            "lockfile",
            "authfile",
            "cert_dir",
            "cache_dir",
            "offline",
            "no_wait",
        ],
    ),
];

/// The command line as clap parses it, each command's help showing only the options it
/// honours ([`NOT_HONOURED`]).
pub fn command() -> clap::Command {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    for (name, ids) in NOT_HONOURED {
        // clap copies a global option into a subcommand only where the subcommand has none of
        // that id: a hidden copy of its own hides it there, and in its own subcommands.
        let hidden: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| ids.contains(&a.get_id().as_str()))
            .map(|a| a.clone().hide(true))
            .collect();
        cmd = cmd.mut_subcommand(name, |sc| sc.args(hidden));
    }
    cmd
}

/// Parses the process's arguments with [`command`].
pub fn parse() -> Result<Cli, clap::Error> {
    let matches = command().try_get_matches()?;
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// The matrix file.
    #[arg(
        short,
        long,
        global = true,
        value_name = "PATH",
        default_value = "matrix.toml"
    )]
    pub matrix: PathBuf,

    /// The lockfile [default: matrix.lock beside the matrix file]
    #[arg(long, global = true, value_name = "PATH")]
    pub lockfile: Option<PathBuf>,

    /// Registry credentials (a containers auth.json or docker config.json) [default:
    /// $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
    /// ~/.config/containers/auth.json, ~/.docker/config.json]
    #[arg(long, global = true, value_name = "PATH")]
    pub authfile: Option<PathBuf>,

    /// CA certificates (`*.crt`) for every registry, instead of
    /// /etc/containers/certs.d/HOST/ (as buildah's `--cert-dir`; passed on to buildah)
    #[arg(long, global = true, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,

    /// Where resolutions and build logs are kept [default: the user cache directory]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Resolve from the lock and the cache only; contact no update graph, and the registry only
    /// to push and read back what `build` builds.
    #[arg(long, global = true)]
    pub offline: bool,

    /// Fail at once (exit 2) instead of waiting when another driver-matrix is writing the
    /// same lock.
    #[arg(long, global = true)]
    pub no_wait: bool,

    /// More output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// When to use colors (NO_COLOR is honoured under `auto`).
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve every release (payload, DTK, kernel) and write the `[[release]]` part of the lock.
    Resolve(ResolveArgs),

    /// List the versions a channel offers, from the update graph.
    Releases(ReleasesArgs),

    /// List the build jobs with their releases, tag, inputs hash and state.
    Plan(PlanArgs),

    /// Build what is not fresh with buildah, push it, and record every success in the lock.
    Build(BuildArgs),

    /// Check that every locked image exists at its digest; `--deep` also checks its modules.
    Verify(VerifyArgs),

    /// Rebuild the `[[image]]` part of the lock from the registry (tags and labels), after
    /// builds that ran elsewhere.
    Collect,

    /// Show what changed between two lockfiles (`git:REV` reads the lock at that revision).
    Diff(DiffArgs),

    /// Write deployment or CI material from the lock and the plan.
    Export(ExportArgs),

    /// Print the JSON Schema of matrix.toml.
    Schema,

    /// Write a matrix.toml and a DTK Containerfile for a module source directory.
    ///
    /// Module names come from the `obj-m` lines of DIR's Kbuild or Makefile. Never overwrites
    /// a file: exits 2 when either exists.
    Init(InitArgs),

    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The directory with the module's sources and its Kbuild or Makefile.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Fail (exit 3) instead of writing when the lock would change.
    #[arg(long)]
    pub locked: bool,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    /// The channel, like `stable-4.16`.
    pub channel: String,

    /// The architecture [default: the matrix's first, else x86_64]
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<crate::domain::Arch>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Output format.
    #[arg(long, default_value = "table")]
    pub format: PlanFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Jobs to build at once [default: the number of CPUs]
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    /// After a failure, start no new job (running ones finish and are recorded).
    #[arg(long)]
    pub fail_fast: bool,

    /// Print what would be built and the exact buildah command lines; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Rebuild the selected jobs even when they are fresh.
    #[arg(long, conflicts_with = "locked")]
    pub force: bool,

    /// Exit with 3, before building anything, unless every selected job is fresh and the lock
    /// would not change by a byte.
    #[arg(long)]
    pub locked: bool,

    #[command(flatten)]
    pub select: JobSelection,

    /// Build only shard I of N, I counted from 0 (`--shard $JOB_COMPLETION_INDEX/N` in a
    /// Kubernetes Indexed Job). Shards are balanced: the jobs to build are dealt to them in
    /// turn, so no shard has more than one job over another.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::plan::Shard>,

    /// Build without pushing; the lock's images stay as they are.
    #[arg(long)]
    pub no_push: bool,

    /// Give every build the file PATH as secret ID, in place of the matrix's secret ID; the
    /// way to pass a file from outside the matrix directory, like a key CI mounts (repeatable).
    #[arg(long = "secret", value_name = "ID=PATH")]
    pub secrets: Vec<crate::buildah::CliSecret>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older lock: a path, or `git:REV` for the lock at that git revision.
    pub old: String,

    /// The newer lock: a path or `git:REV` [default: the current lock]
    pub new: Option<String>,

    /// Output format; `markdown` is written to be pasted as a pull-request comment.
    #[arg(long, default_value = "text")]
    pub format: DiffFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: ExportKind,
}

#[derive(Debug, Subcommand)]
pub enum ExportKind {
    /// A KMM `Module` per driver, mapping every locked kernel to its image by digest; exits 1
    /// naming each job the lock has no image for.
    Kmm {
        /// Namespace of the Modules [default: none, the namespace of `oc apply`]
        #[arg(long)]
        namespace: Option<String>,

        /// Node selector `KEY=VALUE` (repeatable); replaces `[driver.kmm] selector` [default:
        /// the driver's, else node-role.kubernetes.io/worker=]
        #[arg(long = "selector", value_name = "KEY=VALUE")]
        selectors: Vec<String>,
    },

    /// A KMM `BootModuleConfig` per driver: its module loaded at every boot before the network
    /// starts, from an image already on the node (the first boot after a kernel change pulls
    /// the image once the network is up, then reboots).
    #[command(visible_alias = "boot")]
    BootModuleConfig {
        /// Namespace of the objects [default: none, the namespace of `oc apply`]
        #[arg(long)]
        namespace: Option<String>,

        /// The MachineConfigPool whose nodes load the modules.
        #[arg(long, value_name = "POOL", default_value = "worker")]
        pool: String,

        /// Export drivers with `[driver.kmm] parameters` anyway, loading their module at boot
        /// without them (a BootModuleConfig cannot pass parameters).
        #[arg(long)]
        drop_parameters: bool,
    },

    /// A KMM `PreflightValidationOCP` per locked release.
    Preflight {
        /// Only this release, an upgrade target (repeatable) [default: every locked release]
        #[arg(long = "release", value_name = "VERSION")]
        releases: Vec<crate::domain::Version>,

        /// Refused: a `PreflightValidationOCP` is cluster-scoped.
        #[arg(long, hide = true)]
        namespace: Option<String>,

        /// The form of the KMM the cluster runs: `current` (`kernelVersion`, `dtkImage`), or
        /// `release-image` (`releaseImage`, `useRTKernel`) for KMM releases from March 2024 to
        /// June 2025.
        #[arg(long, value_enum, default_value = "current")]
        kmm_api: PreflightApi,
    },

    /// An OpenShift `BuildConfig` per job to build: the cluster builds each image from the
    /// same Containerfile, build arguments and labels, then `collect` locks what it pushed.
    #[command(name = "buildconfig")]
    BuildConfig(BuildConfigArgs),

    /// JSON for a GitHub Actions `strategy.matrix` (via `fromJSON`), one entry per shard.
    GithubMatrix {
        /// Number of shards, at most 256 [default: the number of jobs to build, at most 256]
        #[arg(long)]
        shards: Option<usize>,
    },

    /// An Indexed Kubernetes Job whose pods each build one shard.
    K8sJob {
        /// Number of shards (the Job's completions) [default: the number of jobs to build]
        #[arg(long)]
        shards: Option<usize>,

        /// Pods running at once.
        #[arg(long, default_value_t = 4)]
        parallelism: usize,

        /// Image with driver-matrix, buildah and the repository (see docs/ci.md).
        #[arg(long, default_value = "quay.io/acme/driver-matrix-runner:latest")]
        image: String,

        /// Directory of the repository (matrix.toml) inside the image.
        #[arg(long, default_value = "/src")]
        workdir: String,

        /// Secret of type kubernetes.io/dockerconfigjson with pull and push credentials.
        #[arg(long, default_value = "driver-matrix-registry")]
        pull_secret: String,

        /// Name of the Job.
        #[arg(long, default_value = "driver-matrix-build")]
        name: String,

        /// Namespace of the Job.
        #[arg(long)]
        namespace: Option<String>,

        /// Retries of each index before it counts as failed.
        #[arg(long, default_value_t = 2)]
        retries: u32,
    },
}

/// Which jobs a command takes: `build` and `export buildconfig` select alike.
#[derive(Debug, Args)]
pub struct JobSelection {
    /// Build only this driver's jobs (repeatable).
    #[arg(long = "driver", value_name = "D")]
    pub drivers: Vec<String>,

    /// Build only jobs for this kernel, as written or tag-normalized (repeatable).
    #[arg(long = "kernel", value_name = "K")]
    pub kernels: Vec<String>,

    /// Build only jobs for this arch (repeatable).
    #[arg(long = "arch", value_name = "A")]
    pub arches: Vec<crate::domain::Arch>,
}

/// Which `PreflightValidationOCP` form `export preflight` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreflightApi {
    /// `kernelVersion` and `dtkImage` (KMM from mid-2025 on).
    Current,
    /// `releaseImage` (the payload by digest) and `useRTKernel` (KMM, March 2024 to June 2025).
    ReleaseImage,
}

/// Where `export buildconfig` pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildOutput {
    /// The job's `image:tag`, with `--push-secret`.
    DockerImage,
    /// An ImageStreamTag of the cluster's registry (the driver's `image` must name it).
    ImageStream,
}

#[derive(Debug, Args)]
pub struct BuildConfigArgs {
    /// Every planned job, not only those the lock does not hold fresh.
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub select: JobSelection,

    /// Namespace of the objects [default: none, the namespace of `oc apply`]
    #[arg(long)]
    pub namespace: Option<String>,

    /// URL the cluster clones [default: the URL of `--git-remote`]
    #[arg(long, value_name = "URL", conflicts_with = "binary")]
    pub git_uri: Option<String>,

    /// The revision to build, pinned to the commit it names now; the contexts must not differ
    /// from it.
    #[arg(
        long,
        value_name = "REV",
        default_value = "HEAD",
        conflicts_with = "binary"
    )]
    pub git_ref: String,

    /// The remote whose URL the cluster clones, when `--git-uri` is not given.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "origin",
        conflicts_with = "binary"
    )]
    pub git_remote: String,

    /// Binary source: each build waits for `oc start-build NAME --from-dir=CONTEXT`, for a
    /// repository the cluster cannot reach.
    #[arg(long)]
    pub binary: bool,

    /// Where the builds push.
    #[arg(long, value_enum, default_value = "docker-image")]
    pub to: BuildOutput,

    /// `kubernetes.io/dockerconfigjson` Secret that pushes to the drivers' repositories.
    #[arg(long, value_name = "SECRET", default_value = "driver-matrix-registry")]
    pub push_secret: String,

    /// Secret that pulls the Driver Toolkit (the cluster's pull secret, in this namespace).
    #[arg(long, value_name = "SECRET", default_value = "driver-matrix-registry")]
    pub pull_secret: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Also pull each image's layers and check every module's `vermagic` against its kernel.
    #[arg(long)]
    pub deep: bool,
}
