//! The dotenv files `exsec secrets import --from-env-file` reads.
//!
//! Accepted, one entry per line: `KEY=value`, optionally after `export `;
//! values unquoted (trimmed; ` #` starts a comment), in single quotes
//! (literal) or in double quotes (`\n`, `\r`, `\t`, `\"`, `\\`, `\$`
//! escapes); blank lines and `#` comments. Anything else is refused with
//! its line number. Errors name the line and at most the key, never the
//! value: a malformed line may hold a credential.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::model::EnvKey;

/// One `KEY=value` of a dotenv file.
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// The environment variable name.
    pub key: EnvKey,
    /// The value (wiped when dropped).
    pub value: Zeroizing<String>,
}

/// A malformed dotenv file: the line and what is wrong, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} of the env file: {reason}")]
pub struct DotenvError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parses a whole file; the first malformed line fails it all.
pub fn parse(text: &str) -> Result<Vec<Entry>, DotenvError> {
    let mut entries = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let fail = |reason: String| DotenvError { line, reason };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed
            .strip_prefix("export")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map_or(trimmed, str::trim_start);
        let Some((name, rest)) = body.split_once('=') else {
            return Err(fail("expected KEY=VALUE".to_owned()));
        };
        let name = name.trim_end();
        let key = EnvKey::parse(name).map_err(|_| {
            fail(
                "the name before '=' is not an environment variable name (letters, digits and '_', not starting with a digit)"
                    .to_owned(),
            )
        })?;
        let value = value(rest.trim_start()).map_err(|reason| fail(format!("{key}: {reason}")))?;
        if value.is_empty() {
            return Err(fail(format!(
                "{key} has an empty value (exsec stores values of 1 byte or more)"
            )));
        }
        if let Some(first) = seen.insert(key.to_string(), line) {
            return Err(fail(format!("{key} is already set on line {first}")));
        }
        entries.push(Entry { line, key, value });
    }
    Ok(entries)
}

/// The value after `=`, unquoted.
fn value(rest: &str) -> Result<Zeroizing<String>, &'static str> {
    let mut out = Zeroizing::new(String::new());
    let mut chars = rest.chars();
    match rest.chars().next() {
        Some('\'') => {
            chars.next();
            let mut closed = false;
            for c in chars.by_ref() {
                if c == '\'' {
                    closed = true;
                    break;
                }
                out.push(c);
            }
            if !closed {
                return Err("the single quote is not closed on this line");
            }
            after_quote(chars.as_str())?;
        }
        Some('"') => {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => out.push(match chars.next() {
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some(c @ ('"' | '\\' | '$' | '\'')) => c,
                        _ => return Err("unknown escape in double quotes"),
                    }),
                    c => out.push(c),
                }
            }
            if !closed {
                return Err("the double quote is not closed on this line");
            }
            after_quote(chars.as_str())?;
        }
        _ => {
            // A comment starts at a '#' that follows whitespace.
            let mut previous_space = true;
            for c in rest.chars() {
                if c == '#' && previous_space {
                    break;
                }
                previous_space = c.is_whitespace();
                out.push(c);
            }
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
            if out.contains(['"', '\'']) {
                return Err("quotes inside an unquoted value; quote the whole value");
            }
        }
    }
    Ok(out)
}

/// Only whitespace or a comment may follow a closing quote.
fn after_quote(rest: &str) -> Result<(), &'static str> {
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err("text after the closing quote")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.key.to_string(), e.value.as_str().to_owned()))
            .collect()
    }

    fn error(text: &str) -> DotenvError {
        match parse(text) {
            Ok(_) => panic!("parsed: {text:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn the_usual_forms_are_read() {
        let text = "\
# a comment

export OPENAI_API_KEY=sk-abc123
PLAIN = value with spaces   # trailing comment
HASH_INSIDE=abc#def
SINGLE='literal $HOME \\n # not a comment'
DOUBLE=\"line1\\nline2 \\\"q\\\" \\$HOME\" # comment
\texport   INDENTED='x'
CRLF=value\r
";
        let expected: Vec<(String, String)> = [
            ("OPENAI_API_KEY", "sk-abc123"),
            ("PLAIN", "value with spaces"),
            ("HASH_INSIDE", "abc#def"),
            ("SINGLE", "literal $HOME \\n # not a comment"),
            ("DOUBLE", "line1\nline2 \"q\" $HOME"),
            ("INDENTED", "x"),
            ("CRLF", "value"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(pairs(text), expected);
    }

    #[test]
    fn malformed_lines_are_named_without_their_value() {
        let cases = [
            ("A=1\nsk-live-secret\n", 2, "expected KEY=VALUE"),
            ("1BAD=sk-live-secret", 1, "not an environment variable name"),
            (
                "\n\nK='sk-live-secret",
                3,
                "K: the single quote is not closed",
            ),
            ("K=\"sk-live-secret", 1, "K: the double quote is not closed"),
            ("K=\"sk-live\\qsecret\"", 1, "K: unknown escape"),
            ("K='sk-live' secret", 1, "K: text after the closing quote"),
            ("K=sk-live\"secret", 1, "K: quotes inside an unquoted value"),
            ("K=", 1, "K has an empty value"),
            ("K=a\nK=sk-live-secret", 2, "K is already set on line 1"),
        ];
        for (text, line, reason) in cases {
            let error = error(text);
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.reason.contains(reason), "{text:?}: {error}");
            assert!(!error.to_string().contains("sk-live"), "{error}");
        }
    }
}
