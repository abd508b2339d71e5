//! The config loader: a TOML file layered over the embedded default, checked on its own, merged
//! and validated; then the settings printed back (`taskhost config show`) must load again.
//! Also the duration parser on the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskhost::config::{self, duration, settings, EMBEDDED_DEFAULT};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = duration::parse_duration(text) {
        let printed = duration::format_duration(parsed);
        duration::parse_duration(&printed).expect("a printed duration parses");
    }
    // An environment variable named by the first line, valued by the second (the rest is the
    // file), so the environment layer runs too.
    let mut env = Vec::new();
    let mut file = text;
    if let Some(rest) = text.strip_prefix("TASKHOST_") {
        let mut parts = rest.splitn(3, '\n');
        if let (Some(name), Some(value), Some(body)) = (parts.next(), parts.next(), parts.next()) {
            env.push((format!("TASKHOST_{name}"), value.to_owned()));
            file = body;
        }
    }
    let loaded = config::load_from(
        EMBEDDED_DEFAULT,
        Some(("fuzz.toml".to_owned(), file.to_owned())),
        &env,
    );
    match loaded {
        Ok(loaded) => {
            // `taskhost config show` prints the settings; what it prints loads to the same.
            let raw = settings::to_raw(&loaded.settings);
            let shown = toml::to_string(&raw).expect("the settings print as TOML");
            let again = config::load_from(
                EMBEDDED_DEFAULT,
                Some(("shown.toml".into(), shown.clone())),
                &[],
            )
            .unwrap_or_else(|error| {
                panic!("config show printed a config that does not load:\n{shown}\n{error}")
            });
            assert_eq!(
                toml::to_string(&settings::to_raw(&again.settings)).expect("printable"),
                shown,
                "config show is not stable"
            );
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with("invalid configuration"), "{message}");
        }
    }
});
