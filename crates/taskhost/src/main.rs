//! The `taskhost` binary.

fn main() {
    println!("taskhost {}", env!("CARGO_PKG_VERSION"));
}
