//! `signed = true` and `signing-cert` through the binary: images built with real buildah hold
//! modules signed by the driver's key (as `.ko.xz` and `.ko.zst`), unsigned, with a tampered
//! signature, or signed by another key; `verify --deep` reports the signer of the first and
//! fails on each of the others.

use std::io::Write as _;
use std::path::Path;

use driver_matrix_sandbox::signing;

use crate::support::{World, in_dir, module};

/// A driver's module files: name in the image, bytes.
type Files = Vec<(&'static str, Vec<u8>)>;

const K: &str = "5.14.0-284.52.1.el9_2.x86_64";

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A driver whose image copies `files` into `/opt/lib/modules/<kernel>/`, with the signing
/// rule when `signed`.
fn driver(
    dir: &Path,
    w: &World,
    (name, modules, files): &(&str, &str, Files),
    signed: bool,
) -> String {
    let ctx = dir.join(name);
    std::fs::create_dir_all(ctx.join("modules")).unwrap();
    for (file, bytes) in files {
        std::fs::write(ctx.join("modules").join(file), bytes).unwrap();
    }
    std::fs::write(
        ctx.join("Containerfile"),
        "ARG DTK_IMAGE\nFROM ${DTK_IMAGE} AS dtk\n\nFROM scratch\nARG KERNEL_VERSION\n\
         COPY --from=dtk /etc/driver-toolkit-release.json /etc/\n\
         COPY modules/ /opt/lib/modules/${KERNEL_VERSION}/\n",
    )
    .unwrap();
    let rule = if signed {
        "signed = true\nsigning-cert = \"keys/signing.crt\"\n"
    } else {
        ""
    };
    format!(
        "[[driver]]\nname = \"{name}\"\ncontext = \"{name}\"\nimage = \"{addr}/{ns}/{name}\"\n\
         modules = [{modules}]\n{rule}\n",
        addr = w.addr,
        ns = w.ns,
    )
}

#[test]
fn verify_deep_names_the_signer_and_fails_unsigned_tampered_and_foreign_modules() {
    let w = World::new("signing");
    w.publish(&[(&["4.14.1"], K)]);
    let dir = w.dir.path();
    let (key, cert) = signing::ensure(&dir.join("keys")).unwrap();
    let (their_key, their_cert) = signing::ensure(&dir.join("elsewhere")).unwrap();
    let sign = |m: &[u8]| signing::sign(&key, &cert, m).unwrap();
    let hello = module("hello", K);
    let mut tampered = sign(&hello);
    let at = tampered.len() - 28 - 12 - 5;
    tampered[at] ^= 0x40;
    let header = format!(
        "[openshift]\npayload-repo = \"{}/{}\"\nreleases = [\"4.14.1\"]\n\n\
         [registries.\"{}\"]\ninsecure = true\n\n",
        w.addr,
        w.repo("release"),
        w.addr
    );
    let drivers: [(&str, &str, Files); 4] = [
        (
            "good",
            "\"hello\", \"extra\"",
            vec![
                ("hello.ko.xz", xz(&sign(&hello))),
                (
                    "extra.ko.zst",
                    zstd::encode_all(&sign(&module("extra", K))[..], 19).unwrap(),
                ),
            ],
        ),
        ("unsigned", "\"hello\"", vec![("hello.ko", hello.clone())]),
        (
            "tampered",
            "\"hello\"",
            vec![("hello.ko.xz", xz(&tampered))],
        ),
        (
            "foreign",
            "\"hello\"",
            vec![(
                "hello.ko",
                signing::sign(&their_key, &their_cert, &hello).unwrap(),
            )],
        ),
    ];
    let matrix = |signed: bool| {
        let mut m = header.clone();
        for d in &drivers {
            m.push_str(&driver(dir, &w, d, signed));
        }
        std::fs::write(dir.join("matrix.toml"), m).unwrap();
    };

    // Built while the drivers do not require signatures (`build` would refuse the unsigned,
    // tampered and foreign images: tests/it/collect_signing.rs), every image enters the lock;
    // then the drivers gain the rule, which `verify --deep` applies to the lock as it is.
    matrix(false);
    in_dir(dir).args(["build", "-j", "2"]).run();
    matrix(true);
    let text = in_dir(dir)
        .args(["verify", "--deep"])
        .expect_exit(1)
        .stdout();
    let signer = format!("signed by `{}` (key id ", signing::SIGNER);
    assert!(text.contains(&format!("ok   good {K}")), "{text}");
    assert!(text.contains(&format!("hello: {signer}")), "{text}");
    assert!(text.contains(&format!("extra: {signer}")), "{text}");
    assert!(text.contains(&format!("hello: vermagic {K}")), "{text}");
    for (name, says) in [
        (
            "unsigned",
            "is not signed, and the driver has `signed = true`",
        ),
        (
            "tampered",
            "its signature does not match the module's bytes",
        ),
        (
            "foreign",
            "signed by another key than the driver's certificate",
        ),
    ] {
        let block = text
            .split(&format!("FAIL {name} {K}"))
            .nth(1)
            .unwrap_or_else(|| panic!("{name} did not fail:\n{text}"));
        // The image's own lines: the header's rest, then everything indented under it.
        let lines = block.lines().skip(1).take_while(|l| l.starts_with("     "));
        let first = lines.collect::<Vec<_>>().join("\n");
        assert!(first.contains(says), "{name}: {first}");
    }
    assert!(
        text.contains("1 of 4 images and their modules verified"),
        "{text}"
    );
}
