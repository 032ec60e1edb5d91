//! What `driver-matrix init` writes for a kernel module source directory: a `matrix.toml`, a
//! DTK-based multi-stage `Containerfile` that every build route accepts, and the context's
//! `.containerignore`, with the module names read from the `obj-m` lines of its `Kbuild` (or
//! `Makefile`). Pure text here; [`write`] does the file I/O.

use std::path::Path;

pub mod write;
pub use write::{Ignore, ScaffoldError, Scaffolded, write_into};

/// The module names of every `obj-m` assignment, in order, without duplicates: `obj-m := a.o`
/// and `obj-m += b.o c.o` give `a`, `b`, `c`. Subdirectories (`obj-m += sub/`) are not
/// modules, and `obj-$(CONFIG_...)` lines build nothing unless the option is set: both are
/// skipped.
pub fn modules_from_kbuild(text: &str) -> Vec<String> {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let mut modules: Vec<String> = Vec::new();
    for line in joined.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some((lhs, rhs)) = line.split_once('=') else {
            continue;
        };
        let lhs = lhs.trim_end_matches([':', '+', '?']).trim();
        if lhs != "obj-m" {
            continue;
        }
        for word in rhs.split_whitespace() {
            let Some(stem) = word.strip_suffix(".o") else {
                continue;
            };
            if crate::domain::is_module_name(stem) && !modules.iter().any(|m| m == stem) {
                modules.push(stem.to_string());
            }
        }
    }
    modules
}

/// A valid driver name from the directory's name: lowercase, other characters as `-`.
/// The driver's name from the directory's: a valid name close to it.
pub fn driver_name(dir: &Path) -> String {
    let base = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    crate::matrix::suggest_name(&base)
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn matrix_toml(name: &str, modules: &[String]) -> String {
    format!(
        r#"# Written by `driver-matrix init`: one driver, built from this directory on the Driver
# Toolkit (DTK) of every OpenShift release below. Reference: docs/matrix.md of driver-matrix;
# `driver-matrix schema > matrix.schema.json` and a `#:schema ./matrix.schema.json` first line
# give editors completion.
#
# Next: set `image` to a repository you can push to, then run
#   driver-matrix resolve   # reads each release's DTK and kernel into matrix.lock
#   driver-matrix plan      # the builds: one per kernel, shared by the releases that use it
#   driver-matrix build     # buildah builds and pushes, and records each image in matrix.lock

[openshift]
# The newest z-stream of a channel; add exact versions with `releases = ["4.16.3"]`.
channels = [{{ name = "stable-4.16", latest = 1 }}]
arch = ["x86_64"]

[[driver]]
name = "{name}"
context = "."
image = "quay.io/example/{name}"
# The first module is the one KMM loads (modprobe brings in its dependencies).
modules = [{modules}]
# The final stage's base image: UBI 9 minimal by default; kmod is installed when it lacks it.
# build-args = {{ BASE_IMAGE = "registry.access.redhat.com/ubi9/ubi-minimal:latest" }}
# Secrets for `RUN --mount=type=secret` (a signing key, say): a file in this directory must
# also be listed in .containerignore, so that `COPY . .` never puts it in an image. Mount each
# at /run/secrets/driver-matrix/ID (`--mount=type=secret,id=ID,target=/run/secrets/driver-matrix/ID`),
# where an OpenShift BuildConfig from `export buildconfig` mounts it too.
# secrets = {{ signing-key = "keys/signing.priv" }}
"#,
        modules = quoted(modules)
    )
}

/// A Containerfile that every route builds unchanged: driver-matrix, KMM's in-cluster build
/// and an OpenShift BuildConfig each pass the DTK and the kernel under their own names, and
/// each name falls back to the others.
pub fn containerfile(modules: &[String]) -> String {
    let kos: Vec<String> = modules.iter().map(|m| format!("{m}.ko")).collect();
    format!(
        r#"# Written by `driver-matrix init`: one Containerfile for every way of building the driver.
#   driver-matrix passes DTK_IMAGE and DTK_AUTO (the release's Driver Toolkit by digest),
#     KERNEL_VERSION and KERNEL_FULL_VERSION (its kernel);
#   KMM's in-cluster build passes DTK_AUTO, KERNEL_VERSION and KERNEL_FULL_VERSION;
#   an OpenShift BuildConfig (the Driver Toolkit's README) passes DTK and KVER.
# Each name falls back to the others; without any, the kernel is the DTK's own.
ARG DTK_AUTO
ARG DTK=${{DTK_AUTO}}
ARG DTK_IMAGE=${{DTK}}
# The final stage's base. kmod is installed only when the base has no `modprobe`.
ARG BASE_IMAGE=registry.access.redhat.com/ubi9/ubi-minimal:latest

# Build against the DTK's kernel headers: the exact kernel of the release's nodes.
FROM ${{DTK_IMAGE}} AS builder
ARG KVER
ARG KERNEL_VERSION=${{KVER}}
ARG KERNEL_FULL_VERSION=${{KERNEL_VERSION}}
WORKDIR /build
# What .containerignore leaves out (driver-matrix's files, local build output, secrets) is
# not copied.
COPY . .
# `host` is KMM's convention for in-tree dependencies: /opt/lib/modules/<kernel>/host links to
# /lib/modules/<kernel>, which on the node is the node's own, so `modprobe -d /opt` finds the
# in-tree modules this one needs. It is made before depmod, always: a Kbuild does not say which
# in-tree symbols a module uses, and the link costs nothing when it uses none.
RUN kernel="${{KERNEL_FULL_VERSION}}" \
 && if [ -z "$kernel" ]; then \
      kernel=$(sed -n 's/.*"KERNEL_VERSION": *"\([^"]*\)".*/\1/p' /etc/driver-toolkit-release.json); \
    fi \
 && make -C "/lib/modules/${{kernel}}/build" M=/build modules \
 && mkdir -p "/opt/lib/modules/${{kernel}}" \
 && cp {kos} "/opt/lib/modules/${{kernel}}/" \
 && ln -s "/lib/modules/${{kernel}}" "/opt/lib/modules/${{kernel}}/host" \
 && depmod -b /opt "${{kernel}}"

# Ship only the modules, their depmod data and kmod: KMM runs `modprobe -d /opt {first}`,
# which looks in /opt/lib/modules/<kernel>/.
FROM ${{BASE_IMAGE}}
RUN command -v modprobe >/dev/null 2>&1 || [ -x /usr/sbin/modprobe ] || [ -x /sbin/modprobe ] \
 || if command -v microdnf >/dev/null 2>&1; then microdnf install -y kmod && microdnf clean all; \
    elif command -v dnf >/dev/null 2>&1; then dnf install -y kmod && dnf clean all; \
    elif command -v apt-get >/dev/null 2>&1; then apt-get update && apt-get install -y --no-install-recommends kmod && rm -rf /var/lib/apt/lists/*; \
    else echo "BASE_IMAGE has no modprobe and no package manager to install kmod: name a base with kmod" >&2; exit 1; fi
COPY --from=builder /opt/lib/modules/ /opt/lib/modules/
"#,
        kos = kos.join(" "),
        first = modules[0]
    )
}

/// The context's ignore file: what buildah leaves out of the context, and driver-matrix out of
/// the inputs hash.
pub fn containerignore() -> &'static str {
    r#"# Written by `driver-matrix init`. buildah leaves out of the build context what matches
# here, and driver-matrix leaves the same out of each image's inputs hash. One pattern a line,
# relative to this directory; `*` stays within a directory, `**` spans any number, a line
# starting with `!` takes a path back, and the last matching line wins.

# driver-matrix's own files. It leaves them out by itself too; they are listed for the other
# routes (plain buildah or podman, KMM's and OpenShift's builds), which read only this file.
matrix.toml
matrix.lock
matrix.lock.lock
.matrix.lock.*
**/.git

# Output of a local `make`: a build starts from the sources, never from objects built for
# another kernel.
**/*.o
**/*.ko
**/*.mod
**/*.mod.c
**/.*.cmd
**/Module.symvers
**/modules.order
**/.tmp_versions

# Every secret the matrix names inside this directory must be listed here (driver-matrix
# refuses it otherwise, so that it is never copied into an image), for example:
# keys/
"#
}

#[cfg(test)]
mod tests {
    use super::modules_from_kbuild;

    #[test]
    fn modules_come_from_obj_m_in_order() {
        let text = "obj-m := hello.o\nobj-m += net_a.o \\\n  net-b.o # comment net_c.o\n\
                    hello-objs := a.o b.o\nobj-$(CONFIG_ACME) += acme.o\nobj-y += builtin.o\n\
                    obj-m += hello.o sub/\n";
        assert_eq!(modules_from_kbuild(text), ["hello", "net_a", "net-b"]);
    }

    #[test]
    fn makefiles_without_obj_m_give_no_module() {
        assert!(modules_from_kbuild("all:\n\tmake -C $(KDIR) M=$(PWD) modules\n").is_empty());
    }
}
