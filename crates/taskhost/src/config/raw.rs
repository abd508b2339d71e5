//! Stage one: the configuration exactly as written. Every key is optional here so that each source
//! (the embedded default, the file, the environment) can be checked on its own; unknown keys are
//! refused. Stage two ([`super::settings`]) turns the merged result into typed settings.

use std::collections::BTreeMap;

use serde::{de, Deserialize, Deserializer, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub plugins: RawPlugins,
    #[serde(default)]
    pub logging: RawLogging,
    #[serde(default)]
    pub run: RawRun,
    #[serde(default)]
    pub pools: BTreeMap<String, RawPool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RawRoute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<RawJob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<RawCluster>,
}

/// `[plugins]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugins {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_pins: Option<bool>,
    /// `[plugins.pins]`: plugin name → `"sha256:<hex>"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pins: Option<BTreeMap<String, String>>,
}

/// `[logging]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// `[run]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    #[serde(
        default,
        deserialize_with = "integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_in_flight: Option<i64>,
    #[serde(
        default,
        deserialize_with = "integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_line_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<String>,
}

/// `[pools.NAME]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    #[serde(
        default,
        deserialize_with = "integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_workers: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    #[serde(
        default,
        deserialize_with = "integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_tasks_per_worker: Option<i64>,
    #[serde(
        default,
        deserialize_with = "integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub queue_capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_full: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_name_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<String>,
}

/// `[[routes]]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(
        default,
        deserialize_with = "integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub retries: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `[[jobs]]`: either `expand` + `params`, or `task` + `inputs`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<serde_json::Value>>,
}

/// `[cluster]`: the NATS JetStream server that `taskhost worker` and `taskhost submit` share.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_wait: Option<String>,
    #[serde(
        default,
        deserialize_with = "integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_deliver: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_max_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_wait: Option<String>,
}

/// A count: an integer, or a string of one (what an environment variable holds). The `config`
/// crate would also take `true` as 1, `1.5` as 2 and `"yes"` as 1 without a word: those are
/// wrong types here.
fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct Integer;

    impl<'de> de::Visitor<'de> for Integer {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
            Ok(value)
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
            i64::try_from(value).map_err(|_| {
                E::custom(format!(
                    "expected an integer of at most {}, found {value}",
                    i64::MAX
                ))
            })
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<i64, E> {
            Err(wrong_type(format_args!("floating point `{value}`")))
        }

        fn visit_bool<E: de::Error>(self, value: bool) -> Result<i64, E> {
            Err(wrong_type(format_args!("boolean `{value}`")))
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<i64, A::Error> {
            Err(wrong_type(format_args!("sequence")))
        }

        fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<i64, A::Error> {
            Err(wrong_type(format_args!("map")))
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<i64, E> {
            value
                .parse()
                .map_err(|_| wrong_type(format_args!("string {value:?}")))
        }
    }

    deserializer.deserialize_any(Integer).map(Some)
}

/// The message of the `config` crate's own type errors.
fn wrong_type<E: de::Error>(found: std::fmt::Arguments<'_>) -> E {
    E::custom(format!("wrong type: expected an integer, found {found}"))
}
