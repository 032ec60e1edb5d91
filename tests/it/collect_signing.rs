//! `build` and `collect` read an image back before it enters the lock, and that read-back
//! applies the driver's signing rule (`signed = true`, `signing-cert`) as `verify --deep` does:
//! an image whose modules are unsigned never enters the lock of a signed driver.

use crate::support::*;

/// A driver whose image holds an unsigned `hello.ko` for `K_414`; the matrix with `signed`.
fn setup(w: &World) -> impl Fn(bool) {
    scratch_module_context(&w.path("hello-kmod"), &[K_414]);
    move |signed: bool| {
        w.matrix(
            "releases = [\"4.14.1\"]",
            &format!(
                "\n[[driver]]\nname = \"hello-kmod\"\ncontext = \"hello-kmod\"\n\
                 image = \"{}/{}/hello-kmod\"\nmodules = [\"hello\"]\nsigned = {signed}\n",
                w.addr, w.ns
            ),
        )
    }
}

#[test]
fn collect_refuses_an_unsigned_image_for_a_signed_driver() {
    let w = World::new("collect-signing");
    w.publish(&[(&["4.14.1"], K_414)]);
    let signed = setup(&w);
    // Built and locked while the driver does not require signatures.
    signed(false);
    w.cmd().args(["build"]).run();
    let built = w.lock();
    assert!(built.contains("[[image]]"), "{built}");

    signed(true);
    let out = w.cmd().args(["collect"]).expect_exit(1).run();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(says(&text, "not collected"), "{text}");
    assert!(says(&text, "signing rule of driver `hello-kmod`"), "{text}");
    assert!(says(&text, "is not signed"), "{text}");
    assert!(!w.lock().contains("[[image]]"), "{}", w.lock());

    // The control: the same image, the rule lifted, is collected.
    signed(false);
    w.cmd().args(["collect"]).run();
    assert_eq!(w.lock(), built);
}

#[test]
fn build_refuses_an_unsigned_image_for_a_signed_driver() {
    let w = World::new("build-signing");
    w.publish(&[(&["4.14.1"], K_414)]);
    let signed = setup(&w);
    signed(true);
    let out = w.cmd().args(["build"]).expect_exit(1).run();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(says(&text, "signing rule of driver `hello-kmod`"), "{text}");
    assert!(!w.lock().contains("[[image]]"), "{}", w.lock());
}
