//! rewrap and rekey: who can open an archive, and revocation.

use super::*;

#[test]
fn rewrap_changes_recipients_not_data() {
    let d = tmp();
    let (id1, r1) = age_keygen(d.path(), "id1.txt");
    let (id2, r2) = age_keygen(d.path(), "id2.txt");
    let src = sample_tree(d.path());
    let a = d.path().join("a.hpcs");
    let out = pack_cmd(&["pack", s(&src), "-o", s(&a), "-r", &r1]);
    let said = String::from_utf8_lossy(&ok(&out).stderr).into_owned();
    let pin = inspected_pin(&a);
    assert!(pin.starts_with("hpcspin1-") && pin.len() == 35, "{pin}");
    assert!(
        said.contains(&format!("pin: {pin}")),
        "pack prints the pin: {said}"
    );
    let before = std::fs::read(&a).unwrap();
    fails_with(
        &pack_cmd(&["verify", s(&a), "-i", s(&id2)]),
        12,
        "none of the given identities",
    );
    ok(&pack_cmd(&[
        "rewrap",
        s(&a),
        "-i",
        s(&id1),
        "-r",
        &r2,
        "--remove-recipient",
        &r1,
        "-q",
    ]));
    let after = std::fs::read(&a).unwrap();
    let hl = |b: &[u8]| u32::from_le_bytes(b[20..24].try_into().unwrap()) as usize;
    assert_eq!(
        &before[hl(&before)..],
        &after[hl(&after)..],
        "data region unchanged"
    );
    assert_eq!(&before[24..56], &after[24..56], "same archive id");
    ok(&pack_cmd(&["verify", s(&a), "-i", s(&id2), "-q"]));
    fails_with(
        &pack_cmd(&["verify", s(&a), "-i", s(&id1)]),
        12,
        "none of the given identities",
    );
    // Removing an unknown recipient or the last one is refused.
    fails_with(
        &pack_cmd(&["rewrap", s(&a), "-i", s(&id2), "--remove-recipient", &r1]),
        7,
        "is not a recipient",
    );
    fails_with(
        &pack_cmd(&["rewrap", s(&a), "-i", s(&id2), "--remove-recipient", &r2]),
        7,
        "last recipient",
    );
    // -o writes elsewhere and leaves the original alone.
    let b = d.path().join("b.hpcs");
    ok(&pack_cmd(&[
        "rewrap",
        s(&a),
        "-i",
        s(&id2),
        "-r",
        &r1,
        "-o",
        s(&b),
        "-q",
    ]));
    ok(&pack_cmd(&["verify", s(&b), "-i", s(&id1), "-q"]));
    fails_with(&pack_cmd(&["verify", s(&a), "-i", s(&id1)]), 12, "none");
    // Rewrap keeps the pin (same id and key); the same tree packed again
    // (new id, new key) has another.
    assert_eq!(
        (inspected_pin(&a), inspected_pin(&b)),
        (pin.clone(), pin.clone())
    );
    ok(&pack_cmd(&[
        "pack",
        s(&src),
        "-o",
        s(&b),
        "-r",
        &r1,
        "-q",
        "--force",
    ]));
    assert_ne!(inspected_pin(&b), pin);
}

/// `rewrap --remove-recipient` is not revocation (issue 12, documented in
/// README, FORMAT.md and its --help): the data key, archive id and streams
/// stay, so the old header spliced back onto the rewrapped file opens again
/// for the removed recipient. `rekey --remove-recipient` is: new data key,
/// new archive id, new pin, same tree and bytes for the others, and the old
/// header (with the old key in it) spliced onto the result opens nothing, nor
/// does the old data key itself.
#[test]
fn removed_recipient_with_the_old_header_spliced_back() {
    let d = tmp();
    let (id1, r1) = age_keygen(d.path(), "id1.txt");
    let (id2, r2) = age_keygen(d.path(), "id2.txt");
    let (id3, r3) = age_keygen(d.path(), "id3.txt");
    let src = sample_tree(d.path());
    // Several batches of 4 KiB chunks, every byte position distinct.
    let big: Vec<u8> = (0..600_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(src.join("sub/big.bin"), &big).unwrap();
    let a = d.path().join("a.hpcs");
    ok(&pack_cmd(&[
        "pack",
        s(&src),
        "-o",
        s(&a),
        "-r",
        &r1,
        "-r",
        &r2,
        "--chunk-size",
        "4K",
        "-q",
    ]));
    let pin = inspected_pin(&a);
    let original = d.path().join("original.hpcs");
    std::fs::copy(&a, &original).unwrap();
    let hl = |b: &[u8]| u32::from_le_bytes(b[20..24].try_into().unwrap()) as usize;
    let before = std::fs::read(&a).unwrap();
    let old_header = before[..hl(&before)].to_vec();
    let splice = |onto: &Path, to: &Path| {
        let b = std::fs::read(onto).unwrap();
        let mut spliced = old_header.clone();
        spliced.extend_from_slice(&b[hl(&b)..]);
        std::fs::write(to, spliced).unwrap();
    };
    let flat = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };

    // rewrap: the limit, as documented: the spliced file opens for id1.
    ok(&pack_cmd(&[
        "rewrap",
        s(&a),
        "-i",
        s(&id2),
        "--remove-recipient",
        &r1,
        "-q",
    ]));
    fails_with(&pack_cmd(&["verify", s(&a), "-i", s(&id1)]), 12, "none");
    let back = d.path().join("spliced.hpcs");
    splice(&a, &back);
    ok(&pack_cmd(&["verify", s(&back), "-i", s(&id1), "-q"]));
    let help = flat(ok(&pack_cmd(&["rewrap", "--help"])));
    assert!(
        help.contains("not revocation") && help.contains("use `rekey`"),
        "rewrap --help says what it does not do: {help}"
    );

    // rekey (of the original, in place): revocation.
    ok(&pack_cmd(&[
        "rekey",
        s(&original),
        "-i",
        s(&id2),
        "--remove-recipient",
        &r1,
        "-r",
        &r3,
        "-q",
    ]));
    let c = &original;
    let new_pin = inspected_pin(c);
    assert_ne!(new_pin, pin, "a new pin");
    let cb = std::fs::read(c).unwrap();
    assert_ne!(&cb[24..56], &before[24..56], "a new archive id");
    assert_ne!(
        &cb[hl(&cb)..],
        &before[hl(&before)..],
        "streams re-encrypted"
    );
    for id in [&id2, &id3] {
        ok(&pack_cmd(&["verify", s(c), "-i", s(id), "-q"]));
    }
    fails_with(&pack_cmd(&["verify", s(c), "-i", s(&id1)]), 12, "none");
    // Same tree and bytes for the remaining recipients.
    let tree = d.path().join("tree");
    ok(&pack_cmd(&[
        "extract",
        s(c),
        "-i",
        s(&id3),
        "-o",
        s(&tree),
        "-q",
    ]));
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&src)
        .arg(&tree)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    // The removed recipient's old header (and so the old key) spliced on.
    let spliced = d.path().join("spliced-new.hpcs");
    splice(c, &spliced);
    let out = pack_cmd(&["verify", s(&spliced), "-i", s(&id1), "-q"]);
    assert!(
        (13..=15).contains(&out.status.code().unwrap()),
        "the old header opened the rekeyed archive: {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    // The removed recipient kept the old data key (unwrapped from the old
    // header with id1): it does not unlock the rekeyed archive either.
    let sealed = |p: &Path| {
        hpcs::crypto::SealedArchive::open(hpcs::crypto::FileSource::open(p).unwrap()).unwrap()
    };
    let ids = hpcs::keys::load_identities(&id1).unwrap();
    let old_key = hpcs::keys::unwrap_age(&sealed(&back).header().stanzas, &ids)
        .expect("id1 unwraps the old key from the old header");
    assert!(
        sealed(&back).unlock(&old_key).is_ok(),
        "the old key opens the old archive"
    );
    assert!(
        sealed(c).unlock(&old_key).is_err(),
        "the old data key opened the rekeyed archive"
    );
    // Removing the last recipients is refused; nothing is written.
    let e = d.path().join("e.hpcs");
    fails_with(
        &pack_cmd(&[
            "rekey",
            s(c),
            "-i",
            s(&id2),
            "--remove-recipient",
            &r2,
            "--remove-recipient",
            &r3,
            "-o",
            s(&e),
        ]),
        7,
        "last recipient",
    );
    assert!(!e.exists());
}

/// The pin `inspect` prints (text), checked against `inspect --json`.
fn inspected_pin(a: &Path) -> String {
    let text = String::from_utf8(ok(&pack_cmd(&["inspect", s(a)])).stdout.clone()).unwrap();
    let pin = text
        .lines()
        .find_map(|l| l.strip_prefix("pin:"))
        .expect("inspect prints a pin")
        .trim()
        .to_string();
    let json =
        String::from_utf8(ok(&pack_cmd(&["inspect", s(a), "--json"])).stdout.clone()).unwrap();
    assert!(json.contains(&format!("\"pin\":\"{pin}\"")), "{json}");
    pin
}
