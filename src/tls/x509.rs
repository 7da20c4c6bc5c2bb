//! The few fields of an X.509 certificate that exsec shows an operator:
//! serial number, validity and SHA-256 fingerprint. They name "which
//! certificate is this" in logs, in `exsec tls generate` and in the
//! reload messages, and let a renewal be told from a stale copy.
//!
//! A small DER walk over `Certificate → tbsCertificate` (RFC 5280 §4.1);
//! it reads, never validates: rustls and webpki decide whether a
//! certificate is acceptable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// What exsec shows about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The serial number, upper-case hex as `openssl x509 -serial` prints it.
    pub serial: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// SHA-256 of the DER encoding, lower-case hex.
    pub sha256: String,
}

impl CertificateInfo {
    /// Reads a DER certificate; `None` if it is not one.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (certificate, _) = element(der, SEQUENCE)?;
        let (tbs, _) = element(certificate, SEQUENCE)?;
        let rest = match element(tbs, VERSION) {
            Some((_, rest)) => rest,
            None => tbs,
        };
        let (serial, rest) = element(rest, INTEGER)?;
        let (_signature, rest) = element(rest, SEQUENCE)?;
        let (_issuer, rest) = element(rest, SEQUENCE)?;
        let (validity, _) = element(rest, SEQUENCE)?;
        let (not_before, rest) = time(validity)?;
        let (not_after, _) = time(rest)?;
        // A positive INTEGER may carry one 0x00 byte for its sign.
        let serial = match serial {
            [0, rest @ ..] if !rest.is_empty() => rest,
            serial => serial,
        };
        Some(Self {
            serial: hex::encode_upper(serial),
            not_before,
            not_after,
            sha256: hex::encode(Sha256::digest(der)),
        })
    }

    /// Whether the certificate's validity has ended at `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        now > self.not_after
    }

    /// `not_after` as RFC 3339 (UTC, seconds).
    pub fn not_after_text(&self) -> String {
        humantime::format_rfc3339_seconds(self.not_after).to_string()
    }
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
/// `[0] EXPLICIT Version` in tbsCertificate.
const VERSION: u8 = 0xA0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The content of the element with `tag` at the start of `input`, and what
/// follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |length, &b| (length << 8) | usize::from(b));
        (length, rest)
    };
    (rest.len() >= length).then(|| rest.split_at(length))
}

/// A UTCTime or GeneralizedTime (`…Z`, whole seconds, as RFC 5280 requires).
fn time(input: &[u8]) -> Option<(SystemTime, &[u8])> {
    let (tag, digits_len) = match *input.first()? {
        UTC_TIME => (UTC_TIME, 12),
        GENERALIZED_TIME => (GENERALIZED_TIME, 14),
        _ => return None,
    };
    let (content, rest) = element(input, tag)?;
    let (digits, zone) = content.split_at_checked(digits_len)?;
    if zone != b"Z" || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        digits[range]
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
    };
    let (year, at) = if tag == UTC_TIME {
        // RFC 5280 §4.1.2.5.1: YY ≥ 50 is 19YY, else 20YY.
        let yy = number(0..2);
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
    } else {
        (number(0..4), 4)
    };
    let (month, day) = (number(at..at + 2), number(at + 2..at + 4));
    let (hour, minute, second) = (
        number(at + 4..at + 6),
        number(at + 6..at + 8),
        number(at + 8..at + 10),
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(60);
    let time = match u64::try_from(seconds) {
        Ok(after) => UNIX_EPOCH + Duration::from_secs(after),
        Err(_) => UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()),
    };
    Some((time, rest))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 30), 20_787);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn both_time_forms_are_read() {
        let utc = [&[UTC_TIME, 13][..], b"491231235959Z"].concat();
        let (time, rest) = super::time(&utc).expect("UTCTime");
        assert!(rest.is_empty());
        assert_eq!(
            humantime::format_rfc3339(time).to_string(),
            "2049-12-31T23:59:59Z"
        );
        let generalized = [&[GENERALIZED_TIME, 15][..], b"20500101000000Z"].concat();
        let (time, _) = super::time(&generalized).expect("GeneralizedTime");
        assert_eq!(
            humantime::format_rfc3339(time).to_string(),
            "2050-01-01T00:00:00Z"
        );
        let local = [&[UTC_TIME, 13][..], b"491231235959+"].concat();
        assert!(super::time(&local).is_none());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(CertificateInfo::from_der(b"").is_none());
        assert!(CertificateInfo::from_der(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]).is_none());
        assert!(CertificateInfo::from_der(&[0x30, 0x03, 0x30, 0x01, 0x02]).is_none());
    }
}
