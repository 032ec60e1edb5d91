//! `driver-matrix export kmm|boot-module-config|preflight|github-matrix|k8s-job`.

use super::{Context, Kernels};
use crate::cli::{BuildConfigArgs, BuildOutput, ExportArgs, ExportKind};
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::export::{self, GITHUB_MATRIX_LIMIT};
use crate::plan::Selection;
use crate::plan::State;
use crate::render::appendln;

pub fn run(ctx: &Context, args: &ExportArgs) -> Result<ExitCode> {
    let text = match &args.what {
        ExportKind::Kmm {
            namespace,
            selectors,
        } => {
            let matrix = ctx.load_matrix()?;
            let lock = ctx.read_lock()?;
            let opts = export::ModuleOptions {
                namespace: namespace.clone(),
                selectors: selectors.clone(),
            };
            return print_deployment(export::modules(&matrix, &lock, &opts)?);
        }
        ExportKind::BootModuleConfig {
            namespace,
            pool,
            drop_parameters,
        } => {
            let matrix = ctx.load_matrix()?;
            let lock = ctx.read_lock()?;
            let opts = export::BootOptions {
                namespace: namespace.clone(),
                pool: pool.clone(),
                drop_parameters: *drop_parameters,
            };
            return print_deployment(export::boot_module_configs(&matrix, &lock, &opts)?);
        }
        ExportKind::Preflight {
            releases,
            namespace,
            kmm_api,
        } => return export_preflights(ctx, releases, namespace.is_some(), *kmm_api),
        ExportKind::BuildConfig(args) => return export_build_configs(ctx, args),
        ExportKind::GithubMatrix { shards } => export::github_matrix(shard_count(ctx, *shards)?),
        ExportKind::K8sJob {
            shards,
            parallelism,
            image,
            workdir,
            pull_secret,
            name,
            namespace,
            retries,
        } => export::k8s_job(&export::JobOptions {
            name: name.clone(),
            namespace: namespace.clone(),
            shards: shard_count(ctx, *shards)?,
            parallelism: *parallelism,
            image: image.clone(),
            workdir: workdir.clone(),
            pull_secret: pull_secret.clone(),
            retries_per_index: *retries,
        }),
    };
    print!("{text}");
    Ok(ExitCode::Ok)
}

/// `export preflight`: every locked release, or the upgrade targets `releases` (each must be in
/// the lock); never in a namespace, the object being cluster-scoped.
fn export_preflights(
    ctx: &Context,
    releases: &[crate::domain::Version],
    namespaced: bool,
    api: crate::cli::PreflightApi,
) -> Result<ExitCode> {
    if namespaced {
        return Err(Error::usage(
            "`--namespace` does not apply: a `PreflightValidationOCP` is cluster-scoped",
            Some("leave `--namespace` out".into()),
        ));
    }
    let matrix = ctx.load_matrix()?;
    let lock = ctx.read_lock()?;
    if lock.releases.is_empty() {
        return Err(Error::usage(
            "the lock holds no release",
            Some("run `driver-matrix resolve` first".into()),
        ));
    }
    if let Some(v) = releases
        .iter()
        .find(|v| !lock.releases.iter().any(|r| &r.version == *v))
    {
        return Err(Error::usage(
            format!("`--release {v}` names no release of the lock"),
            Some(
                "add the upgrade target to the matrix and run `driver-matrix resolve` (and build its drivers) first"
                    .into(),
            ),
        ));
    }
    let form = match api {
        crate::cli::PreflightApi::Current => export::PreflightForm::Kernel,
        crate::cli::PreflightApi::ReleaseImage => export::PreflightForm::ReleaseImage,
    };
    print_deployment(export::preflights(&matrix, &lock, releases, form))
}

/// The BuildConfigs' source: uploaded (`--binary`), or the commit the repository names, which
/// must hold what the plan hashed.
fn cluster_source(
    ctx: &Context,
    session: &crate::pipeline::Session,
    args: &BuildConfigArgs,
    drivers: &[&crate::matrix::Driver],
) -> Result<crate::export::buildconfig::Source> {
    if args.binary {
        return Ok(crate::export::buildconfig::Source::Binary);
    }
    let req = crate::pipeline::cluster::GitRequest {
        uri: args.git_uri.clone(),
        rev: args.git_ref.clone(),
        remote: args.git_remote.clone(),
    };
    let (source, notes) = crate::pipeline::cluster::git_source(
        &session.matrix.root,
        drivers,
        &req,
        &session.own_files(),
    )?;
    if !ctx.global.quiet {
        for n in notes {
            eprintln!("warning: {n}");
        }
    }
    Ok(source)
}

/// Names each secret a driver's Containerfile mounts where a BuildConfig's builds do not find it.
fn warn_secret_mounts(ctx: &Context, drivers: &[&crate::matrix::Driver]) {
    use crate::export::buildconfig::SECRETS_DIR;
    if ctx.global.quiet {
        return;
    }
    for (driver, id) in crate::pipeline::cluster::secrets_outside_dir(drivers) {
        eprintln!(
            "warning: driver `{driver}` mounts secret `{id}` without `target={SECRETS_DIR}/{id}`: on the cluster it is found only there"
        );
    }
}

/// Prints a deployment export, names every job without an image on stderr, and exits 1 if
/// there is any: the objects written are still good for the kernels they map.
fn print_deployment(out: export::Export) -> Result<ExitCode> {
    print!("{}", out.text);
    if out.missing.is_empty() {
        return Ok(ExitCode::Ok);
    }
    let mut err = String::new();
    for m in &out.missing {
        appendln!(err, "error: {m}");
    }
    appendln!(
        err,
        "{} job(s) have no image in the lock; run `driver-matrix build` (or `collect`), then export again",
        out.missing.len()
    );
    eprint!("{err}");
    Ok(ExitCode::Failed)
}

/// The shard count given, or one shard per job still to build (at least 1, at most 256).
fn shard_count(ctx: &Context, given: Option<usize>) -> Result<usize> {
    match given {
        Some(0) => Err(Error::usage("`--shards` must be at least 1", None)),
        Some(n) if n > GITHUB_MATRIX_LIMIT => Err(Error::usage(
            format!("`--shards {n}` is more than {GITHUB_MATRIX_LIMIT}"),
            Some(format!(
                "a GitHub Actions matrix holds at most {GITHUB_MATRIX_LIMIT} entries"
            )),
        )),
        Some(n) => Ok(n),
        None => {
            let plan = ctx.read_only_plan()?;
            let todo = plan.jobs.iter().filter(|j| j.state != State::Fresh).count();
            Ok(todo.clamp(1, GITHUB_MATRIX_LIMIT))
        }
    }
}

/// `export buildconfig`: the jobs to build (or `--all`), selected as `build` selects them, with
/// their source pinned to a commit that holds exactly what the plan hashed.
fn export_build_configs(ctx: &Context, args: &BuildConfigArgs) -> Result<ExitCode> {
    use crate::export::buildconfig::{self, BuildConfigOptions, Output};
    let session = ctx.session(crate::pipeline::Access::Read)?;
    let plan = ctx
        .planned(&session, ctx.reporter().as_ref(), Kernels::Count)?
        .plan;
    let matrix = &session.matrix;
    let selection = Selection::checked(
        matrix,
        &plan,
        &args.select.drivers,
        &args.select.kernels,
        &args.select.arches,
        None,
    )?;
    let (jobs, drivers) =
        crate::pipeline::cluster::jobs_to_build(matrix, &plan, &selection, args.all);
    let source = cluster_source(ctx, &session, args, &drivers)?;
    warn_secret_mounts(ctx, &drivers);
    let opts = BuildConfigOptions {
        namespace: args.namespace.clone(),
        source,
        output: match args.to {
            BuildOutput::DockerImage => Output::DockerImage,
            BuildOutput::ImageStream => Output::ImageStream,
        },
        push_secret: Some(args.push_secret.clone()),
        pull_secret: Some(args.pull_secret.clone()),
    };
    let text = buildconfig::build_configs(matrix, &jobs, &opts).map_err(|e| {
        use miette::Diagnostic as _;
        Error::usage(e.to_string(), e.help().map(|h| h.to_string()))
    })?;
    print!("{text}");
    Ok(ExitCode::Ok)
}
