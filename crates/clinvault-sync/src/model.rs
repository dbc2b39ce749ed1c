//! What the repository's metadata files hold once decrypted (JSON, see the format document).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use clinvault_core::crypto::Sealed;

pub const FORMAT: &str = "clinvault-sync-repository";
pub const FORMAT_VERSION: u32 = 1;

/// `config`: the only plaintext metadata file. It names the repository and carries its key
/// sealed (HPKE) to the vault's recovery key; `params` is sealed under the repository key so a
/// wrong key, or a swapped config, is noticed before anything is read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigFile {
    pub format: String,
    pub format_version: u32,
    pub repo_id: uuid::Uuid,
    pub vault_id: String,
    pub sealed_key: Sealed,
    #[serde(with = "hex_bytes")]
    pub params: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Params {
    pub repo_id: uuid::Uuid,
    pub block_size: u32,
    pub cdc_min: u32,
    pub cdc_avg: u32,
    pub cdc_max: u32,
}

/// One blob inside a pack.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackBlob {
    pub id: String,
    pub offset: u64,
    pub length: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackEntry {
    pub id: String,
    pub size: u64,
    pub blobs: Vec<PackBlob>,
}

/// `index/<name>`: which packs exist and which blobs each holds.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct IndexFile {
    pub packs: Vec<PackEntry>,
}

/// One file of the vault directory in a snapshot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    /// Change detection for unchanged attachments (no re-read on the next push).
    pub mtime_ns: i128,
    pub inode: u64,
    pub blobs: Vec<String>,
}

/// `snapshots/<name>`: a point-in-time copy of the vault directory.
#[derive(Serialize, Deserialize)]
pub struct SnapshotFile {
    pub format_version: u32,
    pub time: String,
    pub host: String,
    pub vault_id: String,
    /// The audit anchor at capture time (vault id, key epoch, entry count, checkpoint text).
    pub anchor: serde_json::Value,
    /// The vault's master key and epoch at capture time (`VaultKeys::to_bytes`), so a restore
    /// can verify the restored vault before it is made visible.
    pub vault_keys: SecretHex,
    pub files: Vec<FileEntry>,
    pub parent: Option<String>,
}

/// Secret bytes in JSON as hex, wiped on drop; never printed.
pub struct SecretHex(pub Zeroizing<Vec<u8>>);

impl Serialize for SecretHex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(hex::encode(&*self.0));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for SecretHex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        hex::decode(text.as_bytes())
            .map(|v| SecretHex(Zeroizing::new(v)))
            .map_err(serde::de::Error::custom)
    }
}

/// `locks/<uuid>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockFile {
    pub host: String,
    pub pid: u32,
    pub time: i64,
    pub exclusive: bool,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Summary of a snapshot for listings (no file names).
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub time: String,
    pub host: String,
    pub files: usize,
    pub bytes: u64,
    pub audit_entries: Option<u64>,
    pub key_epoch: Option<u64>,
}
