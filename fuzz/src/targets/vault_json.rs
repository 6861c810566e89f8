//! Vault/OpenBao replies and references (src/keys/vault/): what a server or
//! a crafted archive sends. Byte 0 picks the parser, the rest is its input:
//! 0 a Vault stanza, 1 dataset and SPIFFE ID names, 2 a login reply,
//! 3 an error reply (status from byte 1), 4 a key-copy record as the mount
//! side checks it, 5 an owner's record.

use hpcs::crypto::Stanza;
use hpcs::keys::vault::{check_spiffe_id, replies, slot_role, Dataset, VaultRef};

/// What the key-copy seed is for.
const ARCHIVE: [u8; 32] = [0xa5; 32];
const SPIFFE_ID: &str = "spiffe://ex.org/job";

/// One execution of the target on `input`.
pub fn run(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    match mode % 6 {
        0 => {
            let s = Stanza {
                kind: hpcs::crypto::header::STANZA_VAULT,
                body: rest.to_vec(),
            };
            if let Ok(r) = VaultRef::from_stanza(&s) {
                assert!(Dataset::parse(&r.dataset).is_ok());
                let again = VaultRef::from_stanza(&r.to_stanza()).expect("round-trips");
                assert_eq!(again, r);
            }
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(d) = Dataset::parse(&text) {
                assert_eq!(Dataset::parse(&d.to_string()).ok(), Some(d));
            }
            if check_spiffe_id(&text).is_ok() {
                let _ = slot_role(&text);
            }
        }
        2 => {
            let _ = replies::login_token(rest);
            let _ = replies::reply(200, rest);
        }
        3 => {
            let Some((&code, body)) = rest.split_first() else {
                return;
            };
            let code = 300 + u16::from(code);
            assert!(
                replies::reply(code, body).is_err(),
                "a non-2xx reply is an error"
            );
        }
        4 => {
            let ds = Dataset::parse("alice/genome").unwrap();
            if let Ok(k) = replies::key_copy(rest, &ds, SPIFFE_ID, &ARCHIVE) {
                let _ = k.expose();
            }
        }
        _ => {
            let _ = replies::owner_key(rest);
        }
    }
}
