use super::*;
use crate::verify::modinfo::{self, tests::fake_module};
use crate::verify::scan::view::Node;

const K: &str = "6.1.0-50-amd64";

fn ko(name: &str, depends: &str) -> ModuleFile {
    let bytes =
        fake_module(format!("name={name}\0depends={depends}\0vermagic={K} SMP\0").as_bytes());
    ModuleFile {
        path: format!("opt/lib/modules/{K}/{name}.ko"),
        kernel_dir: K.into(),
        name: name.into(),
        info: modinfo::read(&bytes),
        signature: None,
        target: None,
    }
}

fn findings(found: &[ModuleFile], view: &View, tree: &InTree) -> Vec<Finding> {
    let kernel: Kernel = K.parse().unwrap();
    let (checked, f) = super::super::check_modules(&[], &kernel, found);
    assert_eq!(f, []);
    let tree = Arc::new(tree.clone());
    Needs::of(&kernel, found, &checked, view).check(|| Ok(tree))
}

fn tree() -> InTree {
    InTree {
        modules: ["videodev".to_string(), "mc".to_string()].into(),
        builtin: ["ext4".to_string()].into(),
    }
}

fn host(target: &str) -> View {
    let mut v = View::default();
    v.add(
        &format!("opt/lib/modules/{K}/host"),
        Node::Symlink(target.into()),
    );
    v
}

#[test]
fn a_dependency_found_nowhere_names_the_module_and_the_dependency() {
    let found = [ko("v4l2loopback", "videodev,nowhere")];
    let got = findings(&found, &host(&format!("/lib/modules/{K}")), &tree());
    let [Finding::DependencyMissing(m)] = &got[..] else {
        panic!("{got:?}");
    };
    assert_eq!(
        (&m.module[..], &m.dependency[..], m.in_tree),
        ("v4l2loopback", "nowhere", false)
    );
    assert!(
        m.describe()
            .contains("depends on `nowhere`, which is neither in the image nor in kernel")
    );
}

#[test]
fn an_in_tree_dependency_needs_the_host_link() {
    let found = [ko("v4l2loopback", "videodev")];
    for ok in [
        format!("/lib/modules/{K}"),
        format!("../../../../usr/lib/modules/{K}/"),
    ] {
        assert_eq!(findings(&found, &host(&ok), &tree()), [], "{ok}");
    }
    for bad in [View::default(), host("/lib/modules/other"), host("/opt")] {
        let got = findings(&found, &bad, &tree());
        assert!(
            matches!(&got[..], [Finding::DependencyMissing(m)] if m.in_tree && m.dependency == "videodev"),
            "{got:?}"
        );
        assert!(got[0].describe().contains("has no link /opt/lib/modules/"));
    }
}

#[test]
fn dependencies_in_the_image_or_built_in_need_no_tree() {
    let found = [ko("acme", "acme_core,ext4"), ko("acme_core", "")];
    let got = findings(&found, &View::default(), &tree());
    assert_eq!(got, []);
    // Without `ext4` built in, the tree is read; in the image alone, it is not.
    let alone = [ko("acme", "acme_core"), ko("acme_core", "")];
    let kernel: Kernel = K.parse().unwrap();
    let (checked, _) = super::super::check_modules(&[], &kernel, &alone);
    let none = Needs::of(&kernel, &alone, &checked, &View::default())
        .check(|| panic!("the tree was read"));
    assert_eq!(none, []);
}
