use super::*;
use crate::verify::modinfo::tests::fake_module;
use crate::verify::scan::{ModuleFile, module_name};

const K: &str = "opt/lib/modules/6.1.0";

fn module(path: &str, vermagic: &str) -> Node {
    let bytes = fake_module(format!("name=x\0vermagic={vermagic}\0").as_bytes());
    let file = path.rsplit('/').next().unwrap();
    Node::Module(Box::new(ModuleFile {
        path: path.into(),
        kernel_dir: "6.1.0".into(),
        name: module_name(file).unwrap_or_default(),
        info: crate::verify::modinfo::read(&bytes),
        signature: None,
        target: None,
    }))
}

fn symlink(t: &str) -> Node {
    Node::Symlink(t.into())
}

/// `(path, vermagic or why not, target)` of every module of `view`.
fn judged(view: &View) -> Vec<(String, String, Option<String>)> {
    view.modules()
        .into_iter()
        .map(|m| {
            let said = match m.info {
                Ok(i) => i.vermagic,
                Err(e) => e.to_string(),
            };
            (m.path, said, m.target)
        })
        .collect()
}

fn view_of(entries: &[(&str, Node)]) -> View {
    let mut v = View::default();
    for (p, n) in entries {
        v.add(p, n.clone());
    }
    v
}

#[test]
fn the_region_is_the_modules_directories_and_the_way_to_them() {
    for p in [
        "",
        "opt",
        "opt/lib",
        "usr/lib/modules",
        "lib/modules/k/x.ko",
        "lib",
    ] {
        assert!(in_region(p), "{p}");
    }
    for p in [
        "etc",
        "opt/evil.ko",
        "usr/lib64",
        "lib/modulesx",
        "optx/lib/modules",
    ] {
        assert!(!in_region(p), "{p}");
    }
}

#[test]
fn a_symlink_replaces_the_lower_file_and_is_judged_by_its_target() {
    let mut v = view_of(&[
        (
            &format!("{K}/hello.ko"),
            module(&format!("{K}/hello.ko"), "6.1.0 good"),
        ),
        (
            &format!("{K}/evil.ko"),
            module(&format!("{K}/evil.ko"), "6.1.0 evil"),
        ),
    ]);
    v.add(&format!("{K}/hello.ko"), symlink("evil.ko"));
    let got = judged(&v);
    assert_eq!(got[1].0, format!("{K}/hello.ko"));
    assert_eq!(got[1].1, "6.1.0 evil");
    assert_eq!(got[1].2.as_deref(), Some(&format!("{K}/evil.ko")[..]));
}

#[test]
fn links_never_climb_above_the_image_root() {
    let mut v = view_of(&[(&format!("{K}/evil.ko"), module("e", "6.1.0 evil"))]);
    v.add(
        &format!("{K}/a.ko"),
        symlink("../../../../../../../../../opt/lib/modules/6.1.0/evil.ko"),
    );
    v.add(
        &format!("{K}/b.ko"),
        symlink("/opt/lib/modules/6.1.0/evil.ko"),
    );
    v.add(
        &format!("{K}/c.ko"),
        symlink("/../../opt/lib/modules/6.1.0/evil.ko"),
    );
    let got = judged(&v);
    assert_eq!(got.len(), 4);
    for (path, said, target) in got.into_iter().filter(|g| !g.0.ends_with("evil.ko")) {
        assert_eq!(said, "6.1.0 evil", "{path}");
        assert_eq!(
            target.as_deref(),
            Some(&format!("{K}/evil.ko")[..]),
            "{path}"
        );
    }
}

#[test]
fn a_link_out_of_the_region_dangling_or_looping_is_not_judged() {
    let v = view_of(&[
        (&format!("{K}/out.ko"), symlink("/stage/evil.ko")),
        (&format!("{K}/up.ko"), symlink("../../../../etc/evil.ko")),
        (&format!("{K}/gone.ko"), symlink("nothing.ko")),
        (&format!("{K}/loop.ko"), symlink("loop.ko")),
        (&format!("{K}/file.ko"), symlink("modules.dep")),
        (&format!("{K}/modules.dep"), Node::File),
    ]);
    let got: Vec<(String, String)> = judged(&v).into_iter().map(|(p, s, _)| (p, s)).collect();
    let why = |name: &str| &got.iter().find(|(p, _)| p.ends_with(name)).unwrap().1;
    assert!(why("out.ko").contains("out of the modules directories, to `/stage/evil.ko`"));
    assert!(
        why("up.ko").contains("to `/etc/evil.ko`"),
        "{}",
        why("up.ko")
    );
    assert!(why("gone.ko").contains("which is not in the image"));
    assert!(why("loop.ko").contains("links loop"));
    assert!(why("file.ko").contains("not a module file"));
}

#[test]
fn a_directory_link_redirects_and_a_later_directory_replaces_it() {
    let mut v = view_of(&[
        (
            "usr/lib/modules/6.1.0/hello.ko",
            module("h", "6.1.0 in usr"),
        ),
        ("lib", symlink("usr/lib")),
        (
            "opt/lib/modules/6.1.0/hello.ko",
            symlink("/lib/modules/6.1.0/hello.ko"),
        ),
    ]);
    assert_eq!(judged(&v)[0].1, "6.1.0 in usr");
    // A later layer makes `lib` a directory: the link is gone with it.
    v.add("lib", Node::Dir);
    assert!(
        judged(&v)[0].1.contains("not in the image"),
        "{:?}",
        judged(&v)
    );
    // A file under a lower link makes its directories directories.
    v.add("lib", symlink("usr/lib"));
    v.add("lib/modules/6.1.0/other.ko", module("o", "6.1.0 lib"));
    assert_eq!(v.get("lib"), None);
}

#[test]
fn a_hard_link_is_the_file_it_names() {
    let mut v = view_of(&[(&format!("{K}/hello.ko"), module("h", "6.1.0 good"))]);
    v.add(&format!("{K}/evil.ko"), module("e", "6.1.0 evil"));
    v.link(&format!("{K}/hello.ko"), &format!("./{K}/evil.ko"));
    v.link(&format!("{K}/out.ko"), "stage/evil.ko");
    let got = judged(&v);
    let hello = got.iter().find(|g| g.0.ends_with("hello.ko")).unwrap();
    assert_eq!(hello.1, "6.1.0 evil");
    assert_eq!(hello.2.as_deref(), Some(&format!("{K}/evil.ko")[..]));
    let out = got.iter().find(|g| g.0.ends_with("out.ko")).unwrap();
    assert!(out.1.contains("hard link to `/stage/evil.ko`"), "{}", out.1);
}

#[test]
fn whiteouts_and_opaque_directories_hide_links_too() {
    let mut v = view_of(&[
        (&format!("{K}/a.ko"), symlink("b.ko")),
        (&format!("{K}/b.ko"), module("b", "6.1.0 b")),
        (&format!("{K}/extra/c.ko"), module("c", "6.1.0 c")),
    ]);
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
    v.hide(&set(&[&format!("{K}/b.ko")]), &set(&[]));
    assert!(judged(&v)[0].1.contains("not in the image"));
    v.hide(&set(&[]), &set(&[&format!("{K}/")]));
    assert_eq!(judged(&v), []);
    assert_eq!(v.get(K), None, "only what a layer added is left");
}
