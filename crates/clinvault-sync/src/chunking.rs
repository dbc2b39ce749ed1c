//! How files are cut into blobs. The SQLCipher database changes in scattered 4 KiB pages, so it
//! is cut into fixed, page-aligned blocks: an updated page re-uploads one block. Content-defined
//! chunks (FastCDC) would shift their boundaries around each change and re-upload far more (see
//! the figures in docs/formats/sync-repository.md). Attachments and other files are cut with
//! FastCDC, which keeps chunks stable when data is inserted.

use std::io::Read;

use clinvault_core::{Error, Result};

pub const BLOCK_SIZE: u32 = 64 * 1024;
pub const CDC_MIN: u32 = 256 * 1024;
pub const CDC_AVG: u32 = 1024 * 1024;
pub const CDC_MAX: u32 = 4 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// Fixed blocks of this many bytes (a multiple of the 4 KiB database page).
    Fixed(u32),
    /// FastCDC (2020) with min/avg/max sizes.
    Cdc(u32, u32, u32),
}

/// The database file gets fixed page-aligned blocks; everything else FastCDC.
pub fn for_path(rel_path: &str) -> Chunking {
    if rel_path.ends_with(".db") {
        Chunking::Fixed(BLOCK_SIZE)
    } else {
        Chunking::Cdc(CDC_MIN, CDC_AVG, CDC_MAX)
    }
}

fn read_err(e: std::io::Error) -> Error {
    Error::Io {
        context: "reading a vault file for sync".into(),
        source: e,
    }
}

/// Calls `each` with every chunk of `reader`, in order.
pub fn chunk(
    reader: impl Read,
    how: Chunking,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    match how {
        Chunking::Fixed(size) => {
            let mut reader = reader;
            let mut buf = vec![0u8; size as usize];
            loop {
                let mut filled = 0;
                while filled < buf.len() {
                    let n = reader.read(&mut buf[filled..]).map_err(read_err)?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    return Ok(());
                }
                each(&buf[..filled])?;
                if filled < buf.len() {
                    return Ok(());
                }
            }
        }
        Chunking::Cdc(min, avg, max) => {
            for c in fastcdc::v2020::StreamCDC::new(reader, min, avg, max) {
                let c = c.map_err(|e| match e {
                    fastcdc::v2020::Error::IoError(io) => read_err(io),
                    other => Error::Internal(format!("chunking failed: {other}")),
                })?;
                each(&c.data)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn pieces(data: &[u8], how: Chunking) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        chunk(data, how, |c| {
            out.push(c.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn fixed_blocks_are_aligned_and_complete() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let p = pieces(&data, Chunking::Fixed(65536));
        assert_eq!(p.len(), 4);
        assert!(p[..3].iter().all(|b| b.len() == 65536));
        assert_eq!(p.concat(), data);
        assert!(pieces(&[], Chunking::Fixed(65536)).is_empty());
    }

    #[test]
    fn cdc_survives_an_insertion() {
        let mut data = vec![0u8; 6 << 20];
        let mut x: u64 = 7;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let how = Chunking::Cdc(CDC_MIN, CDC_AVG, CDC_MAX);
        let before = pieces(&data, how);
        let mut changed = data.clone();
        changed.splice(100..100, [1u8, 2, 3]);
        let after = pieces(&changed, how);
        assert_eq!(after.concat(), changed);
        let same = after.iter().filter(|c| before.contains(c)).count();
        assert!(same + 2 >= after.len(), "{same} of {}", after.len());
    }
}
