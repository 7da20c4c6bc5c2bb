//! Secrets: base64 `data`, `stringData` folded into `data`, key and size rules.
//!
//! `stringData` is write-only in the real API: it is merged into `data` and never stored.
//! This module does the same, after ownership was recorded on `stringData.KEY` paths, so
//! a later apply without the key removes nothing (kubernetes#108008).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::kind::Kind;
use crate::status::{ApiError, Cause};

/// The real limit on the total size of a Secret's data.
const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// The longest key the real server accepts (a DNS subdomain's length).
const MAX_KEY_LENGTH: usize = 253;

pub(super) fn prepare(name: &str, old: Option<&Value>, new: &mut Value) -> Result<(), ApiError> {
    let mut total = check_data(new)?;
    let Value::Object(object) = new else {
        return Err(ApiError::bad_request("Secret must be a JSON object"));
    };
    let mut causes = Vec::new();
    if let Some(string_data) = object.remove("stringData") {
        let Value::Object(string_data) = string_data else {
            return Err(undecodable("stringData must be an object"));
        };
        let data = object
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(data) = data else {
            return Err(undecodable("data must be an object"));
        };
        for (key, value) in string_data {
            let Value::String(text) = value else {
                return Err(undecodable(&format!("stringData[{key}] must be a string")));
            };
            total += text.len();
            causes.extend(key_problem("stringData", &key));
            data.insert(key, Value::String(STANDARD.encode(text)));
        }
    }
    if let Some(Value::Object(data)) = object.get("data") {
        causes.extend(data.keys().filter_map(|key| key_problem("data", key)));
    }
    if total > MAX_SECRET_BYTES {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            field: "data".to_owned(),
            message: format!("Too long: must have at most {MAX_SECRET_BYTES} bytes"),
        });
    }
    object.entry("type").or_insert_with(|| json!("Opaque"));
    if let Some(old) = old {
        if old.get("type") != object.get("type") {
            causes.push(immutable("type"));
        }
        if old.get("immutable") == Some(&Value::Bool(true)) && old.get("data") != object.get("data")
        {
            causes.push(immutable("data"));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(Kind::Secret, name, &causes))
    }
}

/// Checks every `data` value is a base64 string, as decoding into `[]byte` does in the
/// real server (a 400, not a 422); returns the decoded size.
fn check_data(secret: &Value) -> Result<usize, ApiError> {
    let Some(data) = secret.get("data") else {
        return Ok(0);
    };
    let Value::Object(data) = data else {
        return Err(undecodable("data must be an object"));
    };
    let mut total = 0;
    for (key, value) in data {
        let Value::String(text) = value else {
            return Err(undecodable(&format!(
                "json: cannot unmarshal {} into Go struct field Secret.data of type []uint8",
                json_type(value)
            )));
        };
        match STANDARD.decode(text) {
            Ok(bytes) => total += bytes.len(),
            Err(error) => {
                return Err(undecodable(&format!(
                    "data[{key}]: illegal base64 data: {error}"
                )));
            }
        }
    }
    Ok(total)
}

fn undecodable(detail: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Secret in version \"v1\" cannot be handled as a Secret: {detail}"
    ))
}

fn key_problem(field: &str, key: &str) -> Option<Cause> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LENGTH
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._".contains(&byte));
    (!valid).then(|| Cause {
        reason: "FieldValueInvalid",
        field: format!("{field}[{key}]"),
        message: format!(
            "Invalid value: \"{key}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        ),
    })
}

fn immutable(field: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field: field.to_owned(),
        message: "Invalid value: field is immutable".to_owned(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_folds_into_data() {
        let mut secret = json!({"data": {"A": "YQ=="}, "stringData": {"B": "b"}});
        prepare("s", None, &mut secret).expect("valid");
        assert_eq!(
            secret,
            json!({"data": {"A": "YQ==", "B": "Yg=="}, "type": "Opaque"})
        );
    }

    #[test]
    fn bad_base64_is_a_bad_request() {
        let mut secret = json!({"data": {"A": "not base64!"}});
        let error = prepare("s", None, &mut secret).expect_err("invalid");
        assert_eq!((error.code, error.reason), (400, "BadRequest"));
        let mut secret = json!({"data": {"A": 5}});
        assert_eq!(
            prepare("s", None, &mut secret).expect_err("invalid").code,
            400
        );
    }

    #[test]
    fn bad_keys_and_type_changes_are_invalid() {
        let mut secret = json!({"data": {"bad key": "YQ=="}});
        let error = prepare("s", None, &mut secret).expect_err("invalid");
        assert_eq!((error.code, error.reason), (422, "Invalid"));
        assert!(
            error
                .message
                .starts_with("Secret \"s\" is invalid: data[bad key]: Invalid value")
        );
        let old = json!({"type": "Opaque"});
        let mut secret = json!({"type": "kubernetes.io/tls"});
        let error = prepare("s", Some(&old), &mut secret).expect_err("immutable");
        assert!(
            error
                .message
                .contains("type: Invalid value: field is immutable"),
            "{}",
            error.message
        );
    }
}
