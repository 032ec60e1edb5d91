//! No node left without its driver: KMM's kernel-mapping rule applied to what `export kmm`
//! writes, for the kernel every locked release's nodes boot, with and without
//! `fallback = "build"`; and the fallback's ConfigMap Dockerfile built the way KMM builds it
//! (no context, KMM's build arguments), whose image `verify --deep` accepts.
//!
//! The rule, from KMM (rh-ecosystem-edge/kernel-module-management, commit 0419e2f0):
//! - `internal/module/kernelmapper.go`, `findKernelMapping`: the mappings are tried in order;
//!   a `literal` matches a kernel equal to it, a `regexp` one it matches (Go `regexp.MatchString`,
//!   unanchored); the first match wins, and no match is `ErrNoMatchingKernelMapping` (the Module
//!   reconciler then leaves the node without a module).
//! - `replaceTemplates` / `internal/utils/replaceStrings.go`: `${KERNEL_FULL_VERSION}` (and
//!   `${KERNEL_VERSION}`) in `containerImage` become the node's kernel normalized by
//!   `internal/kernel.NormalizeVersion` (every character outside `[A-Za-z0-9._-]` → `_`).
//! - `internal/buildsign/resource/common.go`, `buildSpec`: a mapping with `build` is built from
//!   the ConfigMap's `dockerfile` alone, with the mapping's `buildArgs` overridden by
//!   `KERNEL_VERSION`, `KERNEL_FULL_VERSION` (the raw kernel), `MOD_NAME`, `MOD_NAMESPACE`, and
//!   `DTK_AUTO` (the DTK of that kernel) when the Dockerfile names it.

use std::collections::BTreeMap;
use std::process::Command;

use serde::Deserialize as _;
use serde_json::Value;

use crate::support::{self, Driver, K1, K2, Project, dtk, registry, run_ok};

/// The nodes of 4.14.2 boot the next build of K1's kernel: its DTK lags (as releases have).
const K3: &str = "5.14.0-284.53.1.el9_2.x86_64";

/// What KMM loads on a node booting `kernel`: the mapping that matches, with its image's
/// templates replaced; `None` when nothing matches.
fn kmm_mapping(module: &Value, kernel: &str) -> Option<(Value, String)> {
    let mappings = module["spec"]["moduleLoader"]["container"]["kernelMappings"]
        .as_array()
        .expect("kernelMappings");
    let found = mappings.iter().find(|m| {
        if let Some(literal) = m["literal"].as_str().filter(|l| !l.is_empty()) {
            if literal == kernel {
                return true;
            }
        }
        m["regexp"]
            .as_str()
            .filter(|r| !r.is_empty())
            .is_some_and(|r| {
                regex::Regex::new(r)
                    .expect("KMM would refuse a regexp Go cannot compile")
                    .is_match(kernel)
            })
    })?;
    let normalized: String = kernel
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let image = found["containerImage"]
        .as_str()
        .expect("containerImage")
        .replace("${KERNEL_FULL_VERSION}", &normalized)
        .replace("${KERNEL_VERSION}", &normalized);
    Some((found.clone(), image))
}

fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

/// The modules of `image` under `/opt/lib/modules/<kernel>/`, by kernel directory, each with
/// the kernel its `vermagic` names.
fn modules_in(image: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let files = support::image_files(image, |p| {
        p.starts_with("opt/lib/modules/") && p.ends_with(".ko")
    });
    for (path, bytes) in files {
        let dir = path["opt/lib/modules/".len()..]
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let info = driver_matrix::verify::modinfo::read(&bytes).expect("a module");
        out.entry(dir).or_default().push(info.kernel().to_string());
    }
    out
}

/// The sources image a vendor publishes: the fake modules of K1, K2 and K3, which the
/// self-contained Containerfile copies from (KMM's build has no context to copy from).
fn push_sources(p: &Project) -> String {
    let ctx = p.path().join("sources");
    support::fake_modules(&ctx.join("modules"), [K1, K2, K3]);
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY modules /modules\n",
    )
    .unwrap();
    let image = format!("{}/kmmfallback/hello-src:1", registry().addr());
    run_ok(
        Command::new("buildah")
            .args(["build", "--quiet", "--layers=false", "-t", &image])
            .arg(&ctx),
    );
    run_ok(Command::new("buildah").args(["push", "--tls-verify=false", &image]));
    image
}

/// The driver's Containerfile, taking its modules from the sources image; it builds under
/// driver-matrix (`DTK_IMAGE`) and KMM (`DTK_AUTO`) alike.
fn self_contained(sources: &str) -> String {
    format!(
        "ARG DTK_AUTO\nARG DTK_IMAGE=${{DTK_AUTO}}\nFROM ${{DTK_IMAGE}}\nARG KERNEL_FULL_VERSION\n\
         ARG DRIVER_NAME\n\
         COPY --from={sources} /modules/${{KERNEL_FULL_VERSION}}/ /opt/lib/modules/${{KERNEL_FULL_VERSION}}/\n\
         RUN echo \"$DRIVER_NAME for $KERNEL_FULL_VERSION\" > /driver.txt\n"
    )
}

/// `modules = ["hello"]`: the Module loads it.
fn name_the_module(p: &Project) {
    let matrix = std::fs::read_to_string(p.path().join("matrix.toml")).unwrap();
    p.write(
        "matrix.toml",
        &matrix.replace("build-args = ", "modules = [\"hello\"]\nbuild-args = "),
    );
}

#[test]
fn every_node_kernel_maps_to_an_image_for_it_or_is_reported_or_built_by_kmm() {
    let p = Project::with_releases(
        "kmmfallback",
        &[Driver::ok("hello")],
        &[("4.14.1", K1), ("4.14.2", K1), ("4.15.1", K2)],
    );
    name_the_module(&p);
    let sources = push_sources(&p);
    p.write("drivers/hello/Containerfile", &self_contained(&sources));
    // 4.14.2's nodes boot K3, which its DTK lags behind.
    let lock = p.lock();
    let at = lock.find("version = \"4.14.2\"").unwrap();
    let end = at + lock[at..].find("rhel = \"9.2\"\n").unwrap() + "rhel = \"9.2\"\n".len();
    let lock = format!("{}node-kernel = \"{K3}\"\n{}", &lock[..end], &lock[end..]);
    p.write("matrix.lock", &lock);
    p.cmd().args(["build"]).expect_exit(0).run();
    let locked = driver_matrix::lock::read(&p.lock_path()).unwrap();
    assert_eq!(locked.images.len(), 2, "K1 and K2 are built");
    let nodes: Vec<(String, String)> = locked
        .releases
        .iter()
        .map(|r| {
            let kernel = r.node_kernel.as_ref().unwrap_or(&r.kernel);
            (r.version.to_string(), kernel.to_string())
        })
        .collect();

    // Without a fallback: every node kernel the lock has an image for maps to that image,
    // and the image's modules are for that kernel; 4.14.2's nodes match nothing, and the
    // export and `verify` say so.
    let out = p.cmd().args(["export", "kmm"]).expect_exit(0).run();
    let text = out.stdout.clone();
    let docs = documents(&text);
    let module = docs.iter().find(|d| d["kind"] == "Module").unwrap();
    for (version, kernel) in &nodes {
        match kmm_mapping(module, kernel) {
            Some((mapping, image)) => {
                assert!(mapping.get("build").is_none(), "{version}: {mapping}");
                let modules = modules_in(&image);
                assert_eq!(
                    modules.get(kernel.as_str()),
                    Some(&vec![kernel.clone()]),
                    "{version}: {image} holds {modules:?}"
                );
            }
            None => assert_eq!(
                (version.as_str(), kernel.as_str()),
                ("4.14.2", K3),
                "only 4.14.2's nodes are left without a driver"
            ),
        }
    }
    assert!(
        text.contains("# the nodes of 4.14.2 (x86_64), and those of every release")
            && text.contains("`fallback = \"build\"` in [driver.kmm] of `hello`"),
        "the export names the release whose nodes get nothing:\n{text}"
    );
    let said = p
        .online()
        .args(["verify", "--deep"])
        .expect_exit(1)
        .run()
        .stdout;
    assert!(
        said.contains("FAIL release 4.14.2 (x86_64): the DTK's kernel")
            && said.contains(
                "driver `hello`: KMM loads nothing on the nodes of 4.14.2 (x86_64): no image for the kernel they boot, and no `fallback`"
            ),
        "{said}"
    );

    // With `fallback = "build"`: the literal mappings still win for the locked kernels, and
    // 4.14.2's nodes match the fallback, which builds for K3.
    let matrix = std::fs::read_to_string(p.path().join("matrix.toml")).unwrap();
    p.write(
        "matrix.toml",
        &format!("{matrix}\n[driver.kmm]\nimage-repo-secret = \"push\"\nfallback = \"build\"\n"),
    );
    let text = p.cmd().args(["export", "kmm"]).expect_exit(0).run().stdout;
    let docs = documents(&text);
    let module = docs.iter().find(|d| d["kind"] == "Module").unwrap();
    let config_map = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    for (version, kernel) in &nodes {
        let (mapping, _) = kmm_mapping(module, kernel).expect("every kernel maps");
        assert_eq!(
            mapping.get("build").is_some(),
            version == "4.14.2",
            "{version}: {mapping}"
        );
    }
    let (mapping, image) = kmm_mapping(module, K3).unwrap();
    assert_eq!(
        mapping["build"]["dockerfileConfigMap"]["name"],
        config_map["metadata"]["name"]
    );
    assert!(
        text.contains("It builds for the nodes of 4.14.2 (x86_64)."),
        "{text}"
    );

    // KMM's build: the ConfigMap's Dockerfile alone, KMM's arguments over the mapping's.
    let dockerfile = config_map["data"]["dockerfile"].as_str().unwrap();
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("Dockerfile"), dockerfile).unwrap();
    let mut args: Vec<String> = mapping["build"]["buildArgs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{}={}",
                a["name"].as_str().unwrap(),
                a["value"].as_str().unwrap()
            )
        })
        .collect();
    args.extend([
        format!("KERNEL_VERSION={K3}"),
        format!("KERNEL_FULL_VERSION={K3}"),
        "MOD_NAME=hello".into(),
        "MOD_NAMESPACE=default".into(),
    ]);
    if dockerfile.contains("DTK_AUTO") {
        args.push(format!("DTK_AUTO={}", dtk(K3)));
    }
    let mut build = Command::new("buildah");
    build.args([
        "build",
        "--quiet",
        "--layers=false",
        "--tls-verify=false",
        "-t",
        &image,
    ]);
    for a in &args {
        build.arg("--build-arg").arg(a);
    }
    run_ok(
        build
            .arg("-f")
            .arg(empty.path().join("Dockerfile"))
            .arg(empty.path()),
    );
    let digestfile = empty.path().join("digest");
    run_ok(
        Command::new("buildah")
            .args(["push", "--tls-verify=false", "--digestfile"])
            .arg(&digestfile)
            .arg(&image),
    );
    let digest = std::fs::read_to_string(&digestfile).unwrap();
    assert_eq!(modules_in(&image).get(K3), Some(&vec![K3.to_string()]));

    // `verify --deep` accepts it as the image for K3 (a lock whose 4.14.2 DTK has caught up
    // with its nodes, and whose K3 image is what KMM built).
    verify_kmm_built(&p, &image, digest.trim());
}

/// Records `image` (what KMM built for K3) in the lock as the image of 4.14.2, whose DTK
/// now carries K3, and runs `verify --deep`: it must accept every image.
fn verify_kmm_built(p: &Project, image: &str, digest: &str) {
    let mut lock = driver_matrix::lock::read(&p.lock_path()).unwrap();
    let release = lock
        .releases
        .iter_mut()
        .find(|r| r.version.to_string() == "4.14.2")
        .unwrap();
    release.kernel = K3.parse().unwrap();
    release.dtk = dtk(K3).parse().unwrap();
    release.node_kernel = None;
    let dtk_ref = release.dtk.clone();
    let mut entry = lock.images[0].clone();
    entry.kernel = K3.parse().unwrap();
    entry.dtk = dtk_ref;
    entry.image = image.parse().unwrap();
    entry.digest = digest.parse().unwrap();
    entry.releases = vec!["4.14.2".parse().unwrap()];
    for other in &mut lock.images {
        other.releases.retain(|v| v.to_string() != "4.14.2");
    }
    lock.images.push(entry);
    lock.canonicalize();
    std::fs::write(p.lock_path(), driver_matrix::lock::render(&lock)).unwrap();
    let said = p.online().args(["verify", "--deep"]).run().stdout;
    assert!(
        said.contains(&format!("ok   hello {K3} x86_64")),
        "the KMM-built image is checked: {said}"
    );
}

#[test]
fn a_fallback_refuses_a_containerfile_that_copies_from_the_context() {
    let p = Project::with_releases("kmmctx", &[Driver::ok("hello")], &[("4.14.1", K1)]);
    name_the_module(&p);
    let matrix = std::fs::read_to_string(p.path().join("matrix.toml")).unwrap();
    p.write(
        "matrix.toml",
        &format!("{matrix}\n[driver.kmm]\nfallback = \"build\"\n"),
    );
    // The Containerfile reads `DTK_IMAGE`, which KMM does not pass.
    let err = p.cmd().args(["export", "kmm"]).expect_exit(2).run().stderr;
    assert!(
        support::says(
            &err,
            "names `$DTK_IMAGE`, which has no value in KMM's in-cluster build"
        ) && support::says(&err, "`ARG DTK_IMAGE=${DTK_AUTO}`"),
        "{err}"
    );
    let containerfile = p.path().join("drivers/hello/Containerfile");
    let text = std::fs::read_to_string(&containerfile).unwrap();
    p.write(
        "drivers/hello/Containerfile",
        &text.replace(
            "ARG DTK_IMAGE\n",
            "ARG DTK_AUTO\nARG DTK_IMAGE=${DTK_AUTO}\n",
        ),
    );
    let out = p.cmd().args(["export", "kmm"]).expect_exit(2).run();
    let err = out.stderr.clone();
    assert!(
        support::says(&err, "`COPY src` copies from the build context")
            && support::says(&err, "KMM's in-cluster build has no context")
            && err.contains("drivers/hello/Containerfile"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing is written: {}", out.stdout);
    p.write(
        "matrix.toml",
        &format!("{matrix}\n[driver.kmm]\nfallback = \"built\"\n"),
    );
    let err = p.cmd().args(["export", "kmm"]).expect_exit(2).run().stderr;
    assert!(
        support::says(&err, "`built` is not a KMM fallback"),
        "{err}"
    );

    // Build secrets: KMM's build cannot mount them where the Containerfile reads them.
    std::fs::create_dir_all(p.path().join("keys")).unwrap();
    p.write("keys/token", "not for a ConfigMap\n");
    let with_secret = matrix.replace(
        "build-args = ",
        "secrets = { token = \"keys/token\" }\nbuild-args = ",
    );
    p.write(
        "matrix.toml",
        &format!("{with_secret}\n[driver.kmm]\nfallback = \"build\"\n"),
    );
    let out = p.cmd().args(["export", "kmm"]).expect_exit(2).run();
    let err = out.stderr.clone();
    assert!(
        support::says(
            &err,
            "has `fallback = \"build\"` and build secrets (`token`)"
        ),
        "{err}"
    );
    assert!(!out.stdout.contains("not for a ConfigMap"));
}

/// `tests/matrices/kmm-fallback`: both drivers fall back to an in-cluster build; nic-kmod is
/// built for real-time kernels and signed by KMM.
#[test]
fn the_fallback_mapping_carries_the_build_and_what_kmm_signs() {
    let matrix = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/matrices/kmm-fallback/matrix.toml");
    let text = support::dm()
        .args(["--offline", "-m"])
        .arg(&matrix)
        .args(["export", "kmm"])
        .run()
        .stdout;
    let docs = documents(&text);
    let nic = docs
        .iter()
        .find(|d| d["kind"] == "Module" && d["metadata"]["name"] == "nic-kmod")
        .unwrap();
    let mappings = nic["spec"]["moduleLoader"]["container"]["kernelMappings"]
        .as_array()
        .unwrap();
    let last = mappings.last().unwrap();
    assert_eq!(
        last["regexp"], "^.+$",
        "the fallback comes after the literals"
    );
    assert_eq!(
        last["containerImage"],
        "quay.io/acme/nic-kmod-signed:${KERNEL_FULL_VERSION}-kmm-build"
    );
    assert_eq!(
        last["sign"]["filesToSign"][0],
        "/opt/lib/modules/${KERNEL_FULL_VERSION}/acme_nic.ko"
    );
    assert_eq!(
        last["build"]["dockerfileConfigMap"]["name"],
        "nic-kmod-dockerfile"
    );
    assert!(
        mappings[..mappings.len() - 1]
            .iter()
            .all(|m| m.get("literal").is_some() && m.get("build").is_none()),
        "{mappings:#?}"
    );
    let gpu = docs
        .iter()
        .find(|d| d["kind"] == "Module" && d["metadata"]["name"] == "gpu-kmod")
        .unwrap();
    let last = gpu["spec"]["moduleLoader"]["container"]["kernelMappings"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["build"]["buildArgs"],
        serde_json::json!([{ "name": "VERSION", "value": "2.3.1" }])
    );
    // KMM normalizes the kernel it writes into filesToSign: said for the real-time driver only.
    let said = "the fallback would sign a path the image does not hold";
    let module_text = |name: &str| {
        text.split("---\n")
            .find(|d| d.contains("kind: \"Module\"") && d.contains(&format!("name: \"{name}\"\n")))
            .unwrap()
            .to_string()
    };
    assert!(module_text("nic-kmod").contains(said), "{text}");
    assert!(!module_text("gpu-kmod").contains(said), "{text}");
}
