//! Reading a TOML text for what the `config` crate does not say: the integers too large for
//! TOML (which it reports without a line) and the line a key is on.

use super::settings::Issue;

/// A `key = <integer>` whose integer does not fit TOML's 64-bit signed integer.
pub(super) struct OversizedInteger {
    /// 1-based.
    line: usize,
    /// Dotted.
    key: String,
    /// As written.
    literal: String,
}

impl OversizedInteger {
    pub(super) fn issue(&self, source: &str) -> Issue {
        Issue {
            origin: format!("{source}:{}", self.line),
            key: self.key.clone(),
            message: format!(
                "expected an integer of at most {} (the largest TOML allows), found {}",
                i64::MAX,
                self.literal
            ),
        }
    }
}

/// Every integer of `text` written on the line of its `key = …` (alone, or in an inline array
/// or table) that does not fit TOML's 64-bit signed integer.
pub(super) fn oversized_integers(text: &str) -> Vec<OversizedInteger> {
    let mut found = Vec::new();
    for (line, kind) in toml_lines(text) {
        let TomlLine::Assignment(key, value) = kind else {
            continue;
        };
        // `routes[0].retries`, as the other messages name it.
        let key = key.join(".").replace(".[", "[");
        for literal in integer_tokens(value) {
            if is_oversized_integer(literal) {
                found.push(OversizedInteger {
                    line,
                    key: key.clone(),
                    literal: literal.to_owned(),
                });
            }
        }
    }
    found
}

/// The words of a TOML value outside its strings and its comment (`[1, 2]` gives `1`, `2`).
fn integer_tokens(value: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut quote = None;
    let mut start = None;
    let mut end = value.len();
    for (at, c) in value.char_indices() {
        let delimiter = match quote {
            Some(open) => {
                if c == open {
                    quote = None;
                }
                true
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                true
            }
            None if c == '#' => {
                end = at;
                break;
            }
            None => c.is_whitespace() || "[]{},=".contains(c),
        };
        match (delimiter, start) {
            (true, Some(from)) => {
                tokens.push(&value[from..at]);
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    if let (Some(from), None) = (start, quote) {
        tokens.push(&value[from..end]);
    }
    tokens
}

/// Whether `literal` is a TOML integer (decimal with `_`, `0x`, `0o`, `0b`; signed) that does
/// not fit 64 signed bits.
pub(super) fn is_oversized_integer(literal: &str) -> bool {
    let digits = literal.replace('_', "");
    let unsigned = digits.trim_start_matches(['+', '-']);
    let (radix, body) = match unsigned.get(..2) {
        Some("0x") => (16, &unsigned[2..]),
        Some("0o") => (8, &unsigned[2..]),
        Some("0b") => (2, &unsigned[2..]),
        _ => (10, unsigned),
    };
    let is_integer = !body.is_empty() && body.chars().all(|c| c.is_digit(radix));
    let sign = if digits.starts_with('-') { "-" } else { "" };
    is_integer && i64::from_str_radix(&format!("{sign}{body}"), radix).is_err()
}

/// `text` with each of `oversized` written as `0`, so that the rest of it can be read.
pub(super) fn without_oversized_integers(text: &str, oversized: &[OversizedInteger]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for found in oversized {
        let Some(line) = lines.get_mut(found.line - 1) else {
            continue;
        };
        let Some(equals) = line.find('=') else {
            continue;
        };
        if let Some(at) = line[equals..].find(&found.literal) {
            let at = equals + at;
            line.replace_range(at..at + found.literal.len(), "0");
        }
    }
    lines.join("\n")
}

/// What a line of a TOML text holds, for finding keys in it.
enum TomlLine<'a> {
    /// A `[table]` or `[[array]]` header: the table's key path, with `[n]` for the n-th
    /// element of an array of tables.
    Header(Vec<String>),
    /// `key = value`: the full key path (the table's and the line's) and the value's text.
    Assignment(Vec<String>, &'a str),
}

/// The headers and assignments of a TOML text written one per line, with 1-based line
/// numbers; other lines (comments, continued arrays) are left out.
fn toml_lines(text: &str) -> impl Iterator<Item = (usize, TomlLine<'_>)> {
    let mut table: Vec<String> = Vec::new();
    let mut array_counts: std::collections::HashMap<String, usize> = Default::default();
    text.lines().enumerate().filter_map(move |(index, line)| {
        let trimmed = line.trim();
        let kind = if let Some(name) = trimmed
            .strip_prefix("[[")
            .and_then(|s| s.split("]]").next())
        {
            let name = name.trim().to_owned();
            let count = array_counts.entry(name.clone()).or_insert(0);
            table = name.split('.').map(str::to_owned).collect();
            table.push(format!("[{count}]"));
            *count += 1;
            TomlLine::Header(table.clone())
        } else if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.split(']').next()) {
            table = name
                .trim()
                .split('.')
                .map(|s| s.trim().to_owned())
                .collect();
            TomlLine::Header(table.clone())
        } else if let Some((leaf, value)) = trimmed.split_once('=') {
            let mut full = table.clone();
            full.extend(leaf.trim().split('.').map(|s| s.trim().to_owned()));
            TomlLine::Assignment(full, value)
        } else {
            return None;
        };
        Some((index + 1, kind))
    })
}

/// The 1-based line of `key` (such as `pools.cpu.max_workers` or `routes[1].pool`) in a TOML
/// text written with `[table]` and `[[array]]` headers. `None` when it cannot tell.
pub(super) fn find_line(text: &str, key: &str) -> Option<usize> {
    if key.is_empty() {
        return None;
    }
    // Split into the table part and the leaf, with array indices as their own segments.
    let segments: Vec<String> = key
        .replace('[', ".[")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut header_line = None;
    for (line, kind) in toml_lines(text) {
        match kind {
            TomlLine::Assignment(full, _) if full == segments => return Some(line),
            TomlLine::Header(table) if table == segments => header_line = Some(line),
            _ => {}
        }
    }
    header_line.or_else(|| {
        // Fall back to the deepest table that holds the key.
        (1..segments.len())
            .rev()
            .find_map(|n| find_line(text, &segments[..n].join(".").replace(".[", "[")))
    })
}
