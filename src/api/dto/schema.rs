//! JSON Schema for the wire types: the [`Schema`] trait each DTO
//! implements next to its definition, the small builders those schemas
//! are written with, and the shared string shapes (ids, names, times)
//! whose limits come from the constants the parsers use. The OpenAPI
//! document (`api::openapi`) lists every [`Schema`] under
//! `components.schemas`; it only assembles, the shapes live here and
//! beside their types.

use serde_json::{Map, Value, json};

use crate::model::{MAX_ID_LEN, MAX_KEY_ID_LEN, MAX_KEY_LEN, MAX_PROVIDER_LEN, Word};

/// A wire type described in the OpenAPI document.
pub trait Schema {
    /// Its name under `components.schemas`.
    const NAME: &'static str;

    /// Its JSON Schema.
    fn schema() -> Value;
}

/// `{"$ref": …}` to a type's entry under `components.schemas`.
pub fn reference_to<T: Schema>() -> Value {
    reference(T::NAME)
}

/// `components.schemas`: `$ref` target of a shared shape.
pub fn reference(component: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{component}") })
}

/// The shared string shapes, by component name.
pub fn shared() -> [(&'static str, Value); 8] {
    [
        ("ResourceId", resource_id()),
        ("Provider", provider()),
        ("EnvKey", env_key()),
        ("KeyId", key_id()),
        ("TokenId", pattern("^[0-9a-f]{12}$")),
        ("DeployId", pattern("^dep_[0-9]{12}$")),
        ("Hash", pattern("^[0-9a-f]{64}$")),
        (
            "Timestamp",
            json!({ "type": "string", "format": "date-time" }),
        ),
    ]
}

/// A closed object whose members are all present.
pub fn record<const N: usize>(members: [(&str, Value); N]) -> Value {
    let required: Vec<&str> = members.iter().map(|(name, _)| *name).collect();
    closed_object(&required, members)
}

/// An object without other members than `members`, of which `required`
/// must be present.
pub fn closed_object<const N: usize>(required: &[&str], members: [(&str, Value); N]) -> Value {
    let properties: Map<String, Value> = members
        .into_iter()
        .map(|(name, schema)| (name.to_owned(), schema))
        .collect();
    json!({
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": false,
    })
}

/// `{"<member>": [<T>…]}`.
pub fn list_of<T: Schema>(member: &str) -> Value {
    record([(member, array(reference_to::<T>()))])
}

/// An array of `items`.
pub fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

/// Any string.
pub fn string() -> Value {
    json!({ "type": "string" })
}

/// A string or `null`.
pub fn nullable_string() -> Value {
    json!({ "type": ["string", "null"] })
}

/// `true` or `false`.
pub fn boolean() -> Value {
    json!({ "type": "boolean" })
}

/// An integer from 0.
pub fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

/// An integer or `null`.
pub fn nullable_integer() -> Value {
    json!({ "type": ["integer", "null"] })
}

/// A string matching `regex`.
pub fn pattern(regex: &str) -> Value {
    json!({ "type": "string", "pattern": regex })
}

/// One of `values`.
pub fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

/// One of the words of `T` (the enum is the only place they are written).
pub fn words<T: Word>() -> Value {
    one_of(&T::words())
}

/// One of `values`, given as variants of `T`: a subset of its words.
pub fn words_of<T: Word>(values: &[T]) -> Value {
    one_of(
        &values
            .iter()
            .map(|value| value.as_str())
            .collect::<Vec<_>>(),
    )
}

/// One of the words of `T`, or `null`.
pub fn nullable_words<T: Word>() -> Value {
    let mut values: Vec<Value> = T::words().into_iter().map(Value::from).collect();
    values.push(Value::Null);
    json!({ "type": ["string", "null"], "enum": values })
}

/// `schema` with a description.
pub fn described(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

/// `[Warning…]`.
pub fn warnings() -> Value {
    array(reference("Warning"))
}

/// `[EnvKey…]`.
pub fn names() -> Value {
    array(reference("EnvKey"))
}

/// A tenant or app id: a DNS-1123 label.
fn resource_id() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_LEN,
        "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    })
}

fn provider() -> Value {
    pattern(&format!(
        "^[a-z0-9][a-z0-9._-]{{0,{}}}$",
        MAX_PROVIDER_LEN - 1
    ))
}

/// An environment variable name (a Kubernetes Secret data key).
fn env_key() -> Value {
    pattern(&format!("^[A-Za-z_][A-Za-z0-9_]{{0,{}}}$", MAX_KEY_LEN - 1))
}

/// A master key id: a key file's stem, never a dotfile's.
fn key_id() -> Value {
    pattern(&format!(
        "^[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{}}}$",
        MAX_KEY_ID_LEN - 1
    ))
}
