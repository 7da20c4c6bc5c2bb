//! Query strings: percent-decoding and lookup.
//!
//! Clients encode selectors (`labelSelector=app.kubernetes.io%2Fname%3Dweb`), field
//! managers and dry-run flags in the query string; every reader goes through here so
//! decoding is done once and the same way.

/// The decoded `(name, value)` pairs of a raw query string, in order.
pub fn parse(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (decode(name), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// The decoded value of the first parameter called `name`, if any.
pub fn param(raw: &str, name: &str) -> Option<String> {
    parse(raw)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// Percent-decoding with `+` as space; a malformed escape is kept literally, as Go's
/// lenient parsers in the real server would reject it but a test tool should not hide it.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                match (hex(bytes[index + 1]), hex(bytes[index + 2])) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        index += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_selectors_and_flags() {
        let query =
            "&fieldManager=exsec&force=true&labelSelector=app.kubernetes.io%2Fname%3Dweb+x&dryRun";
        assert_eq!(param(query, "fieldManager").as_deref(), Some("exsec"));
        assert_eq!(param(query, "force").as_deref(), Some("true"));
        assert_eq!(
            param(query, "labelSelector").as_deref(),
            Some("app.kubernetes.io/name=web x")
        );
        assert_eq!(param(query, "dryRun").as_deref(), Some(""));
        assert_eq!(param(query, "missing"), None);
    }

    #[test]
    fn malformed_escapes_stay_literal() {
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%41"), "A");
    }
}
