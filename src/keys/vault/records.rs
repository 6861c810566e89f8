//! The KV v1 records (docs/vault.md "Design"): the owner's [`MetaRecord`] at
//! `<kv>/ds/<owner>/<name>` and one [`SlotRecord`] per allowed identity at
//! `<kv>/ds/<owner>/<name>/<slot>`; after revocation both become tombstones
//! without a key. Keys in records are hex ([`HexKey`]), wiped on drop.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::names::RECORD_VERSION;
use crate::crypto::DataKey;
use crate::util::{hex, now_secs, unhex_array};

/// The owner's record at `<kv>/ds/<owner>/<name>`: the key, the pinned archive
/// id and the allowed SPIFFE IDs; after revocation, a tombstone without key.
#[derive(Serialize, Deserialize, Default)]
pub(super) struct MetaRecord {
    pub(super) v: u32,
    pub(super) dataset: String,
    #[serde(default)]
    pub(super) archive_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) key_hex: Option<HexKey>,
    #[serde(default)]
    pub(super) allowed: Vec<String>,
    #[serde(default)]
    pub(super) created: u64,
    #[serde(default)]
    pub(super) updated: u64,
    #[serde(default)]
    pub(super) revoked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) revoked_at: Option<u64>,
}

/// One identity's copy at `<kv>/ds/<owner>/<name>/<slot>`; or a tombstone.
#[derive(Serialize, Deserialize, Default)]
pub(super) struct SlotRecord {
    pub(super) v: u32,
    pub(super) dataset: String,
    pub(super) spiffe_id: String,
    #[serde(default)]
    pub(super) archive_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) key_hex: Option<HexKey>,
    #[serde(default)]
    pub(super) created: u64,
    #[serde(default)]
    pub(super) revoked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) revoked_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<String>,
}

impl MetaRecord {
    /// The live record of `dataset`: the key `key_hex`, pinned to
    /// `archive_id`, readable by `allowed`; updated now.
    pub(super) fn live(
        dataset: String,
        archive_id: String,
        key_hex: Option<HexKey>,
        allowed: Vec<String>,
        created: u64,
    ) -> MetaRecord {
        MetaRecord {
            v: RECORD_VERSION,
            dataset,
            archive_id,
            key_hex,
            allowed,
            created,
            updated: now_secs(),
            ..MetaRecord::default()
        }
    }

    /// This record's tombstone, revoked at `at`: the pin and the allowed IDs
    /// stay (for the owner's status), the key goes.
    pub(super) fn tombstone(&self, dataset: String, at: u64) -> MetaRecord {
        MetaRecord {
            v: RECORD_VERSION,
            dataset,
            archive_id: self.archive_id.clone(),
            allowed: self.allowed.clone(),
            created: self.created,
            updated: at,
            revoked: true,
            revoked_at: Some(at),
            ..MetaRecord::default()
        }
    }
}

impl SlotRecord {
    /// `spiffe_id`'s copy of `key`, pinned to `archive_id`; created now.
    pub(super) fn copy(
        dataset: String,
        spiffe_id: String,
        archive_id: String,
        key: &DataKey,
    ) -> SlotRecord {
        SlotRecord {
            v: RECORD_VERSION,
            dataset,
            spiffe_id,
            archive_id,
            key_hex: Some(HexKey::of(key)),
            created: now_secs(),
            ..SlotRecord::default()
        }
    }

    /// A tombstone for `spiffe_id`'s copy, revoked at `at` for `reason`.
    pub(super) fn tombstone(
        dataset: String,
        spiffe_id: String,
        at: u64,
        reason: &str,
    ) -> SlotRecord {
        SlotRecord {
            v: RECORD_VERSION,
            dataset,
            spiffe_id,
            revoked: true,
            revoked_at: Some(at),
            reason: Some(reason.to_string()),
            ..SlotRecord::default()
        }
    }
}

/// A data key in hex as stored in a record; wiped on drop.
#[derive(Serialize, Deserialize, Clone)]
#[serde(transparent)]
pub(super) struct HexKey(String);

impl HexKey {
    pub(super) fn of(key: &DataKey) -> HexKey {
        HexKey(hex(key.expose()))
    }
}

impl Drop for HexKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The key a record holds, if it holds a well-formed one.
pub(super) fn key_of(hex_key: &Option<HexKey>) -> Option<DataKey> {
    let mut raw = unhex_array::<32>(&hex_key.as_ref()?.0)?;
    let k = DataKey::from_bytes(raw);
    raw.zeroize();
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let k = [0xa5u8; 32];
        assert_eq!(unhex_array::<32>(&hex(&k)), Some(k));
        assert_eq!(unhex_array::<32>("zz"), None);
        assert_eq!(unhex_array::<32>(&"g".repeat(64)), None);
    }

    #[test]
    fn records_keep_the_key_until_tombstoned() {
        let key = DataKey::from_bytes([0x5au8; 32]);
        let live = MetaRecord::live(
            "a/b".into(),
            "aa".into(),
            Some(HexKey::of(&key)),
            vec!["spiffe://t/x".into()],
            7,
        );
        assert_eq!(key_of(&live.key_hex).unwrap().expose(), key.expose());
        assert!(!live.revoked && live.created == 7 && live.updated >= 7);
        let tomb = live.tombstone("a/b".into(), 9);
        let json = serde_json::to_string(&tomb).unwrap();
        assert!(!json.contains("key_hex"), "{json}");
        assert!(tomb.revoked && tomb.revoked_at == Some(9) && tomb.archive_id == "aa");
        assert_eq!(tomb.allowed, live.allowed);
        let copy = SlotRecord::copy("a/b".into(), "spiffe://t/x".into(), "aa".into(), &key);
        assert_eq!(key_of(&copy.key_hex).unwrap().expose(), key.expose());
        let gone = SlotRecord::tombstone("a/b".into(), "spiffe://t/x".into(), 9, "why");
        assert!(gone.key_hex.is_none() && gone.revoked && gone.reason.as_deref() == Some("why"));
    }
}
