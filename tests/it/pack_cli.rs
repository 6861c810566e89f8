//! Integration tests: contracts shared by the binaries — the README's EXIT
//! CODES table matches `hpcs::exit::TABLE`, and codes are unique.

#[test]
fn readme_exit_code_table_matches_the_code() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- exit-codes -->")
        .expect("exit-codes marker");
    let end = readme.find("<!-- /exit-codes -->").expect("end marker");
    let rows: Vec<(u8, String)> = readme[start..end]
        .lines()
        .filter_map(|l| {
            let cells: Vec<_> = l.split('|').map(str::trim).collect();
            let code = cells.get(1)?.parse::<u8>().ok()?;
            Some((code, cells.get(2)?.to_string()))
        })
        .collect();
    let table: Vec<(u8, String)> = hpcs::exit::TABLE
        .iter()
        .map(|(c, m)| (*c, m.to_string()))
        .collect();
    assert_eq!(
        rows, table,
        "README EXIT CODES table differs from src/exit.rs TABLE"
    );
    let mut codes: Vec<u8> = table.iter().map(|r| r.0).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), table.len(), "exit codes must be unique");
}
