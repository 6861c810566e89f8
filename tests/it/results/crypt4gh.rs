//! Results written as Crypt4GH, checked with the Python reference.

use super::*;

/// Results written as Crypt4GH (`--output-c4gh-recipient`, keys from the
/// Python reference's `crypt4gh-keygen`): each result is a plain Crypt4GH
/// file its `crypt4gh decrypt` opens to exactly the job's bytes; the
/// receipts and the manifest give the same checks as age results.
#[test]
fn crypt4gh_results_decrypt_with_the_reference_and_verify() {
    if !fuse_ok() {
        return;
    }
    if !crate::crypt4gh::have_reference("crypt4gh_results_decrypt_with_the_reference_and_verify") {
        return;
    }
    let mut j = Job::new();
    j.c4gh = Some(crate::crypt4gh::keygen(j.dir.path(), "me", None));
    let (sk, _) = j.c4gh.clone().unwrap();
    let o = j.run(
        r#"printf '%s\n' "$CANARY" > "$M/out/r1.txt" && mkdir -p "$M/out/sub" &&
           cat "$BIG" > "$M/out/sub/big.bin" && : > "$M/out/empty" &&
           echo tmp > "$M/out/t" && mv "$M/out/t" "$M/out/final.txt" &&
           echo gone > "$M/out/gone" && rm "$M/out/gone""#,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!contains_anywhere(&j.results, CANARY.as_bytes()));
    assert!(!contains_anywhere(&j.results, b"final.txt"));
    let mut names: Vec<String> = std::fs::read_dir(&j.results)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let objects: Vec<&String> = names.iter().filter(|n| n.ends_with(".c4gh")).collect();
    assert_eq!(objects.len(), 4, "{names:?}");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.ends_with(".hpcs-receipt"))
            .count(),
        4,
        "{names:?}"
    );
    assert!(
        names.last().unwrap().starts_with("manifest-")
            && names.last().unwrap().ends_with(".hpcs-manifest"),
        "{names:?}"
    );
    assert_eq!(names.len(), 9, "{names:?}");
    // the reference opens every object to exactly one of the job's files
    let mut want = vec![
        format!("{CANARY}\n").into_bytes(),
        std::fs::read(&j.big).unwrap(),
        Vec::new(),
        b"tmp\n".to_vec(),
    ];
    for n in &objects {
        let file = std::fs::read(j.results.join(n)).unwrap();
        let got = crate::crypt4gh::reference_decrypt(j.dir.path(), &file, &sk, None, &[]);
        let k = want
            .iter()
            .position(|w| *w == got)
            .unwrap_or_else(|| panic!("{n}: unexpected content"));
        want.remove(k);
    }
    let (code, out) = j.verify();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("manifest authentic, 4 of 4 result(s) complete"),
        "{out}"
    );
    // runs pinned as for age results: the run named by the manifest passes,
    // any other is exit 19
    let run_id = names
        .last()
        .unwrap()
        .strip_prefix("manifest-")
        .and_then(|n| n.strip_suffix(".hpcs-manifest"))
        .unwrap()
        .to_string();
    let expect = |r: &str| {
        run(Command::new(bin("hpcs-pack"))
            .args(["results", "verify"])
            .arg(&j.results)
            .arg("--archive")
            .arg(&j.archive)
            .arg("-i")
            .arg(&j.identity)
            .arg("--sk")
            .arg(&sk)
            .args(["--expect-run", r]))
    };
    let o = expect(&run_id);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = expect("0123456789abcdef0123456789abcdef");
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::UNEXPECTED_RUN as i32),
        "{}",
        text(&o)
    );
    // without the Crypt4GH key, nothing can be checked
    let o = run(Command::new(bin("hpcs-pack"))
        .args(["results", "verify"])
        .arg(&j.results)
        .arg("--archive")
        .arg(&j.archive)
        .arg("-i")
        .arg(&j.identity));
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::BAD_IDENTITY as i32),
        "{}",
        text(&o)
    );
    let dest = j.dir.path().join("dec");
    let o = j.results_cmd("decrypt", &[&dest]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read(dest.join("sub/big.bin")).unwrap(),
        std::fs::read(&j.big).unwrap()
    );
    assert_eq!(std::fs::read(dest.join("final.txt")).unwrap(), b"tmp\n");
    assert!(!dest.join("gone").exists());
    // --as-c4gh: checked copies of the Crypt4GH files, ready for upload
    let up = j.dir.path().join("upload");
    let o = run(Command::new(bin("hpcs-pack"))
        .args(["results", "decrypt"])
        .arg(&j.results)
        .args(["--archive"])
        .arg(&j.archive)
        .arg("-i")
        .arg(&j.identity)
        .arg("--sk")
        .arg(&sk)
        .arg("-o")
        .arg(&up)
        .arg("--as-c4gh"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let copy = std::fs::read(up.join("sub/big.bin.c4gh")).unwrap();
    let got = crate::crypt4gh::reference_decrypt(j.dir.path(), &copy, &sk, None, &[]);
    assert_eq!(got, std::fs::read(&j.big).unwrap());
    assert!(!up.join("sub/big.bin").exists());

    // tampering: the big object's segments swapped (Crypt4GH accepts it),
    // an object replaced by a forgery to the same public key, a receipt
    // removed, an object removed
    let big = objects
        .iter()
        .map(|n| j.results.join(n))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let orig = std::fs::read(&big).unwrap();
    let key = hpcs::crypt4gh::SecretKey::read_file(&sk, None).unwrap();
    let h = hpcs::crypt4gh::Header::parse(&orig, &key)
        .unwrap()
        .byte_len() as usize;
    let c = hpcs::crypt4gh::CIPHER_SEGMENT_SIZE;
    let swapped = [
        &orig[..h],
        &orig[h + c..h + 2 * c],
        &orig[h..h + c],
        &orig[h + 2 * c..],
    ]
    .concat();
    std::fs::write(&big, &swapped).unwrap();
    let (code, out) = j.verify();
    assert_eq!(code, hpcs::exit::RESULTS_TAMPERED as i32, "{out}");
    let forged =
        crate::crypt4gh::reference_encrypt(j.dir.path(), b"forged", &[&j.c4gh.as_ref().unwrap().1]);
    std::fs::write(&big, &forged).unwrap();
    let (code, out) = j.verify();
    assert_eq!(code, hpcs::exit::RESULTS_TAMPERED as i32, "{out}");
    std::fs::write(&big, &orig).unwrap();
    assert_eq!(j.verify().0, 0);
    let receipt = big.with_extension("hpcs-receipt");
    let r = std::fs::read(&receipt).unwrap();
    std::fs::remove_file(&receipt).unwrap();
    let (code, out) = j.verify();
    assert_eq!(code, hpcs::exit::RESULTS_TAMPERED as i32, "{out}");
    assert!(out.contains("receipt is missing"), "{out}");
    std::fs::write(&receipt, r).unwrap();
    std::fs::remove_file(&big).unwrap();
    let (code, out) = j.verify_with(&["--log-names"]);
    assert_eq!(code, hpcs::exit::RESULTS_INCOMPLETE as i32, "{out}");
    assert!(
        out.contains("MISSING") && out.contains("(\"sub/big.bin\")"),
        "{out}"
    );
}
