/*
 * csample: a taskhost plugin written in C against include/taskhost_plugin.h (C ABI 1.0).
 *
 * Built by `cargo xtask build-plugins` into target/plugins/libtaskhost_csample.so with the
 * machine's C compiler (`$CC`, else `cc`). Tasks:
 *
 *   csample/echo      returns its input bytes unchanged (the C twin of testkit/echo)
 *   csample/collatz   {"n": N} or a bare N: the start below N with the longest Collatz chain
 *                     (CPU bound; reports progress, honours cancellation)
 *   csample/sleep     {"ms": N} or a bare N: waits N ms, polling cancellation every millisecond
 *   csample/fail      {"message": "..."}: fails with that message
 *   csample/log       {"message": "..."}: logs the message at every level, returns 5
 *   csample/greet     {"name": "..."}: {"greeting": "hello, ..."}, with the header's JSON helpers
 *
 * Inputs are read with the tiny JSON reader below: enough for one object of scalar members,
 * which is all these tasks take. `greet` shows the header's th_json_get_string and
 * th_json_put_string instead; for more, use a JSON library (jsmn, cJSON).
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* nanosleep, clock_gettime */
#endif

#include "taskhost_plugin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#include <windows.h>
#else
#include <time.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PRINTF_LIKE(fmt, args)
#endif

/* ---- output ------------------------------------------------------------------------------- */

/* Formats into a fresh malloc'd buffer in `out` and returns `status`. */
PRINTF_LIKE(3, 4)
static th_status reply(th_output *out, th_status status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int needed = vsnprintf(NULL, 0, format, args);
    va_end(args);
    if (needed < 0) {
        return TH_FAILED;
    }
    char *buffer = malloc((size_t)needed + 1);
    if (buffer == NULL) {
        return TH_FAILED; /* no message: the host reports the bare status */
    }
    va_start(args, format);
    vsnprintf(buffer, (size_t)needed + 1, format, args);
    va_end(args);
    out->data = (uint8_t *)buffer;
    out->len = (size_t)needed;
    return status;
}

static void free_buffer(uint8_t *data, size_t len) {
    (void)len;
    free(data);
}

/* ---- a tiny JSON reader ------------------------------------------------------------------- */

typedef struct cursor {
    const char *at;
    const char *end;
} cursor;

static void skip_space(cursor *c) {
    while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) {
        c->at++;
    }
}

/* At an opening quote: moves past the closing one. */
static bool skip_string(cursor *c) {
    c->at++;
    while (c->at < c->end) {
        char ch = *c->at++;
        if (ch == '\\') {
            if (c->at == c->end) {
                return false;
            }
            c->at++;
        } else if (ch == '"') {
            return true;
        }
    }
    return false;
}

/* Moves past one value of any kind (nested objects and arrays by depth). */
static bool skip_value(cursor *c) {
    if (c->at == c->end) {
        return false;
    }
    if (*c->at == '"') {
        return skip_string(c);
    }
    if (*c->at == '{' || *c->at == '[') {
        int depth = 0;
        while (c->at < c->end) {
            char ch = *c->at;
            if (ch == '"') {
                if (!skip_string(c)) {
                    return false;
                }
                continue;
            }
            c->at++;
            if (ch == '{' || ch == '[') {
                depth++;
            } else if ((ch == '}' || ch == ']') && --depth == 0) {
                return true;
            }
        }
        return false;
    }
    const char *start = c->at;
    while (c->at < c->end && strchr(",}] \t\r\n", *c->at) == NULL) {
        c->at++;
    }
    return c->at > start;
}

/* In a top-level object, finds member `key` and leaves `value` at its value. */
static bool find_member(const uint8_t *input, size_t len, const char *key, cursor *value) {
    cursor c = {(const char *)input, (const char *)input + len};
    size_t key_len = strlen(key);
    skip_space(&c);
    if (c.at == c.end || *c.at != '{') {
        return false;
    }
    c.at++;
    for (;;) {
        skip_space(&c);
        if (c.at == c.end || *c.at != '"') {
            return false; /* `}` of an object without the key, or not JSON */
        }
        const char *name = c.at + 1;
        if (!skip_string(&c)) {
            return false;
        }
        bool match = (size_t)(c.at - 1 - name) == key_len && memcmp(name, key, key_len) == 0;
        skip_space(&c);
        if (c.at == c.end || *c.at != ':') {
            return false;
        }
        c.at++;
        skip_space(&c);
        if (match) {
            *value = c;
            return true;
        }
        if (!skip_value(&c)) {
            return false;
        }
        skip_space(&c);
        if (c.at == c.end || *c.at != ',') {
            return false;
        }
        c.at++;
    }
}

/* A non-negative integer without fraction or exponent, followed by a JSON delimiter. */
static bool parse_u64(cursor *c, uint64_t *result) {
    uint64_t value = 0;
    const char *start = c->at;
    while (c->at < c->end && *c->at >= '0' && *c->at <= '9') {
        uint64_t digit = (uint64_t)(*c->at - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            return false;
        }
        value = value * 10 + digit;
        c->at++;
    }
    if (c->at == start || (c->at < c->end && strchr(",}] \t\r\n", *c->at) == NULL)) {
        return false;
    }
    *result = value;
    return true;
}

/* `{"key": N}` or a bare `N`. */
static bool read_u64(const uint8_t *input, size_t len, const char *key, uint64_t *result) {
    cursor c = {(const char *)input, (const char *)input + len};
    skip_space(&c);
    if (c.at < c.end && *c.at >= '0' && *c.at <= '9') {
        if (!parse_u64(&c, result)) {
            return false;
        }
        skip_space(&c);
        return c.at == c.end;
    }
    return find_member(input, len, key, &c) && parse_u64(&c, result);
}

/* Decodes the string member `key` into a malloc'd, NUL-terminated buffer (escapes \" \\ \/ \b
 * \f \n \r \t; \uXXXX becomes '?' unless it is ASCII). */
static char *read_string(const uint8_t *input, size_t len, const char *key, size_t *decoded_len) {
    cursor c;
    if (!find_member(input, len, key, &c) || c.at == c.end || *c.at != '"') {
        return NULL;
    }
    const char *start = c.at + 1;
    if (!skip_string(&c)) {
        return NULL;
    }
    const char *stop = c.at - 1;
    char *text = malloc((size_t)(stop - start) + 1);
    if (text == NULL) {
        return NULL;
    }
    size_t n = 0;
    for (const char *p = start; p < stop; p++) {
        if (*p != '\\') {
            text[n++] = *p;
            continue;
        }
        p++;
        switch (*p) {
        case 'b': text[n++] = '\b'; break;
        case 'f': text[n++] = '\f'; break;
        case 'n': text[n++] = '\n'; break;
        case 'r': text[n++] = '\r'; break;
        case 't': text[n++] = '\t'; break;
        case 'u': {
            unsigned code = 0;
            int digits = 0;
            while (digits < 4 && p + 1 < stop) {
                char h = *++p;
                unsigned v = (h >= '0' && h <= '9')   ? (unsigned)(h - '0')
                             : (h >= 'a' && h <= 'f') ? (unsigned)(h - 'a' + 10)
                             : (h >= 'A' && h <= 'F') ? (unsigned)(h - 'A' + 10)
                                                      : 0;
                code = code * 16 + v;
                digits++;
            }
            text[n++] = (code > 0 && code < 0x80) ? (char)code : '?';
            break;
        }
        default: text[n++] = *p; break; /* \" \\ \/ */
        }
    }
    text[n] = '\0';
    *decoded_len = n;
    return text;
}

/* ---- time --------------------------------------------------------------------------------- */

static double now_ms(void) {
#if defined(_WIN32)
    LARGE_INTEGER frequency, counter;
    QueryPerformanceFrequency(&frequency);
    QueryPerformanceCounter(&counter);
    return (double)counter.QuadPart * 1e3 / (double)frequency.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
#endif
}

static void sleep_ms(double ms) {
#if defined(_WIN32)
    Sleep(ms < 1.0 ? 1 : (DWORD)ms);
#else
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1e3);
    ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1e3) * 1e6);
    nanosleep(&ts, NULL);
#endif
}

/* ---- the tasks ---------------------------------------------------------------------------- */

static th_status echo(const uint8_t *input, size_t len, const th_host_context *ctx,
                      th_output *out) {
    (void)ctx;
    if (len == 0) {
        return TH_OK;
    }
    out->data = malloc(len);
    if (out->data == NULL) {
        return TH_FAILED;
    }
    memcpy(out->data, input, len);
    out->len = len;
    return TH_OK;
}

#define COLLATZ_MAX_N 10000000000ull

static th_status collatz(const uint8_t *input, size_t len, const th_host_context *ctx,
                         th_output *out) {
    uint64_t n;
    if (!read_u64(input, len, "n", &n) || n < 2 || n > COLLATZ_MAX_N) {
        return reply(out, TH_INVALID_INPUT,
                     "expected {\"n\": N} or a bare N, an integer from 2 to %llu",
                     (unsigned long long)COLLATZ_MAX_N);
    }
    uint64_t total = n - 1;
    uint64_t report_every = total / 100 > 0 ? total / 100 : 1;
    uint64_t best_start = 1, best_steps = 0;
    for (uint64_t start = 1; start < n; start++) {
        if ((start & 1023) == 0 && ctx->is_cancelled(ctx->host)) {
            return reply(out, TH_CANCELLED, "cancelled at start %llu of %llu",
                         (unsigned long long)start, (unsigned long long)total);
        }
        uint64_t x = start, steps = 0;
        while (x != 1) {
            if (x & 1) {
                if (x > (UINT64_MAX - 1) / 3) {
                    return reply(out, TH_FAILED, "the chain from %llu leaves 64 bits",
                                 (unsigned long long)start);
                }
                x = 3 * x + 1;
            } else {
                x >>= 1;
            }
            steps++;
        }
        if (steps > best_steps) {
            best_steps = steps;
            best_start = start;
        }
        if (start % report_every == 0 || start == total) {
            ctx->progress(ctx->host, start, total);
        }
    }
    return reply(out, TH_OK, "{\"n\":%llu,\"start\":%llu,\"steps\":%llu}", (unsigned long long)n,
                 (unsigned long long)best_start, (unsigned long long)best_steps);
}

static th_status sleep_task(const uint8_t *input, size_t len, const th_host_context *ctx,
                            th_output *out) {
    uint64_t ms;
    if (!read_u64(input, len, "ms", &ms)) {
        return reply(out, TH_INVALID_INPUT, "expected {\"ms\": N} or a bare N (milliseconds)");
    }
    double start = now_ms();
    double deadline = start + (double)ms;
    for (;;) {
        if (ctx->is_cancelled(ctx->host)) {
            return reply(out, TH_CANCELLED, "cancelled after %.1f ms", now_ms() - start);
        }
        double now = now_ms();
        if (now >= deadline) {
            break;
        }
        sleep_ms(deadline - now < 1.0 ? deadline - now : 1.0);
    }
    return reply(out, TH_OK, "{\"elapsed_ms\":%.3f}", now_ms() - start);
}

static th_status fail(const uint8_t *input, size_t len, const th_host_context *ctx,
                      th_output *out) {
    (void)ctx;
    size_t message_len;
    char *message = read_string(input, len, "message", &message_len);
    if (message == NULL) {
        return reply(out, TH_INVALID_INPUT, "expected {\"message\": \"...\"}");
    }
    /* The decoded message is already a malloc'd buffer: hand it over as it is. */
    out->data = (uint8_t *)message;
    out->len = message_len;
    return TH_FAILED;
}

/* The header's helpers: a string member in, a JSON string out, no allocation but the output. */
static th_status greet(const uint8_t *input, size_t len, const th_host_context *ctx,
                       th_output *out) {
    (void)ctx;
    char name[256];
    if (th_json_get_string(input, len, "name", name, sizeof name) < 0) {
        return reply(out, TH_INVALID_INPUT, "expected {\"name\": \"...\"} (at most 255 bytes)");
    }
    char greeting[300];
    int greeting_len = snprintf(greeting, sizeof greeting, "hello, %s", name);
    char quoted[2 + 6 * sizeof greeting];
    long quoted_len = th_json_put_string(greeting, (size_t)greeting_len, quoted, sizeof quoted);
    if (quoted_len < 0) {
        return reply(out, TH_FAILED, "the greeting does not fit");
    }
    return reply(out, TH_OK, "{\"greeting\":%.*s}", (int)quoted_len, quoted);
}

static th_status log_task(const uint8_t *input, size_t len, const th_host_context *ctx,
                          th_output *out) {
    static const struct {
        th_log_level level;
        const char *name;
    } levels[] = {
        {TH_LOG_ERROR, "error"}, {TH_LOG_WARN, "warn"},   {TH_LOG_INFO, "info"},
        {TH_LOG_DEBUG, "debug"}, {TH_LOG_TRACE, "trace"},
    };
    size_t message_len;
    char *message = read_string(input, len, "message", &message_len);
    if (message == NULL) {
        return reply(out, TH_INVALID_INPUT, "expected {\"message\": \"...\"}");
    }
    size_t count = sizeof levels / sizeof levels[0];
    for (size_t i = 0; i < count; i++) {
        char line[256];
        int n = snprintf(line, sizeof line, "%s (%s)", message, levels[i].name);
        size_t line_len = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
        ctx->log(ctx->host, levels[i].level, line, line_len);
    }
    free(message);
    return reply(out, TH_OK, "%zu", count);
}

/* ---- the descriptor ----------------------------------------------------------------------- */

static const th_task_type tasks[] = {
    {"echo", "returns its input bytes unchanged", echo},
    {"collatz", "{\"n\": N}: the start below N with the longest Collatz chain (CPU bound, honours cancellation)", collatz},
    {"sleep", "{\"ms\": N}: waits N milliseconds, polling cancellation every millisecond", sleep_task},
    {"fail", "{\"message\": \"...\"}: fails with that message", fail},
    {"log", "{\"message\": \"...\"}: logs the message at every level", log_task},
    {"greet", "{\"name\": \"...\"}: a greeting, with the header's JSON helpers", greet},
};

static const th_plugin_descriptor descriptor = {
    .magic = TH_PLUGIN_MAGIC,
    .abi_major = TH_ABI_VERSION_MAJOR,
    .abi_minor = TH_ABI_VERSION_MINOR,
    .name = "csample",
    .version = "0.1.0",
    .metadata = "{\"language\":\"c\"}",
    .tasks = tasks,
    .task_count = sizeof tasks / sizeof tasks[0],
    .free_buffer = free_buffer,
};

TH_EXPORT const th_plugin_descriptor *taskhost_plugin_descriptor(void) {
    return &descriptor;
}
