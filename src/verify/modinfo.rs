//! `vermagic` of a kernel module, read from its ELF `.modinfo` section (what `modinfo -F
//! vermagic` prints), with no `modinfo` binary.

use object::{Object, ObjectSection};

/// What a module says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModInfo {
    /// `vermagic=`: the kernel release the module was built for, then flags
    /// (`6.1.0-50-amd64 SMP preempt mod_unload modversions`).
    pub vermagic: String,
    /// `name=`, where the module records it.
    pub name: Option<String>,
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
    for entry in data.split(|b| *b == 0) {
        if let Some(v) = entry.strip_prefix(b"vermagic=") {
            vermagic = Some(value(v, "vermagic")?.trim().to_string());
        } else if let Some(n) = entry.strip_prefix(b"name=") {
            name = Some(value(n, "name")?);
        }
    }
    Ok(ModInfo {
        vermagic: vermagic.ok_or(ModInfoError::NoVermagic)?,
        name,
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
