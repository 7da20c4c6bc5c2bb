//! The one encoding of every value stored in redb: a format-version byte,
//! then bincode 1.3.3 with its options pinned once here.
//!
//! bincode 1.3.3 is complete and unmaintained (RUSTSEC-2025-0141, see
//! `deny.toml`); keeping it behind this module means a switch to a
//! wire-compatible encoder (wincode) touches one file. Stored types must not
//! use `serde_json::Value`, `flatten`, `untagged` or `skip_serializing_if`:
//! bincode has no `deserialize_any`. Free-form data is stored as JSON bytes.

use bincode::Options;
use serde::{Serialize, de::DeserializeOwned};

/// Format of every record written by this version. A record whose first
/// byte is another value was written by a different format and is refused.
pub const FORMAT_VERSION: u8 = 1;

/// Largest encoded record. The largest stored record is a secret: 64 KiB of
/// sealed value plus ids; deploy records and audit events are far smaller.
/// The limit keeps a corrupt length prefix from asking for gigabytes.
pub const MAX_RECORD_BYTES: u64 = 256 * 1024;

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The record is empty: not even a format byte.
    #[error("stored record is empty")]
    Empty,
    /// The record was written by another format version.
    #[error("stored record has format version {found}, this exsec reads version {FORMAT_VERSION}")]
    UnknownFormat {
        /// The version byte found.
        found: u8,
    },
    /// bincode refused the bytes (truncated, trailing bytes, over the limit, bad data).
    #[error("stored record is malformed")]
    Malformed(#[source] bincode::Error),
}

/// Encodes `value` as `[FORMAT_VERSION] ++ bincode(value)`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let size = options()
        .serialized_size(value)
        .map_err(CodecError::Malformed)?;
    // The limit bounds `size`, which is well below usize::MAX on every target.
    let mut out = Vec::with_capacity(1 + usize::try_from(size).unwrap_or(0));
    out.push(FORMAT_VERSION);
    options()
        .serialize_into(&mut out, value)
        .map_err(CodecError::Malformed)?;
    Ok(out)
}

/// Decodes a record written by [`encode`], rejecting other format versions,
/// trailing bytes and oversized input.
///
/// bincode's varints also accept non-minimal forms (`0xfd` and eight zero
/// bytes for 0), so one value may have several byte forms. [`encode`]
/// writes the minimal one; nothing in exsec compares the bytes of records
/// that different writers produced (the re-sealing job compares a record's
/// bytes with the same record's bytes read earlier).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownFormat { found: version });
    }
    options().deserialize(body).map_err(CodecError::Malformed)
}

/// The pinned options: varint integers (compact keys and counters), little
/// endian, a size limit, trailing bytes rejected. Never use
/// `bincode::serialize`, whose defaults differ (fixed-int, no limit).
fn options() -> impl Options + Copy {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
        .with_limit(MAX_RECORD_BYTES)
        .reject_trailing_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        id: String,
        n: u64,
        maybe: Option<i64>,
        bytes: Vec<u8>,
    }

    proptest! {
        #[test]
        fn round_trips(id in ".{0,40}", n: u64, maybe: Option<i64>, bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let sample = Sample { id, n, maybe, bytes };
            let encoded = encode(&sample).unwrap();
            prop_assert_eq!(encoded[0], FORMAT_VERSION);
            prop_assert_eq!(decode::<Sample>(&encoded).unwrap(), sample);
        }

        #[test]
        fn truncation_is_an_error(cut in 1usize..20) {
            let sample = Sample { id: "tenant".into(), n: 1 << 40, maybe: Some(-5), bytes: vec![7; 9] };
            let encoded = encode(&sample).unwrap();
            let cut = cut.min(encoded.len() - 1);
            prop_assert!(decode::<Sample>(&encoded[..encoded.len() - cut]).is_err());
        }
    }

    #[test]
    fn fuzz_codec_records_non_minimal_varints_decode_to_the_minimal_value() {
        // Found by fuzz/fuzz_targets/codec_records.rs: `[1, 0xfd, 0 × 8]`
        // decodes to the record that encodes as `[1, 0]`.
        let minimal: u64 = decode(&[FORMAT_VERSION, 0]).unwrap();
        let padded: u64 = decode(&[FORMAT_VERSION, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(minimal, padded);
        assert_eq!(encode(&padded).unwrap(), [FORMAT_VERSION, 0]);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut encoded = encode(&42u64).unwrap();
        encoded.push(0);
        assert!(matches!(
            decode::<u64>(&encoded),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn other_format_versions_are_refused() {
        let mut encoded = encode(&42u64).unwrap();
        encoded[0] = FORMAT_VERSION + 1;
        assert!(matches!(
            decode::<u64>(&encoded),
            Err(CodecError::UnknownFormat { found }) if found == FORMAT_VERSION + 1
        ));
        assert!(matches!(decode::<u64>(&[]), Err(CodecError::Empty)));
    }

    #[test]
    fn oversized_input_is_refused_both_ways() {
        let huge = vec![0u8; usize::try_from(MAX_RECORD_BYTES).unwrap() + 1];
        assert!(encode(&huge).is_err());
        // A length prefix claiming more than the limit, with no body behind it.
        let mut forged = vec![FORMAT_VERSION, 0xfd];
        forged.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert!(decode::<Vec<u8>>(&forged).is_err());
    }

    #[test]
    fn encoding_is_pinned() {
        // Varint: 300 takes 3 bytes (0xfb marker + u16), not 8.
        assert_eq!(
            encode(&300u64).unwrap(),
            vec![FORMAT_VERSION, 0xfb, 0x2c, 0x01]
        );
        assert_eq!(encode("ab").unwrap(), vec![FORMAT_VERSION, 2, b'a', b'b']);
    }
}
