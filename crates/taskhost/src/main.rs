//! The `taskhost` binary: everything lives in the library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    taskhost::run_cli()
}
