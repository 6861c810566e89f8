//! libFuzzer entry of `hpcs_fuzz::targets::c4gh_results` (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| hpcs_fuzz::targets::c4gh_results::run(input));
