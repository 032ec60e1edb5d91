#![no_main]
//! Fuzzes `driver_matrix_fuzz::lock_fields`; see fuzz/src/lib.rs and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = driver_matrix_fuzz::lock_fields(data);
});
