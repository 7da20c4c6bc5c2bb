//! An error with its causes on one line (`outer: cause: root cause`).
//!
//! Every layer logs errors this way (the daemon's watchers, the store's
//! background work, the API's 500s, the CLI's report), so the walk over
//! [`std::error::Error::source`] lives here once. It imports nothing else
//! from exsec, so any module may use it without pointing up a layer.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, separated by `": "`.
///
/// Cheap to build; formats on demand, so `error = %chain(&error)` in a
/// `tracing` macro allocates nothing unless the event is recorded.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        for cause in causes(self.0) {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `error` and its causes, for `Display` (`%chain(&error)`) or
/// `.to_string()`.
pub fn chain<'a>(error: &'a (dyn Error + 'a)) -> Chain<'a> {
    Chain(error)
}

/// The causes of `error`, nearest first (not `error` itself).
pub fn causes<'a>(error: &'a (dyn Error + 'a)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(error.source(), |&cause: &&'a (dyn Error + 'static)| {
        cause.source()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    fn sample() -> Outer {
        Outer(Middle(std::io::Error::other("root")))
    }

    #[test]
    fn every_cause_follows_on_one_line() {
        assert_eq!(chain(&sample()).to_string(), "outer: middle: root");
    }

    #[test]
    fn an_error_without_a_source_is_just_its_message() {
        assert_eq!(chain(&std::io::Error::other("alone")).to_string(), "alone");
    }

    #[test]
    fn causes_skip_the_error_itself() {
        let error = sample();
        let causes: Vec<String> = causes(&error).map(ToString::to_string).collect();
        assert_eq!(causes, ["middle", "root"]);
    }
}
