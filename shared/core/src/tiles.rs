//! C2SP tlog-tiles (c2sp.org/tlog-tiles): the tree's hashes and entries as immutable static files.
//! Hash tile `tile/<L>/<N>[.p/<W>]` holds the hashes of up to 256 subtrees of height 8·L; entry bundle
//! `tile/entries/<N>[.p/<W>]` holds up to 256 log entries, each a big-endian u16 length then the entry. Our
//! log entries are the 32-byte event hashes, so a leaf is SHA-256(0x00 ‖ entry), as in the ledger.

use crate::merkle::Position;

pub const TILE_HEIGHT: u8 = 8;
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// Path element for a tile index: zero-padded 3-digit groups, all but the last prefixed with "x".
pub fn index_path(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// `tile/<level>/<index>` or `tile/<level>/<index>.p/<width>` for a partial tile.
pub fn hash_tile_path(level: u8, index: u64, width: u64) -> String {
    let partial = if width < TILE_WIDTH {
        format!(".p/{width}")
    } else {
        String::new()
    };
    format!("tile/{level}/{}{partial}", index_path(index))
}

pub fn entries_path(index: u64, width: u64) -> String {
    let partial = if width < TILE_WIDTH {
        format!(".p/{width}")
    } else {
        String::new()
    };
    format!("tile/entries/{}{partial}", index_path(index))
}

/// A tile to (re)write when the tree grows from `old_size` to `new_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileRef {
    pub level: u8,
    pub index: u64,
    pub width: u64,
}

impl TileRef {
    /// Stored-hash positions this tile holds, in order.
    pub fn positions(&self) -> Vec<Position> {
        let level = self.level * TILE_HEIGHT;
        (0..self.width)
            .map(|i| Position {
                level,
                index: self.index * TILE_WIDTH + i,
            })
            .collect()
    }
}

/// Hash tiles that changed between two tree sizes (new full tiles and the new partial right edge).
pub fn changed_tiles(old_size: u64, new_size: u64) -> Vec<TileRef> {
    let mut out = Vec::new();
    let mut level = 0u8;
    loop {
        let shift = u32::from(level) * u32::from(TILE_HEIGHT);
        if shift >= 64 {
            break;
        }
        // Number of complete subtrees of height 8·level at this tile level.
        let (old_n, new_n) = (old_size >> shift, new_size >> shift);
        if new_n == 0 {
            break;
        }
        if new_n > old_n {
            let first_tile = old_n / TILE_WIDTH;
            let last_tile = (new_n - 1) / TILE_WIDTH;
            for index in first_tile..=last_tile {
                let width = (new_n - index * TILE_WIDTH).min(TILE_WIDTH);
                out.push(TileRef {
                    level,
                    index,
                    width,
                });
            }
        }
        level += 1;
    }
    out
}

/// Entry bundles that changed between two tree sizes.
pub fn changed_entry_bundles(old_size: u64, new_size: u64) -> Vec<TileRef> {
    changed_tiles(old_size, new_size)
        .into_iter()
        .filter(|t| t.level == 0)
        .collect()
}

/// Serialise an entry bundle.
pub fn entry_bundle(entries: &[[u8; 32]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 34);
    for entry in entries {
        out.extend_from_slice(&(entry.len() as u16).to_be_bytes());
        out.extend_from_slice(entry);
    }
    out
}

/// Parse an entry bundle.
pub fn parse_entry_bundle(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return None;
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let entry = rest.get(2..2 + len)?;
        out.push(entry.to_vec());
        rest = &rest[2 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_spec() {
        assert_eq!(index_path(0), "000");
        assert_eq!(index_path(67), "067");
        assert_eq!(index_path(1234), "x001/234");
        assert_eq!(index_path(1_234_067), "x001/x234/067");
        assert_eq!(hash_tile_path(0, 1234, 256), "tile/0/x001/234");
        assert_eq!(hash_tile_path(1, 0, 7), "tile/1/000.p/7");
        assert_eq!(entries_path(0, 3), "tile/entries/000.p/3");
    }

    #[test]
    fn changed_tiles_cover_growth() {
        assert_eq!(
            changed_tiles(0, 3),
            vec![TileRef {
                level: 0,
                index: 0,
                width: 3
            }]
        );
        assert_eq!(
            changed_tiles(250, 300),
            vec![
                TileRef {
                    level: 0,
                    index: 0,
                    width: 256
                },
                TileRef {
                    level: 0,
                    index: 1,
                    width: 44
                },
                TileRef {
                    level: 1,
                    index: 0,
                    width: 1
                },
            ]
        );
        assert!(changed_tiles(300, 300).is_empty());
        let bundle = entry_bundle(&[[1u8; 32], [2u8; 32]]);
        assert_eq!(
            parse_entry_bundle(&bundle),
            Some(vec![vec![1u8; 32], vec![2u8; 32]])
        );
    }
}
