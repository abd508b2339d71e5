//! The `taskhost` binary: everything lives in the library.
#![forbid(unsafe_code)]

/// mimalloc, not glibc's malloc: the dispatcher allocates every item and the workers and the
/// writer free it, and glibc then has every thread queue on the dispatcher's arena lock. With
/// mimalloc a free from another thread goes to a per-page list instead (what it saves is in
/// `crates/taskhost-bench/README.md`). Plugins keep their own allocator: every buffer that
/// crosses the ABI is freed by its owner.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    taskhost::run_cli()
}
