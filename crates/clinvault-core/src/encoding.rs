//! Byte encodings used in files a person or another tool may read: base64 in JSON, and the
//! length-prefixed tuples that bind context into AEAD associated data and KDF info strings.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Public or already-encrypted bytes, written as standard base64 (with padding) in JSON.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct B64(pub Vec<u8>);

impl Serialize for B64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map(B64)
            .map_err(serde::de::Error::custom)
    }
}

impl B64 {
    /// The bytes as a fixed 32-byte array, or None when the file holds something else.
    pub fn as_32(&self) -> Option<[u8; 32]> {
        self.0.as_slice().try_into().ok()
    }
}

/// Concatenates parts, each prefixed by its length as a big-endian u32, so that no two
/// different lists of parts encode to the same bytes (e.g. ("ab","c") vs ("a","bc")).
pub fn tuple(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for part in parts {
        // Parts are labels, ids and keys: far below 4 GiB.
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_is_unambiguous() {
        assert_ne!(tuple(&[b"ab", b"c"]), tuple(&[b"a", b"bc"]));
        assert_eq!(tuple(&[b"ab"]), vec![0, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn b64_round_trip_and_rejects_garbage() {
        let v = B64(vec![1, 2, 3, 250]);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"AQID+g==\"");
        assert_eq!(serde_json::from_str::<B64>(&json).unwrap(), v);
        assert!(serde_json::from_str::<B64>("\"***\"").is_err());
    }
}
