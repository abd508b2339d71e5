//! Expanding a job page by page: how a host takes the work items of a large expansion a few
//! hundred at a time, so that neither side holds them all (the host asks for the next page when
//! its bounded window has room).
//!
//! The root module is frozen, so pages travel in the JSON payloads of `expand`: a plugin that
//! can page says `"expand_pages": true` in its metadata (under `"taskhost"`, see
//! [`Plugin::metadata`](crate::Plugin::metadata)), and the host then sends, as the params,
//!
//! ```json
//! {"taskhost_expand_page": {"size": 256, "cursor": null}, "params": {"root": "."}}
//! ```
//!
//! and gets back `{"items": [...], "cursor": 7}`; it asks again with `"cursor": 7` until the
//! cursor is `null`. `"size": 0` gives the expansion up (the plugin drops what is left). Params
//! of any other shape are a plain, one-shot expansion (all items as one JSON array), which
//! hosts that know nothing of pages keep getting.

use std::collections::HashMap;
use std::iter::Peekable;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::sdk::{TaskError, WorkItem};

/// Work items as an expand step makes them, one at a time (see
/// [`Plugin::expand_iter`](crate::Plugin::expand_iter)).
pub type WorkItems = Box<dyn Iterator<Item = Result<WorkItem, TaskError>> + Send>;

/// A host's request for a page (the params of `expand`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageRequest {
    pub(crate) taskhost_expand_page: PageSpec,
    #[serde(default)]
    pub(crate) params: serde_json::Value,
}

/// Which page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageSpec {
    /// At most this many items; 0 gives the expansion up.
    size: usize,
    /// `None` for the first page.
    cursor: Option<u64>,
}

/// A page, as the plugin answers.
#[derive(Debug, Serialize)]
struct Page {
    items: Vec<WorkItem>,
    /// Where the next page starts; `None` when there is no more.
    cursor: Option<u64>,
}

impl PageRequest {
    /// The request in `params`, if they are one.
    pub(crate) fn parse(params: &[u8]) -> Option<PageRequest> {
        serde_json::from_slice(params).ok()
    }

    /// Whether this is the first page (the expansion starts from the params).
    pub(crate) fn is_first(&self) -> bool {
        self.taskhost_expand_page.cursor.is_none()
    }
}

/// The expansions under way, by cursor.
#[derive(Default)]
pub(crate) struct Expansions {
    open: Mutex<HashMap<u64, Peekable<WorkItems>>>,
    next_cursor: AtomicU64,
}

impl Expansions {
    /// The page `request` asks for: from `start` (a new expansion) or from its cursor.
    pub(crate) fn page(
        &self,
        request: &PageRequest,
        start: Option<WorkItems>,
    ) -> Result<Vec<u8>, TaskError> {
        let spec = &request.taskhost_expand_page;
        let mut items = match (start, spec.cursor) {
            (Some(items), _) => items.peekable(),
            (None, Some(cursor)) => {
                let open = self
                    .open
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&cursor);
                open.ok_or_else(|| {
                    TaskError::invalid_input(format!(
                        "no expansion under way with cursor {cursor} (it ended, or was given up)"
                    ))
                })?
            }
            (None, None) => return Err(TaskError::invalid_input("no expansion to page through")),
        };
        let mut page = Vec::with_capacity(spec.size.min(4096));
        while page.len() < spec.size {
            match items.next() {
                Some(item) => page.push(item?),
                None => break,
            }
        }
        let cursor = if spec.size > 0 && items.peek().is_some() {
            let cursor = self.next_cursor.fetch_add(1, Ordering::Relaxed);
            self.open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(cursor, items);
            Some(cursor)
        } else {
            None
        };
        serde_json::to_vec(&Page {
            items: page,
            cursor,
        })
        .map_err(|e| TaskError::failed(format!("serializing work items: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> WorkItems {
        Box::new((0..n).map(|i| {
            Ok(WorkItem {
                id: Some(i.to_string()),
                task: "p/t".into(),
                input: serde_json::json!(i),
            })
        }))
    }

    fn request(size: usize, cursor: Option<u64>) -> PageRequest {
        let text = serde_json::json!({"taskhost_expand_page": {"size": size, "cursor": cursor}, "params": {}});
        PageRequest::parse(text.to_string().as_bytes()).unwrap()
    }

    fn page(bytes: &[u8]) -> (Vec<String>, Option<u64>) {
        let page: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        let ids = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        (ids, page["cursor"].as_u64())
    }

    #[test]
    fn pages_follow_each_other_until_the_cursor_is_null() {
        let expansions = Expansions::default();
        let (first, cursor) = page(&expansions.page(&request(2, None), Some(items(5))).unwrap());
        assert_eq!(first, ["0", "1"]);
        let (second, cursor) = page(&expansions.page(&request(2, cursor), None).unwrap());
        assert_eq!(second, ["2", "3"]);
        let (last, end) = page(&expansions.page(&request(2, cursor), None).unwrap());
        assert_eq!((last, end), (vec!["4".to_owned()], None));
        // An exact fit ends without an empty page.
        let (all, end) = page(&expansions.page(&request(5, None), Some(items(5))).unwrap());
        assert_eq!((all.len(), end), (5, None));
        assert!(expansions.open.lock().unwrap().is_empty());
    }

    #[test]
    fn size_zero_gives_up_and_a_stale_cursor_is_refused() {
        let expansions = Expansions::default();
        let (_, cursor) = page(&expansions.page(&request(1, None), Some(items(3))).unwrap());
        let (none, end) = page(&expansions.page(&request(0, cursor), None).unwrap());
        assert_eq!((none.len(), end), (0, None));
        let error = expansions.page(&request(1, cursor), None).unwrap_err();
        assert!(
            error.message().contains("no expansion under way"),
            "{error:?}"
        );
        // Other params are not a page request.
        assert!(PageRequest::parse(br#"{"root": "."}"#).is_none());
        assert!(PageRequest::parse(
            br#"{"taskhost_expand_page": {"size": 1, "cursor": null}, "params": {}, "x": 1}"#
        )
        .is_none());
    }
}
