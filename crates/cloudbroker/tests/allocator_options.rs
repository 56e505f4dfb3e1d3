//! The binary runs with mimalloc's options for giving memory back
//! (`MIMALLOC_PURGE_DELAY=0`, `MIMALLOC_ARENA_EAGER_COMMIT=0`): it starts
//! itself again with them (the same process) when the environment sets
//! neither, and keeps an operator's own value of either.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

/// The environment of a serving broker started with `envs`.
fn environment_of(envs: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    let (broker, _url) = common::serve(dir.path(), &[], envs);
    let raw = std::fs::read(format!("/proc/{}/environ", broker.id())).unwrap();
    raw.split(|b| *b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

/// What the broker must see for `key`: the test's own value if it has one, else `0`.
fn expected(key: &str) -> String {
    format!("{key}={}", std::env::var(key).unwrap_or_else(|_| "0".into()))
}

#[test]
fn the_broker_runs_with_the_options_that_return_memory() {
    let env = environment_of(&[]);
    for key in ["MIMALLOC_PURGE_DELAY", "MIMALLOC_ARENA_EAGER_COMMIT"] {
        assert!(env.contains(&expected(key)), "{key} in {env:?}");
    }
}

#[test]
fn an_operators_own_value_is_kept() {
    let env = environment_of(&[("MIMALLOC_PURGE_DELAY", "250")]);
    assert!(env.contains(&"MIMALLOC_PURGE_DELAY=250".to_string()), "{env:?}");
    assert!(!env.contains(&"MIMALLOC_PURGE_DELAY=0".to_string()), "{env:?}");
    assert!(env.contains(&expected("MIMALLOC_ARENA_EAGER_COMMIT")), "{env:?}");
}
