//! The glue [`export_plugin!`](crate::export_plugin) uses: a panic caught at the boundary, the
//! host context a detached call gets, and the functions the macro's root module calls.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RVec};

use crate::abi::{HostContext, HostContextRef, LogLevel, PluginDescriptor, RawFailure};

use super::{FailureKind, Plugin, TaskContext, TaskError};

/// The host of [`Plugin::run_detached`]: never cancelled, logs to stderr.
pub(super) struct DetachedHost;

impl HostContext for DetachedHost {
    fn is_cancelled(&self) -> bool {
        false
    }

    fn progress(&self, _done: u64, _total: ROption<u64>) {}

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        eprintln!("[{}] {message}", level.as_str());
    }
}

/// The message of a caught panic payload.
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Runs `body`, turning a panic into a `panicked` failure so that it never unwinds into the
/// host (abi_stable ends the process when a panic reaches one of its `extern "C"` shims).
pub(super) fn guarded<T>(body: impl FnOnce() -> Result<T, TaskError>) -> RResult<T, RawFailure> {
    guarded_at(body).0
}

/// [`guarded`], and where it panicked, if it did: the panic hook stays quiet meanwhile (see
/// `crate::panics`), so the caller reports the panic through the host's log.
pub(super) fn guarded_at<T>(
    body: impl FnOnce() -> Result<T, TaskError>,
) -> (RResult<T, RawFailure>, Option<String>) {
    let (result, location) = crate::panics::quietly(|| catch_unwind(AssertUnwindSafe(body)));
    let result = match result {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(error)) => RResult::RErr(error.into_raw()),
        Err(payload) => RResult::RErr(
            TaskError::new(FailureKind::Panicked, panic_message(payload.as_ref())).into_raw(),
        ),
    };
    (result, location)
}

/// Runs one entry point's `body` guarded; a panic is logged through the host's context (an
/// error, with where it happened), as the plugin's own stderr would have shown it.
pub(super) fn guarded_logged<T>(
    what: &str,
    ctx: &TaskContext<'_>,
    body: impl FnOnce() -> Result<T, TaskError>,
) -> RResult<T, RawFailure> {
    let (result, location) = guarded_at(body);
    if let (RResult::RErr(failure), Some(location)) = (&result, location) {
        ctx.error(format!(
            "{what} panicked at {location}: {}",
            failure.message
        ));
    }
    result
}

/// The glue behind `export_plugin!`. Not a stable API: only the macro calls it.
#[doc(hidden)]
pub mod __private {
    use std::sync::OnceLock;

    pub use abi_stable;

    use super::*;
    use crate::abi::{PluginModule, PluginModuleRef};
    use abi_stable::prefix_type::PrefixTypeTrait;

    /// Builds the plugin once; a panic in the constructor is reported by every entry point.
    pub fn plugin(
        cell: &'static OnceLock<Result<Plugin, String>>,
        constructor: fn() -> Plugin,
    ) -> Result<&'static Plugin, TaskError> {
        let built = cell.get_or_init(|| {
            catch_unwind(constructor).map_err(|payload| panic_message(payload.as_ref()))
        });
        built.as_ref().map_err(|message| {
            TaskError::new(
                FailureKind::Panicked,
                format!("building the plugin: {message}"),
            )
        })
    }

    /// `PluginModule::describe`; `debug_build` is `cfg!(debug_assertions)` where the macro
    /// expanded, i.e. the plugin crate's own profile.
    pub fn describe(
        plugin: impl FnOnce() -> Result<&'static Plugin, TaskError>,
        debug_build: bool,
    ) -> RResult<PluginDescriptor, RawFailure> {
        guarded(|| Ok(plugin()?.descriptor(debug_build)))
    }

    /// `PluginModule::run_task`.
    pub fn run_task(
        plugin: impl FnOnce() -> Result<&'static Plugin, TaskError>,
        task: RStr<'_>,
        input: RSlice<'_, u8>,
        context: HostContextRef<'_>,
    ) -> RResult<RVec<u8>, RawFailure> {
        let ctx = TaskContext::new(context);
        let what = format!("task `{}`", task.as_str());
        guarded_logged(&what, &ctx, || {
            plugin()?
                .run(task.as_str(), input.as_slice(), &ctx)
                .map(RVec::from)
        })
    }

    /// `PluginModule::expand`.
    pub fn expand(
        plugin: impl FnOnce() -> Result<&'static Plugin, TaskError>,
        job: RStr<'_>,
        params: RSlice<'_, u8>,
        context: HostContextRef<'_>,
    ) -> RResult<RVec<u8>, RawFailure> {
        let ctx = TaskContext::new(context);
        let what = format!("expanding job `{}`", job.as_str());
        guarded_logged(&what, &ctx, || {
            plugin()?
                .expand_with(job.as_str(), params.as_slice(), &ctx)
                .map(RVec::from)
        })
    }

    /// The root module, given the three entry points; `expand` is left out when the plugin
    /// has no expand step.
    pub fn root_module(
        can_expand: bool,
        describe: extern "C" fn() -> RResult<PluginDescriptor, RawFailure>,
        run_task: extern "C" fn(
            RStr<'_>,
            RSlice<'_, u8>,
            HostContextRef<'_>,
        ) -> RResult<RVec<u8>, RawFailure>,
        expand: extern "C" fn(
            RStr<'_>,
            RSlice<'_, u8>,
            HostContextRef<'_>,
        ) -> RResult<RVec<u8>, RawFailure>,
    ) -> PluginModuleRef {
        PluginModule {
            describe,
            run_task,
            expand: can_expand.then_some(expand),
        }
        .leak_into_prefix()
    }

    /// Whether the plugin built by `plugin` has an expand step (false when building it failed).
    pub fn can_expand(plugin: impl FnOnce() -> Result<&'static Plugin, TaskError>) -> bool {
        plugin().map(Plugin::can_expand).unwrap_or(false)
    }
}
