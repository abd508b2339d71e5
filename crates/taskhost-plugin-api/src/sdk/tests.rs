//! The SDK's unit tests.

use abi_stable::std_types::RResult;

use super::*;
use crate::abi::RawFailure;

#[test]
fn guarded_turns_a_panic_into_a_panicked_failure() {
    let result: RResult<(), RawFailure> = guarded(|| panic!("boom {}", 7));
    let failure = result.unwrap_err();
    assert_eq!(FailureKind::from_code(failure.kind), FailureKind::Panicked);
    assert_eq!(failure.message.as_str(), "boom 7");
    let result: RResult<(), RawFailure> = guarded(|| std::panic::panic_any(42_u8));
    assert_eq!(
        result.unwrap_err().message.as_str(),
        "panic with a non-string payload"
    );
}

#[test]
fn guarded_passes_errors_and_values_through() {
    let ok: RResult<u8, RawFailure> = guarded(|| Ok(3));
    assert_eq!(ok.unwrap(), 3);
    let err: RResult<u8, RawFailure> = guarded(|| Err(TaskError::cancelled()));
    let failure = err.unwrap_err();
    assert_eq!(FailureKind::from_code(failure.kind), FailureKind::Cancelled);
}

#[test]
fn unknown_tasks_are_invalid_input_naming_the_known_ones() {
    let plugin = Plugin::new("p", "1")
        .raw_task("a", "", |i, _| Ok(i.to_vec()))
        .raw_task("b", "", |i, _| Ok(i.to_vec()));
    let error = plugin.run_detached("c", b"").unwrap_err();
    assert_eq!(error.kind(), FailureKind::InvalidInput);
    assert_eq!(error.message(), "plugin `p` has no task `c` (it has: a, b)");
}

#[test]
#[should_panic(expected = "task `a` is defined twice")]
fn a_task_name_cannot_be_used_twice() {
    let _ = Plugin::new("p", "1")
        .raw_task("a", "", |i, _| Ok(i.to_vec()))
        .raw_task("a", "", |i, _| Ok(i.to_vec()));
}

#[test]
fn the_descriptor_lists_tasks_in_declaration_order() {
    let plugin = Plugin::new("p", "1.2.3")
        .raw_task("z", "last letter", |i, _| Ok(i.to_vec()))
        .raw_task("a", "first letter", |i, _| Ok(i.to_vec()));
    let descriptor = plugin.descriptor(false);
    assert_eq!(descriptor.version.as_str(), "1.2.3");
    let tasks: Vec<_> = descriptor
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.description.as_str()))
        .collect();
    assert_eq!(tasks, [("z", "last letter"), ("a", "first letter")]);
}

#[test]
fn the_metadata_carries_the_build_the_arguments_and_the_jobs_beside_the_authors() {
    let plugin = Plugin::new("p", "1")
        .raw_task("a", "", |i, _| Ok(i.to_vec()))
        .raw_task("b", "", |i, _| Ok(i.to_vec()))
        .task_argument("a", "pa\"th")
        .raw_expand(|_, _, _| Ok(b"[]".to_vec()))
        .expand_jobs(["j1", "j2"]);
    let facts =
        r#""taskhost":{"debug_build":true,"arguments":{"a":"pa\"th"},"expand_jobs":["j1","j2"]}"#;
    assert_eq!(
        plugin.descriptor(true).metadata.as_str(),
        format!("{{{facts}}}")
    );
    let plugin = plugin.metadata(r#" {"mine": 1}"#);
    assert_eq!(
        plugin.descriptor(true).metadata.as_str(),
        format!("{{{facts},\"mine\": 1}}")
    );
    let plugin = plugin.metadata("{ }");
    assert_eq!(
        plugin.descriptor(true).metadata.as_str(),
        format!("{{{facts}}}")
    );
    // Not an object: left alone.
    let plugin = plugin.metadata("[1]");
    assert_eq!(plugin.descriptor(false).metadata.as_str(), "[1]");
    let bare = Plugin::new("p", "1").descriptor(false);
    assert_eq!(
        bare.metadata.as_str(),
        r#"{"taskhost":{"debug_build":false}}"#
    );
}

#[test]
#[should_panic(expected = "task_argument: plugin `p` has no task `x`")]
fn a_task_argument_needs_its_task() {
    let _ = Plugin::new("p", "1").task_argument("x", "path");
}
