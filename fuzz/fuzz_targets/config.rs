//! Config files: any text parses to a config or to an error naming the
//! problem, never a panic.
#![no_main]

use std::path::Path;

use exsec::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = Config::parse(text, Path::new("/etc/exsec/config.toml"));
});
