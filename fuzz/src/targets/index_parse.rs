//! Index parse: the first 8 bytes are `data_len` (little-endian), the rest
//! the index plaintext. A tree that parses must answer every query about
//! every entry without panicking, and resolve each entry's own path back.

use hpcs::crypto::{Kind, Tree, ROOT};

/// One execution of the target on `input`.
pub fn run(input: &[u8]) {
    if input.len() < 8 {
        return;
    }
    let data_len = u64::from_le_bytes(input[..8].try_into().unwrap());
    let Ok(tree) = Tree::parse(&input[8..], data_len) else {
        return;
    };
    let _ = tree.file_count();
    assert!(tree.node(ROOT).is_some(), "a parsed tree has a root");
    for id in 0..tree.len() as u32 {
        let node = tree.node(id).expect("ids below len exist");
        if let Kind::File { offset, size, .. } = node.kind {
            assert!(offset.checked_add(size).is_some_and(|e| e <= data_len));
        }
        let name = tree.name(id).to_vec();
        let _ = tree.symlink_target(id);
        for &c in tree.children(id) {
            assert_eq!(tree.node(c).map(|n| n.parent), Some(id));
            assert_eq!(tree.lookup(id, tree.name(c)), Some(c));
        }
        let path = tree.path(id);
        if id != ROOT {
            assert!(path.ends_with(&name));
            if let Ok(p) = std::str::from_utf8(&path) {
                assert_eq!(tree.resolve(p), Some(id), "an entry's path resolves to it");
            }
        }
    }
    let _ = tree.resolve("a/../b//c/.");
}
