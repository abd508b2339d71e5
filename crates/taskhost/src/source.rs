//! Where work items come from.
//!
//! The dispatcher reads [`Entry`]s from a [`WorkSource`]. Today there are two: JSON lines from a
//! file or stdin ([`JsonlSource`]) and items made in memory by a plugin's `expand` or a config job
//! ([`ItemsSource`]). A NATS JetStream consumer would be a third: it yields entries and, once the
//! outcome is written, acknowledges them (see [`crate::sink::OutcomeSink`]).

use std::io::{self, BufRead};

use serde::Deserialize;
use serde_json::value::RawValue;

/// One work item, parsed.
#[derive(Debug, Clone)]
pub struct WorkItem {
    /// The item's id; the line number when the input gives none.
    pub id: String,
    /// `"plugin/task"`.
    pub task: String,
    /// The input as JSON text, handed to the plugin as it is.
    pub input: Box<RawValue>,
}

/// What a source yields for one line.
#[derive(Debug)]
pub enum EntryBody {
    /// A line to parse (without its line ending).
    Line(Vec<u8>),
    /// A line longer than the limit: not kept, only measured.
    Oversized { bytes: usize },
    /// An item already parsed (from `expand` or a job).
    Item(WorkItem),
    /// A line refused before it reached the dispatcher (a duplicate id): recorded `invalid`.
    Refused(InvalidLine),
}

/// One entry and its 1-based position in the source.
#[derive(Debug)]
pub struct Entry {
    pub line: u64,
    pub body: EntryBody,
}

/// A place work items come from.
pub trait WorkSource: Send {
    /// The next entry; `None` at the end.
    fn next_entry(&mut self) -> io::Result<Option<Entry>>;

    /// How many entries there will be, when known up front (for the progress bar).
    fn len_hint(&self) -> Option<u64> {
        None
    }
}

/// JSON lines from any reader, with a limit on the length of a line.
#[derive(Debug)]
pub struct JsonlSource<R> {
    reader: R,
    max_line_bytes: usize,
    line: u64,
    len_hint: Option<u64>,
}

impl<R: BufRead + Send> JsonlSource<R> {
    pub fn new(reader: R, max_line_bytes: usize) -> Self {
        Self {
            reader,
            max_line_bytes,
            line: 0,
            len_hint: None,
        }
    }

    /// Sets the number of lines, when the caller knows it.
    pub fn with_len_hint(mut self, lines: Option<u64>) -> Self {
        self.len_hint = lines;
        self
    }
}

impl<R: BufRead + Send> WorkSource for JsonlSource<R> {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        loop {
            let mut buffer = Vec::new();
            let mut total = 0usize;
            let mut saw_any = false;
            loop {
                let available = match self.reader.fill_buf() {
                    Ok(available) => available,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => return Err(error),
                };
                if available.is_empty() {
                    break;
                }
                saw_any = true;
                let (chunk, found_newline) = match available.iter().position(|&b| b == b'\n') {
                    Some(at) => (&available[..at], true),
                    None => (available, false),
                };
                if total + chunk.len() <= self.max_line_bytes {
                    buffer.extend_from_slice(chunk);
                }
                total += chunk.len();
                let consumed = chunk.len() + usize::from(found_newline);
                self.reader.consume(consumed);
                if found_newline {
                    break;
                }
            }
            if !saw_any {
                return Ok(None);
            }
            self.line += 1;
            if buffer.last() == Some(&b'\r') && total <= self.max_line_bytes {
                buffer.pop();
                total -= 1;
            }
            // Blank lines are not work items and get no outcome.
            if total <= self.max_line_bytes && buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let body = if total > self.max_line_bytes {
                EntryBody::Oversized { bytes: total }
            } else {
                EntryBody::Line(buffer)
            };
            return Ok(Some(Entry {
                line: self.line,
                body,
            }));
        }
    }

    fn len_hint(&self) -> Option<u64> {
        self.len_hint
    }
}

/// Items already in memory, numbered from 1.
#[derive(Debug)]
pub struct ItemsSource {
    items: std::vec::IntoIter<WorkItem>,
    line: u64,
    len: u64,
}

impl ItemsSource {
    pub fn new(items: Vec<WorkItem>) -> Self {
        let len = items.len() as u64;
        Self {
            items: items.into_iter(),
            line: 0,
            len,
        }
    }
}

impl WorkSource for ItemsSource {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        Ok(self.items.next().map(|item| {
            self.line += 1;
            Entry {
                line: self.line,
                body: EntryBody::Item(item),
            }
        }))
    }

    fn len_hint(&self) -> Option<u64> {
        Some(self.len)
    }
}

/// How a plain line or argument becomes a work item's input (`taskhost run TASK ARG…`):
/// `{"field": "text"}`, or the text as a JSON string when there is no field.
#[derive(Debug, Clone)]
pub struct PlainInput {
    pub task: String,
    pub field: Option<String>,
}

impl PlainInput {
    /// The work item for `text`, with `id` (its line or position).
    pub fn item(&self, id: String, text: &str) -> WorkItem {
        let input = match &self.field {
            Some(field) => serde_json::json!({ field: text }),
            None => serde_json::Value::String(text.to_owned()),
        };
        WorkItem {
            id,
            task: self.task.clone(),
            input: RawValue::from_string(input.to_string()).expect("a JSON value is JSON"),
        }
    }

    /// One item per argument, numbered from 1.
    pub fn items(&self, args: &[String]) -> Vec<WorkItem> {
        (1..)
            .zip(args)
            .map(|(position, arg)| self.item(position.to_string(), arg))
            .collect()
    }
}

/// Plain lines (`taskhost run TASK --lines FILE`): each non-blank line is one work item, its
/// line number the id. A line longer than the limit is measured, not kept, as in JSON lines.
#[derive(Debug)]
pub struct PlainLinesSource<R> {
    lines: JsonlSource<R>,
    input: PlainInput,
}

impl<R: BufRead + Send> PlainLinesSource<R> {
    pub fn new(lines: JsonlSource<R>, input: PlainInput) -> Self {
        Self { lines, input }
    }
}

impl<R: BufRead + Send> WorkSource for PlainLinesSource<R> {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        let Some(entry) = self.lines.next_entry()? else {
            return Ok(None);
        };
        let body = match entry.body {
            EntryBody::Line(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => EntryBody::Item(self.input.item(entry.line.to_string(), text)),
                Err(error) => EntryBody::Refused(InvalidLine {
                    id: None,
                    task: Some(self.input.task.clone()),
                    message: format!("expected UTF-8 text, found {error}"),
                }),
            },
            other => other,
        };
        Ok(Some(Entry {
            line: entry.line,
            body,
        }))
    }

    fn len_hint(&self) -> Option<u64> {
        self.lines.len_hint()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireItem<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    task: Option<String>,
    #[serde(default)]
    input: Option<Box<RawValue>>,
}

/// Why a line is not a work item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLine {
    /// The id, when the line had a readable one.
    pub id: Option<String>,
    pub task: Option<String>,
    pub message: String,
}

/// Parses one line into a work item; `line` becomes the id when the item has none.
pub fn parse_line(bytes: &[u8], line: u64) -> Result<WorkItem, InvalidLine> {
    let invalid = |message: String| InvalidLine {
        id: None,
        task: None,
        message,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|error| invalid(format!("expected UTF-8 text, found {error}")))?;
    let expected = "expected a JSON object {\"id\", \"task\", \"input\"}";
    // serde would take a JSON array as the struct's fields in order (`["a", "x/y"]`): only an
    // object is a work item.
    if !text.trim_start().starts_with('{') {
        let found = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Array(_)) => "an array".to_owned(),
            Ok(serde_json::Value::String(_)) => "a string".to_owned(),
            Ok(serde_json::Value::Number(_)) => "a number".to_owned(),
            Ok(serde_json::Value::Bool(_)) => "a boolean".to_owned(),
            Ok(_) => "null".to_owned(),
            Err(error) => format!("a parse error: {error}"),
        };
        return Err(invalid(format!("{expected}, found {found}")));
    }
    let wire: WireItem<'_> = serde_json::from_str(text)
        .map_err(|error| invalid(format!("{expected}, found a parse error: {error}")))?;
    let id = match wire.id {
        None => line.to_string(),
        // A number is kept exactly as written: read through `f64`, big integers would round
        // into each other (`12345678901234567890123` and `…124`).
        Some(raw)
            if raw
                .get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit()) =>
        {
            raw.get().to_owned()
        }
        Some(raw) => match serde_json::from_str::<serde_json::Value>(raw.get()) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(serde_json::Value::Null) => line.to_string(),
            _ => {
                return Err(invalid(format!(
                    "expected `id` to be a string or a number, found {}",
                    raw.get()
                )))
            }
        },
    };
    let Some(task) = wire.task else {
        return Err(InvalidLine {
            id: Some(id),
            task: None,
            message: "expected a `task` field (\"plugin/task\"), found none".to_owned(),
        });
    };
    let input = wire
        .input
        .unwrap_or_else(|| RawValue::from_string("null".to_owned()).expect("valid JSON"));
    Ok(WorkItem { id, task, input })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_ids_are_kept_exactly_as_written() {
        for text in [
            "0",
            "7",
            "1234567890123456789",
            "-3",
            "1.5",
            "1e3",
            "1.0",
            "12345678901234567890123",
            "12345678901234567890124",
        ] {
            let item =
                parse_line(format!(r#"{{"id": {text} ,"task":"a/b"}}"#).as_bytes(), 1).unwrap();
            assert_eq!(item.id, text);
        }
    }

    fn entries(text: &str, limit: usize) -> Vec<Entry> {
        let mut source = JsonlSource::new(io::Cursor::new(text.as_bytes().to_vec()), limit);
        std::iter::from_fn(|| source.next_entry().unwrap()).collect()
    }

    #[test]
    fn lines_are_numbered_and_blank_ones_skipped() {
        let found = entries("a\n\nb\r\nc", 100);
        let lines: Vec<(u64, Vec<u8>)> = found
            .into_iter()
            .map(|e| match e.body {
                EntryBody::Line(bytes) => (e.line, bytes),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            lines,
            [(1, b"a".to_vec()), (3, b"b".to_vec()), (4, b"c".to_vec())]
        );
    }

    #[test]
    fn an_oversized_line_is_measured_not_kept() {
        let long = "x".repeat(50);
        let found = entries(&format!("ok\n{long}\nok\n"), 10);
        assert!(matches!(found[1].body, EntryBody::Oversized { bytes: 50 }));
        assert_eq!(found[2].line, 3);
    }

    #[test]
    fn plain_lines_become_items_of_the_task() {
        let with_field = PlainInput {
            task: "checksum/sha256".to_owned(),
            field: Some("path".to_owned()),
        };
        let text = b"a.txt\n\nb \"c\".txt\r\n\xff\n".to_vec();
        let mut source =
            PlainLinesSource::new(JsonlSource::new(io::Cursor::new(text), 100), with_field);
        let found: Vec<Entry> = std::iter::from_fn(|| source.next_entry().unwrap()).collect();
        let EntryBody::Item(first) = &found[0].body else {
            panic!("{:?}", found[0])
        };
        assert_eq!(
            (first.id.as_str(), first.task.as_str()),
            ("1", "checksum/sha256")
        );
        assert_eq!(first.input.get(), r#"{"path":"a.txt"}"#);
        let EntryBody::Item(second) = &found[1].body else {
            panic!("{:?}", found[1])
        };
        assert_eq!((second.id.as_str(), found[1].line), ("3", 3));
        assert_eq!(second.input.get(), r#"{"path":"b \"c\".txt"}"#);
        assert!(
            matches!(&found[2].body, EntryBody::Refused(invalid) if invalid.message.starts_with("expected UTF-8"))
        );
        let bare = PlainInput {
            task: "testkit/echo".to_owned(),
            field: None,
        };
        let items = bare.items(&["x".to_owned(), "y z".to_owned()]);
        assert_eq!(items[1].id, "2");
        assert_eq!(items[1].input.get(), r#""y z""#);
    }

    #[test]
    fn parses_items_and_defaults_the_id() {
        let item = parse_line(br#"{"task": "a/b", "input": {"n": 1}}"#, 7).unwrap();
        assert_eq!(item.id, "7");
        assert_eq!(item.input.get(), r#"{"n": 1}"#);
        let item = parse_line(br#"{"id": 42, "task": "a/b"}"#, 1).unwrap();
        assert_eq!(item.id, "42");
        assert_eq!(item.input.get(), "null");
    }

    #[test]
    fn malformed_items_say_why() {
        assert!(parse_line(b"{", 1)
            .unwrap_err()
            .message
            .contains("parse error"));
        let missing = parse_line(br#"{"id": "x"}"#, 1).unwrap_err();
        assert_eq!(missing.id.as_deref(), Some("x"));
        assert!(missing.message.contains("`task`"));
        assert!(parse_line(br#"{"task": "a/b", "colour": 1}"#, 1)
            .unwrap_err()
            .message
            .contains("unknown field"));
        assert!(parse_line(br#"{"id": [1], "task": "a/b"}"#, 1)
            .unwrap_err()
            .message
            .contains("`id`"));
    }

    /// Found by trying bad inputs: serde reads a JSON array as a struct's fields in order, so
    /// `["a", "testkit/echo"]` used to run as `{"id": "a", "task": "testkit/echo"}`.
    #[test]
    fn only_a_json_object_is_a_work_item() {
        for (line, found) in [
            (&br#"["a", "testkit/echo"]"#[..], "found an array"),
            (br#"["a", "testkit/echo", {"n": 1}]"#, "found an array"),
            (br#""testkit/echo""#, "found a string"),
            (b"42", "found a number"),
            (b"true", "found a boolean"),
            (b"null", "found null"),
            (
                b"\xef\xbb\xbf{}",
                "found a parse error: expected value at line 1 column 1",
            ),
        ] {
            let error = parse_line(line, 1).unwrap_err();
            assert_eq!(
                error.message,
                format!("expected a JSON object {{\"id\", \"task\", \"input\"}}, {found}"),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        // Leading white space is fine.
        assert_eq!(parse_line(b" \t{\"task\": \"a/b\"}", 3).unwrap().id, "3");
    }
}
