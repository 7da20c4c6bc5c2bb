//! The `exsec` binary: everything lives in the library; see `exsec --help`.

fn main() -> std::process::ExitCode {
    exsec::cli::main()
}
