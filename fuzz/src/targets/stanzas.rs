//! Key stanza bodies. Byte 0 picks the kind, the rest is the body:
//! 0: an age stanza, unwrapped with the golden identity;
//! 1: a sealed recipient list opened with a golden key (raw, and sealed by
//!    the target first so the list parse is reached: it must round-trip);
//! 2: a Vault stanza's JSON reference.

use hpcs::crypto::header::{open_note, seal_note, STANZA_AGE, STANZA_RECIPIENTS};
use hpcs::crypto::{DataKey, Header, Stanza, Suite};

/// One execution of the target on `input`.
pub fn run(input: &[u8]) {
    let Some((&kind, body)) = input.split_first() else {
        return;
    };
    match kind % 3 {
        0 => {
            let s = Stanza {
                kind: STANZA_AGE,
                body: body.to_vec(),
            };
            if let Ok(key) = hpcs::keys::unwrap_age(&[s], crate::golden_identities()) {
                // Only the golden vectors' own stanzas can open.
                assert!(crate::golden_keys().contains(key.expose()));
            }
        }
        1 => {
            let key = DataKey::from_bytes(crate::golden_keys()[0]);
            let id = [7u8; 32];
            for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
                let _ = open_note(&key, &id, suite, body);
                let sealed = seal_note(&key, &id, suite, body).expect("sealing works");
                assert_eq!(open_note(&key, &id, suite, &sealed).as_deref(), Some(body));
                let h = Header::seal(
                    &key,
                    suite,
                    1 << 16,
                    id,
                    0,
                    0,
                    vec![Stanza {
                        kind: STANZA_RECIPIENTS,
                        body: sealed,
                    }],
                );
                if let Ok(h) = h {
                    let list = hpcs::keys::stanzas::recipients_note(&key, &h);
                    assert_eq!(
                        list.is_empty(),
                        String::from_utf8_lossy(body).lines().next().is_none()
                    );
                }
            }
        }
        _ => {
            let s = Stanza {
                kind: hpcs::crypto::header::STANZA_VAULT,
                body: body.to_vec(),
            };
            if let Ok(r) = hpcs::keys::vault::VaultRef::from_stanza(&s) {
                assert_eq!(r.v, hpcs::keys::vault::RECORD_VERSION);
                assert!(hpcs::keys::vault::Dataset::parse(&r.dataset).is_ok());
            }
        }
    }
}
