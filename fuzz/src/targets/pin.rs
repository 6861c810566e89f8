//! Archive pins as typed on a command line or in a job script
//! (`hpcs-mount --pin`, `hpcs-job ARCHIVE@PIN`; FORMAT.md "Archive pin"):
//! a pin that parses prints back as its canonical spelling, and only that
//! one spelling (after trimming and lowercasing) parses to it.

use hpcs::crypto::pin::Pin;

/// One execution of the target on `input`.
pub fn run(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let Some(pin) = Pin::parse(&text) else {
        return;
    };
    let printed = pin.to_string();
    assert_eq!(
        printed,
        text.trim().to_ascii_lowercase(),
        "one spelling per pin"
    );
    let again = Pin::parse(&printed).expect("a printed pin parses");
    assert!(again.matches(&pin));
}
