//! `[driver.kmm]`: how `export kmm` and `export boot` deploy a driver with Kernel Module
//! Management. The raw table (serde + JSON Schema), its validated form, and the validation,
//! which reports every problem with its place in the file like the rest of the matrix.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::diagnostic::Problem;
use crate::domain::{ImageRef, did_you_mean};

type S<T> = Spanned<T>;

/// The one placeholder `files-to-sign` may use; each kernel mapping gets its own kernel.
pub const KERNEL_PLACEHOLDER: &str = "${KERNEL_FULL_VERSION}";

/// KMM settings of one driver, all optional.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(rename = "Kmm")]
pub struct RawKmm {
    /// Module parameters, `name=value` (no spaces): `modprobe <module> <parameters>`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub parameters: Vec<S<String>>,
    /// Absolute path of firmware files in the image; KMM copies them to the node's firmware
    /// search path before loading.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub firmware_path: Option<S<String>>,
    /// In-tree modules to unload before the driver's modules are loaded (KMM
    /// `inTreeModulesToRemove`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub in_tree_modules_to_remove: Vec<S<String>>,
    /// Name of the pull secret (in the Module's namespace) for the driver images.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub image_repo_secret: Option<S<String>>,
    /// Service account of the pods that load the module (KMM `serviceAccountName`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub service_account: Option<S<String>>,
    /// Node selector `label = "value"`; `export kmm --selector` overrides it.
    /// Default `{ "node-role.kubernetes.io/worker" = "" }`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub selector: BTreeMap<S<String>, S<String>>,
    /// Taints the loading pods tolerate.
    #[serde(default)]
    #[schemars(with = "Vec<RawToleration>")]
    pub tolerations: Vec<S<RawToleration>>,
    /// Let KMM sign the modules in the cluster (Secure Boot) before loading them.
    #[serde(default)]
    #[schemars(with = "Option<RawSign>")]
    pub sign: Option<S<RawSign>>,
    /// The driver's version (`spec.moduleLoader.container.version`): with it, KMM upgrades a
    /// loaded driver node by node, on the node label
    /// `kmm.node.kubernetes.io/version-module.<namespace>.<name>`. A label value.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub version: Option<S<String>>,
    /// The device plugin that advertises the driver's devices to pods (KMM `devicePlugin`).
    #[serde(default)]
    #[schemars(with = "Option<RawDevicePlugin>")]
    pub device_plugin: Option<S<RawDevicePlugin>>,
    /// What KMM does on a node whose kernel the lock has no image for: by default nothing (the
    /// node gets no module, and the Module shows no error). `"build"`: KMM builds the driver's
    /// Containerfile in the cluster for that kernel and pushes it to
    /// `<image>:${KERNEL_FULL_VERSION}-kmm-build`, which needs `image-repo-secret` with push
    /// rights and a Containerfile that fetches its sources (KMM's build has no context).
    #[serde(default)]
    #[schemars(with = "Option<Fallback>")]
    pub fallback: Option<S<String>>,
}

/// What KMM does for a kernel the lock has no image for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Fallback {
    /// KMM builds the image in the cluster (a `regexp` kernel mapping with a `build`).
    Build,
}

/// A device plugin KMM runs on the nodes that load the driver.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(rename = "DevicePlugin")]
pub struct RawDevicePlugin {
    /// Its container image.
    #[schemars(with = "String")]
    pub image: S<String>,
    /// Arguments of its container.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub args: Vec<S<String>>,
    /// Service account of its pods.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub service_account: Option<S<String>>,
}

/// A pod toleration, as in Kubernetes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(rename = "Toleration")]
pub struct RawToleration {
    /// The taint key; empty or absent means every key (then `operator` must be `Exists`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub key: Option<S<String>>,
    /// Default `Equal`.
    #[serde(default)]
    #[schemars(with = "Option<TolerationOperator>")]
    pub operator: Option<S<String>>,
    /// The taint value (`Equal` only).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub value: Option<S<String>>,
    /// Absent means every effect.
    #[serde(default)]
    #[schemars(with = "Option<TaintEffect>")]
    pub effect: Option<S<String>>,
    /// How long a `NoExecute` taint is tolerated; absent means for ever.
    #[serde(default)]
    #[schemars(with = "Option<i64>")]
    pub toleration_seconds: Option<S<i64>>,
}

/// KMM in-cluster signing: KMM signs the driver image's modules with the key and certificate
/// of two Secrets and pushes the signed image.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(rename = "Sign")]
pub struct RawSign {
    /// Secret whose `key` entry holds the private signing key.
    #[schemars(with = "String")]
    pub key_secret: S<String>,
    /// Secret whose `cert` entry holds the public certificate.
    #[schemars(with = "String")]
    pub cert_secret: S<String>,
    /// Absolute paths of the `.ko` files in the image; `${KERNEL_FULL_VERSION}` is replaced by
    /// each kernel, e.g. `/opt/lib/modules/${KERNEL_FULL_VERSION}/hello.ko`.
    #[schemars(with = "Vec<String>")]
    pub files_to_sign: Vec<S<String>>,
    /// Repository the signed images are pushed to, tagged `<tag>-signed`; default the driver's
    /// `image`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub image: Option<S<String>>,
}

/// The operators a toleration may use. Only the JSON Schema uses these two enums (editors
/// complete the values from it); validation checks the strings, to report every bad value.
#[expect(dead_code, reason = "schema-only type")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum TolerationOperator {
    Equal,
    Exists,
}

/// The taint effects a toleration may name.
#[expect(dead_code, reason = "schema-only type")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

/// A driver's validated KMM settings; the default is what a driver without `[driver.kmm]` gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kmm {
    pub parameters: Vec<String>,
    pub firmware_path: Option<String>,
    pub in_tree_modules_to_remove: Vec<String>,
    pub image_repo_secret: Option<String>,
    pub service_account: Option<String>,
    /// Empty: the export's default selector.
    pub selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub sign: Option<Sign>,
    pub version: Option<String>,
    pub device_plugin: Option<DevicePlugin>,
    pub fallback: Option<Fallback>,
}

/// A validated device plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlugin {
    pub image: ImageRef,
    pub args: Vec<String>,
    pub service_account: Option<String>,
}

/// A validated toleration; `None` fields are left out of the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    pub key: Option<String>,
    pub operator: Option<String>,
    pub value: Option<String>,
    pub effect: Option<String>,
    pub toleration_seconds: Option<i64>,
}

/// Validated signing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sign {
    pub key_secret: String,
    pub cert_secret: String,
    /// Paths that may hold [`KERNEL_PLACEHOLDER`].
    pub files_to_sign: Vec<String>,
    /// Where signed images go; `None`: the driver's own repository.
    pub image: Option<ImageRef>,
}

impl Sign {
    /// `files_to_sign` for one kernel.
    pub fn files_for(&self, kernel: &str) -> Vec<String> {
        self.files_to_sign
            .iter()
            .map(|f| f.replace(KERNEL_PLACEHOLDER, kernel))
            .collect()
    }
}

/// Validates `raw` for the driver whose (already valid) `modules` are given.
pub fn validate(raw: Option<&S<RawKmm>>, modules: &[String], problems: &mut Vec<Problem>) -> Kmm {
    let Some(raw) = raw else {
        return Kmm::default();
    };
    let mut v = Check { problems };
    if modules.is_empty() {
        v.problems.push(
            Problem::new("`[driver.kmm]` is set, but the driver lists no `modules`")
                .label(raw.span(), "KMM needs a module to load")
                .help("add `modules = [\"name\"]` to the driver; the first one is the module KMM loads"),
        );
    }
    let r = raw.get_ref();
    Kmm {
        parameters: r.parameters.iter().filter_map(|p| v.parameter(p)).collect(),
        firmware_path: r
            .firmware_path
            .as_ref()
            .and_then(|p| v.abs_path(p, "firmware-path")),
        in_tree_modules_to_remove: r
            .in_tree_modules_to_remove
            .iter()
            .filter_map(|m| v.module(m))
            .collect(),
        image_repo_secret: r
            .image_repo_secret
            .as_ref()
            .and_then(|s| v.object_name(s, "a Secret")),
        service_account: r
            .service_account
            .as_ref()
            .and_then(|s| v.object_name(s, "a ServiceAccount")),
        selector: r
            .selector
            .iter()
            .filter_map(|(k, val)| v.label(k, val))
            .collect(),
        tolerations: r
            .tolerations
            .iter()
            .filter_map(|t| v.toleration(t))
            .collect(),
        sign: r.sign.as_ref().and_then(|s| v.sign(s)),
        version: r.version.as_ref().and_then(|s| v.version(s)),
        device_plugin: r.device_plugin.as_ref().and_then(|d| v.device_plugin(d)),
        fallback: r.fallback.as_ref().and_then(|f| v.fallback(f)),
    }
}

struct Check<'p> {
    problems: &'p mut Vec<Problem>,
}

impl Check<'_> {
    fn fail<T>(&mut self, p: Problem) -> Option<T> {
        self.problems.push(p);
        None
    }

    fn parameter(&mut self, p: &S<String>) -> Option<String> {
        let text = p.get_ref();
        let name = text.split_once('=').map_or(text.as_str(), |(n, _)| n);
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok || text.chars().any(char::is_whitespace) {
            return self.fail(
                Problem::new(format!("`{text}` is not a module parameter"))
                    .label(p.span(), "expected `name=value` without spaces")
                    .help("KMM joins parameters with spaces into `modprobe <module> name=value ...`; list one per entry"),
            );
        }
        Some(text.clone())
    }

    fn abs_path(&mut self, p: &S<String>, key: &str) -> Option<String> {
        let text = p.get_ref();
        if !text.starts_with('/') || text.chars().any(char::is_whitespace) || text.contains("..") {
            return self.fail(
                Problem::new(format!(
                    "`{key}` must be an absolute path in the image, not `{text}`"
                ))
                .label(p.span(), "expected `/path/in/image`, no spaces or `..`"),
            );
        }
        Some(text.clone())
    }

    fn module(&mut self, m: &S<String>) -> Option<String> {
        let text = m.get_ref();
        let ok = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return self.fail(
                Problem::new(format!("`{text}` is not a kernel module name"))
                    .label(m.span(), "expected letters, digits, `_` or `-`")
                    .help_opt(text.strip_suffix(".ko").map(|s| format!("write `{s}`"))),
            );
        }
        Some(text.clone())
    }

    fn object_name(&mut self, s: &S<String>, what: &str) -> Option<String> {
        let text = s.get_ref();
        if !is_dns_subdomain(text) {
            return self.fail(
                Problem::new(format!("`{text}` is not the name of {what}"))
                    .label(
                        s.span(),
                        "expected lowercase `[a-z0-9.-]`, at most 253 characters",
                    )
                    .help("Kubernetes object names start and end with a letter or digit"),
            );
        }
        Some(text.clone())
    }

    fn label(&mut self, k: &S<String>, v: &S<String>) -> Option<(String, String)> {
        let (key, value) = (k.get_ref(), v.get_ref());
        if !is_label_key(key) {
            return self.fail(
                Problem::new(format!("`{key}` is not a node label key"))
                    .label(k.span(), "expected `[prefix/]name`")
                    .help("a name is at most 63 of `[A-Za-z0-9._-]`, starting and ending with a letter or digit; a prefix is a DNS subdomain"),
            );
        }
        if !value.is_empty() && !is_label_name(value) {
            return self.fail(
                Problem::new(format!("`{value}` is not a label value")).label(
                    v.span(),
                    "expected at most 63 of `[A-Za-z0-9._-]`, or empty",
                ),
            );
        }
        Some((key.clone(), value.clone()))
    }

    fn one_of(&mut self, s: &S<String>, allowed: &[&str], what: &str) -> Option<String> {
        let text = s.get_ref();
        if allowed.contains(&text.as_str()) {
            return Some(text.clone());
        }
        let p = Problem::new(format!("`{text}` is not a toleration {what}"))
            .label(s.span(), format!("expected one of {}", allowed.join(", ")));
        let p = match did_you_mean(text, allowed.iter().copied()) {
            Some(close) => p.help(format!("did you mean `{close}`?")),
            None => p,
        };
        self.fail(p)
    }

    fn toleration(&mut self, t: &S<RawToleration>) -> Option<Toleration> {
        let before = self.problems.len();
        let r = t.get_ref();
        let operator = r
            .operator
            .as_ref()
            .and_then(|o| self.one_of(o, &["Equal", "Exists"], "operator"));
        let effect = r.effect.as_ref().and_then(|e| {
            self.one_of(
                e,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                "effect",
            )
        });
        let key = r.key.as_ref().map(|k| k.get_ref().clone());
        let value = r.value.as_ref().map(|v| v.get_ref().clone());
        let exists = operator.as_deref() == Some("Exists");
        if let Some(k) = r.key.as_ref().filter(|k| !k.get_ref().is_empty())
            && !is_label_key(k.get_ref())
        {
            self.fail::<()>(
                Problem::new(format!("`{}` is not a taint key", k.get_ref()))
                    .label(k.span(), "expected `[prefix/]name`"),
            );
        }
        if key.as_deref().unwrap_or_default().is_empty() && !exists {
            self.fail::<()>(
                Problem::new("a toleration without `key` must have `operator = \"Exists\"`")
                    .label(t.span(), "matches every taint key")
                    .help("add `operator = \"Exists\"`, or name the taint `key`"),
            );
        }
        if let Some(v) = r
            .value
            .as_ref()
            .filter(|v| exists && !v.get_ref().is_empty())
        {
            self.fail::<()>(
                Problem::new("a toleration with `operator = \"Exists\"` takes no `value`")
                    .label(v.span(), "remove this, or use `operator = \"Equal\"`"),
            );
        }
        if let Some(s) = &r.toleration_seconds
            && effect.as_deref() != Some("NoExecute")
        {
            self.fail::<()>(
                Problem::new("`toleration-seconds` applies only to `effect = \"NoExecute\"`")
                    .label(s.span(), "ignored by Kubernetes for other effects"),
            );
        }
        (self.problems.len() == before).then(|| Toleration {
            key,
            operator,
            value,
            effect,
            toleration_seconds: r.toleration_seconds.as_ref().map(|s| *s.get_ref()),
        })
    }

    fn sign(&mut self, s: &S<RawSign>) -> Option<Sign> {
        let before = self.problems.len();
        let r = s.get_ref();
        let key_secret = self.object_name(&r.key_secret, "a Secret");
        let cert_secret = self.object_name(&r.cert_secret, "a Secret");
        if r.files_to_sign.is_empty() {
            self.fail::<()>(
                Problem::new("`files-to-sign` is empty, so KMM would sign nothing")
                    .label(s.span(), "in this table")
                    .help("list the modules' paths in the image, e.g. `/opt/lib/modules/${KERNEL_FULL_VERSION}/hello.ko`"),
            );
        }
        let mut files = Vec::new();
        for f in &r.files_to_sign {
            let rest = f.get_ref().replace(KERNEL_PLACEHOLDER, "");
            if rest.contains('$') {
                self.fail::<()>(
                    Problem::new(format!(
                        "`{}` uses a placeholder other than `{KERNEL_PLACEHOLDER}`",
                        f.get_ref()
                    ))
                    .label(f.span(), "only the kernel is known per mapping"),
                );
            } else if let Some(p) = self.abs_path(f, "files-to-sign") {
                files.push(p);
            }
        }
        let image = r.image.as_ref().and_then(|i| self.repository(i));
        if self.problems.len() != before {
            return None;
        }
        Some(Sign {
            key_secret: key_secret?,
            cert_secret: cert_secret?,
            files_to_sign: files,
            image,
        })
    }

    fn version(&mut self, s: &S<String>) -> Option<String> {
        let text = s.get_ref();
        if text.is_empty() || !is_label_name(text) {
            return self.fail(
                Problem::new(format!(
                    "`{text}` is not a driver version KMM can label nodes with"
                ))
                .label(s.span(), "expected at most 63 of `[A-Za-z0-9._-]`")
                .help("KMM puts the version into a node label value, like `2.3.1`"),
            );
        }
        Some(text.clone())
    }

    fn device_plugin(&mut self, d: &S<RawDevicePlugin>) -> Option<DevicePlugin> {
        let r = d.get_ref();
        let image = match r.image.get_ref().parse::<ImageRef>() {
            Ok(i) => Some(i),
            Err(e) => self.fail(
                Problem::new(e.message)
                    .label(r.image.span(), "not a valid image reference")
                    .help_opt(e.help),
            ),
        };
        let service_account = match &r.service_account {
            Some(s) => Some(self.object_name(s, "a ServiceAccount")?),
            None => None,
        };
        Some(DevicePlugin {
            image: image?,
            args: r.args.iter().map(|a| a.get_ref().clone()).collect(),
            service_account,
        })
    }

    fn fallback(&mut self, f: &S<String>) -> Option<Fallback> {
        let text = f.get_ref();
        if text == "build" {
            return Some(Fallback::Build);
        }
        let p = Problem::new(format!("`{text}` is not a KMM fallback"))
            .label(f.span(), "expected `build`")
            .help("`fallback = \"build\"` lets KMM build, in the cluster, the kernels the lock has no image for; leave it out for none");
        self.fail(p)
    }

    fn repository(&mut self, i: &S<String>) -> Option<ImageRef> {
        match i.get_ref().parse::<ImageRef>() {
            Ok(r) if r.tag().is_none() && r.digest().is_none() => Some(r),
            Ok(r) => self.fail(
                Problem::new("`sign.image` must name a repository without tag or digest")
                    .label(i.span(), "remove the tag or digest")
                    .help(format!(
                        "write `{}`; signed images are tagged `<tag>-signed`",
                        r.name()
                    )),
            ),
            Err(e) => self.fail(
                Problem::new(e.message)
                    .label(i.span(), "not a valid image reference")
                    .help_opt(e.help),
            ),
        }
    }
}

/// A Kubernetes object name (RFC 1123 subdomain).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// The name part of a label key, or a non-empty label value.
fn is_label_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain.
pub fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_and_object_names() {
        assert!(is_label_key("node-role.kubernetes.io/worker"));
        assert!(is_label_key("feature.node.kubernetes.io/pci-10de.present"));
        assert!(!is_label_key("a/b/c"));
        assert!(!is_label_key("-x"));
        assert!(!is_label_key("Upper.Case/x"));
        assert!(is_dns_subdomain("acme-pull.v1"));
        assert!(!is_dns_subdomain("Acme"));
        assert!(!is_dns_subdomain("a..b"));
    }

    #[test]
    fn files_to_sign_take_each_kernel() {
        let s = Sign {
            key_secret: "k".into(),
            cert_secret: "c".into(),
            files_to_sign: vec!["/opt/lib/modules/${KERNEL_FULL_VERSION}/a.ko".into()],
            image: None,
        };
        assert_eq!(
            s.files_for("5.14.0-1.el9.x86_64"),
            ["/opt/lib/modules/5.14.0-1.el9.x86_64/a.ko"]
        );
    }
}
