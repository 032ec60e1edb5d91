//! OpenShift `BuildConfig`s: the Driver Toolkit's recommended route, one per job, built by the
//! cluster's build service from the same Containerfile, build arguments and labels as
//! `driver-matrix build`, so that `collect` locks what the cluster pushed exactly as it locks a
//! shard's build.
//!
//! What the cluster's docker-strategy builder does with these fields (openshift/builder,
//! `pkg/build/builder/daemonless.go`): `buildArgs` become the build's `ARG` values;
//! `dockerStrategy.from` would replace the *last* `FROM`, the final stage, so the DTK goes in as
//! a build argument instead; each build volume is bind-mounted read-only at its
//! `destinationPath` into every `RUN` step (buildah's transient mounts), which is how a driver's
//! signing key reaches `sign-file` without entering a layer.
//!
//! Secrets: a driver's secrets live in one Kubernetes Secret (`<driver>-build-secrets`, keys =
//! the secret ids), mounted at [`SECRETS_DIR`]. A Containerfile reads them there on both routes
//! by mounting each one with `target=`: `RUN --mount=type=secret,id=signing-key,target=
//! /run/secrets/driver-matrix/signing-key`. Under `driver-matrix build` buildah's `--secret`
//! fills that target; on the cluster no such secret is given, so buildah mounts nothing there
//! and the Secret's volume shows through.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::kmm::metadata;
use super::yaml;
use crate::matrix::{Driver, Matrix};
use crate::plan::Job;

/// Where a driver's build secrets are mounted in every `RUN` step, on both routes.
pub const SECRETS_DIR: &str = "/run/secrets/driver-matrix";

/// The longest name a BuildConfig gets: a DNS label, because OpenShift copies it into the
/// `openshift.io/build-config.name` label of every Build and build pod (label values stop at
/// 63 characters).
pub const NAME_LIMIT: usize = 63;

/// Where the cluster's builder takes the context from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `git clone URI` at `commit`, then each driver's context directory (driver name →
    /// path relative to the repository's top level; empty for the top level).
    Git {
        uri: String,
        commit: String,
        context_dirs: BTreeMap<String, String>,
    },
    /// Uploaded by `oc start-build NAME --from-dir=CONTEXT`.
    Binary,
}

/// Where the built image goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The job's `image:tag`, pushed with `output.pushSecret`.
    DockerImage,
    /// An `ImageStreamTag` of the cluster's own registry (the driver's `image` must name it).
    ImageStream,
}

/// Options of `export buildconfig`.
#[derive(Debug, Clone)]
pub struct BuildConfigOptions {
    pub namespace: Option<String>,
    pub source: Source,
    pub output: Output,
    /// `kubernetes.io/dockerconfigjson` Secret that pushes to the drivers' repositories.
    pub push_secret: Option<String>,
    /// Secret that pulls the DTK (the cluster's pull secret, copied into the namespace).
    pub pull_secret: Option<String>,
}

/// The cluster's internal registry, as pods address it.
pub const INTERNAL_REGISTRY: &str = "image-registry.openshift-image-registry.svc:5000";

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildConfigError {
    #[error(
        "driver `{driver}` pushes to `{image}`, which is not an image stream of the cluster's registry"
    )]
    #[diagnostic(
        code(driver_matrix::export::image_stream),
        help(
            "`--to image-stream` needs the driver's `image` to be `{INTERNAL_REGISTRY}/<namespace>/<name>`, so that `collect` finds what the builds push; else leave `--to` at `docker-image`"
        )
    )]
    NotAnImageStream { driver: String, image: String },

    #[error("`{namespace}` is not a namespace name")]
    #[diagnostic(
        code(driver_matrix::export::namespace),
        help(
            "a namespace is a DNS label: at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"
        )
    )]
    Namespace { namespace: String },

    #[error("driver `{driver}` has no context in the repository")]
    #[diagnostic(code(driver_matrix::export::no_context))]
    NoContext { driver: String },
}

/// The object name of a job's BuildConfig: the job key, lowercased to a DNS label, and a short
/// hash of the exact key so that kernels that differ only where the name had to change (or past
/// the length limit) never share a name.
pub fn name(job: &Job) -> String {
    let hash = hex::encode(&Sha256::digest(job.id().as_bytes())[..4]);
    let readable: String = format!("{}-{}-{}", job.driver, job.kernel, job.arch)
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut prefix: String = readable.chars().take(NAME_LIMIT - hash.len() - 1).collect();
    while prefix.ends_with('-') {
        prefix.pop();
    }
    let prefix = prefix.trim_start_matches('-');
    format!("{prefix}-{hash}")
}

/// The ids of the secrets a Containerfile mounts (`RUN --mount=type=secret,id=ID`) anywhere but
/// at `SECRETS_DIR/ID`: where a BuildConfig's builds will not find them.
pub fn secrets_outside_dir(containerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in containerfile.split_whitespace() {
        let Some(options) = word.strip_prefix("--mount=") else {
            continue;
        };
        let opts: BTreeMap<&str, &str> = options
            .split(',')
            .filter_map(|o| o.split_once('='))
            .collect();
        if opts.get("type") != Some(&"secret") {
            continue;
        }
        let Some(id) = opts.get("id") else { continue };
        let target = ["target", "dst", "destination"]
            .iter()
            .find_map(|k| opts.get(k));
        if target.copied() != Some(format!("{SECRETS_DIR}/{id}").as_str()) {
            out.push(id.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= NAME_LIMIT
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The Secret holding a driver's build secrets.
pub fn secret_name(driver: &str) -> String {
    super::object_name(&format!("{driver}-build-secrets"))
}

/// Every build argument the cluster passes: the ones `driver-matrix build` passes, then the
/// names the Driver Toolkit's README uses (`DTK`, `KVER`) unless the driver sets them itself.
pub fn build_args(job: &Job) -> BTreeMap<String, String> {
    let mut args = job.build_args();
    args.entry("DTK".into())
        .or_insert_with(|| job.dtk.to_string());
    args.entry("KVER".into())
        .or_insert_with(|| job.kernel.to_string());
    args
}

fn name_values<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Value {
    Value::Array(
        pairs
            .into_iter()
            .map(|(k, v)| json!({ "name": k, "value": v }))
            .collect(),
    )
}

fn source(driver: &Driver, opts: &BuildConfigOptions) -> Result<Value, BuildConfigError> {
    Ok(match &opts.source {
        Source::Binary => json!({ "type": "Binary", "binary": {} }),
        Source::Git {
            uri,
            commit,
            context_dirs,
        } => {
            let dir =
                context_dirs
                    .get(&driver.name)
                    .ok_or_else(|| BuildConfigError::NoContext {
                        driver: driver.name.clone(),
                    })?;
            let mut s = Map::new();
            s.insert("type".into(), json!("Git"));
            s.insert("git".into(), json!({ "uri": uri, "ref": commit }));
            if !dir.is_empty() {
                s.insert("contextDir".into(), json!(dir));
            }
            Value::Object(s)
        }
    })
}

/// `output.to` of a job, and the ImageStream it needs (namespace, name) if any.
fn output_to(
    job: &Job,
    output: Output,
) -> Result<(Value, Option<(String, String)>), BuildConfigError> {
    let image = &job.image;
    let tag = image.tag().unwrap_or("latest");
    match output {
        Output::DockerImage => Ok((
            json!({ "kind": "DockerImage", "name": image.to_string() }),
            None,
        )),
        Output::ImageStream => {
            let parts: Vec<&str> = image.repository().split('/').collect();
            match (image.registry() == INTERNAL_REGISTRY, parts.as_slice()) {
                (true, [ns, stream]) => Ok((
                    json!({ "kind": "ImageStreamTag", "namespace": ns, "name": format!("{stream}:{tag}") }),
                    Some((ns.to_string(), stream.to_string())),
                )),
                _ => Err(BuildConfigError::NotAnImageStream {
                    driver: job.driver.clone(),
                    image: image.name(),
                }),
            }
        }
    }
}

/// The `dockerStrategy` of a job.
fn strategy(job: &Job, driver: &Driver, opts: &BuildConfigOptions) -> Value {
    let args = build_args(job);
    let mut docker = Map::new();
    docker.insert("dockerfilePath".into(), json!(driver.containerfile.clone()));
    docker.insert(
        "buildArgs".into(),
        name_values(args.iter().map(|(k, v)| (k.as_str(), v.clone()))),
    );
    if let Some(secret) = &opts.pull_secret {
        docker.insert("pullSecret".into(), json!({ "name": secret }));
    }
    if !driver.secrets.is_empty() {
        let secret = secret_name(&driver.name);
        docker.insert(
            "volumes".into(),
            json!([{
                "name": "driver-matrix-secrets",
                "source": { "type": "Secret", "secret": { "secretName": secret } },
                "mounts": [{ "destinationPath": SECRETS_DIR }],
            }]),
        );
    }
    json!({ "type": "Docker", "dockerStrategy": Value::Object(docker) })
}

/// One BuildConfig (and the ImageStream it pushes to, if any).
fn build_config(
    job: &Job,
    driver: &Driver,
    opts: &BuildConfigOptions,
) -> Result<(Value, Option<(String, String)>), BuildConfigError> {
    let (to, stream) = output_to(job, opts.output)?;
    let mut output = Map::new();
    output.insert("to".into(), to);
    if let (Some(secret), Output::DockerImage) = (&opts.push_secret, opts.output) {
        output.insert("pushSecret".into(), json!({ "name": secret }));
    }
    output.insert(
        "imageLabels".into(),
        name_values(crate::buildah::command::labels(job)),
    );
    let mut meta = metadata(&name(job), opts.namespace.as_deref());
    meta["labels"] = json!({
        "app.kubernetes.io/managed-by": "driver-matrix",
        "io.driver-matrix.driver": job.driver,
        "io.driver-matrix.arch": job.arch.to_string(),
    });
    meta["annotations"] = json!({
        "io.driver-matrix.kernel": job.kernel.to_string(),
        "io.driver-matrix.inputs": job.inputs.to_string(),
    });
    let mut spec = Map::new();
    spec.insert("runPolicy".into(), json!("Serial"));
    spec.insert(
        "nodeSelector".into(),
        json!({ "kubernetes.io/arch": job.arch.goarch() }),
    );
    spec.insert("source".into(), source(driver, opts)?);
    spec.insert("strategy".into(), strategy(job, driver, opts));
    spec.insert("output".into(), Value::Object(output));
    // A git build starts as soon as it is created; a binary one waits for its upload.
    let triggers = match opts.source {
        Source::Git { .. } => json!([{ "type": "ConfigChange" }]),
        Source::Binary => json!([]),
    };
    spec.insert("triggers".into(), triggers);
    let doc = json!({
        "apiVersion": "build.openshift.io/v1",
        "kind": "BuildConfig",
        "metadata": meta,
        "spec": Value::Object(spec),
    });
    Ok((doc, stream))
}

/// The BuildConfigs of `jobs` (in plan order), after the ImageStreams they push to.
pub fn build_configs(
    matrix: &Matrix,
    jobs: &[&Job],
    opts: &BuildConfigOptions,
) -> Result<String, BuildConfigError> {
    if let Some(ns) = &opts.namespace {
        if !is_dns_label(ns) {
            return Err(BuildConfigError::Namespace {
                namespace: crate::text::escape_line(ns).into_owned(),
            });
        }
    }
    let mut docs = Vec::new();
    let mut streams = std::collections::BTreeSet::new();
    for job in jobs {
        let Some(driver) = matrix.driver(&job.driver) else {
            continue;
        };
        let (doc, stream) = build_config(job, driver, opts)?;
        let note = format!(
            "{} for kernel {} ({}), releases {}",
            job.driver,
            job.kernel,
            job.arch,
            job.releases
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        docs.push(yaml::document(&[&note], &doc));
        streams.extend(stream);
    }
    let mut out: Vec<String> = streams
        .iter()
        .map(|(ns, name)| {
            let doc = json!({
                "apiVersion": "image.openshift.io/v1",
                "kind": "ImageStream",
                "metadata": metadata(name, Some(ns)),
            });
            yaml::document(&[], &doc)
        })
        .collect();
    out.extend(docs);
    let header: String = header(matrix, jobs, opts)
        .iter()
        .map(|l| format!("# {}\n", crate::text::escape_line(l)))
        .collect();
    Ok(format!("{header}{}", yaml::documents(&out)))
}

/// What to create before applying, and what to run after: the comment at the top.
fn header(matrix: &Matrix, jobs: &[&Job], opts: &BuildConfigOptions) -> Vec<String> {
    let mut lines = vec![
        "@generated by driver-matrix export buildconfig".to_string(),
        format!("{} BuildConfig(s), one per job to build.", jobs.len()),
    ];
    match &opts.source {
        Source::Git { uri, commit, .. } => {
            lines.push(format!(
                "Source: {uri} at commit {commit}; each build starts when it is created."
            ));
        }
        Source::Binary => {
            lines.push("Source: uploaded; start each build from the driver's context:".into());
            lines.extend(start_builds(matrix, jobs));
        }
    }
    lines.extend(create_secrets(matrix, jobs));
    lines.push(
        "When every build has finished, `driver-matrix collect` locks what they pushed.".into(),
    );
    lines
}

/// For an uploaded source: the `oc start-build` of each job, from its driver's context.
fn start_builds(matrix: &Matrix, jobs: &[&Job]) -> Vec<String> {
    let mut lines = Vec::new();
    for job in jobs {
        if let Some(d) = matrix.driver(&job.driver) {
            let dir = d
                .context
                .strip_prefix(&matrix.root)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let dir = if dir.is_empty() { ".".into() } else { dir };
            lines.push(format!(
                "  oc start-build {} --from-dir={dir} --follow",
                name(job)
            ));
        }
    }
    lines
}

/// The build secrets to create first, one `oc create secret` per driver that has any (none
/// when no job's driver has secrets).
fn create_secrets(matrix: &Matrix, jobs: &[&Job]) -> Vec<String> {
    let mut with_secrets: Vec<&Driver> = jobs
        .iter()
        .filter_map(|j| matrix.driver(&j.driver))
        .filter(|d| !d.secrets.is_empty())
        .collect();
    with_secrets.sort_by(|a, b| a.name.cmp(&b.name));
    with_secrets.dedup_by(|a, b| a.name == b.name);
    if with_secrets.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!(
        "Build secrets, mounted at {SECRETS_DIR}/<id> in every RUN step; create them first:"
    )];
    for d in with_secrets {
        let files: Vec<String> = d
            .secrets
            .iter()
            .map(|(id, path)| {
                let shown = path.strip_prefix(&matrix.root).unwrap_or(path);
                format!("--from-file={id}={}", shown.display())
            })
            .collect();
        lines.push(format!(
            "  oc create secret generic {} {}",
            secret_name(&d.name),
            files.join(" ")
        ));
    }
    lines
}

#[cfg(test)]
mod tests;
