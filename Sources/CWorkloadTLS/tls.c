#include "CWorkloadTLS.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *(*p_client_method)(void);
static void *(*p_server_method)(void);
static void *(*p_ctx_new)(const void *);
static int (*p_ctx_cert)(void *, const char *);
static int (*p_ctx_key)(void *, const char *, int);
static void *(*p_new)(void *);
static void (*p_free)(void *);
static int (*p_set_fd)(void *, int);
static int (*p_connect)(void *);
static int (*p_accept)(void *);
static int (*p_read)(void *, void *, int);
static int (*p_write)(void *, const void *, int);
static long (*p_ctrl)(void *, int, long, void *);
static int (*p_shutdown)(void *);
static int (*p_pending)(const void *);
static void (*p_ctx_free)(void *);
static unsigned long (*p_err_get)(void);
static void (*p_err_string)(unsigned long, char *, size_t);
static int loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static __thread char last_error[256];

struct mw_tls { void *ssl; void *ctx; int own_ctx; };

static void load(void) {
    void *h = dlopen("libssl.so.3", RTLD_NOW | RTLD_GLOBAL);
    if (!h) h = dlopen("libssl.so", RTLD_NOW | RTLD_GLOBAL);
    void *c = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_GLOBAL);
    if (!c) c = dlopen("libcrypto.so", RTLD_NOW | RTLD_GLOBAL);
    if (!h || !c) return;
    p_client_method = dlsym(h, "TLS_client_method");
    p_server_method = dlsym(h, "TLS_server_method");
    p_ctx_new = dlsym(h, "SSL_CTX_new");
    p_ctx_cert = dlsym(h, "SSL_CTX_use_certificate_chain_file");
    p_ctx_key = dlsym(h, "SSL_CTX_use_PrivateKey_file");
    p_new = dlsym(h, "SSL_new");
    p_free = dlsym(h, "SSL_free");
    p_set_fd = dlsym(h, "SSL_set_fd");
    p_connect = dlsym(h, "SSL_connect");
    p_accept = dlsym(h, "SSL_accept");
    p_read = dlsym(h, "SSL_read");
    p_write = dlsym(h, "SSL_write");
    p_ctrl = dlsym(h, "SSL_ctrl");
    p_shutdown = dlsym(h, "SSL_shutdown");
    p_pending = dlsym(h, "SSL_pending");
    p_ctx_free = dlsym(h, "SSL_CTX_free");
    p_err_get = dlsym(c, "ERR_get_error");
    p_err_string = dlsym(c, "ERR_error_string_n");
    loaded = p_client_method && p_server_method && p_ctx_new && p_ctx_cert && p_ctx_key && p_new && p_free && p_set_fd
        && p_connect && p_accept && p_read && p_write && p_ctrl && p_shutdown && p_pending && p_ctx_free && p_err_get && p_err_string;
}

static int ready(void) {
    pthread_once(&once, load);
    if (!loaded) snprintf(last_error, sizeof last_error, "libssl.so.3 not found");
    return loaded;
}

static void remember(const char *what) {
    unsigned long e = p_err_get ? p_err_get() : 0;
    char text[200] = "";
    if (e && p_err_string) p_err_string(e, text, sizeof text);
    snprintf(last_error, sizeof last_error, "%s: %s", what, text[0] ? text : "failed");
}

const char *mw_tls_error(void) { return last_error; }

mw_tls *mw_tls_client(int fd, const char *sni) {
    if (!ready()) return NULL;
    void *ctx = p_ctx_new(p_client_method());
    if (!ctx) { remember("SSL_CTX_new"); return NULL; }
    void *ssl = p_new(ctx);
    if (!ssl) { remember("SSL_new"); return NULL; }
    p_set_fd(ssl, fd);
    if (sni && *sni) p_ctrl(ssl, 55 /* SSL_CTRL_SET_TLSEXT_HOSTNAME */, 0 /* host_name */, (void *)sni);
    if (p_connect(ssl) != 1) { remember("handshake"); p_free(ssl); p_ctx_free(ctx); return NULL; }
    mw_tls *t = calloc(1, sizeof *t);
    t->ssl = ssl; t->ctx = ctx; t->own_ctx = 1;
    return t;
}

void *mw_tls_server_ctx(const char *cert_file, const char *key_file) {
    if (!ready()) return NULL;
    void *ctx = p_ctx_new(p_server_method());
    if (!ctx) { remember("SSL_CTX_new"); return NULL; }
    if (p_ctx_cert(ctx, cert_file) != 1) { remember("certificate"); return NULL; }
    if (p_ctx_key(ctx, key_file, 1 /* PEM */) != 1) { remember("private key"); return NULL; }
    return ctx;
}

mw_tls *mw_tls_accept(void *ctx, int fd) {
    if (!ready() || !ctx) return NULL;
    void *ssl = p_new(ctx);
    if (!ssl) { remember("SSL_new"); return NULL; }
    p_set_fd(ssl, fd);
    if (p_accept(ssl) != 1) { remember("handshake"); p_free(ssl); return NULL; }
    mw_tls *t = calloc(1, sizeof *t);
    t->ssl = ssl; t->ctx = ctx;
    return t;
}

long mw_tls_read(mw_tls *t, void *buf, size_t n) {
    int r = p_read(t->ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n);
    return r > 0 ? r : (r == 0 ? 0 : -1);
}

long mw_tls_write(mw_tls *t, const void *buf, size_t n) {
    int r = p_write(t->ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n);
    return r > 0 ? r : -1;
}

int mw_tls_pending(mw_tls *t) { return p_pending(t->ssl); }

void mw_tls_free(mw_tls *t) {
    if (!t) return;
    p_shutdown(t->ssl);
    p_free(t->ssl);
    if (t->own_ctx) p_ctx_free(t->ctx);
    free(t);
}
