//! What a deploy asks the cluster to run: the image, the replica count and
//! the container port. Each is parsed once, where the request enters (the
//! deploy handler), so the deploy pipeline only ever holds valid values.
//! A refusal names the field and the rule, never the value sent (a
//! misplaced secret must not come back in an error).

use std::fmt;

use super::ValidationError;

/// Longest image reference accepted.
pub const MAX_IMAGE_REF_LEN: usize = 512;
/// Most replicas a deploy may ask for.
pub const MAX_REPLICAS: i32 = 10_000;

/// A container image reference: 1 to [`MAX_IMAGE_REF_LEN`] characters, no
/// whitespace or control characters. The registry resolves the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef(String);

impl ImageRef {
    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ImageRef {
    type Error = ValidationError;

    fn try_from(raw: String) -> Result<Self, ValidationError> {
        if raw.is_empty()
            || raw.len() > MAX_IMAGE_REF_LEN
            || raw.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ValidationError::new(
                "image_ref",
                format!(
                    "must be 1 to {MAX_IMAGE_REF_LEN} characters without spaces, e.g. registry.example/app:1.2"
                ),
            ));
        }
        Ok(Self(raw))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Replicas of the Deployment: 0 to [`MAX_REPLICAS`] (0 scales it down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas(i32);

impl Replicas {
    /// The count, as the Deployment spec takes it.
    pub fn get(self) -> i32 {
        self.0
    }
}

/// From the JSON number, which is wider than the range so that any
/// integer is refused by this rule rather than as a type error.
impl TryFrom<i64> for Replicas {
    type Error = ValidationError;

    fn try_from(raw: i64) -> Result<Self, ValidationError> {
        let rule = || format!("must be between 0 and {MAX_REPLICAS}");
        number(raw, |r| (0..=MAX_REPLICAS).contains(r), "replicas", rule).map(Self)
    }
}

/// The container port: 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(u16);

impl Port {
    /// The port number.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// From the JSON number (wide, as for [`Replicas`]).
impl TryFrom<i64> for Port {
    type Error = ValidationError;

    fn try_from(raw: i64) -> Result<Self, ValidationError> {
        let rule = || "must be between 1 and 65535".to_owned();
        number(raw, |p| *p != 0, "port", rule).map(Self)
    }
}

/// `raw` as a `T` within the range `fits` accepts, or `field`'s `rule`.
fn number<T: TryFrom<i64>>(
    raw: i64,
    fits: impl Fn(&T) -> bool,
    field: &'static str,
    rule: impl FnOnce() -> String,
) -> Result<T, ValidationError> {
    T::try_from(raw)
        .ok()
        .filter(fits)
        .ok_or_else(|| ValidationError::new(field, rule()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs_are_one_line_and_bounded() {
        let image = ImageRef::try_from("registry.example/app:1.2".to_owned()).unwrap();
        assert_eq!(image.as_str(), "registry.example/app:1.2");
        for bad in [
            String::new(),
            "nginx latest".to_owned(),
            "nginx\n".to_owned(),
            "a".repeat(MAX_IMAGE_REF_LEN + 1),
        ] {
            let error = ImageRef::try_from(bad).unwrap_err();
            assert_eq!(error.field, "image_ref");
            assert_eq!(
                error.to_string(),
                "invalid image_ref: must be 1 to 512 characters without spaces, e.g. registry.example/app:1.2"
            );
        }
        assert!(ImageRef::try_from("a".repeat(MAX_IMAGE_REF_LEN)).is_ok());
    }

    #[test]
    fn replicas_and_ports_keep_to_their_ranges() {
        assert_eq!(Replicas::try_from(0).unwrap().get(), 0);
        assert_eq!(Replicas::try_from(10_000).unwrap().get(), 10_000);
        for bad in [-1, 10_001, i64::from(i32::MAX) + 1] {
            let error = Replicas::try_from(bad).unwrap_err();
            assert_eq!(
                error.to_string(),
                "invalid replicas: must be between 0 and 10000"
            );
        }
        assert_eq!(Port::try_from(1).unwrap().get(), 1);
        assert_eq!(Port::try_from(65_535).unwrap().get(), 65_535);
        for bad in [0, -80, 65_536] {
            let error = Port::try_from(bad).unwrap_err();
            assert_eq!(
                error.to_string(),
                "invalid port: must be between 1 and 65535"
            );
        }
    }
}
