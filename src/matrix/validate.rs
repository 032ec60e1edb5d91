//! Semantic validation: raw values become domain values; every problem is collected with the
//! place it concerns, so the user sees all of them in one run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use miette::NamedSource;
use toml::Spanned;

use super::diagnostic::Problem;
use super::model::*;
use super::raw::*;
use crate::domain::{
    Arch, ImageRef, Kernel, ParseError, Version, VersionReq, check_driver_name, did_you_mean,
    is_module_name, is_secret_id,
};
use crate::template::TagTemplate;

pub use crate::names::RESERVED_BUILD_ARGS;
use crate::names::{arg, placeholder};

pub struct Validator {
    root: PathBuf,
    pub problems: Vec<Problem>,
}

/// Turns a domain parse error into a problem at `span`.
fn problem_at(err: ParseError, span: std::ops::Range<usize>, label: &str) -> Problem {
    Problem::new(err.message)
        .label(span, label)
        .help_opt(err.help)
}

impl Validator {
    pub fn new(root: PathBuf) -> Self {
        Validator {
            root,
            problems: Vec::new(),
        }
    }

    fn parse<T: FromStr<Err = ParseError>>(
        &mut self,
        v: &Spanned<String>,
        label: &str,
    ) -> Option<T> {
        match v.get_ref().parse::<T>() {
            Ok(t) => Some(t),
            Err(e) => {
                self.problems.push(problem_at(e, v.span(), label));
                None
            }
        }
    }

    pub fn matrix(
        &mut self,
        raw: RawMatrix,
        path: &Path,
        source: Arc<NamedSource<String>>,
    ) -> Matrix {
        let openshift = self.openshift(&raw.openshift, !raw.toolkits.is_empty());
        let toolkits =
            super::toolkit::validate(&raw.toolkits, &openshift.arches, &mut self.problems);
        let registries = raw
            .registries
            .iter()
            .filter_map(|(host, r)| Some((host.clone(), self.registry(host, r)?)))
            .collect();
        let mut seen: BTreeMap<String, std::ops::Range<usize>> = BTreeMap::new();
        let mut drivers = Vec::new();
        for d in &raw.drivers {
            let name = d.get_ref().name.get_ref();
            // A duplicate is still validated, so its own problems show in the same run.
            let driver = self.driver(d.get_ref(), &openshift.arches);
            if let Some(first) = seen.get(name) {
                self.problems.push(
                    Problem::new(format!("driver `{name}` is defined twice"))
                        .label(d.get_ref().name.span(), "second definition")
                        .label(first.clone(), "first definition")
                        .help("driver names must be unique; rename or remove one"),
                );
                continue;
            }
            seen.insert(name.clone(), d.get_ref().name.span());
            drivers.extend(driver);
        }
        drivers.sort_by(|a: &Driver, b| a.name.cmp(&b.name));
        let excludes = raw
            .excludes
            .iter()
            .filter_map(|e| self.exclude(e, &drivers))
            .collect();
        Matrix {
            path: path.to_path_buf(),
            root: self.root.clone(),
            source,
            openshift,
            registries,
            drivers,
            excludes,
            toolkits,
        }
    }

    /// `[openshift]`; without `toolkits`, it must name a release or a channel.
    fn openshift(&mut self, raw: &Spanned<RawOpenShift>, toolkits: bool) -> OpenShift {
        let o = raw.get_ref();
        let releases = self.releases(o);
        let channels = self.channels(o);
        if o.releases.is_empty() && o.channels.is_empty() && !toolkits {
            self.problems.push(
                Problem::new("the matrix names no OpenShift release")
                    .label(raw.span(), "no `releases` and no `channels` here")
                    .help("add `releases = [\"4.16.3\"]` or `channels = [{ name = \"stable-4.16\", latest = 2 }]`, or name kernels in `[[toolkit]]` entries"),
            );
        }
        let arches = self.openshift_arches(raw);
        let payload_repo = match &o.payload_repo {
            Some(r) => self.repository(r, "payload-repo"),
            None => None,
        };
        let streams = o
            .streams
            .as_ref()
            .map(|list| self.streams(list, raw.span()));
        OpenShift {
            streams,
            releases,
            channels,
            arches,
            payload_repo: payload_repo
                .unwrap_or_else(|| DEFAULT_PAYLOAD_REPO.parse().expect("the default is valid")),
            graph_url: self.graph_url(o),
        }
    }

    /// `[openshift] streams`: known names, at least one, sorted and unique.
    fn streams(&mut self, list: &[Spanned<String>], table: std::ops::Range<usize>) -> Vec<String> {
        if list.is_empty() {
            self.problems.push(
                Problem::new("`openshift.streams` is empty")
                    .label(table, "in this table")
                    .help("list `default`, `rhel-10` or both, or remove the key to build every stream"),
            );
        }
        let mut out = BTreeSet::new();
        for s in list {
            if let Some(name) = self.known_stream(s) {
                out.insert(name);
            }
        }
        out.into_iter().collect()
    }

    /// Exact versions, sorted; one listed twice is a warning.
    fn releases(&mut self, o: &RawOpenShift) -> Vec<Version> {
        let mut releases = BTreeSet::new();
        for r in &o.releases {
            if let Some(v) = self.parse::<Version>(r, "not an exact version")
                && !releases.insert(v)
            {
                self.problems.push(
                    Problem::warning(format!("release `{}` is listed twice", r.get_ref()))
                        .label(r.span(), "listed again here"),
                );
            }
        }
        releases.into_iter().collect()
    }

    /// Channels, each once.
    fn channels(&mut self, o: &RawOpenShift) -> Vec<Channel> {
        let mut channels: Vec<Channel> = Vec::new();
        for c in &o.channels {
            let Some(ch) = self.channel(c.get_ref()) else {
                continue;
            };
            if channels.iter().any(|x| x.name == ch.name) {
                self.problems.push(
                    Problem::new(format!("channel `{}` is listed twice", ch.name))
                        .label(c.get_ref().name.span(), "listed again here"),
                );
            } else {
                channels.push(ch);
            }
        }
        channels
    }

    /// `[openshift].arch`: known arches, sorted, not empty; `["x86_64"]` when absent.
    fn openshift_arches(&mut self, raw: &Spanned<RawOpenShift>) -> Vec<Arch> {
        let Some(list) = &raw.get_ref().arch else {
            return vec![Arch::X86_64];
        };
        if list.is_empty() {
            self.problems.push(
                Problem::new("`openshift.arch` is empty")
                    .label(raw.span(), "in this table")
                    .help(
                        "list at least one arch, or remove the key for the default `[\"x86_64\"]`",
                    ),
            );
        }
        let set: BTreeSet<Arch> = list
            .iter()
            .filter_map(|a| self.parse::<Arch>(a, "unknown arch"))
            .collect();
        set.into_iter().collect()
    }

    /// `graph-url`: an http(s) URL; the Cincinnati default when absent.
    fn graph_url(&mut self, o: &RawOpenShift) -> String {
        let Some(u) = &o.graph_url else {
            return DEFAULT_GRAPH_URL.to_string();
        };
        let s = u.get_ref();
        let ok = (s.starts_with("https://") || s.starts_with("http://"))
            && s.split_once("://")
                .is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains(char::is_whitespace));
        if !ok {
            self.problems.push(
                Problem::new(format!("`{s}` is not an http(s) URL"))
                    .label(u.span(), "not a URL")
                    .help(format!("the default is `{DEFAULT_GRAPH_URL}`")),
            );
        }
        s.clone()
    }

    fn channel(&mut self, c: &RawChannel) -> Option<Channel> {
        let name = c.name.get_ref();
        let minor = name.rsplit_once('-').and_then(|(prefix, v)| {
            let (major, minor) = v.split_once('.')?;
            let ok = !prefix.is_empty()
                && prefix
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch == '-');
            ok.then_some(())?;
            Some((major.parse::<u64>().ok()?, minor.parse::<u64>().ok()?))
        });
        let latest = match &c.latest {
            None => Some(1),
            Some(l) if *l.get_ref() >= 1 && *l.get_ref() <= u32::MAX as i64 => {
                Some(*l.get_ref() as u32)
            }
            Some(l) => {
                self.problems.push(
                    Problem::new(format!(
                        "channel `{name}` asks for the latest {} releases",
                        l.get_ref()
                    ))
                    .label(l.span(), "must be at least 1")
                    .help("`latest = N` builds the newest N z-streams of the channel's minor"),
                );
                None
            }
        };
        if minor.is_none() {
            self.problems.push(
                Problem::new(format!("`{name}` is not an OpenShift channel name"))
                    .label(c.name.span(), "expected `<kind>-X.Y`")
                    .help("channels are named like `stable-4.16`, `fast-4.16`, `eus-4.14` or `candidate-4.17`"),
            );
        }
        Some(Channel {
            name: name.clone(),
            minor: minor?,
            latest: latest?,
        })
    }

    /// A repository reference: no tag, no digest.
    fn repository(&mut self, v: &Spanned<String>, key: &str) -> Option<ImageRef> {
        let r: ImageRef = self.parse(v, "not a valid image reference")?;
        if r.tag().is_some() || r.digest().is_some() {
            self.problems.push(
                Problem::new(format!(
                    "`{key}` must name a repository without tag or digest"
                ))
                .label(v.span(), "remove the tag or digest")
                .help(format!(
                    "write `{}`; the tag comes from the template",
                    r.name()
                )),
            );
            return None;
        }
        Some(r)
    }

    fn registry(&mut self, host: &str, r: &Spanned<RawRegistry>) -> Option<RegistrySettings> {
        let probe = format!("{host}/x");
        if probe.parse::<ImageRef>().is_err() {
            self.problems.push(
                Problem::new(format!("`{host}` is not a registry host"))
                    .label(r.span(), "in this table")
                    .help("registry tables are keyed by `host` or `host:port`, like `[registries.\"quay.io\"]`"),
            );
            return None;
        }
        let raw = r.get_ref();
        let mirror = match &raw.mirror {
            None => None,
            Some(m) => {
                let text = m.get_ref();
                let (mhost, ns) = match text.split_once('/') {
                    Some((h, ns)) => (h, Some(ns)),
                    None => (text.as_str(), None),
                };
                let valid = format!("{text}/x")
                    .parse::<ImageRef>()
                    .is_ok_and(|r| r.registry() == mhost);
                if !valid || ns.is_some_and(str::is_empty) {
                    self.problems.push(
                        Problem::new(format!("`{text}` is not a mirror location"))
                            .label(m.span(), "expected `host[:port][/namespace]`"),
                    );
                    None
                } else if mhost == host {
                    self.problems.push(
                        Problem::new(format!("registry `{host}` is mirrored to itself"))
                            .label(m.span(), "same host"),
                    );
                    None
                } else {
                    Some(Mirror {
                        host: mhost.to_string(),
                        namespace: ns.map(str::to_string),
                    })
                }
            }
        };
        Some(RegistrySettings {
            mirror,
            insecure: raw.insecure.unwrap_or(false),
        })
    }

    /// One `[[driver]]`: every key checked, every problem recorded; the driver only when none
    /// of them is an error.
    fn driver(&mut self, d: &RawDriver, all_arches: &[Arch]) -> Option<Driver> {
        let before = self.problems.len();
        let name = d.name.get_ref();
        let valid_name = self.driver_name(d);
        let context = self.context(&d.context);
        let containerfile_text = d
            .containerfile
            .as_ref()
            .map_or(DEFAULT_CONTAINERFILE, |c| c.get_ref().as_str());
        let containerfile = context
            .as_ref()
            .and_then(|ctx| self.containerfile(ctx, d, containerfile_text));
        let image = self.repository(&d.image, "image");
        let build_args = self.build_args(d);
        let tag = self.tag(d, &build_args);
        let modules = self.modules(d);
        let secrets = self.secrets(d, context.as_deref().zip(containerfile.as_deref()));
        let openshift = d
            .openshift
            .as_ref()
            .and_then(|c| self.parse::<VersionReq>(c, "not a version constraint"));
        let arches = self.driver_arches(d, all_arches);
        let kmm = super::kmm::validate(d.kmm.as_ref(), &modules, &mut self.problems);
        let signing = super::signing::validate(
            &self.root,
            d.signed.as_ref(),
            d.signing_cert.as_ref(),
            &mut self.problems,
        );
        self.signed_twice(d);
        if self.errors_since(before) || !valid_name {
            return None;
        }
        Some(Driver {
            name: name.clone(),
            context: context?,
            containerfile: containerfile?,
            image: image?,
            tag: tag?,
            modules,
            build_args,
            secrets,
            openshift,
            arches,
            rt: d.rt.unwrap_or(false),
            signing,
            kmm,
        })
    }

    /// The driver's `secrets`, each checked, and checked not to be shipped in the image built
    /// from `built` (its context and Containerfile text, when both are valid).
    fn secrets(
        &mut self,
        d: &RawDriver,
        built: Option<(&Path, &str)>,
    ) -> BTreeMap<String, PathBuf> {
        let mut secrets = BTreeMap::new();
        for (id, file) in &d.secrets {
            if let Some(path) = self.secret(id, file) {
                self.secret_not_shipped(built, &d.context, file, &path);
                secrets.insert(id.get_ref().clone(), path);
            }
        }
        secrets
    }

    /// Whether an error (not a warning) was recorded after the first `before` problems.
    fn errors_since(&self, before: usize) -> bool {
        self.problems[before..]
            .iter()
            .any(|p| p.severity == miette::Severity::Error)
    }

    /// Whether the driver's name is `[a-z0-9][a-z0-9._-]*`; a problem with a suggestion if not.
    fn driver_name(&mut self, d: &RawDriver) -> bool {
        let name = d.name.get_ref();
        let valid = check_driver_name(name).is_ok();
        if !valid {
            self.problems.push(
                Problem::new(format!("`{name}` is not a valid driver name"))
                    .label(d.name.span(), "expected `[a-z0-9][a-z0-9._-]*`")
                    .help(format!("try `{}`", suggest_name(name))),
            );
        }
        valid
    }

    /// The driver's own build args: valid names, none of the reserved ones.
    fn build_args(&mut self, d: &RawDriver) -> BTreeMap<String, String> {
        let mut build_args = BTreeMap::new();
        for (k, v) in &d.build_args {
            let key = k.get_ref();
            if RESERVED_BUILD_ARGS.contains(&key.as_str()) {
                self.problems.push(
                    Problem::new(format!("build arg `{key}` is reserved"))
                        .label(k.span(), "set by driver-matrix for every build")
                        .help(format!(
                            "driver-matrix passes {} itself; remove this key",
                            RESERVED_BUILD_ARGS.join(", ")
                        )),
                );
            } else if !is_arg_name(key) {
                self.problems.push(
                    Problem::new(format!("`{key}` is not a valid build arg name"))
                        .label(k.span(), "expected `[A-Za-z_][A-Za-z0-9_]*`"),
                );
            } else {
                build_args.insert(key.clone(), v.get_ref().clone());
            }
        }
        build_args
    }

    /// The tag template: known placeholders, and a sample rendering that makes a valid tag.
    fn tag(&mut self, d: &RawDriver, build_args: &BTreeMap<String, String>) -> Option<TagTemplate> {
        let tag_text = d.tag.as_ref().map_or(DEFAULT_TAG, |t| t.get_ref().as_str());
        let tag = match TagTemplate::parse(tag_text, build_args.keys().map(String::as_str)) {
            Ok(t) => Some(t),
            Err(e) => {
                let span = d.tag.as_ref().map_or(d.name.span(), |t| t.span());
                self.problems.push(problem_at(e, span, "in this template"));
                None
            }
        };
        if let (Some(t), Some(tag_span)) = (&tag, d.tag.as_ref().map(|t| t.span())) {
            self.check_sample_render(t, d.name.get_ref(), build_args, tag_span);
        }
        tag
    }

    /// Module names, as `modprobe` takes them (no `.ko`).
    fn modules(&mut self, d: &RawDriver) -> Vec<String> {
        let mut modules = Vec::new();
        for m in &d.modules {
            let text = m.get_ref();
            if let Some(stem) = text.strip_suffix(".ko") {
                self.problems.push(
                    Problem::new(format!(
                        "module `{text}` is written with its file extension"
                    ))
                    .label(m.span(), "remove `.ko`")
                    .help(format!("write `{stem}`")),
                );
            } else if !is_module_name(text) {
                self.problems.push(
                    Problem::new(format!("`{text}` is not a kernel module name"))
                        .label(m.span(), "expected letters, digits, `_` or `-`"),
                );
            } else {
                modules.push(text.clone());
            }
        }
        modules
    }

    /// The driver's `arch` subset (all of `[openshift].arch` when absent): known arches that
    /// `[openshift].arch` lists, and not an empty list.
    fn driver_arches(&mut self, d: &RawDriver, all_arches: &[Arch]) -> Vec<Arch> {
        let name = d.name.get_ref();
        let Some(list) = &d.arch else {
            return all_arches.to_vec();
        };
        let mut set = BTreeSet::new();
        for a in list {
            let Some(arch) = self.parse::<Arch>(a, "unknown arch") else {
                continue;
            };
            if all_arches.contains(&arch) {
                set.insert(arch);
                continue;
            }
            let listed: Vec<&str> = all_arches.iter().map(|a| a.as_str()).collect();
            self.problems.push(
                Problem::new(format!(
                    "driver `{name}` asks for arch `{arch}`, which `[openshift].arch` does not list"
                ))
                .label(a.span(), "not in [openshift].arch")
                .help(format!(
                    "add `{arch}` to `[openshift].arch` (now {})",
                    listed.join(", ")
                )),
            );
        }
        if list.is_empty() {
            self.problems.push(
                Problem::new(format!("driver `{name}` has an empty `arch` list"))
                    .label(d.name.span(), "in this driver")
                    .help("remove `arch` to build for every arch of `[openshift].arch`"),
            );
        }
        set.into_iter().collect()
    }

    /// A build secret: a valid id and a regular file inside the matrix directory (symlinks
    /// resolved), given to buildah as `--secret id=ID,src=PATH`. buildah splits that value at
    /// `,` and `=`, so neither may appear in the id or the path; a file from elsewhere is named
    /// on the command line (`build --secret ID=PATH`), never in the matrix.
    fn secret(&mut self, id: &Spanned<String>, file: &Spanned<String>) -> Option<PathBuf> {
        let name = id.get_ref();
        if !is_secret_id(name) {
            self.problems.push(
                Problem::new(format!("`{name}` is not a valid secret id"))
                    .label(id.span(), "expected letters, digits, `.`, `_` or `-`"),
            );
            return None;
        }
        match secret_file(&self.root, file.get_ref()) {
            Ok(path) => Some(path),
            Err(Refused {
                message,
                label,
                help,
            }) => {
                self.problems
                    .push(Problem::new(message).label(file.span(), label).help(help));
                None
            }
        }
    }

    /// A secret inside the build context would be sent to buildah, and `COPY .` would put it
    /// in a layer, unless the context's ignore file leaves it out: refused otherwise.
    /// `signed = true` (modules signed at build) with `[driver.kmm.sign]` (KMM signs them again
    /// in the cluster): one of the two signatures is not the one the nodes check.
    fn signed_twice(&mut self, d: &RawDriver) {
        let (Some(signed), Some(sign)) = (
            d.signed.as_ref().filter(|s| *s.get_ref()),
            d.kmm.as_ref().and_then(|k| k.get_ref().sign.as_ref()),
        ) else {
            return;
        };
        self.problems.push(
            Problem::new("the driver's modules are signed at build and again by KMM in the cluster")
                .label(signed.span(), "signed at build")
                .label(sign.span(), "signed again by KMM")
                .help("keep one: `signed = true` (the build signs with `sign-file`, every route ships signed modules) or `[driver.kmm.sign]` (KMM signs each image in the cluster, for Modules only)"),
        );
    }

    fn secret_not_shipped(
        &mut self,
        context: Option<(&Path, &str)>,
        context_key: &Spanned<String>,
        file: &Spanned<String>,
        path: &Path,
    ) {
        let Some((context, containerfile)) = context else {
            return;
        };
        let problem = match shipped_secret(context, containerfile, path) {
            Ok(None) => return,
            Ok(Some(rel)) => Problem::new(format!(
                "secret `{}` lies inside the build context `{}` and its ignore file does not exclude it",
                file.get_ref(),
                context_key.get_ref()
            ))
            .label(file.span(), "would be sent to buildah, and `COPY .` would ship it")
            .label(context_key.span(), "the build context")
            .help(format!(
                "add `{rel}` to `{}`, or move the file out of the context",
                crate::inputs::ignore_file_in_effect(context, containerfile).display()
            )),
            Err(e) => Problem::new(format!(
                "cannot tell whether secret `{}` is left out of its build context: {e}",
                file.get_ref()
            ))
            .label(file.span(), "inside the build context"),
        };
        self.problems.push(problem);
    }

    /// Renders the template with a long, realistic kernel to catch templates that can only
    /// produce invalid tags (bad characters, too long) before anything is resolved.
    fn check_sample_render(
        &mut self,
        tag: &TagTemplate,
        driver: &str,
        args: &BTreeMap<String, String>,
        span: std::ops::Range<usize>,
    ) {
        let sample_kernel = "5.14.0-427.18.1.el9_4.x86_64_rt";
        let mut vars: BTreeMap<&str, &str> =
            args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        vars.insert(arg::KERNEL_FULL_VERSION, sample_kernel);
        vars.insert(arg::KERNEL_VERSION, sample_kernel);
        vars.insert(placeholder::DRIVER, driver);
        vars.insert(placeholder::ARCH, "x86_64");
        vars.insert(arg::RHEL_VERSION, "9.4");
        if let Err(e) = tag.render(&vars) {
            self.problems.push(
                Problem::new(format!(
                    "tag template `{tag}` renders an invalid tag: {}",
                    e.message
                ))
                .label(span, format!("rendered for kernel `{sample_kernel}`"))
                .help_opt(e.help),
            );
        }
    }

    fn context(&mut self, c: &Spanned<String>) -> Option<PathBuf> {
        let text = c.get_ref();
        let joined = self.root.join(text);
        let resolved = match joined.canonicalize() {
            Ok(p) => p,
            Err(_) => {
                self.problems.push(
                    Problem::new(format!("context directory `{text}` does not exist"))
                        .label(c.span(), "no such directory")
                        .help(format!(
                            "contexts are relative to the matrix file's directory `{}`",
                            self.root.display()
                        )),
                );
                return None;
            }
        };
        if !resolved.starts_with(&self.root) {
            self.problems.push(
                Problem::new(format!(
                    "context `{text}` resolves to `{}`, outside the matrix file's directory",
                    resolved.display()
                ))
                .label(c.span(), "escapes the matrix directory")
                .help("keep build contexts inside the directory that holds matrix.toml, so the inputs hash covers them"),
            );
            return None;
        }
        if !resolved.is_dir() {
            self.problems.push(
                Problem::new(format!("context `{text}` is not a directory"))
                    .label(c.span(), "not a directory"),
            );
            return None;
        }
        Some(resolved)
    }

    fn containerfile(&mut self, context: &Path, d: &RawDriver, text: &str) -> Option<String> {
        let span = d
            .containerfile
            .as_ref()
            .map_or(d.context.span(), |c| c.span());
        let path = context.join(text);
        let inside = path.canonicalize().ok().filter(|p| p.starts_with(context));
        match inside {
            Some(p) if p.is_file() => {
                let rel = p.strip_prefix(context).expect("checked by starts_with");
                Some(rel.to_string_lossy().replace('\\', "/"))
            }
            Some(_) => {
                self.problems.push(
                    Problem::new(format!("containerfile `{text}` is not a file"))
                        .label(span, "not a file"),
                );
                None
            }
            None if path.exists() => {
                self.problems.push(
                    Problem::new(format!("containerfile `{text}` lies outside the context"))
                        .label(span, "outside the context"),
                );
                None
            }
            None => {
                let mut p = Problem::new(format!(
                    "containerfile `{text}` does not exist in context `{}`",
                    d.context.get_ref()
                ))
                .label(span, "no such file");
                if d.containerfile.is_none() && context.join("Dockerfile").is_file() {
                    p = p.help(
                        "the context has a `Dockerfile`: set `containerfile = \"Dockerfile\"`",
                    );
                } else {
                    p = p.help("`containerfile` is relative to the context; the default is `Containerfile`");
                }
                self.problems.push(p);
                None
            }
        }
    }

    fn exclude(&mut self, e: &Spanned<RawExclude>, drivers: &[Driver]) -> Option<Exclude> {
        let raw = e.get_ref();
        if raw.driver.is_none()
            && raw.openshift.is_none()
            && raw.arch.is_none()
            && raw.kernel.is_none()
            && raw.stream.is_none()
        {
            self.problems.push(
                Problem::new("an `[[exclude]]` rule has no keys and would drop every cell")
                    .label(e.span(), "empty rule")
                    .help("give at least one of `driver`, `openshift`, `arch`, `kernel`, `stream`"),
            );
            return None;
        }
        if let Some(d) = &raw.driver
            && !drivers.iter().any(|x| &x.name == d.get_ref())
        {
            let p = Problem::warning(format!(
                "`[[exclude]]` names driver `{}`, which the matrix does not define",
                d.get_ref()
            ))
            .label(d.span(), "unknown driver");
            let p = match did_you_mean(d.get_ref(), drivers.iter().map(|x| x.name.as_str())) {
                Some(close) => p.help(format!("did you mean `{close}`?")),
                None => p,
            };
            self.problems.push(p);
        }
        let openshift = match &raw.openshift {
            Some(c) => Some(self.parse::<VersionReq>(c, "not a version constraint")?),
            None => None,
        };
        let arch = match &raw.arch {
            Some(a) => Some(self.parse::<Arch>(a, "unknown arch")?),
            None => None,
        };
        let kernel = match &raw.kernel {
            Some(k) => Some(self.parse::<Kernel>(k, "not a kernel release")?),
            None => None,
        };
        let stream = match &raw.stream {
            Some(s) => Some(self.known_stream(s)?),
            None => None,
        };
        Some(Exclude {
            driver: raw.driver.as_ref().map(|d| d.get_ref().clone()),
            openshift,
            arch,
            kernel,
            stream,
            span: e.span(),
        })
    }

    /// A node OS stream name (`openshift.streams`, an exclude's `stream`): a known one.
    fn known_stream(&mut self, s: &Spanned<String>) -> Option<String> {
        let known = [crate::domain::STREAM_DEFAULT, crate::domain::STREAM_RHEL10];
        if known.contains(&s.get_ref().as_str()) {
            return Some(s.get_ref().clone());
        }
        self.problems.push(
            Problem::new(format!("unknown node OS stream `{}`", s.get_ref()))
                .label(s.span(), "unknown stream")
                .help("the streams are `default` (the payload's `driver-toolkit`) and `rhel-10` (`driver-toolkit-10`)"),
        );
        None
    }
}

/// Where a secret file at `secret` (canonical) would be sent with `context` (canonical) and
/// its containerfile (which may name the ignore file): its
/// path relative to the context when it lies inside and the context's ignore file does not
/// exclude it, `None` when it is outside or excluded.
pub fn shipped_secret(
    context: &Path,
    containerfile: &str,
    secret: &Path,
) -> Result<Option<String>, crate::inputs::InputsError> {
    let Ok(rel) = secret.strip_prefix(context) else {
        return Ok(None);
    };
    let rel = rel.to_string_lossy().into_owned();
    let rules = crate::inputs::IgnoreRules::load(context, containerfile)?;
    Ok((!rules.is_ignored(&rel)).then_some(rel))
}

fn is_arg_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A valid driver name close to `s`: lowercase, other characters replaced by `-`.
pub fn suggest_name(s: &str) -> String {
    let lowered: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = lowered.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "my-driver".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Why a value was refused: the message, the label at its place, the fix.
struct Refused {
    message: String,
    label: &'static str,
    help: &'static str,
}

/// A secret's file: relative to `root`, resolved (symlinks followed) to a regular file inside
/// it, with neither `,` nor `=` in the path written or resolved.
fn secret_file(root: &Path, text: &str) -> Result<PathBuf, Refused> {
    const OUTSIDE: &str = "secret files must lie inside the matrix file's directory; name a file from elsewhere with `build --secret ID=PATH`";
    let refuse = |message: String, label, help| {
        Err(Refused {
            message,
            label,
            help,
        })
    };
    if text.contains([',', '=']) {
        return refuse(
            format!("secret path `{text}` contains `,` or `=`"),
            "buildah would read the rest as more `--secret` options",
            "rename the file so that its path holds neither `,` nor `=`",
        );
    }
    if Path::new(text).is_absolute() {
        return refuse(
            format!("secret path `{text}` is absolute"),
            "outside the matrix directory",
            OUTSIDE,
        );
    }
    let Ok(resolved) = root.join(text).canonicalize() else {
        return refuse(
            format!("secret file `{text}` does not exist"),
            "no such file",
            "secret paths are relative to the matrix file",
        );
    };
    if !resolved.starts_with(root) {
        return refuse(
            format!(
                "secret `{text}` resolves to `{}`, outside the matrix file's directory",
                resolved.display()
            ),
            "escapes the matrix directory",
            OUTSIDE,
        );
    }
    if !resolved.is_file() {
        return refuse(
            format!("secret `{text}` is not a regular file"),
            "not a file",
            "a secret is a file whose contents buildah mounts for `RUN --mount=type=secret`",
        );
    }
    if resolved.to_string_lossy().contains([',', '=']) {
        return refuse(
            format!(
                "secret `{text}` resolves to `{}`, whose path contains `,` or `=`",
                resolved.display()
            ),
            "buildah cannot take this path",
            "move the checkout to a directory whose path holds neither `,` nor `=`",
        );
    }
    Ok(resolved)
}
