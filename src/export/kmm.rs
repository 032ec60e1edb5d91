//! KMM `Module`s: one per driver, mapping every locked kernel to its image by digest, with the
//! driver's `[driver.kmm]` settings (parameters, firmware, in-tree removal, pull secret, service
//! account, selector, tolerations, in-cluster signing).

use serde_json::{Map, Value, json};

use super::jobs::{Wanted, split, unserved, wanted};
use super::{Export, object_name, yaml};
use crate::lock::{Lock, LockedImage};
use crate::matrix::{Driver, Fallback, KERNEL_PLACEHOLDER, Kmm, Matrix, Sign};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExportError {
    #[error("driver `{driver}` has no `modules`, so the Module cannot name the module to load")]
    #[diagnostic(
        code(driver_matrix::export::no_modules),
        help("add `modules = [\"name\"]` to the driver in matrix.toml")
    )]
    NoModules { driver: String },

    #[error("driver `{driver}` has images for kernel `{kernel}` on several arches ({arches})")]
    #[diagnostic(
        code(driver_matrix::export::kernel_on_several_arches),
        help(
            "KMM maps a kernel string to one image; push a manifest list per kernel, or split the arches into separate drivers"
        )
    )]
    KernelOnSeveralArches {
        driver: String,
        kernel: String,
        arches: String,
    },

    #[error("`{selector}` is not a node selector")]
    #[diagnostic(
        code(driver_matrix::export::selector),
        help("write `key=value`, or `key=` for an empty value")
    )]
    Selector { selector: String },

    #[error("driver `{driver}`: the signed image `{image}:{tag}-signed` is not a valid reference")]
    #[diagnostic(
        code(driver_matrix::export::signed_tag),
        help("shorten the driver's `tag`, or set `[driver.kmm.sign] image` to another repository")
    )]
    SignedTag {
        driver: String,
        image: String,
        tag: String,
    },

    #[error(
        "driver `{driver}` tags its images `{tag}`, but KMM loads at boot from `<image>:$(uname -r)`"
    )]
    #[diagnostic(
        code(driver_matrix::export::boot_tag),
        help(
            "give the driver `tag = \"${{KERNEL_FULL_VERSION}}\"` (the default), or add a second driver with that tag for boot-time loading; real-time kernels (`+rt`, OpenShift 4.16 and later) cannot be served this way at all, because `+` is not valid in a tag"
        )
    )]
    BootTag { driver: String, tag: String },

    #[error(
        "driver `{driver}` loads its module with parameters ({parameters}), which a BootModuleConfig cannot pass"
    )]
    #[diagnostic(
        code(driver_matrix::export::boot_parameters),
        help(
            "KMM's boot units run `modprobe` without parameters; give `--drop-parameters` to load the module without them at boot, or leave this driver to `export kmm`"
        )
    )]
    BootParameters { driver: String, parameters: String },

    #[error(
        "driver `{driver}` has `fallback = \"build\"` and build secrets ({secrets}), which KMM's in-cluster build cannot mount where the Containerfile reads them"
    )]
    #[diagnostic(
        code(driver_matrix::export::fallback_secrets),
        help(
            "leave `fallback` out for this driver, or fetch what the secrets are for without them"
        )
    )]
    FallbackSecrets { driver: String, secrets: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Containerfile(#[from] Box<crate::matrix::ContainerfileError>),
}

/// The tag suffix of the images KMM builds in the cluster (`fallback = "build"`): they are
/// kept apart from the tags driver-matrix moves, which name only images the lock accepted.
pub const FALLBACK_TAG_SUFFIX: &str = "-kmm-build";

/// Options of `export kmm`.
#[derive(Debug, Clone, Default)]
pub struct ModuleOptions {
    pub namespace: Option<String>,
    /// `key=value` node selectors; they replace every driver's `kmm.selector`. When neither is
    /// given: `node-role.kubernetes.io/worker=`.
    pub selectors: Vec<String>,
}

pub(super) fn metadata(name: &str, namespace: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    if let Some(ns) = namespace {
        m.insert("namespace".into(), json!(ns));
    }
    Value::Object(m)
}

/// The `--selector` values as a map, or `None` when none were given.
fn cli_selector(selectors: &[String]) -> Result<Option<Map<String, Value>>, ExportError> {
    if selectors.is_empty() {
        return Ok(None);
    }
    let mut map = Map::new();
    for s in selectors {
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                map.insert(k.to_string(), json!(v));
            }
            _ => {
                return Err(ExportError::Selector {
                    selector: s.clone(),
                });
            }
        }
    }
    Ok(Some(map))
}

fn selector(kmm: &Kmm, cli: Option<&Map<String, Value>>) -> Value {
    if let Some(map) = cli {
        return Value::Object(map.clone());
    }
    if kmm.selector.is_empty() {
        return json!({ "node-role.kubernetes.io/worker": "" });
    }
    Value::Object(
        kmm.selector
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect(),
    )
}

/// One `Module` (kmm.sigs.x-k8s.io/v1beta1) per driver that has images, as YAML documents, and
/// the jobs the lock has no image for.
pub fn modules(matrix: &Matrix, lock: &Lock, opts: &ModuleOptions) -> Result<Export, ExportError> {
    let cli = cli_selector(&opts.selectors)?;
    let mut docs = Vec::new();
    let mut missing: Vec<Wanted> = Vec::new();
    for driver in &matrix.drivers {
        if driver.modules.is_empty() {
            return Err(ExportError::NoModules {
                driver: driver.name.clone(),
            });
        }
        let (images, absent) = split(lock, wanted(matrix, lock, driver));
        missing.extend(absent);
        let fallback = match driver.kmm.fallback {
            Some(Fallback::Build) => Some(fallback_build(matrix, driver, opts)?),
            None => None,
        };
        if images.is_empty() && fallback.is_none() {
            continue;
        }
        let mut mappings = mappings(driver, &images)?;
        let count = mappings.len();
        let unserved: Vec<String> = unserved(matrix, lock, driver)
            .iter()
            .map(|r| r.label())
            .collect();
        if let Some(f) = &fallback {
            mappings.push(f.mapping.clone());
            docs.push(yaml::document(
                &[
                    "@generated by driver-matrix export kmm",
                    &format!(
                        "driver {}: the Containerfile KMM builds for kernels matrix.lock has no image for",
                        driver.name
                    ),
                ],
                &f.config_map,
            ));
        }
        let doc = json!({
            "apiVersion": "kmm.sigs.x-k8s.io/v1beta1",
            "kind": "Module",
            "metadata": metadata(&object_name(&driver.name), opts.namespace.as_deref()),
            "spec": spec(driver, mappings, selector(&driver.kmm, cli.as_ref()), &images),
        });
        let comment = module_header(driver, count, fallback.as_ref(), &unserved);
        let comment: Vec<&str> = comment.iter().map(String::as_str).collect();
        docs.push(yaml::document(&comment, &doc));
    }
    Ok(Export {
        text: yaml::documents(&docs),
        missing,
    })
}

/// A Module's header: where it comes from, what its literal mappings cover, what becomes of
/// the other kernels, and how KMM signs.
fn module_header(
    driver: &Driver,
    count: usize,
    fallback: Option<&FallbackBuild>,
    unserved: &[String],
) -> Vec<String> {
    let mut comment = vec![
        "@generated by driver-matrix export kmm".to_string(),
        format!(
            "driver {}: {count} kernel(s), images pinned by digest from matrix.lock",
            driver.name
        ),
    ];
    comment.extend(other_kernels(driver, fallback, unserved));
    if driver.kmm.sign.is_some() {
        comment.push(
            "KMM signs each image in the cluster and pushes it to the `-signed` tag it then loads."
                .into(),
        );
        comment.push("imageRebuildTriggerGeneration follows the locked digests: a rebuilt image is signed again.".into());
    }
    comment
}

/// The header lines that say what becomes of the nodes on a kernel no literal mapping names.
fn other_kernels(
    driver: &Driver,
    fallback: Option<&FallbackBuild>,
    unserved: &[String],
) -> Vec<String> {
    let mut lines = Vec::new();
    match fallback {
        None => {
            lines.push(
                "Nodes on any other kernel get no module, and the Module shows no error:".into(),
            );
            let later = "those of every release not in matrix.lock yet (a newer z-stream).";
            if unserved.is_empty() {
                lines.push(later.into());
            } else {
                lines.push(format!("the nodes of {}, and {later}", unserved.join(", ")));
            }
            lines.push(format!(
                "`fallback = \"build\"` in [driver.kmm] of `{}` lets KMM build those in the cluster.",
                driver.name
            ));
        }
        Some(f) => {
            lines.push(format!(
                "Any other kernel: KMM builds ConfigMap {} in the cluster and pushes {}",
                f.name, f.image
            ));
            lines.push("(the Module's imageRepoSecret needs push rights there).".into());
            if !unserved.is_empty() {
                lines.push(format!(
                    "It builds for the nodes of {}.",
                    unserved.join(", ")
                ));
            }
            if driver.rt && driver.kmm.sign.is_some() {
                // KMM internal/module/kernelmapper.go, getRelevantSign: the templates of
                // filesToSign get the normalized kernel.
                lines.push("KMM writes the kernel into files-to-sign normalized (`+` becomes `_`): for a real-time".into());
                lines.push("kernel ending in `+rt` (4.16 on) the fallback would sign a path the image does not hold.".into());
            }
        }
    }
    lines
}

/// What `fallback = "build"` adds: a ConfigMap holding the driver's Containerfile, and the
/// last kernel mapping, which matches every kernel and builds it.
#[derive(Debug)]
struct FallbackBuild {
    name: String,
    image: String,
    config_map: Value,
    mapping: Value,
}

/// The fallback of `driver`: KMM builds the Containerfile from a ConfigMap (key `dockerfile`,
/// KMM `internal/constants`) with no context, passing its own build args and the driver's
/// `build-args`; the image goes to `<repository>:${KERNEL_FULL_VERSION}-kmm-build`, where
/// KMM puts the node's kernel (normalized: `+` becomes `_`).
fn fallback_build(
    matrix: &Matrix,
    driver: &Driver,
    opts: &ModuleOptions,
) -> Result<FallbackBuild, ExportError> {
    if !driver.secrets.is_empty() {
        return Err(ExportError::FallbackSecrets {
            driver: driver.name.clone(),
            secrets: driver
                .secrets
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let text = crate::matrix::containerfile::for_kmm_build(driver, &matrix.root)?;
    let name = object_name(&format!("{}-dockerfile", driver.name));
    let repo = driver
        .kmm
        .sign
        .as_ref()
        .and_then(|s| s.image.as_ref())
        .unwrap_or(&driver.image);
    let image = format!("{repo}:{KERNEL_PLACEHOLDER}{FALLBACK_TAG_SUFFIX}");
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(&name, opts.namespace.as_deref()),
        "data": { "dockerfile": text },
    });
    let mapping = fallback_mapping(driver, &name, &image);
    Ok(FallbackBuild {
        name,
        image,
        config_map,
        mapping,
    })
}

/// The fallback's kernel mapping: every kernel, built from ConfigMap `name` into `image`, and
/// signed there when KMM signs the driver (KMM puts each kernel into `files-to-sign`).
fn fallback_mapping(driver: &Driver, name: &str, image: &str) -> Value {
    let mut build = Map::new();
    if !driver.build_args.is_empty() {
        let args: Vec<Value> = driver
            .build_args
            .iter()
            .map(|(k, v)| json!({ "name": k, "value": v }))
            .collect();
        build.insert("buildArgs".into(), Value::Array(args));
    }
    build.insert("dockerfileConfigMap".into(), json!({ "name": name }));
    let mut mapping = Map::new();
    mapping.insert("regexp".into(), json!(FALLBACK_REGEXP));
    mapping.insert("containerImage".into(), json!(image));
    mapping.insert("build".into(), Value::Object(build));
    if let Some(sign) = &driver.kmm.sign {
        mapping.insert(
            "sign".into(),
            json!({
                "keySecret": { "name": sign.key_secret },
                "certSecret": { "name": sign.cert_secret },
                "filesToSign": sign.files_to_sign,
            }),
        );
    }
    Value::Object(mapping)
}

/// The fallback mapping's kernel pattern: any kernel (KMM tries the mappings in order, so the
/// literal ones come first).
pub const FALLBACK_REGEXP: &str = "^.+$";

/// `kernelMappings`, one per kernel; a kernel on several arches is an error.
fn mappings(driver: &Driver, images: &[&LockedImage]) -> Result<Vec<Value>, ExportError> {
    let mut out = Vec::new();
    for image in images {
        let same: Vec<&&LockedImage> = images.iter().filter(|o| o.kernel == image.kernel).collect();
        if same.len() > 1 {
            return Err(ExportError::KernelOnSeveralArches {
                driver: driver.name.clone(),
                kernel: image.kernel.to_string(),
                arches: same
                    .iter()
                    .map(|o| o.arch.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let pinned = image.pinned().to_string();
        let mapping = match &driver.kmm.sign {
            None => json!({ "literal": image.kernel.as_str(), "containerImage": pinned }),
            Some(sign) => json!({
                "literal": image.kernel.as_str(),
                "containerImage": signed_image(driver, image, sign)?,
                "sign": {
                    "unsignedImage": pinned,
                    "keySecret": { "name": sign.key_secret },
                    "certSecret": { "name": sign.cert_secret },
                    "filesToSign": sign.files_for(image.kernel.as_str()),
                },
            }),
        };
        out.push(mapping);
    }
    Ok(out)
}

/// Where KMM pushes the signed image: `<sign.image or image>:<tag>-signed`.
fn signed_image(driver: &Driver, image: &LockedImage, sign: &Sign) -> Result<String, ExportError> {
    let repo = sign.image.as_ref().unwrap_or(&driver.image);
    let tag = image.image.tag().unwrap_or(image.kernel.as_str());
    repo.with_tag(&format!("{tag}-signed"))
        .map(|r| r.to_string())
        .map_err(|_| ExportError::SignedTag {
            driver: driver.name.clone(),
            image: repo.to_string(),
            tag: tag.to_string(),
        })
}

/// `imageRebuildTriggerGeneration` for in-cluster signing: KMM signs an image only when its
/// `-signed` tag does not exist yet, so an image rebuilt for a kernel it already signed would
/// keep the old signed image; the generation changes with the locked digests (a number from
/// their hash, below 2^31), and KMM signs again when it changes.
fn rebuild_generation(images: &[&LockedImage]) -> u32 {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    let mut digests: Vec<String> = images.iter().map(|i| i.digest.to_string()).collect();
    digests.sort();
    for d in digests {
        h.update(d.as_bytes());
        h.update([0]);
    }
    let bytes: [u8; 4] = h.finalize()[..4]
        .try_into()
        .expect("a SHA-256 has more than 4 bytes");
    u32::from_be_bytes(bytes) & 0x7fff_ffff
}

/// The Module's `spec`: only the keys the driver sets, in KMM's documented order.
fn spec(driver: &Driver, mappings: Vec<Value>, selector: Value, images: &[&LockedImage]) -> Value {
    let kmm = &driver.kmm;
    let mut modprobe = Map::new();
    modprobe.insert("moduleName".into(), json!(driver.modules[0]));
    if !kmm.parameters.is_empty() {
        modprobe.insert("parameters".into(), json!(kmm.parameters));
    }
    if let Some(path) = &kmm.firmware_path {
        modprobe.insert("firmwarePath".into(), json!(path));
    }
    if driver.modules.len() > 1 {
        modprobe.insert("modulesLoadingOrder".into(), json!(driver.modules));
    }
    let mut container = Map::new();
    container.insert("modprobe".into(), Value::Object(modprobe));
    if !kmm.in_tree_modules_to_remove.is_empty() {
        container.insert(
            "inTreeModulesToRemove".into(),
            json!(kmm.in_tree_modules_to_remove),
        );
    }
    container.insert("kernelMappings".into(), Value::Array(mappings));
    if let Some(version) = &kmm.version {
        container.insert("version".into(), json!(version));
    }
    let mut loader = Map::new();
    loader.insert("container".into(), Value::Object(container));
    if let Some(sa) = &kmm.service_account {
        loader.insert("serviceAccountName".into(), json!(sa));
    }
    let mut spec = Map::new();
    if let Some(plugin) = &kmm.device_plugin {
        spec.insert("devicePlugin".into(), device_plugin(plugin));
    }
    spec.insert("moduleLoader".into(), Value::Object(loader));
    if kmm.sign.is_some() {
        spec.insert(
            "imageRebuildTriggerGeneration".into(),
            json!(rebuild_generation(images)),
        );
    }
    if let Some(secret) = &kmm.image_repo_secret {
        spec.insert("imageRepoSecret".into(), json!({ "name": secret }));
    }
    spec.insert("selector".into(), selector);
    if !kmm.tolerations.is_empty() {
        let list: Vec<Value> = kmm.tolerations.iter().map(toleration).collect();
        spec.insert("tolerations".into(), Value::Array(list));
    }
    Value::Object(spec)
}

/// `spec.devicePlugin`: the plugin's container and service account.
fn device_plugin(plugin: &crate::matrix::DevicePlugin) -> Value {
    let mut container = Map::new();
    container.insert("image".into(), json!(plugin.image.to_string()));
    if !plugin.args.is_empty() {
        container.insert("args".into(), json!(plugin.args));
    }
    let mut dp = Map::new();
    dp.insert("container".into(), Value::Object(container));
    if let Some(sa) = &plugin.service_account {
        dp.insert("serviceAccountName".into(), json!(sa));
    }
    Value::Object(dp)
}

fn toleration(t: &crate::matrix::Toleration) -> Value {
    let mut m = Map::new();
    let fields = [
        ("key", &t.key),
        ("operator", &t.operator),
        ("value", &t.value),
        ("effect", &t.effect),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if let Some(s) = t.toleration_seconds {
        m.insert("tolerationSeconds".into(), json!(s));
    }
    Value::Object(m)
}
