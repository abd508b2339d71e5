//! `export_plugin!`: turns a function that builds a [`Plugin`](crate::Plugin) into the root
//! module a host loads.

/// Exports a plugin from a `cdylib`: give it the path of a `fn() -> Plugin`.
///
/// The macro defines the three `extern "C"` entry points of the
/// [`PluginModule`](crate::abi::PluginModule), each wrapped in `catch_unwind` (a panic becomes a
/// `panicked` failure and never reaches the host), and the exported symbol abi_stable looks for.
/// The plugin is built once, on first use. Use it once per crate, at any module level.
///
/// ```
/// use taskhost_plugin_api::{export_plugin, Plugin, TaskContext, TaskError};
///
/// fn hello(name: String, _ctx: &TaskContext<'_>) -> Result<String, TaskError> {
///     Ok(format!("hello, {name}"))
/// }
///
/// fn plugin() -> Plugin {
///     Plugin::new("hello", env!("CARGO_PKG_VERSION")).task("greet", "greets someone", hello)
/// }
///
/// export_plugin!(plugin);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($constructor:path $(,)?) => {
        const _: () = {
            use $crate::__private::abi_stable::library::{
                CheckTypeLayout, LibHeader, RootModuleResult,
            };
            use $crate::__private::abi_stable::std_types::{RResult, RSlice, RStr, RVec};
            use $crate::abi::{HostContextRef, PluginDescriptor, PluginModuleRef, RawFailure};

            static __TASKHOST_PLUGIN: ::std::sync::OnceLock<
                ::std::result::Result<$crate::Plugin, ::std::string::String>,
            > = ::std::sync::OnceLock::new();

            fn __taskhost_plugin(
            ) -> ::std::result::Result<&'static $crate::Plugin, $crate::TaskError> {
                $crate::__private::plugin(&__TASKHOST_PLUGIN, $constructor)
            }

            extern "C" fn __taskhost_describe() -> RResult<PluginDescriptor, RawFailure> {
                // Evaluated here, in the plugin's crate: whether *it* was built with debug
                // assertions (a debug build), which `taskhost plugins` points out.
                $crate::__private::describe(__taskhost_plugin, cfg!(debug_assertions))
            }

            extern "C" fn __taskhost_run_task(
                task: RStr<'_>,
                input: RSlice<'_, u8>,
                context: HostContextRef<'_>,
            ) -> RResult<RVec<u8>, RawFailure> {
                $crate::__private::run_task(__taskhost_plugin, task, input, context)
            }

            extern "C" fn __taskhost_expand(
                job: RStr<'_>,
                params: RSlice<'_, u8>,
                context: HostContextRef<'_>,
            ) -> RResult<RVec<u8>, RawFailure> {
                $crate::__private::expand(__taskhost_plugin, job, params, context)
            }

            fn __taskhost_root_module() -> PluginModuleRef {
                $crate::__private::root_module(
                    $crate::__private::can_expand(__taskhost_plugin),
                    __taskhost_describe,
                    __taskhost_run_task,
                    __taskhost_expand,
                )
            }

            extern "C" fn __taskhost_load_root_module() -> RootModuleResult {
                $crate::__private::abi_stable::library::__call_root_module_loader(
                    __taskhost_root_module,
                )
            }

            // SAFETY: the symbol is abi_stable's root-module loader name (a unit test of this
            // crate keeps the literal equal to `ROOT_MODULE_LOADER_NAME`); one per plugin crate.
            #[allow(unsafe_code)]
            #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
            static __TASKHOST_LIB_HEADER: LibHeader = {
                // SAFETY: `__taskhost_load_root_module` returns the `PluginModuleRef` made by
                // `__taskhost_root_module`,
                // erased by abi_stable's own wrapper, which is what `from_constructor` requires.
                unsafe {
                    LibHeader::from_constructor::<PluginModuleRef>(
                        __taskhost_load_root_module,
                        CheckTypeLayout::Yes,
                    )
                }
            };
        };
    };
}
