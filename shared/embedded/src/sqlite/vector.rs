//! Embeddings as BLOBs: little-endian `f32`s, four bytes each.

use ledgix_core::error::StoreError;

pub(super) fn to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn from_bytes(bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::corrupt(
            "an embedding is not a whole number of f32s",
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_torn_values() {
        let v = vec![0.0, -1.5, f32::MIN_POSITIVE, 3.25e7];
        assert_eq!(super::from_bytes(&super::to_bytes(&v)).expect("whole"), v);
        assert!(super::from_bytes(&[0, 0, 0]).is_err());
    }
}
