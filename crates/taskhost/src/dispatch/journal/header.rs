//! What a journal belongs to ([`JournalHeader`], its first line): the input and output of the
//! run that started it, so that `--resume` can refuse an output that is gone and warn about a
//! changed input.

/// What a journal belongs to, written as its first line when it is created and checked by
/// `--resume`: resuming into an output that was deleted would leave the finished items' records
/// nowhere, and another output or a changed input deserve a word.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalHeader {
    /// The format version (1).
    pub taskhost_journal: u32,
    /// Where the items come from: an absolute file path, `-` for stdin, or the `--expand` /
    /// `--config-jobs` that made them.
    pub input: String,
    /// The input file's size and modification time (nanoseconds since the epoch), when a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_modified_ns: Option<u128>,
    /// The outcome records' file as an absolute path, or `-` for stdout.
    pub output: String,
}

impl JournalHeader {
    pub const VERSION: u32 = 1;

    /// The identity of `input` (a file path, `-`, or a description of generated items) and
    /// `output` (a file path or `-`).
    pub fn new(input: Option<&str>, generated: Option<String>, output: &str) -> Self {
        let absolute = |path: &str| {
            std::path::absolute(path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| path.to_owned())
        };
        let mut header = Self {
            taskhost_journal: Self::VERSION,
            input: "-".to_owned(),
            input_bytes: None,
            input_modified_ns: None,
            output: if output == "-" {
                "-".to_owned()
            } else {
                absolute(output)
            },
        };
        if let Some(generated) = generated {
            header.input = generated;
        } else if let Some(path) = input.filter(|p| *p != "-") {
            header.input = std::fs::canonicalize(path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| absolute(path));
            if let Ok(metadata) = std::fs::metadata(path) {
                header.input_bytes = Some(metadata.len());
                header.input_modified_ns = metadata
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos());
            }
        }
        header
    }

    /// How the input differs from the one the journal was started on, if it does.
    pub(super) fn input_change(&self, now: &Self) -> Option<String> {
        if self.input != now.input {
            return Some(format!(
                "it was started on input {}, this run reads {}",
                self.input, now.input
            ));
        }
        if self.input_bytes != now.input_bytes || self.input_modified_ns != now.input_modified_ns {
            return Some(format!(
                "input {} changed since the journal was started ({} bytes then, {} now)",
                self.input,
                self.input_bytes.map_or("?".to_owned(), |n| n.to_string()),
                now.input_bytes.map_or("?".to_owned(), |n| n.to_string()),
            ));
        }
        None
    }
}
