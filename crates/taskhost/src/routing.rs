//! Routing: which pool runs a task, with which retry policy and timeout.
//!
//! Routes are globs over `"plugin/task"`, tried in the order written; the first match wins. A task
//! that matches none runs on the `default` pool, once, with no timeout.

use std::time::Duration;

use crate::config::settings::{RetryPolicy, RouteSettings, DEFAULT_POOL};

/// Where and how one task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    pub pool: String,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    /// Index of the route that matched; `None` for the fallback to the default pool.
    pub route: Option<usize>,
}

/// What the command line sets for every task, over what its route says (`run --retries`,
/// `--timeout`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteOverrides {
    pub retries: Option<u32>,
    pub timeout: Option<Duration>,
}

/// The ordered routes from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<RouteSettings>,
    overrides: RouteOverrides,
}

impl Router {
    pub fn new(routes: Vec<RouteSettings>) -> Self {
        Self {
            routes,
            overrides: RouteOverrides::default(),
        }
    }

    /// The same routes, with `overrides` applied to every decision (the default pool's too).
    pub fn with_overrides(mut self, overrides: RouteOverrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// The first route whose glob matches `task`, or the default pool; then the overrides.
    pub fn route(&self, task: &str) -> RouteDecision {
        let mut decision = self.matching_route(task);
        if let Some(retries) = self.overrides.retries {
            decision.retry.retries = retries;
        }
        if let Some(timeout) = self.overrides.timeout {
            decision.timeout = Some(timeout);
        }
        decision
    }

    fn matching_route(&self, task: &str) -> RouteDecision {
        let options = glob::MatchOptions {
            case_sensitive: true,
            // `*` stops at `/`, so "checksum/*" never reaches into another plugin's namespace.
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.pattern.matches_with(task, options))
            .map_or_else(
                || RouteDecision {
                    pool: DEFAULT_POOL.to_owned(),
                    retry: RetryPolicy::NONE,
                    timeout: None,
                    route: None,
                },
                |(index, route)| RouteDecision {
                    pool: route.pool.clone(),
                    retry: route.retry,
                    timeout: route.timeout,
                    route: Some(index),
                },
            )
    }

    /// Routes that match none of `tasks` (worth a warning: probably a typo).
    pub fn unused<'a>(&'a self, tasks: &[String]) -> Vec<&'a RouteSettings> {
        let used: std::collections::BTreeSet<usize> = tasks
            .iter()
            .filter_map(|task| self.route(task).route)
            .collect();
        self.routes
            .iter()
            .enumerate()
            .filter(|(index, _)| !used.contains(index))
            .map(|(_, route)| route)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(task: &str, pool: &str, retries: u32) -> RouteSettings {
        RouteSettings {
            task: task.to_owned(),
            pattern: glob::Pattern::new(task).unwrap(),
            pool: pool.to_owned(),
            retry: RetryPolicy {
                retries,
                ..RetryPolicy::NONE
            },
            timeout: None,
        }
    }

    fn router() -> Router {
        Router::new(vec![
            route("checksum/*", "io", 2),
            route("primes/count", "cpu", 0),
            route("primes/*", "io", 0),
            route("*/slow-?", "slow", 0),
        ])
    }

    #[test]
    fn the_first_match_wins() {
        let router = router();
        assert_eq!(router.route("primes/count").pool, "cpu");
        assert_eq!(router.route("primes/other").pool, "io");
        assert_eq!(router.route("checksum/sha256").retry.retries, 2);
        assert_eq!(router.route("testkit/slow-1").pool, "slow");
    }

    #[test]
    fn overrides_apply_to_every_route_and_the_default_pool() {
        let router = router().with_overrides(RouteOverrides {
            retries: Some(5),
            timeout: Some(Duration::from_secs(3)),
        });
        for task in ["checksum/sha256", "testkit/echo"] {
            let decision = router.route(task);
            assert_eq!(decision.retry.retries, 5, "{task}");
            assert_eq!(decision.timeout, Some(Duration::from_secs(3)), "{task}");
        }
        assert_eq!(router.route("checksum/sha256").pool, "io");
        // Only what is given is overridden.
        let router = router_with_timeout().with_overrides(RouteOverrides {
            retries: Some(1),
            timeout: None,
        });
        assert_eq!(router.route("a/b").timeout, Some(Duration::from_secs(9)));
    }

    fn router_with_timeout() -> Router {
        let mut slow = route("a/*", "io", 0);
        slow.timeout = Some(Duration::from_secs(9));
        Router::new(vec![slow])
    }

    #[test]
    fn no_match_goes_to_the_default_pool() {
        let decision = router().route("testkit/echo");
        assert_eq!(decision.pool, DEFAULT_POOL);
        assert_eq!(decision.route, None);
        assert_eq!(decision.retry.retries, 0);
    }

    #[test]
    fn a_star_does_not_cross_the_slash() {
        let router = Router::new(vec![route("check*", "io", 0)]);
        assert_eq!(router.route("checksum/sha256").pool, DEFAULT_POOL);
    }

    #[test]
    fn unused_routes_are_reported() {
        let router = router();
        let unused: Vec<&str> = router
            .unused(&["checksum/sha256".to_owned(), "primes/count".to_owned()])
            .iter()
            .map(|r| r.task.as_str())
            .collect();
        assert_eq!(unused, ["primes/*", "*/slow-?"]);
    }

    /// The documented semantics, written out: `*` is any run of characters but `/`, `?` one
    /// character but `/`, anything else itself.
    fn oracle_matches(pattern: &[u8], task: &[u8]) -> bool {
        match pattern.split_first() {
            None => task.is_empty(),
            Some((b'*', rest)) => (0..=task.len())
                .take_while(|&n| n == 0 || task[n - 1] != b'/')
                .any(|n| oracle_matches(rest, &task[n..])),
            Some((b'?', rest)) => {
                matches!(task.split_first(), Some((c, tail)) if *c != b'/' && oracle_matches(rest, tail))
            }
            Some((c, rest)) => {
                matches!(task.split_first(), Some((t, tail)) if t == c && oracle_matches(rest, tail))
            }
        }
    }

    /// Globs over a small alphabet (so that they often match); `**` is collapsed, as a `**`
    /// that is not a whole path component is not a valid glob.
    fn any_glob() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex("[ab/*?.-]{0,7}")
            .unwrap()
            .prop_map(|g| {
                let mut out = String::new();
                for c in g.chars() {
                    if !(c == '*' && out.ends_with('*')) {
                        out.push(c);
                    }
                }
                out
            })
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn routing_is_the_first_matching_glob_or_the_default_pool(
            globs in proptest::collection::vec(any_glob(), 0..6),
            tasks in proptest::collection::vec("[ab/.-]{0,7}", 1..12),
        ) {
            let routes: Vec<RouteSettings> = globs
                .iter()
                .enumerate()
                .map(|(i, g)| route(g, &format!("pool{i}"), i as u32))
                .collect();
            let router = Router::new(routes);
            for task in &tasks {
                let expected = globs
                    .iter()
                    .position(|g| oracle_matches(g.as_bytes(), task.as_bytes()));
                let decision = router.route(task);
                prop_assert_eq!(decision.route, expected, "task {:?} globs {:?}", task, globs);
                match expected {
                    Some(i) => {
                        prop_assert_eq!(decision.pool, format!("pool{i}"));
                        prop_assert_eq!(decision.retry.retries, i as u32);
                    }
                    None => {
                        prop_assert_eq!(decision.pool, DEFAULT_POOL);
                        prop_assert_eq!(decision.retry, RetryPolicy::NONE);
                        prop_assert_eq!(decision.timeout, None);
                    }
                }
            }
        }

        #[test]
        fn a_plugin_star_matches_its_tasks_and_nothing_below_or_beside(
            plugin in "[a-z][a-z0-9_-]{0,8}",
            task in "[a-z0-9_.-]{0,8}",
            deeper in "[a-z0-9_.-]{0,4}",
        ) {
            let router = Router::new(vec![route(&format!("{plugin}/*"), "io", 0)]);
            let within = format!("{plugin}/{task}");
            let below = format!("{plugin}/{task}/{deeper}");
            let beside = format!("{plugin}x/{task}");
            prop_assert_eq!(router.route(&within).pool, "io");
            prop_assert_eq!(router.route(&below).pool, DEFAULT_POOL);
            prop_assert_eq!(router.route(&beside).pool, DEFAULT_POOL);
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            retries: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        assert_eq!(policy.delay_before(2), Duration::from_millis(100));
        assert_eq!(policy.delay_before(3), Duration::from_millis(200));
        assert_eq!(policy.delay_before(4), Duration::from_millis(350));
    }
}
