//! `export buildconfig`: every exported object validates strictly against OpenShift's build
//! and image API (`tests/openshift/`, unknown fields rejected as under strict field
//! validation), and the BuildConfigs, executed the way OpenShift's docker-strategy builder
//! executes them (see [`emulate`]), push images that `collect` locks and `verify --deep`
//! accepts, equal in everything but digests to what a local `build` of the same commit locks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use driver_matrix_sandbox::{Flavor, PayloadSpec, signing};
use serde_json::{Value, json};

use crate::support::{World, buildah_env, dtk, in_dir, module, redact, says};

const K1: &str = crate::support::K1;
const K2: &str = crate::support::K2;

fn schema_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openshift/openapi-build-image-v1.json")
}

/// Closes every object definition that lists its properties, as the API server does under
/// strict field validation.
fn strict(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if obj.contains_key("properties") && !obj.contains_key("additionalProperties") {
        obj.insert("additionalProperties".into(), json!(false));
    }
    for v in obj.values_mut() {
        match v {
            Value::Object(_) => strict(v),
            Value::Array(list) => list.iter_mut().for_each(strict),
            _ => {}
        }
    }
}

/// The validator of one root definition (`com.github.openshift.api.build.v1.BuildConfig`).
fn validator(root: &str) -> jsonschema::Validator {
    let mut doc: Value = serde_json::from_slice(&std::fs::read(schema_root()).unwrap()).unwrap();
    let mut defs = doc["definitions"].take();
    strict(&mut defs);
    let schema = json!({ "definitions": defs, "$ref": format!("#/definitions/{root}") });
    jsonschema::draft4::new(&schema).unwrap()
}

fn documents(yaml: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn assert_valid(docs: &[Value]) {
    let bc = validator("com.github.openshift.api.build.v1.BuildConfig");
    let is = validator("com.github.openshift.api.image.v1.ImageStream");
    for doc in docs {
        let v = match doc["kind"].as_str() {
            Some("BuildConfig") => &bc,
            Some("ImageStream") => &is,
            other => panic!("unexpected kind {other:?}: {doc:#}"),
        };
        let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A world whose releases 4.14.1 and 4.14.2 share kernel K1 and 4.15.1 has K2, each on a
/// busybox DTK, and a repository with one signed driver: its module, signed by the test's key
/// beforehand, is copied in a `RUN` step that reads the signing key through the secret mount
/// both routes provide.
fn setup(name: &str) -> World {
    let w = World::new(name);
    for (v, k) in [("4.14.1", K1), ("4.14.2", K1), ("4.15.1", K2)] {
        w.payload(
            &PayloadSpec::new(v, Some(dtk(k))),
            "x86_64",
            "amd64",
            Flavor::Docker,
        );
    }
    let dir = w.dir.path();
    let (key, cert) = signing::ensure(&dir.join("keys")).unwrap();
    let ctx = dir.join("drivers/hello");
    for k in [K1, K2] {
        let m = signing::sign(&key, &cert, &module("hello", k)).unwrap();
        std::fs::create_dir_all(ctx.join("modules").join(k)).unwrap();
        std::fs::write(ctx.join("modules").join(k).join("hello.ko"), m).unwrap();
    }
    std::fs::write(
        ctx.join("Containerfile"),
        "ARG DTK_IMAGE\nFROM ${DTK_IMAGE} AS builder\nARG KERNEL_FULL_VERSION\n\
         COPY modules/ /modules/\n\
         RUN --mount=type=secret,id=signing-key,target=/run/secrets/driver-matrix/signing-key \\\n\
         \x20   test -s /run/secrets/driver-matrix/signing-key \\\n\
         \x20&& mkdir -p /opt/lib/modules/${KERNEL_FULL_VERSION} \\\n\
         \x20&& cp /modules/${KERNEL_FULL_VERSION}/hello.ko /opt/lib/modules/${KERNEL_FULL_VERSION}/\n\n\
         FROM scratch\nARG KERNEL_FULL_VERSION\n\
         COPY --from=builder /opt/lib/modules/${KERNEL_FULL_VERSION}/ /opt/lib/modules/${KERNEL_FULL_VERSION}/\n",
    )
    .unwrap();
    w.matrix(
        "releases = [\"4.14.1\", \"4.14.2\", \"4.15.1\"]",
        &format!(
            "[[driver]]\nname = \"hello\"\ncontext = \"drivers/hello\"\nimage = \"{}/{}/hello\"\n\
             modules = [\"hello\"]\nsigned = true\nsigning-cert = \"keys/signing.crt\"\n\
             secrets = {{ signing-key = \"keys/signing.key\" }}\n",
            w.addr, w.ns
        ),
    );
    std::fs::write(
        dir.join(".gitignore"),
        "/keys/\n/cache/\nmatrix.lock.lock\n",
    )
    .unwrap();
    git(dir, &["init", "--quiet", "--initial-branch=main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", "drivers"]);
    w
}

fn buildah(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("buildah");
    buildah_env(&mut cmd).args(args).stdin(Stdio::null());
    cmd.output().unwrap()
}

/// Runs the BuildConfigs of `docs` as OpenShift's docker-strategy builder runs a Build
/// (openshift/builder, `pkg/build/builder`):
/// - `source.git`: the repository cloned, `ref` checked out (`source.go`, `git clone` then
///   `git checkout REF`), and the build entered at `contextDir`;
/// - `dockerStrategy.dockerfilePath`: the Dockerfile, relative to the context (`docker.go`);
/// - `dockerStrategy.buildArgs`: every entry a build argument (`daemonless.go`, `args[name] =
///   value` handed to buildah's `BuildOptions.Args`);
/// - `dockerStrategy.volumes`: each mount bind-mounted read-only at `destinationPath` into
///   every `RUN` step (`daemonless.go` `appendBuildVolumeMounts`, buildah's transient mounts:
///   `buildah build --volume SRC:DEST:ro`); a Secret's keys are its files, as a pod's secret
///   volume shows them; `secrets` maps Secret names to local directories;
/// - `output.imageLabels`: labels of the pushed image (`docker.go`, `addBuildLabels`);
/// - `output.to` DockerImage: tagged and pushed there (`docker.go`, `pushImage`).
///
/// It does not reproduce what a cluster adds around that: `nodeSelector` (this machine is the
/// node), `pullSecret`/`pushSecret` (the test registry needs none) and the builder's own
/// `io.openshift.build.*` labels and environment.
fn emulate(docs: &[Value], secrets: &BTreeMap<String, PathBuf>) -> usize {
    let mut built = 0;
    for bc in docs.iter().filter(|d| d["kind"] == "BuildConfig") {
        let spec = &bc["spec"];
        let work = tempfile::tempdir().unwrap();
        let src = work.path().join("src");
        let uri = spec["source"]["git"]["uri"].as_str().unwrap();
        let r#ref = spec["source"]["git"]["ref"].as_str().unwrap();
        let out = Command::new("git")
            .args(["clone", "--quiet", uri])
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        git(&src, &["checkout", "--quiet", r#ref]);
        let ctx = match spec["source"]["contextDir"].as_str() {
            Some(d) => src.join(d),
            None => src.clone(),
        };
        let docker = &spec["strategy"]["dockerStrategy"];
        let file = ctx.join(docker["dockerfilePath"].as_str().unwrap_or("Dockerfile"));
        let mut args: Vec<String> = vec!["build".into(), "--tls-verify=false".into()];
        args.push(format!("--file={}", file.display()));
        for a in docker["buildArgs"].as_array().unwrap() {
            args.push(format!(
                "--build-arg={}={}",
                a["name"].as_str().unwrap(),
                a["value"].as_str().unwrap()
            ));
        }
        for v in docker["volumes"].as_array().into_iter().flatten() {
            let name = v["source"]["secret"]["secretName"].as_str().unwrap();
            let dir = &secrets[name];
            for m in v["mounts"].as_array().unwrap() {
                let dest = m["destinationPath"].as_str().unwrap();
                args.push(format!("--volume={}:{dest}:ro", dir.display()));
            }
        }
        for l in spec["output"]["imageLabels"].as_array().unwrap() {
            args.push(format!(
                "--label={}={}",
                l["name"].as_str().unwrap(),
                l["value"].as_str().unwrap()
            ));
        }
        assert_eq!(spec["output"]["to"]["kind"], "DockerImage");
        let to = spec["output"]["to"]["name"].as_str().unwrap().to_string();
        args.push(format!("--tag={to}"));
        args.push(ctx.display().to_string());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = buildah(&refs);
        assert!(
            out.status.success(),
            "buildah {args:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = buildah(&[
            "push",
            "--quiet",
            "--tls-verify=false",
            &to,
            &format!("docker://{to}"),
        ]);
        assert!(
            out.status.success(),
            "push {to}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        buildah(&["rmi", &to]);
        built += 1;
    }
    built
}

/// The lock's `[[image]]` entries without their digests.
fn images_without_digests(lock: &str) -> Vec<toml::Table> {
    let lock: toml::Table = toml::from_str(lock).unwrap();
    lock.get("image")
        .and_then(|i| i.as_array())
        .map(|images| {
            images
                .iter()
                .map(|i| {
                    let mut t = i.as_table().unwrap().clone();
                    t.remove("digest");
                    t
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn exported_build_configs_build_what_a_local_build_locks() {
    let w = setup("bc-e2e");
    let dir = w.dir.path();
    let uri = dir.display().to_string();

    let out = in_dir(dir)
        .args(["export", "buildconfig", "--git-uri", &uri])
        .run();
    let yaml = out.stdout.clone();
    let docs = documents(&yaml);
    assert_valid(&docs);
    // One BuildConfig per job (two kernels), nothing else for a DockerImage output.
    assert_eq!(docs.len(), 2, "{yaml}");
    let head = git(dir, &["rev-parse", "HEAD"]);
    for bc in &docs {
        let spec = &bc["spec"];
        assert_eq!(
            spec["source"]["git"]["ref"],
            json!(head),
            "pinned to the commit"
        );
        assert_eq!(spec["source"]["contextDir"], "drivers/hello");
        assert_eq!(spec["nodeSelector"]["kubernetes.io/arch"], "amd64");
        assert_eq!(spec["triggers"], json!([{ "type": "ConfigChange" }]));
        let args: BTreeMap<&str, &str> = spec["strategy"]["dockerStrategy"]["buildArgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["name"].as_str().unwrap(), a["value"].as_str().unwrap()))
            .collect();
        for name in ["DTK", "DTK_AUTO", "DTK_IMAGE"] {
            assert!(args[name].contains("/test/dtk@sha256:"), "{name}: {args:?}");
        }
        assert_eq!(args["KVER"], args["KERNEL_FULL_VERSION"]);
        assert!(bc["metadata"]["name"].as_str().unwrap().len() <= 63);
    }
    assert!(
        yaml.contains(
            "oc create secret generic hello-build-secrets --from-file=signing-key=keys/signing.key"
        ),
        "{yaml}"
    );

    // The cluster builds them; `collect` locks what they pushed; `verify --deep` checks the
    // signatures the driver asks for.
    let secret_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.join("keys/signing.key"),
        secret_dir.path().join("signing-key"),
    )
    .unwrap();
    let secrets = BTreeMap::from([(
        "hello-build-secrets".to_string(),
        secret_dir.path().to_path_buf(),
    )]);
    assert_eq!(emulate(&docs, &secrets), 2);
    in_dir(dir).args(["collect"]).run();
    let collected = w.lock();
    let text = in_dir(dir).args(["verify", "--deep"]).stdout();
    assert!(
        text.contains(&format!("signed by `{}`", signing::SIGNER)),
        "{text}"
    );
    // Now every job is fresh: nothing left to export.
    let out = in_dir(dir)
        .args(["export", "buildconfig", "--git-uri", &uri])
        .run();
    assert!(documents(&out.stdout).is_empty(), "{}", out.stdout);

    // A local build of the same commit, from a clone, locks the same images but for digests.
    let clone = tempfile::tempdir().unwrap();
    let local = clone.path().join("repo");
    let out = Command::new("git")
        .args(["clone", "--quiet", &uri])
        .arg(&local)
        .output()
        .unwrap();
    assert!(out.status.success());
    copy_dir(&dir.join("keys"), &local.join("keys"));
    let lock_text: String = collected.clone();
    // The releases the collected lock resolved, without its images: the build starts there.
    let releases_only: String = lock_text.split("\n[[image]]").next().unwrap().to_string() + "\n";
    std::fs::write(local.join("matrix.lock"), releases_only).unwrap();
    in_dir(&local).args(["build", "--force"]).run();
    let built = std::fs::read_to_string(local.join("matrix.lock")).unwrap();
    assert_eq!(
        images_without_digests(&built),
        images_without_digests(&collected)
    );
    assert_eq!(images_without_digests(&built).len(), 2, "{built}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_dirty_context_a_missing_repository_and_a_bad_namespace_are_usage_errors() {
    let w = setup("bc-refusals");
    let dir = w.dir.path();
    let uri = dir.display().to_string();

    std::fs::write(dir.join("drivers/hello/notes.txt"), "not committed\n").unwrap();
    let out = in_dir(dir)
        .args(["export", "buildconfig", "--git-uri", &uri])
        .expect_exit(2)
        .run();
    assert!(
        says(&out.stderr, "drivers/hello/notes.txt"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "nothing is written: {}", out.stdout);
    // The binary route uploads the working tree: it builds what the plan hashed.
    let out = in_dir(dir)
        .args(["export", "buildconfig", "--binary"])
        .run();
    let docs = documents(&out.stdout);
    assert_valid(&docs);
    let shown = redact(
        &out.stdout
            .replace(&format!("{}/{}", w.addr, w.ns), "[registry]/[ns]"),
        &w.addr,
    );
    insta::assert_snapshot!("binary", shown);
    assert_eq!(
        docs[0]["spec"]["source"],
        json!({ "type": "Binary", "binary": {} })
    );
    assert!(
        out.stdout.contains("--from-dir=drivers/hello"),
        "{}",
        out.stdout
    );
    std::fs::remove_file(dir.join("drivers/hello/notes.txt")).unwrap();

    // A file git ignores but the build would send is a difference too.
    std::fs::write(dir.join("drivers/hello/.gitignore"), "*.o\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", "ignore objects"]);
    std::fs::write(dir.join("drivers/hello/hello.o"), "object\n").unwrap();
    in_dir(dir)
        .args(["export", "buildconfig", "--git-uri", &uri])
        .expect_exit(2)
        .stderr_says("drivers/hello/hello.o")
        .run();
    // ... unless the context's ignore file leaves it out of the build as well.
    std::fs::write(dir.join("drivers/hello/.containerignore"), "*.o\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", "containerignore"]);
    in_dir(dir)
        .args(["export", "buildconfig", "--git-uri", &uri])
        .run();

    // Credentials in a URL never reach the objects.
    let out = in_dir(dir)
        .args([
            "export",
            "buildconfig",
            "--git-uri",
            "https://bot:s3cret@git.example.com/acme/drivers.git",
        ])
        .run();
    assert!(!out.stdout.contains("s3cret") && !out.stderr.contains("s3cret"));
    assert!(
        out.stdout
            .contains("\"https://git.example.com/acme/drivers.git\""),
        "{}",
        out.stdout
    );

    // An ImageStreamTag output needs the driver's image in the cluster's own registry, or
    // `collect` would never find what the builds push.
    let out = in_dir(dir)
        .args([
            "export",
            "buildconfig",
            "--git-uri",
            &uri,
            "--to",
            "image-stream",
        ])
        .expect_exit(2)
        .run();
    assert!(
        says(
            &out.stderr,
            "is not an image stream of the cluster's registry"
        ),
        "{}",
        out.stderr
    );

    let long = "n".repeat(64);
    let out = in_dir(dir)
        .args([
            "export",
            "buildconfig",
            "--git-uri",
            &uri,
            "--namespace",
            &long,
        ])
        .expect_exit(2)
        .run();
    assert!(
        says(&out.stderr, "is not a namespace name"),
        "{}",
        out.stderr
    );

    let out = in_dir(dir)
        .args(["export", "buildconfig", "--git-ref", "no-such-branch"])
        .expect_exit(2)
        .run();
    assert!(
        says(&out.stderr, "`no-such-branch` names no commit"),
        "{}",
        out.stderr
    );
    in_dir(dir)
        .args(["export", "buildconfig", "--git-ref=--output=/tmp/x"])
        .expect_exit(2)
        .run();

    // With the image in the cluster's registry, the builds push to ImageStreamTags of an
    // ImageStream the export writes too.
    let matrix = std::fs::read_to_string(dir.join("matrix.toml")).unwrap();
    let internal = "image-registry.openshift-image-registry.svc:5000/drivers/hello";
    std::fs::write(
        dir.join("matrix.toml"),
        matrix.replace(&format!("{}/{}/hello", w.addr, w.ns), internal),
    )
    .unwrap();
    let out = in_dir(dir)
        .args([
            "export",
            "buildconfig",
            "--git-uri",
            &uri,
            "--to",
            "image-stream",
        ])
        .run();
    let docs = documents(&out.stdout);
    assert_valid(&docs);
    assert_eq!(docs[0]["kind"], "ImageStream", "{}", out.stdout);
    assert_eq!(
        docs[0]["metadata"],
        json!({ "name": "hello", "namespace": "drivers" })
    );
    for bc in &docs[1..] {
        let to = &bc["spec"]["output"]["to"];
        assert_eq!(to["kind"], "ImageStreamTag");
        assert_eq!(to["namespace"], "drivers");
        assert!(
            to["name"].as_str().unwrap().starts_with("hello:5.14.0-"),
            "{to}"
        );
        assert!(bc["spec"]["output"].get("pushSecret").is_none());
    }
    std::fs::write(dir.join("matrix.toml"), matrix).unwrap();

    // Without a repository (and no remote to name), the export says how to go on.
    std::fs::remove_dir_all(dir.join(".git")).unwrap();
    let out = in_dir(dir)
        .args(["export", "buildconfig"])
        .expect_exit(2)
        .run();
    assert!(
        says(&out.stderr, "is not inside a git repository"),
        "{}",
        out.stderr
    );
    assert!(says(&out.stderr, "--binary"), "{}", out.stderr);
}
