//! Configuration: where it comes from, and the two stages it goes through.
//!
//! Sources, later ones winning: the embedded default (`config/taskhost.toml`, compiled in), the
//! file named by `--config` or `TASKHOST_CONFIG`, then `TASKHOST_<SECTION>__<KEY>` environment
//! variables. The `config` crate merges them. Each source is first checked on its own, so that an
//! unknown key or a wrong type is reported against the file (and line) or variable that holds it.
//! Then the merged [`raw::RawConfig`] is validated into [`settings::Settings`].
//!
//! This module knows nothing of pools, plugins or JSON lines: it only produces settings.

pub mod duration;
pub mod raw;
pub mod settings;

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};

pub use settings::{Issue, Settings};

/// The default configuration, compiled into the binary.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../../config/taskhost.toml");

/// How the embedded default is named in messages.
pub const EMBEDDED_NAME: &str = "the embedded default config (config/taskhost.toml)";

/// Environment variables that configure the host start with this.
pub const ENV_PREFIX: &str = "TASKHOST_";

/// Top-level sections, the only ones an environment variable may name.
const SECTIONS: &[&str] = &["plugins", "logging", "run", "pools", "routes", "jobs"];

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", format_issues(.0))]
    Invalid(Vec<Issue>),
}

impl ConfigError {
    /// The individual problems (empty for an I/O error).
    pub fn issues(&self) -> &[Issue] {
        match self {
            Self::Invalid(issues) => issues,
            Self::Read { .. } => &[],
        }
    }
}

fn format_issues(issues: &[Issue]) -> String {
    let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
    if lines.len() == 1 {
        format!("invalid configuration: {}", lines[0])
    } else {
        format!(
            "invalid configuration ({} problems):\n  {}",
            lines.len(),
            lines.join("\n  ")
        )
    }
}

/// One source of configuration.
#[derive(Debug)]
struct Layer {
    /// How messages name it.
    name: String,
    /// The TOML text, for finding line numbers; `None` for the environment.
    text: Option<String>,
    /// The environment variables, by dotted key (for naming the variable in messages).
    env_names: Vec<(String, String)>,
    config: Config,
}

impl Layer {
    fn toml(name: String, text: String) -> Result<Self, Vec<Issue>> {
        let config = Config::builder()
            .add_source(File::from_str(&text, FileFormat::Toml))
            .build()
            .map_err(|error| vec![issue_from(&error, &name, Some(&text), &[])])?;
        Ok(Self {
            name,
            text: Some(text),
            env_names: Vec::new(),
            config,
        })
    }

    fn environment(vars: &[(String, String)]) -> Result<Self, Vec<Issue>> {
        let mut map = config::Map::new();
        let mut env_names = Vec::new();
        let mut issues = Vec::new();
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // Variables without `__` (TASKHOST_CONFIG, ...) are not configuration keys.
            if !rest.contains("__") {
                continue;
            }
            let key = rest.to_lowercase().replace("__", ".");
            let section = key.split('.').next().unwrap_or_default();
            if !SECTIONS.contains(&section) {
                issues.push(Issue {
                    origin: format!("environment variable {name}"),
                    key: key.clone(),
                    message: format!(
                        "unknown section `{section}`, expected one of: {}",
                        SECTIONS.join(", ")
                    ),
                });
                continue;
            }
            env_names.push((key, name.clone()));
            map.insert(name.clone(), value.clone());
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let source = Environment::with_prefix("TASKHOST")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("plugins.dirs")
            .source(Some(map));
        let name = "the environment".to_owned();
        let config = Config::builder()
            .add_source(source)
            .build()
            .map_err(|error| vec![issue_from(&error, &name, None, &env_names)])?;
        Ok(Self {
            name,
            text: None,
            env_names,
            config,
        })
    }

    /// Whether this layer sets `key` (or something below it).
    fn defines(&self, key: &str) -> bool {
        self.config.get::<config::Value>(key).is_ok()
    }

    /// "file:line", or the variable's name.
    fn locate(&self, key: &str) -> String {
        if let Some(text) = &self.text {
            return match find_line(text, key) {
                Some(line) => format!("{}:{line}", self.name),
                None => self.name.clone(),
            };
        }
        env_origin(&self.env_names, key).unwrap_or_else(|| self.name.clone())
    }
}

fn env_origin(env_names: &[(String, String)], key: &str) -> Option<String> {
    env_names
        .iter()
        .filter(|(k, _)| k == key || k.starts_with(&format!("{key}.")) || key.starts_with(k))
        .map(|(_, name)| format!("environment variable {name}"))
        .next()
}

/// The loaded configuration and where it came from.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    /// The sources, in the order they were applied.
    pub sources: Vec<String>,
}

/// Loads the embedded default, then `file`, then the `TASKHOST_*` variables among `env`.
pub fn load(file: Option<&Path>, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let file = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            Some((path.display().to_string(), text))
        }
        None => None,
    };
    load_from(EMBEDDED_DEFAULT, file, env)
}

/// Like [`load`], with the file already read (used by tests).
pub fn load_from(
    embedded: &str,
    file: Option<(String, String)>,
    env: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let mut layers = Vec::new();
    let mut issues = Vec::new();
    let mut add = |layer: Result<Layer, Vec<Issue>>| match layer {
        Ok(layer) => layers.push(layer),
        Err(found) => issues.extend(found),
    };
    add(Layer::toml(EMBEDDED_NAME.to_owned(), embedded.to_owned()));
    if let Some((name, text)) = file {
        add(Layer::toml(name, text));
    }
    add(Layer::environment(env));
    // Check each source on its own first: its unknown keys and wrong types are its own.
    for layer in &layers {
        if let Err(error) = layer.config.clone().try_deserialize::<raw::RawConfig>() {
            issues.push(issue_from(
                &error,
                &layer.name,
                layer.text.as_deref(),
                &layer.env_names,
            ));
        }
    }
    if !issues.is_empty() {
        return Err(ConfigError::Invalid(issues));
    }
    let mut builder = Config::builder();
    for layer in &layers {
        builder = builder.add_source(layer.config.clone());
    }
    let merged = builder
        .build()
        .and_then(|c| c.try_deserialize::<raw::RawConfig>())
        .map_err(|error| {
            ConfigError::Invalid(vec![issue_from(
                &error,
                "the merged configuration",
                None,
                &[],
            )])
        })?;
    let locate = |key: &str| {
        layers
            .iter()
            .rev()
            .find(|layer| layer.defines(key))
            .map_or_else(|| "the configuration".to_owned(), |layer| layer.locate(key))
    };
    let settings = settings::validate(&merged, &locate).map_err(ConfigError::Invalid)?;
    Ok(Loaded {
        settings,
        sources: layers.iter().map(|l| l.name.clone()).collect(),
    })
}

/// Turns a `config` crate error into an [`Issue`] that names the source, line and key.
fn issue_from(
    error: &config::ConfigError,
    source: &str,
    text: Option<&str>,
    env_names: &[(String, String)],
) -> Issue {
    let (mut key, message) = describe(error);
    // serde names an unknown field only in its message: make it part of the key.
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        key = if key.is_empty() {
            field.to_owned()
        } else {
            format!("{key}.{field}")
        };
    }
    let origin = match text {
        Some(text) => match find_line(text, &key) {
            Some(line) => format!("{source}:{line}"),
            None => source.to_owned(),
        },
        None => env_origin(env_names, &key).unwrap_or_else(|| source.to_owned()),
    };
    Issue {
        origin,
        key,
        message,
    }
}

/// The key path and the message of a `config` error, without its own "for key" suffix.
fn describe(error: &config::ConfigError) -> (String, String) {
    match error {
        config::ConfigError::At { error, key, .. } => {
            let (inner_key, message) = describe(error);
            let key = match (key.as_deref(), inner_key.is_empty()) {
                (Some(key), true) => key.to_owned(),
                (Some(key), false) => format!("{key}.{inner_key}"),
                (None, _) => inner_key,
            };
            (key, message)
        }
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => (
            key.clone().unwrap_or_default(),
            format!("wrong type: expected {expected}, found {unexpected}"),
        ),
        config::ConfigError::FileParse { cause, .. } => (
            String::new(),
            format!("not valid TOML: {}", cause.to_string().trim_end()),
        ),
        other => (String::new(), other.to_string()),
    }
}

/// The 1-based line of `key` (such as `pools.cpu.max_workers` or `routes[1].pool`) in a TOML
/// text written with `[table]` and `[[array]]` headers. `None` when it cannot tell.
fn find_line(text: &str, key: &str) -> Option<usize> {
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
    let mut table: Vec<String> = Vec::new();
    let mut array_counts: std::collections::HashMap<String, usize> = Default::default();
    let mut header_line = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(name) = trimmed
            .strip_prefix("[[")
            .and_then(|s| s.split("]]").next())
        {
            let name = name.trim().to_owned();
            let count = array_counts.entry(name.clone()).or_insert(0);
            table = name.split('.').map(str::to_owned).collect();
            table.push(format!("[{count}]"));
            *count += 1;
        } else if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.split(']').next()) {
            table = name
                .trim()
                .split('.')
                .map(|s| s.trim().to_owned())
                .collect();
        } else if let Some((leaf, _)) = trimmed.split_once('=') {
            let mut full = table.clone();
            full.extend(leaf.trim().split('.').map(|s| s.trim().to_owned()));
            if full == segments {
                return Some(index + 1);
            }
            continue;
        } else {
            continue;
        }
        if table == segments {
            header_line = Some(index + 1);
        }
    }
    header_line.or_else(|| {
        // Fall back to the deepest table that holds the key.
        (1..segments.len())
            .rev()
            .find_map(|n| find_line(text, &segments[..n].join(".").replace(".[", "[")))
    })
}

#[cfg(test)]
mod tests;
