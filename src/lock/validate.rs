//! The lock's entries as read: every field a string, then parsed against its grammar here, in
//! one place. The lock comes from contributors like any other file of a repository; a field
//! that does not fit its grammar is refused with its entry and key named, and its value shown
//! only escaped and cut short, never raw.

use std::path::{Path, PathBuf};

use miette::Diagnostic;
use serde::Deserialize;

use super::{LockedImage, LockedRelease};
use crate::domain::{self, ParseError};

/// A `[[release]]` table as written, before its fields are parsed.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawRelease {
    version: String,
    arch: String,
    #[serde(default)]
    stream: Option<String>,
    payload: String,
    dtk: String,
    kernel: String,
    #[serde(default)]
    rt_kernel: Option<String>,
    rhel: String,
    #[serde(default)]
    machine_os: Option<String>,
    #[serde(default)]
    node_kernel: Option<String>,
    #[serde(default)]
    node_rt_kernel: Option<String>,
}

/// An `[[image]]` table as written, before its fields are parsed.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawImage {
    driver: String,
    kernel: String,
    arch: String,
    dtk: String,
    inputs: String,
    image: String,
    digest: String,
    releases: Vec<String>,
}

/// A lock field that does not fit its grammar.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("lockfile `{path}` is malformed: `{field}` of the {entry}: {message}", path = path.display())]
#[diagnostic(code(driver_matrix::lock::invalid), help("{help}"))]
pub struct Invalid {
    path: PathBuf,
    /// `[[release]]` or `[[image]]` and its place in the file, counted from 1.
    entry: String,
    field: &'static str,
    message: String,
    help: String,
}

impl Invalid {
    /// The key of the field refused.
    pub fn field(&self) -> &str {
        self.field
    }
}

const REGENERATE: &str = "the lock is generated; restore it from version control, or delete it and run `driver-matrix resolve`";

/// At most this many characters of a message about a value are kept.
const MESSAGE_MAX: usize = 160;

/// `text` with its control characters escaped, cut at [`MESSAGE_MAX`] characters.
fn bounded(text: &str) -> String {
    let escaped = crate::text::escape_line(text);
    match escaped.char_indices().nth(MESSAGE_MAX) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped.into_owned(),
    }
}

/// Where a field is: the entry, and a place to report into.
struct At<'a> {
    path: &'a Path,
    entry: String,
}

impl At<'_> {
    /// The error for `field`. The domain's messages name the value as it was written: here it
    /// is escaped and cut short, so a hostile value cannot reach a terminal or a log whole.
    fn refuse(&self, field: &'static str, e: ParseError) -> Invalid {
        let help = match e.help {
            Some(h) => format!("{}; {REGENERATE}", bounded(&h)),
            None => REGENERATE.to_string(),
        };
        Invalid {
            path: self.path.to_path_buf(),
            entry: self.entry.clone(),
            field,
            message: bounded(&e.message),
            help,
        }
    }

    fn parse<T>(&self, field: &'static str, s: &str) -> Result<T, Invalid>
    where
        T: std::str::FromStr<Err = ParseError>,
    {
        s.parse().map_err(|e| self.refuse(field, e))
    }

    fn check(
        &self,
        field: &'static str,
        s: &str,
        grammar: fn(&str) -> Result<(), ParseError>,
    ) -> Result<String, Invalid> {
        grammar(s).map_err(|e| self.refuse(field, e))?;
        Ok(s.to_string())
    }

    /// An image reference that must be pinned by digest (a payload, a DTK).
    fn pinned(&self, field: &'static str, s: &str) -> Result<domain::ImageRef, Invalid> {
        let r: domain::ImageRef = self.parse(field, s)?;
        if r.digest().is_none() {
            return Err(self.refuse(
                field,
                ParseError::new(format!("`{r}` is not pinned by digest"))
                    .with_help("the lock names payloads and toolkits by `@sha256:` digest"),
            ));
        }
        Ok(r)
    }

    /// An image reference by tag, without digest (a pushed image).
    fn tagged(&self, field: &'static str, s: &str) -> Result<domain::ImageRef, Invalid> {
        let r: domain::ImageRef = self.parse(field, s)?;
        if r.tag().is_none() || r.digest().is_some() {
            return Err(self.refuse(
                field,
                ParseError::new(format!("`{r}` is not a `repository:tag`"))
                    .with_help("the lock names each image by the tag it was pushed to"),
            ));
        }
        Ok(r)
    }
}

/// `[[release]]` entries parsed, in file order.
pub(super) fn releases(path: &Path, raw: Vec<RawRelease>) -> Result<Vec<LockedRelease>, Invalid> {
    raw.into_iter()
        .enumerate()
        .map(|(n, r)| {
            let at = At {
                path,
                entry: format!("`[[release]]` number {}", n + 1),
            };
            release(&at, r)
        })
        .collect()
}

fn release(at: &At<'_>, r: RawRelease) -> Result<LockedRelease, Invalid> {
    Ok(LockedRelease {
        version: at.parse("version", &r.version)?,
        arch: at.parse("arch", &r.arch)?,
        stream: r
            .stream
            .map(|s| at.check("stream", &s, domain::check_stream))
            .transpose()?,
        payload: at.pinned("payload", &r.payload)?,
        dtk: at.pinned("dtk", &r.dtk)?,
        kernel: at.parse("kernel", &r.kernel)?,
        rt_kernel: r.rt_kernel.map(|k| at.parse("rt-kernel", &k)).transpose()?,
        rhel: at.check("rhel", &r.rhel, domain::check_rhel)?,
        machine_os: r
            .machine_os
            .map(|m| at.check("machine-os", &m, domain::check_machine_os))
            .transpose()?,
        node_kernel: r
            .node_kernel
            .map(|k| at.parse("node-kernel", &k))
            .transpose()?,
        node_rt_kernel: r
            .node_rt_kernel
            .map(|k| at.parse("node-rt-kernel", &k))
            .transpose()?,
    })
}

/// `[[image]]` entries parsed, in file order.
pub(super) fn images(path: &Path, raw: Vec<RawImage>) -> Result<Vec<LockedImage>, Invalid> {
    raw.into_iter()
        .enumerate()
        .map(|(n, i)| {
            let at = At {
                path,
                entry: format!("`[[image]]` number {}", n + 1),
            };
            image(&at, i)
        })
        .collect()
}

fn image(at: &At<'_>, i: RawImage) -> Result<LockedImage, Invalid> {
    Ok(LockedImage {
        driver: at.check("driver", &i.driver, domain::check_driver_name)?,
        kernel: at.parse("kernel", &i.kernel)?,
        arch: at.parse("arch", &i.arch)?,
        dtk: at.pinned("dtk", &i.dtk)?,
        inputs: at.parse("inputs", &i.inputs)?,
        image: at.tagged("image", &i.image)?,
        digest: at.parse("digest", &i.digest)?,
        releases: i
            .releases
            .iter()
            .map(|v| at.parse("releases", v))
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{LockError, read_str, render};

    const RELEASE: &str = r#"
[[release]]
version = "4.16.3"
arch = "x86_64"
payload = "quay.io/openshift-release-dev/ocp-release@sha256:dd17932fd8f2e3ce7451ef922b0f191b5faf1ce3da900b300fe7b3968bd62de5"
dtk = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:fa229333d160d42ae97f84ddb7b5d4e5bff158af0eee3886dc39f3372ee9bb16"
kernel = "5.14.0-427.26.1.el9_4.x86_64"
rt-kernel = "5.14.0-427.26.1.el9_4.x86_64+rt"
node-kernel = "5.14.0-427.26.1.el9_4.x86_64"
rhel = "9.4"
machine-os = "416.94.202406251923-0"
"#;

    const IMAGE: &str = r#"
[[image]]
driver = "gpu-kmod"
kernel = "5.14.0-427.26.1.el9_4.x86_64"
arch = "x86_64"
dtk = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:fa229333d160d42ae97f84ddb7b5d4e5bff158af0eee3886dc39f3372ee9bb16"
inputs = "sha256:0bfa201a1c90b9f0edb02f9ad2a23e1746a5131df42cb6b39834c1d955fea009"
image = "quay.io/acme/gpu-kmod:5.14.0-427.26.1.el9_4.x86_64"
digest = "sha256:c10096ef16fce0dc22adfb1db32c9bc719a56ac97cc683b9624e3db75dd3dc38"
releases = ["4.16.3"]
"#;

    /// A lock of one release and one image, `key` of the entry holding it set to `value` (a
    /// TOML string, escapes and all).
    fn lock_with(key: &str, value: &str) -> String {
        let set = |table: &str| {
            let prefix = format!("\n{key} = ");
            match table.find(&prefix) {
                Some(at) => {
                    let end = at + 1 + table[at + 1..].find('\n').expect("a line ends");
                    format!("{}{prefix}{value}{}", &table[..at], &table[end..])
                }
                None => format!("{table}{key} = {value}\n"),
            }
        };
        let (release, image) = if let Some(key) = key.strip_prefix("image.") {
            let prefix = format!("\n{key} = ");
            let at = IMAGE.find(&prefix).expect("an image key");
            let end = at + 1 + IMAGE[at + 1..].find('\n').expect("a line ends");
            let image = format!("{}{prefix}{value}{}", &IMAGE[..at], &IMAGE[end..]);
            (RELEASE.to_string(), image)
        } else if key == "releases" {
            (RELEASE.to_string(), set(IMAGE))
        } else {
            (set(RELEASE), IMAGE.to_string())
        };
        format!("version = 1\n{release}{image}")
    }

    fn refused(key: &str, value: &str) -> (String, String) {
        let text = lock_with(key, value);
        match read_str(Path::new("matrix.lock"), &text) {
            Err(LockError::Invalid(e)) => {
                let help = miette::Diagnostic::help(e.as_ref())
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                (e.field().to_string(), format!("{e}\n{help}"))
            }
            other => panic!("{key} = {value} gave {other:?}"),
        }
    }

    #[test]
    fn the_nodes_real_time_kernel_is_read_and_checked_against_the_dtk_s() {
        let read = |value: &str| {
            let text = lock_with("node-rt-kernel", value);
            read_str(Path::new("matrix.lock"), &text).unwrap().releases[0].clone()
        };
        // The label names the rpm; the DTK names the 4.16+ `uname -r`, with `+rt`.
        let same = read("\"5.14.0-427.26.1.el9_4.x86_64\"");
        assert_eq!(same.node_rt_kernel_mismatch(), None);
        let text = render(
            &read_str(
                Path::new("matrix.lock"),
                &lock_with("node-rt-kernel", "\"5.14.0-427.26.1.el9_4.x86_64\""),
            )
            .unwrap(),
        );
        assert!(
            text.contains("\nnode-rt-kernel = \"5.14.0-427.26.1.el9_4.x86_64\"\n"),
            "{text}"
        );
        let lagging = read("\"5.14.0-427.28.1.el9_4.x86_64\"");
        assert_eq!(
            lagging
                .node_rt_kernel_mismatch()
                .map(|k| k.to_string())
                .as_deref(),
            Some("5.14.0-427.28.1.el9_4.x86_64")
        );
        let (field, _) = refused("node-rt-kernel", "\"not a kernel\"");
        assert_eq!(field, "node-rt-kernel");
    }

    #[test]
    fn the_fixture_reads_and_round_trips() {
        let text = lock_with("rhel", "\"9.4\"");
        let lock = read_str(Path::new("matrix.lock"), &text).unwrap();
        let again = read_str(Path::new("matrix.lock"), &render(&lock)).unwrap();
        assert_eq!(lock, again);
        let lock = read_str(Path::new("m"), &lock_with("stream", "\"rhel-10\"")).unwrap();
        assert_eq!(lock.releases[0].stream.as_deref(), Some("rhel-10"));
    }

    /// Each hostile string, in each string field, is refused naming the field, and the message
    /// holds none of its control characters raw.
    #[test]
    fn hostile_strings_are_refused_naming_the_field() {
        let hostile = [
            r#""rhel-10\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding""#,
            r#""\u001b]0;pwned\u0007""#,
            r#""9.4\u007f""#,
            "\"9.4\u{85}\u{9b}31m\"",
            r##""# heading [link](https://evil.example) @admin Fixes #1 <img src=x>""##,
            r#""a | b | c""#,
            r#""""#,
        ];
        let fields = [
            "stream",
            "rhel",
            "machine-os",
            "kernel",
            "rt-kernel",
            "node-kernel",
            "version",
            "arch",
            "payload",
            "dtk",
            "image.driver",
            "image.kernel",
            "image.arch",
            "image.dtk",
            "image.inputs",
            "image.image",
            "image.digest",
        ];
        for field in fields {
            for value in hostile {
                let (named, text) = refused(field, value);
                assert_eq!(named, field.trim_start_matches("image."), "{text}");
                let entry = if field.starts_with("image.") {
                    "`[[image]]` number 1"
                } else {
                    "`[[release]]` number 1"
                };
                assert!(text.contains(entry), "{text}");
                assert!(
                    !text.chars().any(|c| c.is_control() && c != '\n'),
                    "{field}: {text:?}"
                );
            }
        }
        let (named, _) = refused("releases", r#"["4.16.3", "4.16.3\n---"]"#);
        assert_eq!(named, "releases");
    }

    #[test]
    fn references_must_be_pinned_or_tagged_as_written() {
        let (f, _) = refused(
            "payload",
            r#""quay.io/openshift-release-dev/ocp-release:4.16.3""#,
        );
        assert_eq!(f, "payload");
        let (f, _) = refused(
            "dtk",
            r#""quay.io/openshift-release-dev/ocp-v4.0-art-dev:latest""#,
        );
        assert_eq!(f, "dtk");
        let (f, _) = refused("image.image", r#""quay.io/acme/gpu-kmod""#);
        assert_eq!(f, "image");
        let (f, _) = refused("stream", r#""default""#);
        assert_eq!(f, "stream");
    }

    #[test]
    fn a_long_value_is_cut_short_in_the_message() {
        let (_, text) = refused("version", &format!("\"{}\"", "9".repeat(10_000)));
        assert!(text.len() < 1_000, "{} bytes", text.len());
    }
}
