//! The cost of one plugin call through the ABI against a direct Rust call of the same function.
//!
//! ```text
//! cargo xtask build-plugins --release
//! cargo run --release -p taskhost-loader --example abi_call_cost [-- PLUGIN_DIR]
//! ```
//!
//! Calls `testkit/echo` on a small JSON payload: through the loader (`PluginTask::run`: FFI
//! call, host-context trait object, `catch_unwind`, task lookup in the plugin, output copied
//! into the host's `Vec`), through the SDK in-process (`Plugin::run`: task lookup, no FFI) and
//! as a plain function call (`taskhost_testkit::echo`). Then the same payload through the C
//! ABI: `csample/echo` (a C plugin: `run` called through a function pointer with the host
//! context of callbacks, the output `malloc`ed by the plugin, copied into the host's `Vec` and
//! handed back to the plugin's `free_buffer`). One run, best of five rounds.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RStr};
use taskhost_loader::{LoadOptions, LogLevel, PluginSet, RunContext};
use taskhost_plugin_api::abi::{HostContext, HostContext_TO};
use taskhost_plugin_api::TaskContext;

const CALLS: u32 = 1_000_000;
const ROUNDS: usize = 5;
const INPUT: &[u8] = br#"{"id": 42, "text": "hello, plugin"}"#;

struct Quiet;

impl RunContext for Quiet {
    fn is_cancelled(&self) -> bool {
        false
    }

    fn log(&self, _level: LogLevel, _message: &str) {}
}

impl HostContext for Quiet {
    fn is_cancelled(&self) -> bool {
        false
    }

    fn progress(&self, _done: u64, _total: ROption<u64>) {}

    fn log(&self, _level: LogLevel, _message: RStr<'_>) {}
}

/// Nanoseconds per call of each contender, best of [`ROUNDS`] rounds of [`CALLS`] calls. The
/// rounds are interleaved (each round runs every contender), so a machine that gets busier or
/// quieter during the run affects them alike.
fn ns_per_call(contenders: &mut [&mut dyn FnMut() -> Vec<u8>]) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; contenders.len()];
    for _ in 0..ROUNDS {
        for (call, best) in contenders.iter_mut().zip(&mut best) {
            let start = Instant::now();
            for _ in 0..CALLS {
                black_box(call());
            }
            *best = best.min(start.elapsed().as_nanos() as f64 / f64::from(CALLS));
        }
    }
    best
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/plugins"));
    let (set, _) = PluginSet::load(
        std::slice::from_ref(&dir),
        &LoadOptions {
            strict: true,
            ..LoadOptions::default()
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "loading {}: {e} (run `cargo xtask build-plugins --release`)",
            dir.display()
        )
    });
    let task = set
        .task("testkit/echo")
        .expect("testkit is in the plugin folder");
    let c_echo = set.task("csample/echo");

    let host = HostContext_TO::from_ptr(&Quiet, TD_Opaque);
    let context = TaskContext::new(host);
    let plugin = taskhost_testkit::plugin();
    let mut through_abi = || task.run(black_box(INPUT), &Quiet).unwrap();
    let mut through_sdk = || plugin.run("echo", black_box(INPUT), &context).unwrap();
    let mut direct = || taskhost_testkit::echo(black_box(INPUT), &context).unwrap();
    let mut through_c = || match &c_echo {
        Some(c_echo) => c_echo.run(black_box(INPUT), &Quiet).unwrap(),
        None => Vec::new(),
    };
    let mut contenders: Vec<&mut dyn FnMut() -> Vec<u8>> =
        vec![&mut through_abi, &mut through_sdk, &mut direct];
    if c_echo.is_some() {
        contenders.push(&mut through_c);
    }
    let ns = ns_per_call(&mut contenders);
    let (through_abi, through_sdk, direct) = (ns[0], ns[1], ns[2]);

    println!(
        "echo on {} bytes, {CALLS} calls, best of {ROUNDS} interleaved rounds:",
        INPUT.len()
    );
    println!("  testkit/echo through the ABI (PluginTask::run):   {through_abi:8.1} ns/call");
    println!("  testkit/echo through the SDK (Plugin::run):       {through_sdk:8.1} ns/call");
    println!("  direct call (taskhost_testkit::echo):             {direct:8.1} ns/call");
    println!(
        "  abi_stable ABI overhead over the direct call:      {:8.1} ns/call",
        through_abi - direct
    );
    match ns.get(3) {
        Some(through_c) => {
            println!("  csample/echo through the C ABI (PluginTask::run): {through_c:8.1} ns/call");
            println!(
                "  C ABI overhead over the direct call:               {:8.1} ns/call",
                through_c - direct
            );
        }
        None => println!("  csample/echo: not in {} (skipped)", dir.display()),
    }
}
