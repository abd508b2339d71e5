//! The journal reader (`--resume`): whatever a crash leaves in the file, reading it either
//! yields ids or a clear error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskhost::dispatch::journal::read_journal;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.journal");
    if let Ok(contents) = read_journal(data, path) {
        assert!(contents.valid_len + contents.torn_bytes == data.len() as u64);
        assert!(contents.ids.len() <= contents.records);
    }
});
