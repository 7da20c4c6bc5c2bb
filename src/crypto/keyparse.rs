//! The content of a key file: 32 bytes as base64 or hex, one line. Parsing
//! decodes in place into a [`MasterKey`] and never quotes the content in an
//! error.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

use super::{KeyEncoding, KeyFileError, MASTER_KEY_LEN, MasterKey};

/// Parses the content of a key file: 32 bytes as base64 (standard or
/// URL-safe, padded or not) or as 64 hex digits (either case), with at
/// most one trailing `\n` or `\r\n`.
pub fn parse_key_file(contents: &[u8]) -> Result<MasterKey, KeyFileError> {
    let body = contents
        .strip_suffix(b"\r\n")
        .or_else(|| contents.strip_suffix(b"\n"))
        .unwrap_or(contents);
    if body.is_empty() {
        return Err(KeyFileError::Empty);
    }
    if body.contains(&b'\n') {
        return Err(KeyFileError::ExtraLines);
    }
    if body.iter().any(|b| b.is_ascii_whitespace()) {
        return Err(KeyFileError::Whitespace);
    }
    let chars = body.len();
    if !body.iter().all(|b| b.is_ascii_graphic()) {
        return Err(KeyFileError::BadEncoding {
            reason: "contains non-ASCII or control bytes",
            chars,
        });
    }

    // Hex digits are base64 characters too. 64 characters can only be hex
    // (as base64 they are 48 bytes), and an all-hex body whose length is not
    // 43 or 44 (base64 of 32 bytes) is read as hex, so a truncated hex key
    // is reported as hex.
    let all_hex = body.iter().all(u8::is_ascii_hexdigit);
    if chars == 64 || (all_hex && chars != 43 && chars != 44) {
        return parse_hex(body);
    }
    parse_base64(body)
}

fn parse_hex(body: &[u8]) -> Result<MasterKey, KeyFileError> {
    let chars = body.len();
    if !body.iter().all(u8::is_ascii_hexdigit) {
        return Err(KeyFileError::BadEncoding {
            reason: "not all hex digits",
            chars,
        });
    }
    if !chars.is_multiple_of(2) {
        return Err(KeyFileError::BadEncoding {
            reason: "odd number of hex digits",
            chars,
        });
    }
    if chars != 2 * MASTER_KEY_LEN {
        return Err(KeyFileError::WrongLength {
            encoding: KeyEncoding::Hex,
            len: chars / 2,
        });
    }
    let mut key = MasterKey::zeroed();
    hex::decode_to_slice(body, key.bytes_mut()).map_err(|_| KeyFileError::BadEncoding {
        reason: "not all hex digits",
        chars,
    })?;
    Ok(key)
}

fn parse_base64(body: &[u8]) -> Result<MasterKey, KeyFileError> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);

    let chars = body.len();
    let url_safe = body.iter().any(|b| matches!(b, b'-' | b'_'));
    if url_safe && body.iter().any(|b| matches!(b, b'+' | b'/')) {
        return Err(KeyFileError::BadEncoding {
            reason: "mixes standard and URL-safe base64 alphabets",
            chars,
        });
    }
    let engine = if url_safe { &URL_SAFE } else { &STANDARD };
    // Preallocated to the decoder's estimate so decoding never reallocates
    // and leaves an unzeroized copy behind.
    let mut decoded = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(chars)));
    engine.decode_vec(body, &mut decoded).map_err(|error| {
        let reason = match error {
            base64::DecodeError::InvalidByte(..) => "invalid base64 character",
            base64::DecodeError::InvalidLength(_) => "invalid base64 length",
            base64::DecodeError::InvalidLastSymbol(..) => "invalid last base64 character",
            base64::DecodeError::InvalidPadding => "invalid base64 padding",
        };
        KeyFileError::BadEncoding { reason, chars }
    })?;
    if decoded.len() != MASTER_KEY_LEN {
        return Err(KeyFileError::WrongLength {
            encoding: KeyEncoding::Base64,
            len: decoded.len(),
        });
    }
    let mut key = MasterKey::zeroed();
    key.bytes_mut().copy_from_slice(&decoded);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose;

    use super::*;
    use crate::crypto::key_testing::{KEY_BYTES, assert_no_key_material, b64, hex_key};

    fn parsed(contents: &[u8]) -> [u8; 32] {
        *parse_key_file(contents).unwrap().expose_secret()
    }

    #[test]
    fn parses_every_accepted_encoding() {
        let padded = b64(&KEY_BYTES);
        assert_eq!(padded.len(), 44);
        assert!(padded.contains('+') && padded.contains('/'));
        let unpadded = general_purpose::STANDARD_NO_PAD.encode(KEY_BYTES);
        let url_safe = general_purpose::URL_SAFE.encode(KEY_BYTES);
        let url_safe_unpadded = general_purpose::URL_SAFE_NO_PAD.encode(KEY_BYTES);
        let hex_lower = hex_key();
        let hex_upper = hex_lower.to_uppercase();
        for text in [
            padded,
            unpadded,
            url_safe,
            url_safe_unpadded,
            hex_lower,
            hex_upper,
        ] {
            for ending in ["", "\n", "\r\n"] {
                let contents = format!("{text}{ending}");
                assert_eq!(parsed(contents.as_bytes()), KEY_BYTES, "{contents:?}");
            }
        }
    }

    #[test]
    fn refuses_malformed_content_without_quoting_it() {
        let good = b64(&KEY_BYTES);
        let hex = hex_key();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("\n".into(), "empty"),
            (format!("{good}\n\n"), "more than one line"),
            (format!("{good}\n{good}\n"), "more than one line"),
            (format!("\n{good}"), "more than one line"),
            (format!(" {good}\n"), "whitespace"),
            (format!("{good} \n"), "whitespace"),
            (format!("{good}\t"), "whitespace"),
            (format!("{good}\r"), "whitespace"),
            (format!("{good}\n\r\n"), "more than one line"),
            (
                b64(&KEY_BYTES[..16]),
                "decodes to 16 bytes as base64, expected 32",
            ),
            (
                format!("{}\n", b64(&[KEY_BYTES.as_slice(), &[1]].concat())),
                "decodes to 33 bytes as base64, expected 32",
            ),
            (
                hex[..62].to_owned(),
                "decodes to 31 bytes as hex, expected 32",
            ),
            (
                format!("{hex}00"),
                "decodes to 33 bytes as hex, expected 32",
            ),
            (hex[..63].to_owned(), "odd number of hex digits"),
            (format!("{}zz", &hex[..62]), "not all hex digits"),
            (format!("{}!", &good[..43]), "invalid base64 character"),
            (
                format!("{}-", &good[..43]),
                "mixes standard and URL-safe base64 alphabets",
            ),
            (format!("{}\u{e9}", &good[..42]), "non-ASCII"),
            (good[..41].to_owned(), "invalid base64 length"),
        ];
        for (contents, expected) in cases {
            let error = parse_key_file(contents.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("accepted {contents:?}"));
            let shown = error.to_string();
            assert!(shown.contains(expected), "{contents:?}: {shown}");
            assert_no_key_material(&shown);
            assert_no_key_material(&format!("{error:?}"));
        }
    }

    #[test]
    fn bad_encoding_reports_length_found() {
        let error = parse_key_file(b"!!!!\n").err().unwrap();
        assert_eq!(
            error.to_string(),
            "key is neither 64 hex characters nor base64: invalid base64 character (4 characters)"
        );
    }
}
