//! A job's tag follows the lock: `build` pushes to the repository's unconfirmed tag, and moves
//! the job's tag only once the image is read back and confirmed. A refused image never becomes
//! what `<image>:<kernel>` names, which is what KMM's `BootModuleConfig` pulls.

use crate::support;
use support::{Driver, K1, Project, inspect};

/// The digest `image` names now, read from the registry.
fn digest_of(image: &str) -> String {
    inspect(image)["Digest"].as_str().unwrap().to_string()
}

#[test]
fn a_refused_image_leaves_the_tag_at_the_locked_digest() {
    let p = Project::with_releases("refused", &[Driver::ok("typo")], &[("4.14.1", K1)]);
    p.cmd().args(["build"]).run();
    let lock = p.lock();
    let parsed = driver_matrix::lock::read(&p.lock_path()).unwrap();
    let locked = &parsed.images[0];
    let tag = locked.image.to_string();
    assert_eq!(digest_of(&tag), locked.digest.as_str());

    // A typo in `modules`: the image is pushed, read back and refused.
    let matrix = std::fs::read_to_string(p.path().join("matrix.toml")).unwrap();
    let typo = matrix.replace("build-args = ", "modules = [\"hellp\"]\nbuild-args = ");
    p.write("matrix.toml", &typo);
    let run = p.cmd().args(["build", "--force"]).expect_exit(1).run();
    let err = run.stderr.clone();
    assert!(
        support::says(&err, "module `hellp` is not in the image")
            && support::says(&err, "its kernel's directory holds `hello`")
            && support::says(&err, "expected `hellp`"),
        "{err}"
    );
    assert_eq!(p.lock(), lock, "a refused image leaves the lock unchanged");
    let staged = locked.image.with_tag("driver-matrix-unconfirmed").unwrap();
    let refused = digest_of(&staged.to_string());
    assert_ne!(refused, locked.digest.as_str(), "a new image was pushed");
    assert!(
        err.contains(&refused),
        "the failure names what was pushed: {err}"
    );
    assert_eq!(
        digest_of(&tag),
        locked.digest.as_str(),
        "the tag still names the locked image, not the refused one"
    );

    // Fixed: the next image is confirmed, and only then does the tag move to it.
    p.write(
        "matrix.toml",
        &matrix.replace("build-args = ", "modules = [\"hello\"]\nbuild-args = "),
    );
    p.cmd().args(["build", "--force"]).run();
    let relocked = driver_matrix::lock::read(&p.lock_path()).unwrap();
    let now = &relocked.images[0];
    assert_ne!(now.digest, locked.digest);
    assert_eq!(digest_of(&tag), now.digest.as_str());
}
