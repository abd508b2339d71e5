//! The work-item reader: `JsonlSource` (line splitting, the length limit, blank lines, `\r\n`)
//! and `parse_line` (JSON, `id`, `task`, `input`, unknown fields) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskhost::source::{parse_line, EntryBody, JsonlSource, WorkSource};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the line limit, so both the kept and the oversized paths run.
    let (limit, text) = match data.split_first() {
        Some((&first, rest)) => (usize::from(first) * 4 + 1, rest),
        None => (16, data),
    };
    // A small reader buffer makes lines span several `fill_buf` calls.
    let reader = std::io::BufReader::with_capacity(7, text);
    let mut source = JsonlSource::new(reader, limit);
    let mut last_line = 0;
    let mut entries = 0usize;
    while let Some(entry) = source
        .next_entry()
        .expect("reading from memory cannot fail")
    {
        assert!(entry.line > last_line, "line numbers go up");
        last_line = entry.line;
        entries += 1;
        match entry.body {
            EntryBody::Line(bytes) => {
                assert!(bytes.len() <= limit, "a kept line is within the limit");
                assert!(!bytes.contains(&b'\n'));
                assert!(
                    !bytes.iter().all(u8::is_ascii_whitespace),
                    "blank lines are skipped"
                );
                check_item(&bytes, entry.line);
            }
            EntryBody::Oversized { bytes } => assert!(bytes > limit),
            EntryBody::Item(_) => unreachable!("a JSONL source yields lines"),
        }
    }
    assert!(entries <= text.iter().filter(|&&b| b == b'\n').count() + 1);
    // The whole input as one line, without the limit.
    check_item(text, 1);
});

fn check_item(bytes: &[u8], line: u64) {
    match parse_line(bytes, line) {
        Ok(item) => {
            // Only a JSON object is a work item (an array once slipped through as a struct).
            let text = std::str::from_utf8(bytes).expect("a work item is UTF-8");
            assert!(
                text.trim_start().starts_with('{'),
                "not an object: {text:?}"
            );
            // What the plugin is handed is JSON.
            serde_json::from_str::<serde_json::Value>(item.input.get()).expect("the input is JSON");
        }
        Err(invalid) => assert!(!invalid.message.is_empty()),
    }
}
