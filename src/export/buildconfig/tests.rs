use std::sync::Arc;

use super::*;
use crate::domain::{Arch, Digest};
use crate::plan::State;

fn job(driver: &str, kernel: &str) -> Job {
    Job {
        driver: driver.into(),
        kernel: kernel.parse().expect("a kernel"),
        arch: Arch::X86_64,
        rt: false,
        releases: vec!["4.14.12".parse().expect("a version")],
        dtk: format!("quay.io/ocp/dtk@sha256:{}", "d".repeat(64))
            .parse()
            .expect("a reference"),
        rhel: "9.2".into(),
        image: format!("quay.io/acme/{driver}:{}", kernel.replace('+', "_"))
            .parse()
            .expect("a reference"),
        driver_args: Arc::new([("VERSION".to_string(), "1.0".to_string())].into()),
        inputs: Digest::sha256(b"inputs"),
        state: State::New,
    }
}

fn dns_label(name: &str) -> bool {
    name.len() <= NAME_LIMIT
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[test]
fn names_are_dns_labels_unique_per_job() {
    let short = name(&job("hello-kmod", "5.14.0-284.52.1.el9_2.x86_64"));
    assert!(dns_label(&short), "{short}");
    assert!(
        short.starts_with("hello-kmod-5-14-0-284-52-1-el9-2-x86-64-x86-64-"),
        "{short}"
    );
    // Two kernels that differ only past the length limit, or only where the name had to change.
    let long = "a-vendor-driver-with-a-long-name";
    let a = name(&job(long, "5.14.0-570.1234567.1.el9_6.x86_64+rt"));
    let b = name(&job(long, "5.14.0-570.1234567.1.el9_6.x86_64_rt"));
    let c = name(&job(long, "5.14.0-570.1234567.2.el9_6.x86_64+rt"));
    for n in [&a, &b, &c] {
        assert!(dns_label(n), "{n} ({} characters)", n.len());
    }
    assert_ne!(a, b);
    assert_ne!(a, c);
    // The same job always gets the same name.
    assert_eq!(a, name(&job(long, "5.14.0-570.1234567.1.el9_6.x86_64+rt")));
}

#[test]
fn build_args_add_the_toolkit_readme_names_unless_the_driver_has_them() {
    let mut j = job("hello-kmod", "5.14.0-284.52.1.el9_2.x86_64");
    let args = build_args(&j);
    assert_eq!(args["DTK"], j.dtk.to_string());
    assert_eq!(args["DTK_AUTO"], j.dtk.to_string());
    assert_eq!(args["KVER"], "5.14.0-284.52.1.el9_2.x86_64");
    assert_eq!(args["KERNEL_FULL_VERSION"], "5.14.0-284.52.1.el9_2.x86_64");
    assert_eq!(args["VERSION"], "1.0");
    j.driver_args = Arc::new([("KVER".to_string(), "mine".to_string())].into());
    assert_eq!(build_args(&j)["KVER"], "mine");
}

#[test]
fn secret_mounts_outside_the_shared_directory_are_named() {
    let file = "FROM x\n\
        RUN --mount=type=secret,id=signing-key,target=/run/secrets/driver-matrix/signing-key \\\n\
            --mount=type=secret,id=signing-cert \\\n\
            --mount=type=bind,from=y,target=/z \\\n\
            --mount=type=secret,id=other,dst=/etc/other make\n";
    assert_eq!(secrets_outside_dir(file), ["other", "signing-cert"]);
    assert!(secrets_outside_dir("FROM x\nRUN make\n").is_empty());
}

#[test]
fn secret_names_are_object_names() {
    assert_eq!(secret_name("Hello_KMOD"), "hello-kmod-build-secrets");
}
