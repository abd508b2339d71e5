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
 * metadata beyond an optional JSON string (which may say, as the Rust SDK does, which input field
 * `taskhost run plugin/task ARG` fills: {"taskhost": {"arguments": {"task": "field"}}}).
 *
 * FILE NAMES: the host loads only files named libNAME.so (libNAME.dylib on macOS, NAME.dll on
 * Windows) from its plugin folders; any other file is skipped (logged at info level when it
 * looks like a library under another name, such as hello.so or libhello.so.1). A C plugin is otherwise indistinguishable from a
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

/*
 * JSON HELPERS (optional; define TH_NO_JSON_HELPERS before the include to leave them out)
 *
 * Inputs and outputs are JSON text. These two cover the common case, a string member in and a
 * JSON string out, with no allocation:
 *
 *     char name[256];
 *     if (th_json_get_string(input, len, "name", name, sizeof name) < 0) ...   // TH_INVALID_INPUT
 *     long n = th_json_put_string(name, strlen(name), buffer, sizeof buffer); // "\"Ada\""
 *
 * For anything more, a small C library fits: jsmn (a tokenizer in one header, no allocation)
 * or cJSON (a tree, one .c file); both MIT-licensed.
 */
#ifndef TH_NO_JSON_HELPERS

/* Skips white space in text[*at..len). */
static inline void th_json_skip_space_(const uint8_t *text, size_t len, size_t *at) {
    while (*at < len && (text[*at] == ' ' || text[*at] == '\t' || text[*at] == '\n' ||
                         text[*at] == '\r'))
        (*at)++;
}

/* Skips the JSON value at text[*at..len) (a string, object, array, number, true, false or
 * null); returns 0, or -1 on malformed text. */
static inline int th_json_skip_value_(const uint8_t *text, size_t len, size_t *at) {
    size_t depth = 0;
    do {
        th_json_skip_space_(text, len, at);
        if (*at >= len) return -1;
        uint8_t c = text[*at];
        if (c == '"') {
            for ((*at)++; *at < len && text[*at] != '"'; (*at)++)
                if (text[*at] == '\\') (*at)++;
            if (*at >= len) return -1;
            (*at)++;
        } else if (c == '{' || c == '[') {
            depth++;
            (*at)++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) return -1;
            depth--;
            (*at)++;
        } else if (c == ',' || c == ':') {
            if (depth == 0) return -1;
            (*at)++;
        } else {
            size_t start = *at;
            while (*at < len && text[*at] != ',' && text[*at] != '}' && text[*at] != ']' &&
                   text[*at] != ' ' && text[*at] != '\t' && text[*at] != '\n' &&
                   text[*at] != '\r' && text[*at] != ':')
                (*at)++;
            if (*at == start) return -1;
        }
    } while (depth > 0);
    return 0;
}

/*
 * Finds the string member `key` at the top level of the JSON object input[0..len) and copies
 * its value, unescaped and NUL-terminated, into out[0..cap). Returns the value's length in
 * bytes; -1 when the input is not a JSON object, has no such member, or the member is not a
 * string; -2 when the value (and its NUL) does not fit in `cap` bytes. Escapes: \" \\ \/ \b
 * \f \n \r \t and \u0000-\u007F (any other \u escape reads as -1). `key` is compared as
 * written (a key with escapes in the input does not match).
 */
static inline long th_json_get_string(const uint8_t *input, size_t len, const char *key,
                                      char *out, size_t cap) {
    size_t at = 0, key_len = 0;
    while (key[key_len] != '\0') key_len++;
    th_json_skip_space_(input, len, &at);
    if (at >= len || input[at] != '{') return -1;
    at++;
    for (;;) {
        th_json_skip_space_(input, len, &at);
        if (at < len && input[at] == '}') return -1;
        if (at >= len || input[at] != '"') return -1;
        size_t name = ++at;
        while (at < len && input[at] != '"') at += input[at] == '\\' ? 2 : 1;
        if (at >= len) return -1;
        int matches = at - name == key_len;
        for (size_t i = 0; matches && i < key_len; i++) matches = input[name + i] == (uint8_t)key[i];
        at++;
        th_json_skip_space_(input, len, &at);
        if (at >= len || input[at] != ':') return -1;
        at++;
        th_json_skip_space_(input, len, &at);
        if (matches) {
            if (at >= len || input[at] != '"') return -1;
            size_t n = 0;
            for (at++; at < len && input[at] != '"'; at++) {
                uint8_t c = input[at];
                if (c == '\\') {
                    if (++at >= len) return -1;
                    switch (input[at]) {
                    case '"': c = '"'; break;
                    case '\\': c = '\\'; break;
                    case '/': c = '/'; break;
                    case 'b': c = '\b'; break;
                    case 'f': c = '\f'; break;
                    case 'n': c = '\n'; break;
                    case 'r': c = '\r'; break;
                    case 't': c = '\t'; break;
                    case 'u': {
                        unsigned value = 0;
                        if (at + 4 >= len) return -1;
                        for (int i = 1; i <= 4; i++) {
                            uint8_t h = input[at + i];
                            value = value * 16 + (h >= '0' && h <= '9'   ? (unsigned)(h - '0')
                                                  : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                                                  : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
                                                                         : 0x10000u);
                        }
                        if (value > 0x7F) return -1;
                        c = (uint8_t)value;
                        at += 4;
                        break;
                    }
                    default: return -1;
                    }
                }
                if (n + 1 >= cap) return -2;
                out[n++] = (char)c;
            }
            if (at >= len) return -1;
            out[n] = '\0';
            return (long)n;
        }
        if (th_json_skip_value_(input, len, &at) != 0) return -1;
        th_json_skip_space_(input, len, &at);
        if (at < len && input[at] == ',') {
            at++;
            continue;
        }
        return -1;
    }
}

/*
 * Writes text[0..len) as a JSON string, quoted and escaped, into out[0..cap) (not
 * NUL-terminated). Returns the number of bytes written, or -1 when they do not fit (2 + 6 *
 * len bytes always do). UTF-8 passes through as it is.
 */
static inline long th_json_put_string(const char *text, size_t len, char *out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    if (cap < 2) return -1;
    out[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)text[i];
        char escaped[6];
        size_t size = 0;
        if (c == '"' || c == '\\') {
            escaped[size++] = '\\';
            escaped[size++] = (char)c;
        } else if (c < 0x20) {
            escaped[size++] = '\\';
            escaped[size++] = 'u';
            escaped[size++] = '0';
            escaped[size++] = '0';
            escaped[size++] = hex[c >> 4];
            escaped[size++] = hex[c & 15];
        } else {
            escaped[size++] = (char)c;
        }
        if (n + size + 1 > cap) return -1;
        for (size_t j = 0; j < size; j++) out[n++] = escaped[j];
    }
    out[n++] = '"';
    return (long)n;
}

#endif /* TH_NO_JSON_HELPERS */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TASKHOST_PLUGIN_H */
