//! The planner through the real binary and the library: snapshots of what users read,
//! kernel sharing, the DTK choice rule, job states and determinism.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{Cmd, dm};

use driver_matrix::lock::{self, Lock, LockedImage};
use driver_matrix::plan::{self, PlanInput, State};
use driver_matrix::{inputs, matrix};

fn good() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/matrices/good")
}

/// `driver-matrix --offline --color never -m MATRIX --lockfile LOCK plan`.
fn plan_cmd(matrix: &Path, lock: &Path) -> Cmd {
    dm().args(["--offline", "--color", "never", "-m"])
        .arg(matrix)
        .arg("--lockfile")
        .arg(lock)
        .arg("plan")
}

fn run_plan(matrix: &str, format: &str) -> (String, String) {
    let out = plan_cmd(&good().join(matrix), &good().join("resolved.lock"))
        .args(["--format", format])
        .run();
    (out.stdout, out.stderr)
}

#[test]
fn plan_json_and_table_snapshots() {
    let (json, stderr) = run_plan("matrix.toml", "json");
    assert_eq!(stderr, "", "unexpected warnings");
    insta::assert_snapshot!("plan_json", json);
    let (table, _) = run_plan("matrix.toml", "table");
    insta::assert_snapshot!("plan_table", table);
}

#[test]
fn shuffled_matrix_plans_to_identical_bytes() {
    let (a, _) = run_plan("matrix.toml", "json");
    let (b, _) = run_plan("matrix-shuffled.toml", "json");
    assert_eq!(a, b);
}

fn load_good() -> (
    matrix::Matrix,
    Lock,
    BTreeMap<String, driver_matrix::domain::Digest>,
) {
    let m = matrix::load(&good().join("matrix.toml")).unwrap().matrix;
    let l = lock::read(&good().join("resolved.lock")).unwrap();
    let contexts = inputs::context_digests(&m).unwrap();
    (m, l, contexts)
}

fn make_plan(
    m: &matrix::Matrix,
    l: &Lock,
    contexts: &BTreeMap<String, driver_matrix::domain::Digest>,
) -> plan::Plan {
    let channels = plan::channels_from_lock(m, l);
    let versions = plan::target_versions(m, &channels);
    plan::plan(&PlanInput {
        matrix: m,
        versions: &versions,
        releases: &l.releases,
        contexts,
        lock: l,
    })
    .unwrap()
}

#[test]
fn releases_that_share_a_kernel_share_a_job() {
    let (m, l, contexts) = load_good();
    let p = make_plan(&m, &l, &contexts);
    let find = |driver: &str, kernel: &str| {
        p.jobs
            .iter()
            .find(|j| j.driver == driver && j.kernel.as_str() == kernel)
            .unwrap_or_else(|| panic!("no job {driver} {kernel}"))
    };
    let shared = find("hello-kmod", "5.14.0-284.52.1.el9_2.x86_64");
    let versions: Vec<String> = shared.releases.iter().map(ToString::to_string).collect();
    assert_eq!(versions, ["4.14.12", "4.14.13"]);
    // The channel brings the two newest 4.16 z-streams, not 4.16.2; they share a kernel.
    let k416 = find("hello-kmod", "5.14.0-427.18.1.el9_4.x86_64");
    let versions: Vec<String> = k416.releases.iter().map(ToString::to_string).collect();
    assert_eq!(versions, ["4.16.3", "4.16.4"]);
    assert!(
        !p.jobs
            .iter()
            .any(|j| j.kernel.as_str().contains("427.16.1"))
    );
    // Without a lock entry, the DTK of the highest release is taken.
    let dtk_4164 = l
        .release(&"4.16.4".parse().unwrap(), "x86_64".parse().unwrap())
        .unwrap()
        .dtk
        .clone();
    assert_eq!(k416.dtk, dtk_4164);
    // RT jobs exist for x86_64 only, with the kernel normalized into the tag.
    let rt = find("hello-kmod", "5.14.0-427.18.1.el9_4.x86_64+rt");
    assert!(rt.rt);
    assert_eq!(rt.image.tag(), Some("1.0-5.14.0-427.18.1.el9_4.x86_64_rt"));
    assert_eq!(
        rt.build_args()["KERNEL_VERSION"],
        "5.14.0-427.18.1.el9_4.x86_64+rt"
    );
    // The exclude drops hello-kmod on 4.15 aarch64; net-kmod starts at 4.15 on x86_64 only.
    assert!(
        !p.jobs
            .iter()
            .any(|j| j.driver == "hello-kmod"
                && j.kernel.as_str() == "5.14.0-284.59.1.el9_2.aarch64")
    );
    assert!(
        p.jobs
            .iter()
            .filter(|j| j.driver == "net-kmod")
            .all(|j| j.arch.as_str() == "x86_64")
    );
    assert!(
        !p.jobs
            .iter()
            .any(|j| j.driver == "net-kmod" && j.releases.iter().any(|v| v.minor() == 14))
    );
    // Cells: hello 6 versions x 2 arches - 1 excluded = 11; net 4 versions (4.15+) x 1 arch = 4.
    assert_eq!(p.cells, 15);
}

#[test]
fn the_dtk_the_lock_names_is_kept_while_a_release_offers_it() {
    let (m, mut l, contexts) = load_good();
    let first = make_plan(&m, &l, &contexts);
    let job = first
        .jobs
        .iter()
        .find(|j| j.driver == "hello-kmod" && j.kernel.as_str() == "5.14.0-427.18.1.el9_4.x86_64")
        .unwrap();
    let dtk_4163 = l
        .release(&"4.16.3".parse().unwrap(), job.arch)
        .unwrap()
        .dtk
        .clone();
    assert_ne!(job.dtk, dtk_4163);
    l.upsert_image(LockedImage {
        driver: job.driver.clone(),
        kernel: job.kernel.clone(),
        arch: job.arch,
        dtk: dtk_4163.clone(),
        inputs: job.inputs.clone(),
        image: job.image.clone(),
        digest: driver_matrix::domain::Digest::sha256(b"image"),
        releases: vec!["4.16.3".parse().unwrap()],
    });
    let second = make_plan(&m, &l, &contexts);
    let job2 = second.jobs.iter().find(|j| j.key() == job.key()).unwrap();
    assert_eq!(job2.dtk, dtk_4163);
    // A different DTK means different inputs: the image the lock holds is stale.
    assert_eq!(job2.state, State::Stale);
}

#[test]
fn jobs_are_fresh_when_the_lock_matches_and_stale_when_a_context_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&good(), dir.path());
    let matrix_path = dir.path().join("matrix.toml");
    let m = matrix::load(&matrix_path).unwrap().matrix;
    let mut l = lock::read(&dir.path().join("resolved.lock")).unwrap();
    let hash = |m: &matrix::Matrix| inputs::context_digests(m).unwrap();
    let p = make_plan(&m, &l, &hash(&m));
    assert!(p.jobs.iter().all(|j| j.state == State::New));
    for j in &p.jobs {
        l.upsert_image(LockedImage {
            driver: j.driver.clone(),
            kernel: j.kernel.clone(),
            arch: j.arch,
            dtk: j.dtk.clone(),
            inputs: j.inputs.clone(),
            image: j.image.clone(),
            digest: driver_matrix::domain::Digest::sha256(j.id().as_bytes()),
            releases: j.releases.clone(),
        });
    }
    let p = make_plan(&m, &l, &hash(&m));
    assert!(p.jobs.iter().all(|j| j.state == State::Fresh));
    std::fs::write(
        dir.path().join("net/Containerfile"),
        "ARG DTK_IMAGE\nFROM ${DTK_IMAGE}\nRUN false\n",
    )
    .unwrap();
    let p = make_plan(&m, &l, &hash(&m));
    for j in &p.jobs {
        let want = if j.driver == "net-kmod" {
            State::Stale
        } else {
            State::Fresh
        };
        assert_eq!(j.state, want, "{}", j.id());
    }
}

#[test]
fn an_exclude_that_matches_nothing_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&good(), dir.path());
    let path = dir.path().join("matrix.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{text}\n[[exclude]]\ndriver = \"net-kmod\"\narch = \"aarch64\"\n"),
    )
    .unwrap();
    let stderr = plan_cmd(&path, &dir.path().join("resolved.lock"))
        .args(["--format", "json"])
        .stderr();
    assert!(stderr.contains("matches no cell"), "{stderr}");
    assert!(
        stderr.contains("matrix.toml:"),
        "warning does not point into the file: {stderr}"
    );
}

#[test]
fn an_unresolved_release_is_a_clear_error_offline() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&good(), dir.path());
    let path = dir.path().join("matrix.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"4.15.3\"", "\"4.15.3\", \"4.15.9\"");
    std::fs::write(&path, text).unwrap();
    let stderr = plan_cmd(&path, &dir.path().join("resolved.lock"))
        .expect_exit(2)
        .stderr();
    assert!(
        stderr.contains("4.15.9") && stderr.contains("driver-matrix resolve"),
        "{stderr}"
    );
}

#[test]
fn two_drivers_pushing_to_the_same_image_are_a_matrix_error() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&good(), dir.path());
    let path = dir.path().join("matrix.toml");
    // net-kmod now pushes where hello-kmod does, with the same tags.
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "image = \"127.0.0.1:5000/acme/net-kmod\"",
        "image = \"127.0.0.1:5000/acme/hello-kmod\"\ntag = \"1.0-${KERNEL_FULL_VERSION}\"",
    );
    std::fs::write(&path, text).unwrap();
    let stderr = plan_cmd(&path, &dir.path().join("resolved.lock"))
        .expect_exit(2)
        .stderr();
    assert!(
        stderr.contains("drivers push to the same image")
            && stderr.contains("hello-kmod/")
            && stderr.contains("net-kmod/"),
        "{stderr}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[test]
fn a_secret_inside_a_context_is_not_an_input() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&good(), dir.path());
    let matrix_path = dir.path().join("matrix.toml");
    let text = std::fs::read_to_string(&matrix_path).unwrap().replace(
        "modules = [\"netfoo\", \"netbar\"]",
        "modules = [\"netfoo\", \"netbar\"]\nsecrets = { signing-key = \"net/keys/signing.priv\" }",
    );
    std::fs::write(&matrix_path, text).unwrap();
    std::fs::create_dir_all(dir.path().join("net/keys")).unwrap();
    let key = dir.path().join("net/keys/signing.priv");
    std::fs::write(&key, "key one").unwrap();
    // A secret inside a context must be left out of it (or the matrix is refused).
    std::fs::write(
        dir.path().join("net/.containerignore"),
        "keys/signing.priv\n",
    )
    .unwrap();
    let m = matrix::load(&matrix_path).unwrap().matrix;
    assert_eq!(m.driver("net-kmod").unwrap().secrets.len(), 1);
    let l = lock::read(&dir.path().join("resolved.lock")).unwrap();
    let inputs = |m: &matrix::Matrix| -> Vec<_> {
        let contexts = inputs::context_digests(m).unwrap();
        make_plan(m, &l, &contexts)
            .jobs
            .iter()
            .map(|j| (j.id(), j.inputs.clone()))
            .collect()
    };
    let before = inputs(&m);
    std::fs::write(&key, "key two, rotated").unwrap();
    assert_eq!(before, inputs(&m), "the secret's contents reached the hash");
    // The files beside it still count.
    std::fs::write(dir.path().join("net/keys/README"), "keys").unwrap();
    assert_ne!(before, inputs(&m));
}
