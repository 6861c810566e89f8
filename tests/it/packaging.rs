//! The packaged example of /etc/hpcs/config.toml (tools/packaging/config.toml)
//! changes nothing as shipped, and names every key the config parser knows.

use std::path::Path;

use hpcs::keys::config::Layer;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/packaging/config.toml");

#[test]
fn shipped_config_example_is_empty_and_documents_every_key() {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let shipped = Layer::parse_file(&text, Path::new(EXAMPLE)).unwrap();
    assert_eq!(shipped, Layer::default(), "as shipped it must set nothing");

    // Uncomment every `# key = value` line: each must be a real key (the
    // parser refuses unknown ones), and together they must set every field.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(kv) if is_assignment(kv) => kv,
            _ => l,
        })
        .fold(String::new(), |acc, l| acc + l + "\n");
    let all = Layer::parse_file(&uncommented, Path::new(EXAMPLE)).unwrap();
    let shown = format!("{all:?}");
    assert!(
        !shown.contains("None"),
        "a config key is missing from {EXAMPLE}: {shown}"
    );
}

/// `key = value` with a bare TOML key (not a sentence of a comment).
fn is_assignment(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}
