#![no_main]
//! Fuzzes `driver_matrix_fuzz::image_fs`; see fuzz/src/lib.rs and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = driver_matrix_fuzz::image_fs(data);
});
