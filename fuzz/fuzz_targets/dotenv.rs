//! `exsec secrets import --from-env-file`: any text parses or is refused
//! with a line number, never a panic.
#![no_main]

use exsec::cli::dotenv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = dotenv::parse(text);
});
