//! The plain sections' rules: `[plugins]` (folders and pins), `[logging]`, `[run]` and
//! `[[jobs]]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::raw::{RawJob, RawLogging, RawPlugins, RawRun};

use super::*;

impl Validator<'_> {
    pub(super) fn plugins(&mut self, raw: &RawPlugins, dirs: &PluginDirs) -> PluginSettings {
        let folders = match &raw.dirs {
            None => dirs.default.clone(),
            Some(written) => written
                .iter()
                .enumerate()
                .filter_map(|(index, dir)| self.plugin_dir(index, dir, dirs.base.as_deref()))
                .collect(),
        };
        PluginSettings {
            dirs: folders,
            strict: raw.strict.unwrap_or(false),
            require_pins: raw.require_pins.unwrap_or(false),
            pins: self.pins(raw.pins.as_ref()),
        }
    }

    /// A plugin folder as written: an absolute path as it is, a relative one taken from
    /// `base` (the folder of the file that names it), never from wherever taskhost runs.
    pub(super) fn plugin_dir(
        &mut self,
        index: usize,
        dir: &str,
        base: Option<&Path>,
    ) -> Option<PathBuf> {
        let path = Path::new(dir);
        if dir.is_empty() {
            self.issue(
                "plugins.dirs",
                format!("expected a folder, found an empty string at position {index}"),
            );
            return None;
        }
        if path.is_absolute() {
            return Some(path.to_path_buf());
        }
        match base {
            Some(base) => Some(base.join(path)),
            None => {
                self.issue(
                    "plugins.dirs",
                    format!("expected an absolute folder, found {dir:?} (there is no folder to take it from)"),
                );
                None
            }
        }
    }

    /// `[plugins.pins]`: each key a plugin name, each value `"sha256:<64 hex digits>"`.
    pub(super) fn pins(
        &mut self,
        raw: Option<&BTreeMap<String, String>>,
    ) -> BTreeMap<String, String> {
        let mut pins = BTreeMap::new();
        for (name, pin) in raw.into_iter().flatten() {
            let key = format!("plugins.pins.{name}");
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                self.issue(
                    &key,
                    format!(
                        "expected a plugin name of letters, digits, `_` or `-`, found {name:?}"
                    ),
                );
                continue;
            }
            match parse_pin(pin) {
                Ok(pin) => {
                    pins.insert(name.clone(), pin);
                }
                Err(message) => self.issue(&key, message),
            }
        }
        pins
    }

    pub(super) fn logging(&mut self, raw: &RawLogging) -> LoggingSettings {
        let format = match raw.format.as_deref() {
            None => LogFormat::Compact,
            Some(text) => LogFormat::parse(text).unwrap_or_else(|| {
                self.issue(
                    "logging.format",
                    format!("expected one of \"pretty\", \"compact\", \"json\", found {text:?}"),
                );
                LogFormat::Compact
            }),
        };
        let filter = raw.filter.clone().unwrap_or_else(|| "warn".to_owned());
        LoggingSettings { format, filter }
    }

    pub(super) fn run(&mut self, raw: &RawRun) -> RunSettings {
        RunSettings {
            max_in_flight: self.count(
                "run.max_in_flight",
                raw.max_in_flight,
                Range::new(
                    1,
                    limits::MAX_IN_FLIGHT,
                    "each item in flight holds its line and its outcome in memory",
                ),
                1024,
            ),
            max_line_bytes: self.count(
                "run.max_line_bytes",
                raw.max_line_bytes,
                Range::new(
                    1,
                    limits::MAX_LINE_BYTES,
                    "1 GiB: a line is held in memory whole",
                ),
                1 << 20,
            ),
            shutdown_grace: self.duration(
                "run.shutdown_grace",
                raw.shutdown_grace.as_ref(),
                Duration::from_secs(5),
            ),
        }
    }

    pub(super) fn job(&mut self, index: usize, raw: &RawJob) -> Option<JobSettings> {
        let key = format!("jobs[{index}]");
        match (&raw.expand, &raw.task) {
            (Some(task), None) if raw.inputs.is_none() => Some(JobSettings::Expand {
                task: task.clone(),
                params: raw.params.clone().unwrap_or(serde_json::json!({})),
            }),
            (None, Some(task)) if raw.params.is_none() => Some(JobSettings::Inputs {
                task: task.clone(),
                inputs: raw.inputs.clone().unwrap_or_default(),
            }),
            _ => {
                self.issue(
                    &key,
                    "expected either `expand` (with optional `params`) or `task` (with `inputs`)"
                        .to_owned(),
                );
                None
            }
        }
    }
}
