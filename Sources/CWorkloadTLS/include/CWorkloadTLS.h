#ifndef MINEWATCH_CWORKLOADTLS_H
#define MINEWATCH_CWORKLOADTLS_H
#include <stddef.h>

/* TLS for the test workloads only (mw-workload): the system's OpenSSL (libssl.so.3), loaded at
   run time so that building needs no -dev package. Clients do not verify certificates: they
   talk to the test's own servers on a test network. */
typedef struct mw_tls mw_tls;
/* Text of the last failure on this thread. */
const char *mw_tls_error(void);
/* A handshake as a client on a connected socket, sending `sni` as the server name. */
mw_tls *mw_tls_client(int fd, const char *sni);
/* A server context from PEM files; NULL on failure. */
void *mw_tls_server_ctx(const char *cert_file, const char *key_file);
mw_tls *mw_tls_accept(void *ctx, int fd);
/* >0 bytes, 0 at the end of the stream, <0 on error. */
long mw_tls_read(mw_tls *t, void *buf, size_t n);
long mw_tls_write(mw_tls *t, const void *buf, size_t n);
/* Bytes already decrypted and waiting to be read (poll() does not see them). */
int mw_tls_pending(mw_tls *t);
void mw_tls_free(mw_tls *t);

#endif
