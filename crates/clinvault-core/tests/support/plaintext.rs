//! Decrypts every page of a SQLCipher 4 database file and its write-ahead log with the raw
//! database key — live, free and stale pages alike — so tests can scan what an attacker holding
//! the key would find on disk, not only what SQL still returns.
//!
//! SQLCipher 4 page layout (default settings, raw key): each 4096-byte page ends in 80 reserved
//! bytes (16-byte IV, then a 64-byte HMAC-SHA512); bytes before the reserve are AES-256-CBC
//! encrypted under the key. Page 1 begins with the 16-byte salt in place of the SQLite magic, and
//! its encryption starts after it.

use aes::cipher::{BlockCipherDecrypt, KeyInit};

pub const PAGE: usize = 4096;
const RESERVE: usize = 80;
const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

fn decrypt_page(cipher: &aes::Aes256, page: &[u8], first: bool) -> Vec<u8> {
    let start = if first { 16 } else { 0 };
    let end = PAGE - RESERVE;
    let mut prev: [u8; 16] = page[end..end + 16].try_into().unwrap();
    let mut out = vec![0u8; PAGE];
    for (i, chunk) in page[start..end].chunks(16).enumerate() {
        let mut block = aes::Block::default();
        block.copy_from_slice(chunk);
        cipher.decrypt_block(&mut block);
        for (j, b) in block.iter().enumerate() {
            out[start + i * 16 + j] = b ^ prev[j];
        }
        prev = chunk.try_into().unwrap();
    }
    out
}

/// All pages of the database file, decrypted. Panics when page 1 does not decrypt to a SQLite
/// header (wrong key or layout), so a scan can never pass by decrypting to noise.
pub fn database(bytes: &[u8], key_hex: &str) -> Vec<u8> {
    let key = hex::decode(key_hex).unwrap();
    let cipher = aes::Aes256::new_from_slice(&key).unwrap();
    assert_eq!(bytes.len() % PAGE, 0, "database is whole pages");
    let mut out = Vec::with_capacity(bytes.len());
    for (n, page) in bytes.chunks(PAGE).enumerate() {
        let plain = decrypt_page(&cipher, page, n == 0);
        if n == 0 {
            // Header bytes 16..18: page size, big-endian; byte 20: reserved bytes per page.
            assert_eq!(
                &plain[16..18],
                &[0x10, 0x00],
                "page 1 decrypts to a SQLite header"
            );
            assert_eq!(plain[20] as usize, RESERVE);
        }
        out.extend_from_slice(&plain);
    }
    out
}

/// Every frame of a write-ahead log, decrypted (stale frames beyond the last commit included).
pub fn wal(bytes: &[u8], key_hex: &str) -> Vec<u8> {
    let key = hex::decode(key_hex).unwrap();
    let cipher = aes::Aes256::new_from_slice(&key).unwrap();
    let mut out = Vec::new();
    let mut at = WAL_HEADER;
    while at + FRAME_HEADER + PAGE <= bytes.len() {
        let page_no = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        let page = &bytes[at + FRAME_HEADER..at + FRAME_HEADER + PAGE];
        out.extend_from_slice(&decrypt_page(&cipher, page, page_no == 1));
        at += FRAME_HEADER + PAGE;
    }
    out
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    haystack.windows(n.len()).any(|w| w == n)
}
