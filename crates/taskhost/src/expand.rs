//! Work items a plugin makes from a job (`run --expand plugin/job`, the config's `[[jobs]]`),
//! taken a page at a time.
//!
//! A plugin that says it can page (`"expand_pages": true` in its metadata, which the SDK's
//! `expand` and `expand_iter` give) is asked for 256 items at a time, when the reader thread
//! needs them: the reader blocks on the bounded hand-over queue, so the expansion advances only
//! as the in-flight window frees places, and memory stays flat however many items a job makes
//! (see `taskhost_plugin_api::pages` for the protocol). Other plugins expand in one call.

use std::collections::VecDeque;
use std::io;

use serde::Deserialize;
use serde_json::value::RawValue;
use taskhost_loader::{FailureKind, LoadedPlugin, TaskFailure, TracingContext};

use crate::plugin_facts::PluginFacts;
use crate::source::{Entry, EntryBody, WorkItem, WorkSource};

/// Items per page.
const PAGE_SIZE: usize = 256;

/// One item as the plugin writes it.
#[derive(Deserialize)]
struct PluginItem {
    #[serde(default)]
    id: Option<String>,
    task: String,
    #[serde(default = "null")]
    input: Box<RawValue>,
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is JSON")
}

/// A page as the plugin answers.
#[derive(Deserialize)]
struct Page {
    items: Vec<PluginItem>,
    cursor: Option<u64>,
}

/// The items of one job, a page at a time.
pub struct ExpandSource {
    plugin: LoadedPlugin,
    /// `plugin/job`, for ids and messages.
    name: String,
    job: String,
    params: serde_json::Value,
    /// The next page's cursor; `None` before the first page when paging, and at the end.
    cursor: Option<u64>,
    paging: bool,
    started: bool,
    items: VecDeque<WorkItem>,
    /// How many items so far (the next one's number, for its default id).
    made: u64,
}

impl std::fmt::Debug for ExpandSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpandSource")
            .field("name", &self.name)
            .field("made", &self.made)
            .finish_non_exhaustive()
    }
}

impl ExpandSource {
    /// Starts expanding `job` of `plugin` with `params`: the first page (or every item, for a
    /// plugin that cannot page) is asked for now, so bad parameters are found before the run.
    pub fn start(
        plugin: &LoadedPlugin,
        job: &str,
        params: &serde_json::Value,
    ) -> Result<ExpandSource, TaskFailure> {
        let mut source = ExpandSource {
            plugin: plugin.clone(),
            name: format!("{}/{job}", plugin.name()),
            job: job.to_owned(),
            params: params.clone(),
            cursor: None,
            paging: PluginFacts::of(plugin).expand_pages,
            started: false,
            items: VecDeque::new(),
            made: 0,
        };
        source.fetch()?;
        Ok(source)
    }

    /// Asks the plugin for the next page (or everything).
    fn fetch(&mut self) -> Result<(), TaskFailure> {
        let first = !self.started;
        self.started = true;
        let params = if self.paging {
            serde_json::json!({
                "taskhost_expand_page": {"size": PAGE_SIZE, "cursor": self.cursor},
                "params": self.params,
            })
        } else {
            self.params.clone()
        };
        let bytes = self.call(&params)?;
        let (items, cursor) = if self.paging {
            let page: Page = self.parse(&bytes)?;
            (page.items, page.cursor)
        } else {
            (self.parse::<Vec<PluginItem>>(&bytes)?, None)
        };
        self.cursor = cursor;
        for item in items {
            self.made += 1;
            self.items.push_back(WorkItem {
                id: item
                    .id
                    .unwrap_or_else(|| format!("{}#{}", self.name, self.made)),
                task: item.task,
                input: item.input,
            });
        }
        if first || self.cursor.is_none() {
            tracing::info!(
                target: "taskhost",
                job = %self.name,
                items = self.made,
                done = self.cursor.is_none(),
                "job.expanded"
            );
        }
        Ok(())
    }

    fn call(&self, params: &serde_json::Value) -> Result<Vec<u8>, TaskFailure> {
        let params = serde_json::to_vec(params).expect("JSON values serialize");
        let context = TracingContext::with_names(self.plugin.name(), &self.name);
        self.plugin.expand_raw(&self.job, &params, &context)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, TaskFailure> {
        serde_json::from_slice(bytes).map_err(|e| TaskFailure {
            kind: FailureKind::Failed,
            message: format!(
                "plugin `{}` returned work items that are not {}: {e}",
                self.plugin.name(),
                if self.paging {
                    "a page {\"items\": [{\"task\", \"input\"}, …], \"cursor\"}"
                } else {
                    "a JSON array of {\"task\", \"input\"}"
                }
            ),
        })
    }
}

impl ExpandSource {
    /// The next item, asking for the next page when this one is used up.
    fn next_item(&mut self) -> io::Result<Option<WorkItem>> {
        if self.items.is_empty() && self.cursor.is_some() {
            self.fetch().map_err(|failure| {
                io::Error::other(format!("expanding {}: {}", self.name, failure.message))
            })?;
        }
        Ok(self.items.pop_front())
    }
}

impl Drop for ExpandSource {
    /// A run that stops early gives the rest of the expansion up, so the plugin drops it.
    fn drop(&mut self) {
        if let Some(cursor) = self.cursor.take() {
            let params = serde_json::json!({
                "taskhost_expand_page": {"size": 0, "cursor": cursor},
                "params": null,
            });
            let _ = self.call(&params);
        }
    }
}

/// What one config job (or `--expand`) makes.
#[derive(Debug)]
pub enum JobItems {
    /// A plugin's expansion.
    Expand(ExpandSource),
    /// `task` once per input.
    Items(std::vec::IntoIter<WorkItem>),
}

/// The items of several jobs, one after the other, numbered from 1 across them.
#[derive(Debug)]
pub struct JobsSource {
    jobs: VecDeque<JobItems>,
    line: u64,
    /// The number of items, when every job knows it up front.
    len: Option<u64>,
}

impl JobsSource {
    pub fn new(jobs: Vec<JobItems>) -> Self {
        let len = jobs
            .iter()
            .map(|job| match job {
                JobItems::Expand(source) if source.cursor.is_none() => {
                    Some(source.items.len() as u64)
                }
                JobItems::Expand(_) => None,
                JobItems::Items(items) => Some(items.len() as u64),
            })
            .sum();
        Self {
            jobs: jobs.into(),
            line: 0,
            len,
        }
    }
}

impl WorkSource for JobsSource {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        while let Some(job) = self.jobs.front_mut() {
            let item = match job {
                JobItems::Expand(source) => source.next_item()?,
                JobItems::Items(items) => items.next(),
            };
            match item {
                Some(item) => {
                    self.line += 1;
                    return Ok(Some(Entry {
                        line: self.line,
                        body: EntryBody::Item(item),
                    }));
                }
                None => {
                    self.jobs.pop_front();
                }
            }
        }
        Ok(None)
    }

    fn len_hint(&self) -> Option<u64> {
        self.len
    }
}
