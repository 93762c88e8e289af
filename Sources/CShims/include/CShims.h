#ifndef MINEWATCH_CSHIMS_H
#define MINEWATCH_CSHIMS_H
#include <stddef.h>
#include <stdint.h>

/* gzip inflate: ISA-L's igzip (libisal.so.2, loaded at run time; gzip only) or the system zlib
   (linked; gzip and zlib headers). */
enum { MW_INFLATE_AUTO = 0, MW_INFLATE_ZLIB = 1, MW_INFLATE_ISAL = 2 };
int mw_isal_available(void);
typedef struct mw_inflate mw_inflate;
/* NULL when out of memory, or when MW_INFLATE_ISAL is asked for and ISA-L is missing. */
mw_inflate *mw_inflate_new(int backend);
const char *mw_inflate_backend(mw_inflate *s);
void mw_inflate_free(mw_inflate *s);
/* Returns zlib's status (Z_OK 0, Z_STREAM_END 1, negative on error). */
int mw_inflate_step(mw_inflate *s, const uint8_t *in, size_t in_len, size_t *consumed,
                    uint8_t *out, size_t out_len, size_t *produced);
int mw_inflate_reset(mw_inflate *s);
const char *mw_inflate_message(mw_inflate *s);

/* zstd decompression, loaded at run time from libzstd.so.1 so that building needs no -dev package. */
int mw_zstd_available(void);
typedef struct mw_zstd mw_zstd;
mw_zstd *mw_zstd_new(void);
void mw_zstd_free(mw_zstd *s);
/* Returns 0 when a frame ended, 1 when more input or output is needed, -1 on error (see mw_zstd_error). */
int mw_zstd_step(mw_zstd *s, const uint8_t *in, size_t in_len, size_t *consumed,
                 uint8_t *out, size_t out_len, size_t *produced);
const char *mw_zstd_error(mw_zstd *s);

/* LZMA1 decoding with the system liblzma (loaded at run time from liblzma.so.5): the .lzma
   ("alone") decoder. Returns liblzma's status: 0 LZMA_OK, 1 LZMA_STREAM_END, others errors
   (6 memory limit, 7 format, 8 options, 9 data, 10 buffer). */
int mw_lzma_available(void);
typedef struct mw_lzma mw_lzma;
mw_lzma *mw_lzma_new(uint64_t memlimit);
void mw_lzma_free(mw_lzma *d);
int mw_lzma_step(mw_lzma *d, const uint8_t *in, size_t in_len, size_t *consumed,
                 uint8_t *out, size_t out_len, size_t *produced);

/* A socket created inside the network namespace `nsfd` (an open /proc/<pid>/ns/net). The calling
   thread enters the namespace, creates the socket and returns to its own namespace before
   returning; the socket stays bound to the target namespace. Returns the fd or -errno. Needs
   CAP_SYS_ADMIN. */
int mw_socket_in_netns(int nsfd, int domain, int type, int protocol);
/* Moves the calling thread into the cgroup namespace `nsfd` (threads it creates later follow).
   Returns 0 or -errno. */
int mw_setns_cgroup(int nsfd);

/* zlib compress2 (for the compression workload). Returns zlib's status; *out_len is in/out. */
int mw_compress(uint8_t *out, size_t *out_len, const uint8_t *in, size_t in_len, int level);
size_t mw_compress_bound(size_t in_len);

/* A TPACKET_V3 receive ring on an AF_PACKET socket (all interfaces of the socket's namespace),
   every packet cut to `snaplen` bytes by a one-instruction BPF filter. Returns 0 or -errno;
   *ring is the mapping of block_size * block_nr bytes. */
int mw_packet_ring(int fd, unsigned block_size, unsigned block_nr, unsigned retire_ms, unsigned snaplen, void **ring);
int mw_packet_ring_unmap(void *ring, size_t size);
/* Acquire-load of a ring block's status word, and release-store of 0 (hand it back). */
unsigned mw_block_status(const void *block);
void mw_block_release(void *block);
/* Kernel drop counter of the socket since the last call (PACKET_STATISTICS), or -1. */
long mw_packet_drops(int fd);

/* epoll for many descriptors read for input: a new set (close-on-exec) or -1; add one descriptor
   (0, or -errno; -EEXIST when it is in already); wait up to `timeout_ms` and write the ready
   descriptors into `fds` (at most `max`), returning how many, or -errno. */
int mw_epoll_new(void);
int mw_epoll_add(int ep, int fd);
int mw_epoll_wait(int ep, int *fds, int max, int timeout_ms);

/* An anonymous in-memory file (memfd_create), for feeding bytes to readers that open paths. */
int mw_memfd(const char *name);

/* O_PATH (glibc shows it only under _GNU_SOURCE; the same value on x86_64 and arm64) and the
   RESOLVE_* flags of openat2. */
#include <linux/openat2.h>
#define MW_O_PATH 010000000
/* openat2(2) with an open_how of {flags, mode, resolve}. Returns the fd or -errno (-ENOSYS where
   the kernel or a seccomp filter lacks it). */
int mw_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
/* The filesystem type (statfs f_type) of an open file, or -1. */
long mw_fs_type(int fd);

/* Reads `len` bytes at `addr` of process `pid` with process_vm_readv (no stop, no ptrace
   attach; needs PTRACE_MODE_ATTACH). Returns bytes read (may be short at an unmapped page) or -errno. */
long mw_vm_read(int pid, uint64_t addr, void *buf, size_t len);

/* One sample of a thread's saved SSE control/status register: PTRACE_SEIZE, PTRACE_INTERRUPT,
   wait for the stop (at most `wait_us`), PTRACE_GETFPREGS, PTRACE_DETACH, all on the calling
   thread (ptrace binds a tracee to the thread that seized it). The thread is stopped only between
   the interrupt and the detach; *stopped_ns says how long. Returns 0, or -errno (-ETIMEDOUT when it
   did not stop in time: it is then detached as soon as it stops, by mw_fpu_reap). x86-64 only;
   -ENOSYS elsewhere. */
int mw_fpu_sample(int tid, unsigned wait_us, uint32_t *mxcsr, uint64_t *stopped_ns);
/* Detaches a thread left seized by a timed-out sample once it has stopped: 1 done, 0 not yet, -errno. */
int mw_fpu_reap(int tid);

/* libFuzzer's driver (linked only into mw-fuzz built with -sanitize=fuzzer). */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

/* memmem, for byte substring tests. */
const void *mw_memmem(const void *haystack, size_t haystack_len, const void *needle, size_t needle_len);

#endif
