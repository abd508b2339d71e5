//! What a plugin's metadata says about it for the host: the facts the SDK's `export_plugin!`
//! records under the key `"taskhost"` (a C plugin may write them too):
//! `{"taskhost": {"debug_build": true, "arguments": {"task": "field"}, "expand_jobs": ["job"]}}`.

use std::collections::BTreeMap;

use serde::Deserialize;
use taskhost_loader::LoadedPlugin;

/// The facts; absent ones are unknown (a plugin built before they existed, a C plugin).
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PluginFacts {
    /// Built with debug assertions (a debug build: slow).
    pub debug_build: Option<bool>,
    /// Per task, the input field a plain line or argument fills.
    pub arguments: BTreeMap<String, String>,
    /// The jobs its expand step takes.
    pub expand_jobs: Vec<String>,
    /// Its expand step can be taken a page at a time (see `crate::expand`).
    pub expand_pages: bool,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    taskhost: Option<PluginFacts>,
}

impl PluginFacts {
    /// The facts in `plugin`'s metadata (none when it has none, or they do not parse).
    pub fn of(plugin: &LoadedPlugin) -> PluginFacts {
        Self::parse(plugin.metadata())
    }

    fn parse(metadata: &str) -> PluginFacts {
        serde_json::from_str::<Metadata>(metadata)
            .ok()
            .and_then(|m| m.taskhost)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_read_and_anything_else_is_no_facts() {
        let facts = PluginFacts::parse(
            r#"{"language":"c","taskhost":{"debug_build":true,"arguments":{"sha256":"path"},"expand_jobs":["sha256"],"later":1}}"#,
        );
        assert_eq!(facts.debug_build, Some(true));
        assert_eq!(facts.arguments["sha256"], "path");
        assert_eq!(facts.expand_jobs, ["sha256"]);
        assert!(!facts.expand_pages);
        for other in [
            "",
            "[1]",
            r#"{"language":"c"}"#,
            "not json",
            r#"{"taskhost":5}"#,
        ] {
            assert_eq!(PluginFacts::parse(other), PluginFacts::default(), "{other}");
        }
    }
}
