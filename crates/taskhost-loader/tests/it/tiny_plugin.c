/*
 * A tiny C plugin the loader's tests compile with `cc`, in variants chosen with -D flags:
 *
 *   -DTH_TEST_MAGIC=0x...      another magic number
 *   -DTH_TEST_MAJOR=n          another ABI major version
 *   -DTH_TEST_MINOR=n          another ABI minor version
 *   -DTH_TEST_NAME='"x"'       another plugin name
 *   -DTH_TEST_NULL_DESCRIPTOR  the descriptor function returns NULL
 *   -DTH_TEST_NULL_RUN         the task `fail` has no run function
 *
 * Tasks: `fail` (failed, with a message), `odd` (a status the ABI does not define),
 * `silent` (panicked, without a message), `callbacks` (calls every host callback) and `frees`
 * (how many buffers the host has handed back to free_buffer so far).
 */
#include "taskhost_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TH_TEST_MAGIC
#define TH_TEST_MAGIC TH_PLUGIN_MAGIC
#endif
#ifndef TH_TEST_MAJOR
#define TH_TEST_MAJOR TH_ABI_VERSION_MAJOR
#endif
#ifndef TH_TEST_MINOR
#define TH_TEST_MINOR TH_ABI_VERSION_MINOR
#endif
#ifndef TH_TEST_NAME
#define TH_TEST_NAME "tiny"
#endif

static unsigned long frees_so_far = 0;

static void free_buffer(uint8_t *data, size_t len) {
    (void)len;
    frees_so_far++;
    free(data);
}

static th_status say(th_output *out, th_status status, const char *text) {
    size_t len = strlen(text);
    if (len > 0) {
        out->data = malloc(len);
        if (out->data == NULL) {
            return TH_FAILED;
        }
        memcpy(out->data, text, len);
        out->len = len;
    }
    return status;
}

#ifndef TH_TEST_NULL_RUN
static th_status fail(const uint8_t *input, size_t len, const th_host_context *ctx,
                      th_output *out) {
    (void)input, (void)len, (void)ctx;
    return say(out, TH_FAILED, "no such file: data.bin");
}
#endif

static th_status odd(const uint8_t *input, size_t len, const th_host_context *ctx,
                     th_output *out) {
    (void)input, (void)len, (void)ctx;
    return say(out, 42, "what is this");
}

static th_status silent(const uint8_t *input, size_t len, const th_host_context *ctx,
                        th_output *out) {
    (void)input, (void)len, (void)ctx, (void)out;
    return TH_PANICKED;
}

static th_status callbacks(const uint8_t *input, size_t len, const th_host_context *ctx,
                           th_output *out) {
    (void)input, (void)len;
    ctx->log(ctx->host, TH_LOG_WARN, "careful", 7);
    ctx->log(ctx->host, 99, "odd level \xff", 11);
    ctx->log(ctx->host, TH_LOG_DEBUG, NULL, 0);
    ctx->progress(ctx->host, 1, TH_PROGRESS_TOTAL_UNKNOWN);
    ctx->progress(ctx->host, 2, 3);
    bool cancelled = ctx->is_cancelled(ctx->host);
    return say(out, TH_OK, cancelled ? "\"cancelled\"" : "\"running\"");
}

static th_status frees(const uint8_t *input, size_t len, const th_host_context *ctx,
                       th_output *out) {
    (void)input, (void)len, (void)ctx;
    char text[32];
    snprintf(text, sizeof text, "%lu", frees_so_far);
    return say(out, TH_OK, text);
}

static const th_task_type tasks[] = {
#ifdef TH_TEST_NULL_RUN
    {"fail", "has no run function", NULL},
#else
    {"fail", "fails with a message", fail},
#endif
    {"odd", "returns status 42", odd},
    {"silent", "returns TH_PANICKED without a message", silent},
    {"callbacks", "calls every host callback", callbacks},
    {"frees", "counts the buffers freed", frees},
};

static const th_plugin_descriptor descriptor = {
    .magic = TH_TEST_MAGIC,
    .abi_major = TH_TEST_MAJOR,
    .abi_minor = TH_TEST_MINOR,
    .name = TH_TEST_NAME,
    .version = "9.9.9",
    .metadata = NULL,
    .tasks = tasks,
    .task_count = sizeof tasks / sizeof tasks[0],
    .free_buffer = free_buffer,
};

TH_EXPORT const th_plugin_descriptor *taskhost_plugin_descriptor(void) {
#ifdef TH_TEST_NULL_DESCRIPTOR
    (void)descriptor;
    return NULL;
#else
    return &descriptor;
#endif
}
