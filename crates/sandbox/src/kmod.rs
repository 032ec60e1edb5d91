//! Kernel modules for tests that must not compile one: ELF objects whose `.modinfo` says which
//! kernel they were built for, as `modinfo` and `verify --deep` read it.

/// A `.ko`-like ELF object named `name` whose `vermagic` starts with `kernel`.
pub fn fake_module(name: &str, kernel: &str) -> Vec<u8> {
    use object::write::{Object, StandardSection};
    use object::{Architecture, BinaryFormat, Endianness, SectionKind};
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let id = obj.add_section(
        Vec::new(),
        b".modinfo".to_vec(),
        SectionKind::ReadOnlyString,
    );
    let info = format!(
        "license=GPL\0name={name}\0vermagic={kernel} SMP preempt mod_unload modversions \0"
    );
    obj.append_section_data(id, info.as_bytes(), 1);
    let text = obj.section_id(StandardSection::Text);
    obj.append_section_data(text, &[0xc3], 1);
    obj.write()
        .expect("an ELF object of two small sections can be written")
}
