//! Configuration: where it comes from, and the two stages it goes through.
//!
//! Sources, later ones winning: the embedded default (`config/taskhost.toml`, compiled in), the
//! file named by `--config` or `TASKHOST_CONFIG`, then `TASKHOST_<SECTION>__<KEY>` environment
//! variables. The `config` crate merges them. Each source is first checked on its own, so that an
//! unknown key or a wrong type is reported against the file (and line) or variable that holds it.
//! Then the merged [`raw::RawConfig`] is validated into [`settings::Settings`].
//!
//! This module knows nothing of pools, plugins or JSON lines: it only produces settings.

pub mod cluster;
pub mod duration;
pub mod raw;
pub mod settings;
mod toml_text;

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};

pub use settings::{Issue, Settings};
use toml_text::{find_line, is_oversized_integer, oversized_integers, without_oversized_integers};

/// The default configuration, compiled into the binary.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../../config/taskhost.toml");

/// How the embedded default is named in messages.
pub const EMBEDDED_NAME: &str = "the embedded default config (config/taskhost.toml)";

/// Environment variables that configure the host start with this.
pub const ENV_PREFIX: &str = "TASKHOST_";

/// Top-level sections, the only ones an environment variable may name.
const SECTIONS: &[&str] = &[
    "plugins", "logging", "run", "pools", "routes", "jobs", "cluster",
];

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
    /// The folder its relative paths (`plugins.dirs`) are taken from: a file's own folder, the
    /// working directory for the environment; `None` for the embedded default, which must not
    /// name a relative path.
    base: Option<PathBuf>,
    config: Config,
    /// Problems found before the source could be read (integers too large for TOML).
    early_issues: Vec<Issue>,
}

impl Layer {
    fn toml(name: String, text: String, base: Option<PathBuf>) -> Result<Self, Vec<Issue>> {
        let parse = |text: &str| {
            Config::builder()
                .add_source(File::from_str(text, FileFormat::Toml))
                .build()
        };
        let (config, early_issues) = match parse(&text) {
            Ok(config) => (config, Vec::new()),
            Err(error) => {
                let issue = toml_issue(&error, &name, &text);
                let oversized = oversized_integers(&text);
                if issue.message.contains(" line ") || oversized.is_empty() {
                    return Err(vec![issue]);
                }
                // The parser stops at the first integer too large for it: report every one,
                // and read the rest of the file with each of them as 0 (the file is refused
                // anyway), so that its other problems are reported with them.
                let early_issues: Vec<Issue> =
                    oversized.iter().map(|found| found.issue(&name)).collect();
                let patched = without_oversized_integers(&text, &oversized);
                match parse(&patched) {
                    Ok(config) => (config, early_issues),
                    Err(error) => {
                        let mut issues = early_issues;
                        issues.push(toml_issue(&error, &name, &patched));
                        return Err(issues);
                    }
                }
            }
        };
        Ok(Self {
            name,
            text: Some(text),
            env_names: Vec::new(),
            base,
            config,
            early_issues,
        })
    }

    fn environment(vars: &[(String, String)], base: Option<PathBuf>) -> Result<Self, Vec<Issue>> {
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
            // The `config` crate reads an integer too large for 64 bits as a float, which
            // would then be rounded and clamped without a word.
            if is_oversized_integer(value.trim()) {
                issues.push(Issue {
                    origin: format!("environment variable {name}"),
                    key: key.clone(),
                    message: format!(
                        "expected an integer of at most {}, found {}",
                        i64::MAX,
                        value.trim()
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
            base,
            config,
            early_issues: Vec::new(),
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

/// Like [`load`], with the file already read (used by tests). The file's name is its path:
/// its relative `plugins.dirs` are taken from the folder it names.
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
    add(Layer::toml(
        EMBEDDED_NAME.to_owned(),
        embedded.to_owned(),
        None,
    ));
    if let Some((name, text)) = file {
        let base = std::path::absolute(&name)
            .ok()
            .and_then(|path| path.parent().map(Path::to_path_buf));
        add(Layer::toml(name, text, base));
    }
    add(Layer::environment(env, std::env::current_dir().ok()));
    // Check each source on its own first: its unknown keys and wrong types are its own.
    for layer in &layers {
        issues.extend(shape_issues(layer));
    }
    if !issues.is_empty() {
        return Err(ConfigError::Invalid(issues));
    }
    let mut builder = Config::builder();
    for layer in &layers {
        builder = builder.add_source(layer.config.clone());
    }
    let mut merged = builder
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
    let base_of = |key: &str| {
        layers
            .iter()
            .rev()
            .find(|layer| layer.defines(key))
            .and_then(|layer| layer.base.clone())
    };
    cluster::resolve_paths(&mut merged, base_of("cluster.tls_ca").as_deref());
    // Arrays replace, so the newest source that sets `plugins.dirs` wrote all of them.
    let dirs = settings::PluginDirs {
        base: base_of("plugins.dirs"),
        default: default_plugin_dirs(env),
    };
    let settings = settings::validate(&merged, &locate, &dirs).map_err(ConfigError::Invalid)?;
    Ok(Loaded {
        settings,
        sources: layers.iter().map(|l| l.name.clone()).collect(),
    })
}

/// Where plugins are looked for when no source sets `plugins.dirs`: the user's own data
/// folder, `$XDG_DATA_HOME/taskhost/plugins`, else `$HOME/.local/share/taskhost/plugins`
/// (relative values are ignored, as the XDG specification says); none without either. Never
/// a folder of the working directory, where a cloned repository could put a library.
pub fn default_plugin_dirs(env: &[(String, String)]) -> Vec<PathBuf> {
    let var = |name: &str| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| PathBuf::from(value))
            .filter(|path| path.is_absolute())
    };
    var("XDG_DATA_HOME")
        .or_else(|| var("HOME").map(|home| home.join(".local/share")))
        .map(|data| data.join("taskhost/plugins"))
        .into_iter()
        .collect()
}

/// Most problems reported per source: past them the source is not worth reading further.
const MAX_SHAPE_ISSUES: usize = 64;

/// The unknown keys and wrong types of one source, every one of them. serde stops at the
/// first, so each culprit is taken out of the source's tree (the whole key, or, inside an
/// array, the array) and the rest is read again.
fn shape_issues(layer: &Layer) -> Vec<Issue> {
    let issue = |error: &config::ConfigError| {
        issue_from(error, &layer.name, layer.text.as_deref(), &layer.env_names)
    };
    let mut tree = match layer
        .config
        .clone()
        .try_deserialize::<config::Map<String, config::Value>>()
    {
        Ok(tree) => tree,
        Err(error) => return vec![issue(&error)],
    };
    let mut issues = layer.early_issues.clone();
    while issues.len() < MAX_SHAPE_ISSUES {
        let value = config::Value::new(None, config::ValueKind::Table(tree.clone()));
        let Err(error) = value.try_deserialize::<raw::RawConfig>() else {
            break;
        };
        let found = issue(&error);
        let removed = remove_key(&mut tree, &found.key);
        issues.push(found);
        if !removed {
            break;
        }
    }
    // serde meets the keys in no particular order: report them in the file's.
    if let Some(text) = &layer.text {
        issues.sort_by_cached_key(|issue| find_line(text, &issue.key));
    } else {
        issues.sort_by(|a, b| a.origin.cmp(&b.origin));
    }
    issues
}

/// A step of a key path: a table key or an array index.
enum Step {
    Key(String),
    Index(usize),
}

/// Removes `key` (`pools.io.max_workers`, `routes[1].pool`) from `tree`; a key inside an array
/// element that is not a table takes the whole array with it (removing one element would
/// renumber the others). `false` when nothing was removed.
fn remove_key(tree: &mut config::Map<String, config::Value>, key: &str) -> bool {
    let steps: Vec<Step> = key
        .replace('[', ".[")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| {
            match s
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse().ok())
            {
                Some(index) => Step::Index(index),
                None => Step::Key(s.to_owned()),
            }
        })
        .collect();
    remove_in_table(tree, &steps)
}

fn remove_in_table(table: &mut config::Map<String, config::Value>, steps: &[Step]) -> bool {
    let [Step::Key(name), rest @ ..] = steps else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(name).is_some();
    }
    let removed = match table.get_mut(name) {
        None => return false,
        Some(value) => remove_below(value, rest),
    };
    removed.unwrap_or_else(|| table.remove(name).is_some())
}

/// Removes `steps` below `value`; `None` when they do not lead to a table key, so the caller
/// removes `value` itself.
fn remove_below(value: &mut config::Value, steps: &[Step]) -> Option<bool> {
    match (steps, &mut value.kind) {
        ([Step::Index(index), rest @ ..], config::ValueKind::Array(items)) if !rest.is_empty() => {
            remove_below(items.get_mut(*index)?, rest)
        }
        ([Step::Key(_), ..], config::ValueKind::Table(inner)) => {
            Some(remove_in_table(inner, steps))
        }
        _ => None,
    }
}

/// An error of the TOML parser: a TOML syntax error says its own line; an integer too large
/// for TOML (a 64-bit signed integer) does not, so it is found in the text.
fn toml_issue(error: &config::ConfigError, source: &str, text: &str) -> Issue {
    let issue = issue_from(error, source, Some(text), &[]);
    if issue.message.contains(" line ") {
        return issue;
    }
    match oversized_integers(text).first() {
        Some(found) => found.issue(source),
        None => issue,
    }
}

/// Turns a `config` crate error into an [`Issue`] that names the source, line and key.
fn issue_from(
    error: &config::ConfigError,
    source: &str,
    text: Option<&str>,
    env_names: &[(String, String)],
) -> Issue {
    let (key, message) = describe(error);
    let mut key = normalize_key(&key);
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

/// `routes[0]retries` (as the `config` crate joins an index and a field) as
/// `routes[0].retries`.
fn normalize_key(key: &str) -> String {
    let mut normal = String::with_capacity(key.len() + 2);
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        normal.push(c);
        if c == ']' && chars.peek().is_some_and(|next| !matches!(next, '.' | '[')) {
            normal.push('.');
        }
    }
    normal
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

#[cfg(test)]
mod tests;
