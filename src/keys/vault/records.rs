//! The KV v1 records (docs/vault.md "Design"): the owner's [`MetaRecord`] at
//! `<kv>/ds/<owner>/<name>` and one [`SlotRecord`] per allowed identity at
//! `<kv>/ds/<owner>/<name>/<slot>`; after revocation both become tombstones
//! without a key. Keys in records are hex ([`HexKey`]), wiped on drop.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::crypto::DataKey;
use crate::util::{hex, unhex_array};

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
}
