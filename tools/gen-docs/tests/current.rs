//! The committed easyconfig's crate list is Cargo.lock's (the binaries'
//! own tests check their man pages and completions).

#[test]
fn easyconfig_crates_are_current() {
    hpcs_gen_docs::assert_easyconfig_current();
}
