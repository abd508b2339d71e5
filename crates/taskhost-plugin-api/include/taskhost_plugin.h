/*
 * taskhost_plugin.h: the C ABI of taskhost plugins (plugins in C, C++, Zig, or any language
 * that can export a C function).
 *
 * ABI version 1.0. Part of taskhost-plugin-api; the Rust side lives in taskhost-loader
 * (crates/taskhost-loader/src/c_abi.rs). License: MIT OR Apache-2.0.
 *
 * A plugin is a shared library (libNAME.so, libNAME.dylib, NAME.dll) that exports ONE symbol:
 *
 *     const th_plugin_descriptor *taskhost_plugin_descriptor(void);
 *
 * The host opens the library (RTLD_NOW | RTLD_LOCAL on Unix), calls that function once, checks
 * the magic number and the ABI version, copies the names it needs and then calls the task's
 * `run` function for each work item. A minimal plugin:
 *
 *     #include "taskhost_plugin.h"
 *     #include <stdlib.h>
 *     #include <string.h>
 *
 *     static th_status echo(const uint8_t *input, size_t len, const th_host_context *ctx,
 *                           th_output *out) {
 *         (void)ctx;
 *         if (len > 0) {
 *             out->data = malloc(len);
 *             if (out->data == NULL) return TH_FAILED;   // no message: the host says so
 *             memcpy(out->data, input, len);
 *         }
 *         out->len = len;
 *         return TH_OK;
 *     }
 *
 *     static void free_buffer(uint8_t *data, size_t len) { (void)len; free(data); }
 *
 *     static const th_task_type tasks[] = {
 *         { "echo", "returns its input", echo },
 *     };
 *
 *     static const th_plugin_descriptor descriptor = {
 *         TH_PLUGIN_MAGIC, TH_ABI_VERSION_MAJOR, TH_ABI_VERSION_MINOR,
 *         "hello", "0.1.0", NULL, tasks, sizeof tasks / sizeof tasks[0], free_buffer,
 *     };
 *
 *     TH_EXPORT const th_plugin_descriptor *taskhost_plugin_descriptor(void) {
 *         return &descriptor;
 *     }
 *
 * Build it with `cc -shared -fPIC -O2 -o libtaskhost_hello.so hello.c` and drop the file into a
 * plugin folder: its task is `hello/echo`.
 *
 * CONTRACT
 *
 * - Strings in the descriptor are NUL-terminated UTF-8. Plugin and task names are made of
 *   letters, digits, `_`, `-` and `.`. The host copies every string when it loads the library,
 *   but the descriptor and the `run` / `free_buffer` functions must stay valid for the life of the
 *   process: the host never unloads a plugin.
 * - `run` may be called from many threads at once, for the same or different tasks: keep it
 *   re-entrant (no unsynchronised global state). A call runs entirely on the calling thread.
 * - Input: `input[0..len)` is the work item's `input` as JSON text (not NUL-terminated; `input`
 *   may be any non-NULL pointer when `len` is 0). It is valid only during the call.
 * - Output: `out` arrives as `{NULL, 0}`. On TH_OK, set it to the output bytes (JSON by
 *   convention; leave it `{NULL, 0}` for an empty output). On any other status, set it to a
 *   UTF-8 message saying what went wrong (not NUL-terminated; may be left empty). Whatever
 *   non-NULL `out->data` the plugin sets, the host copies `out->len` bytes and then hands the
 *   pointer back to the descriptor's `free_buffer` exactly once, on the same thread. Allocate it
 *   with anything `free_buffer` can release (malloc/free is the usual pair).
 * - Never let a C++ exception or a longjmp cross `run`: catch it and return TH_PANICKED (or
 *   TH_FAILED) with a message.
 * - The host context and its callbacks are valid only during the call that received them, and
 *   only on that thread. Pass `ctx->host` as the first argument of each callback.
 *
 * VERSIONING
 *
 * The descriptor starts with `magic`, `abi_major` and `abi_minor`; these three fields never move.
 * A host refuses a plugin whose magic is not TH_PLUGIN_MAGIC, whose major version differs from
 * its own, or whose minor version is newer than its own, with an error that names the library,
 * the version it supports and the version it found. Within a major version the ABI only grows:
 * a new minor version may append fields to the END of th_plugin_descriptor, th_task_type or
 * th_host_context, and the host reads a plugin's fields according to the minor version the plugin
 * declares. Anything else (removing, reordering or retyping a field) is a new major version.
 *
 * Not in 1.0: the expand step of Rust plugins (a job that fans out into work items) and plugin
 * metadata beyond an optional JSON string. A C plugin is otherwise indistinguishable from a
 * Rust one to the host: same routing, tracing, cancellation and outcome records.
 */
#ifndef TASKHOST_PLUGIN_H
#define TASKHOST_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "THPL" read as a little-endian uint32_t: the first field of every descriptor. */
#define TH_PLUGIN_MAGIC 0x4C504854u

/* The ABI version this header describes. */
#define TH_ABI_VERSION_MAJOR 1
#define TH_ABI_VERSION_MINOR 0

/* The name of the one symbol a plugin exports. */
#define TH_DESCRIPTOR_SYMBOL "taskhost_plugin_descriptor"

/* Marks the descriptor function as exported (also when built with -fvisibility=hidden). */
#if defined(_WIN32)
#define TH_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define TH_EXPORT __attribute__((visibility("default")))
#else
#define TH_EXPORT
#endif

/*
 * What a run returns: the host's failure kinds (the Rust SDK's FailureKind codes), each
 * recorded in the work item's outcome like a Rust plugin's. Any other value reads as TH_FAILED.
 */
typedef int32_t th_status;
enum {
    TH_OK = 0,           /* `out` holds the output                                           */
    TH_FAILED = 1,       /* the task failed; `out` holds the message                         */
    TH_PANICKED = 2,     /* a bug, e.g. a caught C++ exception; `out` holds the message      */
    TH_CANCELLED = 3,    /* stopped because is_cancelled() said so; `out` may say where      */
    TH_INVALID_INPUT = 4 /* the input is not what the task takes; `out` says what it expects */
};

/* Log levels for th_host_context.log; any other value logs at TH_LOG_INFO. */
typedef int32_t th_log_level;
enum {
    TH_LOG_ERROR = 1,
    TH_LOG_WARN = 2,
    TH_LOG_INFO = 3,
    TH_LOG_DEBUG = 4,
    TH_LOG_TRACE = 5
};

/* `total` for a progress report whose total is not known. */
#define TH_PROGRESS_TOTAL_UNKNOWN UINT64_MAX

/*
 * The host's side of a running task. Every callback takes `host` as its first argument and is
 * safe to call any number of times during the run; none of them blocks for long.
 */
typedef struct th_host_context {
    /* Opaque: pass it back to the callbacks, never dereference it. */
    void *host;
    /* Whether the host asks the task to stop (a cancelled work item, a timeout, a shutdown).
     * Poll it often (every millisecond or so of work) and return TH_CANCELLED when it is true. */
    bool (*is_cancelled)(void *host);
    /* Progress: `done` units of `total` (TH_PROGRESS_TOTAL_UNKNOWN when not known). */
    void (*progress)(void *host, uint64_t done, uint64_t total);
    /* A log record: `message[0..len)` in UTF-8 (invalid bytes are replaced), not necessarily
     * NUL-terminated. The host copies it. It reaches the host's log tagged with the plugin and
     * task names; a plugin's own stderr does not. */
    void (*log)(void *host, th_log_level level, const char *message, size_t len);
} th_host_context;

/* Bytes a run hands back to the host; see the output rules above. */
typedef struct th_output {
    uint8_t *data;
    size_t len;
} th_output;

/* Runs one task on one input; see the contract above. */
typedef th_status (*th_run_fn)(const uint8_t *input, size_t len, const th_host_context *ctx,
                               th_output *out);

/* One task type: its name (the `task` of `plugin/task`), a one-line description, its function. */
typedef struct th_task_type {
    const char *name;
    const char *description;
    th_run_fn run;
} th_task_type;

/* The plugin, as `taskhost_plugin_descriptor()` describes it. */
typedef struct th_plugin_descriptor {
    uint32_t magic;              /* TH_PLUGIN_MAGIC                                          */
    uint16_t abi_major;          /* TH_ABI_VERSION_MAJOR                                     */
    uint16_t abi_minor;          /* TH_ABI_VERSION_MINOR                                     */
    const char *name;            /* the plugin's name (the `plugin` of `plugin/task`)          */
    const char *version;         /* the plugin's own version, e.g. "1.2.0"                     */
    const char *metadata;        /* optional JSON text about the plugin, or NULL               */
    const th_task_type *tasks;   /* task_count task types with distinct names                  */
    size_t task_count;
    void (*free_buffer)(uint8_t *data, size_t len); /* releases a th_output's data            */
} th_plugin_descriptor;

/*
 * The one symbol a plugin exports. Called once per load, from one thread, before any run; it
 * must return the same valid descriptor every time (a pointer to a static is the usual way).
 * Returning NULL refuses the load.
 */
typedef const th_plugin_descriptor *(*th_descriptor_fn)(void);
TH_EXPORT const th_plugin_descriptor *taskhost_plugin_descriptor(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TASKHOST_PLUGIN_H */
