//! `vermagic` and `depends` of a kernel module, read from its ELF `.modinfo` section (what
//! `modinfo -F vermagic` prints), with no `modinfo` binary.

use object::{Object, ObjectSection};

/// What a module says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModInfo {
    /// `vermagic=`: the kernel release the module was built for, then flags
    /// (`6.1.0-50-amd64 SMP preempt mod_unload modversions`).
    pub vermagic: String,
    /// `name=`, where the module records it.
    pub name: Option<String>,
    /// `depends=`: the modules it needs loaded first (`-` folded into `_`), as `modinfo -F
    /// depends` lists them.
    pub depends: Vec<String>,
}

impl ModInfo {
    /// The kernel release part of `vermagic` (its first word).
    pub fn kernel(&self) -> &str {
        self.vermagic.split_whitespace().next().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModInfoError {
    #[error("not an ELF object: {0}")]
    NotElf(String),
    #[error("it has no `.modinfo` section")]
    NoSection,
    #[error("its `.modinfo` section has no `vermagic`")]
    NoVermagic,
    #[error("its `{0}` is over {VALUE_MAX} bytes; no real module has one that long")]
    TooLong(&'static str),
    /// A `.ko.xz`, `.ko.zst` or `.ko.gz` that does not decompress (within the limits).
    #[error("{0}")]
    Compressed(String),
    /// A module path that is a link to something verify cannot judge (see `scan::view`).
    #[error("{0}")]
    Link(String),
}

/// Longest `vermagic` or `name` kept (real ones are under a hundred bytes).
pub const VALUE_MAX: usize = 1024;

/// Reads the `.modinfo` of a module's bytes.
pub fn read(bytes: &[u8]) -> Result<ModInfo, ModInfoError> {
    let file = object::File::parse(bytes).map_err(|e| ModInfoError::NotElf(e.to_string()))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or(ModInfoError::NoSection)?;
    let data = section
        .data()
        .map_err(|e| ModInfoError::NotElf(e.to_string()))?;
    let mut vermagic = None;
    let mut name = None;
    let mut depends = Vec::new();
    for entry in data.split(|b| *b == 0) {
        if let Some(v) = entry.strip_prefix(b"vermagic=") {
            vermagic = Some(value(v, "vermagic")?.trim().to_string());
        } else if let Some(n) = entry.strip_prefix(b"name=") {
            name = Some(value(n, "name")?);
        } else if let Some(d) = entry.strip_prefix(b"depends=") {
            depends = value(d, "depends")?
                .split(',')
                .map(|m| m.trim().replace('-', "_"))
                .filter(|m| !m.is_empty())
                .collect();
        }
    }
    Ok(ModInfo {
        vermagic: vermagic.ok_or(ModInfoError::NoVermagic)?,
        name,
        depends,
    })
}

/// A value of `.modinfo` as text, refused when it is far longer than any real one.
fn value(bytes: &[u8], key: &'static str) -> Result<String, ModInfoError> {
    if bytes.len() > VALUE_MAX {
        return Err(ModInfoError::TooLong(key));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use object::write::{Object as WriteObject, StandardSection};
    use object::{Architecture, BinaryFormat, Endianness, SectionKind};

    use super::*;

    /// A relocatable ELF object with a `.modinfo` section, like a `.ko`.
    pub fn fake_module(modinfo: &[u8]) -> Vec<u8> {
        let mut obj = WriteObject::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let id = obj.add_section(
            Vec::new(),
            b".modinfo".to_vec(),
            SectionKind::ReadOnlyString,
        );
        obj.append_section_data(id, modinfo, 1);
        let text = obj.section_id(StandardSection::Text);
        obj.append_section_data(text, &[0xc3], 1);
        obj.write().expect("writing an ELF object to memory")
    }

    #[test]
    fn reads_vermagic_and_name() {
        let ko = fake_module(b"license=GPL\0name=hello\0vermagic=6.1.0-50-amd64 SMP preempt mod_unload modversions \0");
        let info = read(&ko).unwrap();
        assert_eq!(
            info.vermagic,
            "6.1.0-50-amd64 SMP preempt mod_unload modversions"
        );
        assert_eq!(info.kernel(), "6.1.0-50-amd64");
        assert_eq!(info.name.as_deref(), Some("hello"));
        assert_eq!(info.depends, Vec::<String>::new());
    }

    #[test]
    fn reads_depends() {
        let ko = fake_module(b"depends=videodev,v4l2-common\0vermagic=6.1.0 SMP\0");
        assert_eq!(read(&ko).unwrap().depends, ["videodev", "v4l2_common"]);
        let none = fake_module(b"depends=\0vermagic=6.1.0 SMP\0");
        assert!(read(&none).unwrap().depends.is_empty());
    }

    #[test]
    fn rejects_what_is_not_a_module() {
        assert!(matches!(read(b"not an elf"), Err(ModInfoError::NotElf(_))));
        let no_vermagic = fake_module(b"license=GPL\0");
        assert_eq!(read(&no_vermagic), Err(ModInfoError::NoVermagic));
        let long = format!("vermagic=6.1.0 {}\0", "x".repeat(VALUE_MAX));
        assert_eq!(
            read(&fake_module(long.as_bytes())),
            Err(ModInfoError::TooLong("vermagic"))
        );
    }
}
