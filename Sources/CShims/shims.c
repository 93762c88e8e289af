#define _GNU_SOURCE
#include "CShims.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/mman.h>
#include <linux/if_packet.h>
#include <linux/filter.h>
#include <arpa/inet.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <linux/openat2.h>
#include <sys/uio.h>
#include <sys/ptrace.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#if defined(__x86_64__)
#include <sys/user.h>
#endif

/* ---- gzip inflate: ISA-L's igzip (loaded at run time from libisal.so.2) when present, zlib otherwise.
   Both report in zlib's terms: 1 at the end of a member (its trailer checked), 0 for progress, -5 for
   no progress possible with this input, another negative value for bad data (message kept). */
#if __has_include(<isa-l/igzip_lib.h>)
#include <isa-l/igzip_lib.h>
#define MW_HAVE_ISAL_HEADER 1
static void (*p_isal_init)(struct inflate_state *);
static void (*p_isal_reset)(struct inflate_state *);
static int (*p_isal_inflate)(struct inflate_state *);
static pthread_once_t isal_once = PTHREAD_ONCE_INIT;
static int isal_ok;
static void isal_load(void) {
    void *h = dlopen("libisal.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    p_isal_init = (void (*)(struct inflate_state *))dlsym(h, "isal_inflate_init");
    p_isal_reset = (void (*)(struct inflate_state *))dlsym(h, "isal_inflate_reset");
    p_isal_inflate = (int (*)(struct inflate_state *))dlsym(h, "isal_inflate");
    isal_ok = p_isal_init && p_isal_reset && p_isal_inflate;
}
#endif

int mw_isal_available(void) {
#ifdef MW_HAVE_ISAL_HEADER
    pthread_once(&isal_once, isal_load);
    return isal_ok;
#else
    return 0;
#endif
}

struct mw_inflate {
    int isal;
    const char *msg;
    z_stream z;
#ifdef MW_HAVE_ISAL_HEADER
    struct inflate_state *st;
#endif
};

mw_inflate *mw_inflate_new(int backend) {
    mw_inflate *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    int want_isal = backend == MW_INFLATE_ISAL || (backend == MW_INFLATE_AUTO && mw_isal_available());
    if (want_isal) {
#ifdef MW_HAVE_ISAL_HEADER
        if (!mw_isal_available()) { free(s); return NULL; }
        s->st = calloc(1, sizeof(*s->st));
        if (!s->st) { free(s); return NULL; }
        p_isal_init(s->st);
        s->st->crc_flag = ISAL_GZIP;
        s->isal = 1;
        return s;
#else
        free(s);
        return NULL;
#endif
    }
    /* 15 + 32: accept gzip and zlib headers, largest window. */
    if (inflateInit2(&s->z, 15 + 32) != Z_OK) { free(s); return NULL; }
    return s;
}

const char *mw_inflate_backend(mw_inflate *s) { return s->isal ? "isa-l" : "zlib"; }

void mw_inflate_free(mw_inflate *s) {
    if (!s) return;
#ifdef MW_HAVE_ISAL_HEADER
    if (s->isal) { free(s->st); free(s); return; }
#endif
    inflateEnd(&s->z);
    free(s);
}

#ifdef MW_HAVE_ISAL_HEADER
static const char *isal_message(int rc) {
    switch (rc) {
    case ISAL_INVALID_BLOCK: return "invalid deflate block";
    case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK: return "invalid distance too far back";
    case ISAL_INVALID_WRAPPER: return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD: return "unknown compression method";
    case ISAL_INCORRECT_CHECKSUM: return "incorrect data check";
    case ISAL_NEED_DICT: return "needs a preset dictionary";
    default: return "invalid compressed data";
    }
}
#endif

int mw_inflate_step(mw_inflate *s, const uint8_t *in, size_t in_len, size_t *consumed,
                    uint8_t *out, size_t out_len, size_t *produced) {
    if (in_len > UINT32_MAX) in_len = UINT32_MAX;
    if (out_len > UINT32_MAX) out_len = UINT32_MAX;
#ifdef MW_HAVE_ISAL_HEADER
    if (s->isal) {
        struct inflate_state *st = s->st;
        st->next_in = (uint8_t *)in;
        st->avail_in = (uint32_t)in_len;
        st->next_out = out;
        st->avail_out = (uint32_t)out_len;
        int rc = p_isal_inflate(st);
        *consumed = in_len - st->avail_in;
        *produced = out_len - st->avail_out;
        if (rc < 0 || rc == ISAL_NEED_DICT) { s->msg = isal_message(rc); return -3; }
        if (st->block_state == ISAL_BLOCK_FINISH) return 1;
        if (*consumed == 0 && *produced == 0) return -5;
        return 0;
    }
#endif
    s->z.next_in = (Bytef *)in;
    s->z.avail_in = (uInt)in_len;
    s->z.next_out = out;
    s->z.avail_out = (uInt)out_len;
    int rc = inflate(&s->z, Z_NO_FLUSH);
    *consumed = in_len - s->z.avail_in;
    *produced = out_len - s->z.avail_out;
    return rc;
}

int mw_inflate_reset(mw_inflate *s) {
#ifdef MW_HAVE_ISAL_HEADER
    if (s->isal) { p_isal_reset(s->st); s->st->crc_flag = ISAL_GZIP; return 0; }
#endif
    return inflateReset(&s->z);
}

const char *mw_inflate_message(mw_inflate *s) {
    if (s->isal) return s->msg ? s->msg : "invalid compressed data";
    return s->z.msg ? s->z.msg : "invalid compressed data";
}

/* ---- zstd through dlopen ---- */
typedef struct { const void *src; size_t size; size_t pos; } zin_t;
typedef struct { void *dst; size_t size; size_t pos; } zout_t;
static void *(*p_create)(void);
static size_t (*p_free)(void *);
static size_t (*p_decompress)(void *, zout_t *, zin_t *);
static unsigned (*p_is_error)(size_t);
static const char *(*p_error_name)(size_t);
static int zstd_loaded;
static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;

static void zstd_load(void) {
    void *h = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libzstd.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    p_create = (void *(*)(void))dlsym(h, "ZSTD_createDStream");
    p_free = (size_t (*)(void *))dlsym(h, "ZSTD_freeDStream");
    p_decompress = (size_t (*)(void *, zout_t *, zin_t *))dlsym(h, "ZSTD_decompressStream");
    p_is_error = (unsigned (*)(size_t))dlsym(h, "ZSTD_isError");
    p_error_name = (const char *(*)(size_t))dlsym(h, "ZSTD_getErrorName");
    zstd_loaded = p_create && p_free && p_decompress && p_is_error && p_error_name;
}

int mw_zstd_available(void) {
    pthread_once(&zstd_once, zstd_load);
    return zstd_loaded;
}

struct mw_zstd { void *ctx; size_t last; };

mw_zstd *mw_zstd_new(void) {
    if (!mw_zstd_available()) return NULL;
    mw_zstd *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->ctx = p_create();
    if (!s->ctx) { free(s); return NULL; }
    return s;
}

void mw_zstd_free(mw_zstd *s) {
    if (!s) return;
    if (s->ctx) p_free(s->ctx);
    free(s);
}

int mw_zstd_step(mw_zstd *s, const uint8_t *in, size_t in_len, size_t *consumed,
                 uint8_t *out, size_t out_len, size_t *produced) {
    zin_t zi = { in, in_len, 0 };
    zout_t zo = { out, out_len, 0 };
    size_t rc = p_decompress(s->ctx, &zo, &zi);
    *consumed = zi.pos;
    *produced = zo.pos;
    s->last = rc;
    if (p_is_error(rc)) return -1;
    return rc == 0 ? 0 : 1;
}

const char *mw_zstd_error(mw_zstd *s) { return p_error_name(s->last); }

int mw_socket_in_netns(int nsfd, int domain, int type, int protocol) {
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0) return -errno;
    if (setns(nsfd, CLONE_NEWNET) != 0) { int e = errno; close(self); return -e; }
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    int err = fd < 0 ? errno : 0;
    if (setns(self, CLONE_NEWNET) != 0) {
        /* Could not return: this thread would stay in the container's namespace. Nothing safe to
           do but stop. */
        abort();
    }
    close(self);
    return fd < 0 ? -err : fd;
}

int mw_setns_cgroup(int nsfd) {
    return setns(nsfd, CLONE_NEWCGROUP) == 0 ? 0 : -errno;
}

int mw_compress(uint8_t *out, size_t *out_len, const uint8_t *in, size_t in_len, int level) {
    uLongf n = (uLongf)*out_len;
    int rc = compress2(out, &n, in, (uLong)in_len, level);
    *out_len = (size_t)n;
    return rc;
}

size_t mw_compress_bound(size_t in_len) { return (size_t)compressBound((uLong)in_len); }

/* The ring's filter: every packet cut to snaplen, except what the analysis cannot use. Left out:
   TCP segments that carry nothing but an acknowledgement (no payload; no SYN, FIN or RST): the
   analysis reads payload, openings and closings, and a bulk transfer's acknowledgements were a
   third of its packets, each a decode and a flow lookup; ARP, and IP packets that are neither
   TCP nor UDP (ICMP, ICMPv6's neighbour discovery and router solicitations, IGMP), which the
   decoder drops anyway: on a bridge of hundreds of containers every idle one receives the others'
   broadcasts, and each made its ring hand a block over. Only Ethernet-framed devices (and
   loopback, framed the same) are parsed; IPv4 fragments, IPv6 with extension headers and VLAN
   frames are kept whole. */
int mw_packet_ring(int fd, unsigned block_size, unsigned block_nr, unsigned retire_ms, unsigned snaplen, void **ring) {
    struct sock_filter code[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_HATYPE),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1 /* ARPHRD_ETHER */, 1, 0),
        /* 2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 772 /* ARPHRD_LOOPBACK */, 0, 32),
        /* 3 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
        /* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 14),
        /* IPv4 */
        /* 5 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),
        /* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 23),
        /* 7 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 20),
        /* 8 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, 26, 0),
        /* 9 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),
        /* 10 */ BPF_STMT(BPF_LD | BPF_B | BPF_IND, 14 + 13),
        /* 11 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x07, 23, 0),
        /* 12 */ BPF_STMT(BPF_LD | BPF_B | BPF_IND, 14 + 12),
        /* 13 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 2),
        /* 14 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x3c),
        /* 15 */ BPF_STMT(BPF_ALU | BPF_ADD | BPF_X, 0),
        /* 16 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 17 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 16),
        /* 18 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_X, 0, 16, 15),
        /* 19 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, 0, 13),
        /* IPv6 without extension headers */
        /* 20 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 6),
        /* 21 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 9),
        /* 22 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 40 + 13),
        /* 23 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x07, 11, 0),
        /* 24 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 40 + 12),
        /* 25 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 2),
        /* 26 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x3c),
        /* 27 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 28 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 14 + 4),
        /* 29 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_X, 0, 5, 4),
        /* IPv4, not TCP: UDP kept */
        /* 30 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 4, 3),
        /* IPv6, not TCP: UDP kept, ICMPv6 left out, extension headers kept */
        /* 31 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 3, 0),
        /* 32 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 58, 1, 2),
        /* neither IPv4 nor IPv6: ARP left out, the rest (VLAN tags) kept */
        /* 33 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0806, 0, 1),
        /* 34 */ BPF_STMT(BPF_RET | BPF_K, 0),  /* left out */
        /* 35 */ BPF_STMT(BPF_RET | BPF_K, snaplen),  /* kept, cut to snaplen */
    };
    struct sock_fprog prog = { (unsigned short)(sizeof(code) / sizeof(code[0])), code };
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) != 0) return -errno;
    int v = TPACKET_V3;
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) != 0) return -errno;
    struct tpacket_req3 req;
    memset(&req, 0, sizeof(req));
    req.tp_block_size = block_size;
    req.tp_block_nr = block_nr;
    req.tp_frame_size = 2048;
    req.tp_frame_nr = (block_size / 2048) * block_nr;
    req.tp_retire_blk_tov = retire_ms;
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0) return -errno;
    void *m = mmap(NULL, (size_t)block_size * block_nr, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return -errno;
    *ring = m;
    return 0;
}

int mw_packet_ring_unmap(void *ring, size_t size) { return munmap(ring, size); }

long mw_packet_drops(int fd) {
    struct tpacket_stats_v3 st;
    socklen_t len = sizeof(st);
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return -1;
    return (long)st.tp_drops;
}

unsigned mw_block_status(const void *block) {
    return __atomic_load_n((const unsigned *)((const char *)block + 8), __ATOMIC_ACQUIRE);
}
void mw_block_release(void *block) {
    __atomic_store_n((unsigned *)((char *)block + 8), 0u, __ATOMIC_RELEASE);
}

int mw_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

/* ---- liblzma through dlopen: the .lzma ("alone") decoder, fed a header built from UPX's
   lc/lp/pb and the known size, so only lzma_stream's stable ABI (liblzma 5.x) is needed. ---- */
typedef struct {
    const uint8_t *next_in; size_t avail_in; uint64_t total_in;
    uint8_t *next_out; size_t avail_out; uint64_t total_out;
    const void *allocator; void *internal;
    void *reserved_ptr1, *reserved_ptr2, *reserved_ptr3, *reserved_ptr4;
    uint64_t seek_pos, reserved_int2;
    size_t reserved_int3, reserved_int4;
    int reserved_enum1, reserved_enum2;
} mw_lzma_stream_abi;
static int (*p_alone_decoder)(mw_lzma_stream_abi *, uint64_t);
static int (*p_lzma_code)(mw_lzma_stream_abi *, int);
static void (*p_lzma_end)(mw_lzma_stream_abi *);
static int lzma_loaded;
static pthread_once_t lzma_once = PTHREAD_ONCE_INIT;

static void lzma_load(void) {
    void *h = dlopen("liblzma.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("liblzma.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    p_alone_decoder = (int (*)(mw_lzma_stream_abi *, uint64_t))dlsym(h, "lzma_alone_decoder");
    p_lzma_code = (int (*)(mw_lzma_stream_abi *, int))dlsym(h, "lzma_code");
    p_lzma_end = (void (*)(mw_lzma_stream_abi *))dlsym(h, "lzma_end");
    lzma_loaded = p_alone_decoder && p_lzma_code && p_lzma_end;
}

int mw_lzma_available(void) {
    pthread_once(&lzma_once, lzma_load);
    return lzma_loaded;
}

struct mw_lzma { mw_lzma_stream_abi s; };

mw_lzma *mw_lzma_new(uint64_t memlimit) {
    if (!mw_lzma_available()) return NULL;
    mw_lzma *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    if (p_alone_decoder(&d->s, memlimit) != 0) { free(d); return NULL; }
    return d;
}

void mw_lzma_free(mw_lzma *d) {
    if (!d) return;
    p_lzma_end(&d->s);
    free(d);
}

int mw_lzma_step(mw_lzma *d, const uint8_t *in, size_t in_len, size_t *consumed,
                 uint8_t *out, size_t out_len, size_t *produced) {
    d->s.next_in = in; d->s.avail_in = in_len;
    d->s.next_out = out; d->s.avail_out = out_len;
    int rc = p_lzma_code(&d->s, 0 /* LZMA_RUN */);
    *consumed = in_len - d->s.avail_in;
    *produced = out_len - d->s.avail_out;
    return rc;
}

/* openat2 is 437 on every architecture; a libc older than the kernel may not name it. */
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
_Static_assert(MW_O_PATH == O_PATH, "MW_O_PATH must be this platform's O_PATH");

int mw_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
#ifdef SYS_openat2
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    return fd < 0 ? -errno : (int)fd;
#else
    (void)dirfd; (void)path; (void)flags; (void)mode; (void)resolve;
    return -ENOSYS;
#endif
}

long mw_fs_type(int fd) {
    struct statfs fs;
    return fstatfs(fd, &fs) == 0 ? (long)fs.f_type : -1;
}

long mw_vm_read(int pid, uint64_t addr, void *buf, size_t len) {
  struct iovec local = { buf, len };
  struct iovec remote = { (void *)(uintptr_t)addr, len };
  ssize_t n = process_vm_readv((pid_t)pid, &local, 1, &remote, 1, 0);
  return n < 0 ? -errno : (long)n;
}

static uint64_t mw_now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int mw_fpu_sample(int tid, unsigned wait_us, uint32_t *mxcsr, uint64_t *stopped_ns) {
#if defined(__x86_64__)
  if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0) return -errno;
  uint64_t start = mw_now_ns();
  if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0) {
    int e = errno;
    ptrace(PTRACE_DETACH, tid, 0, 0);
    return -e;
  }
  int status = 0;
  /* A running thread stops within microseconds; one of a throttled cgroup when the cgroup runs
     again (within a CFS period). Naps grow from 20 us to 2 ms so the wait costs little CPU. */
  long nap_ns = 20000;
  for (;;) {
    pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
    if (r == tid) break;
    if (r < 0) return -errno;  /* gone */
    if (mw_now_ns() - start > (uint64_t)wait_us * 1000ull) return -ETIMEDOUT;
    struct timespec nap = { 0, nap_ns };
    nanosleep(&nap, 0);
    if (nap_ns < 2000000) nap_ns *= 2;
  }
  if (WIFEXITED(status) || WIFSIGNALED(status)) return -ESRCH;
  struct user_fpregs_struct f;
  int rc = 0;
  if (ptrace(PTRACE_GETFPREGS, tid, 0, &f) != 0) rc = -errno; else *mxcsr = f.mxcsr;
  /* A signal-delivery stop would lose its signal on a plain detach: hand it back. */
  int sig = 0;
  if (WIFSTOPPED(status) && (status >> 16) != PTRACE_EVENT_STOP) sig = WSTOPSIG(status);
  ptrace(PTRACE_DETACH, tid, 0, (void *)(uintptr_t)sig);
  *stopped_ns = mw_now_ns() - start;
  return rc;
#else
  (void)tid; (void)wait_us; (void)mxcsr; (void)stopped_ns;
  return -ENOSYS;
#endif
}

int mw_fpu_reap(int tid) {
  int status = 0;
  pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
  if (r < 0) return -errno;
  if (r == 0) return 0;
  if (WIFEXITED(status) || WIFSIGNALED(status)) return 1;
  int sig = 0;
  if (WIFSTOPPED(status) && (status >> 16) != PTRACE_EVENT_STOP) sig = WSTOPSIG(status);
  ptrace(PTRACE_DETACH, tid, 0, (void *)(uintptr_t)sig);
  return 1;
}

/* memmem (a GNU extension, so not in Swift's Glibc module). */
const void *mw_memmem(const void *haystack, size_t haystack_len, const void *needle, size_t needle_len) {
    return memmem(haystack, haystack_len, needle, needle_len);
}

int mw_epoll_new(void) { return epoll_create1(EPOLL_CLOEXEC); }

int mw_epoll_add(int ep, int fd) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

int mw_epoll_wait(int ep, int *fds, int max, int timeout_ms) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    if (max <= 0) return -EINVAL;
    int n = epoll_wait(ep, evs, max, timeout_ms);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) fds[i] = evs[i].data.fd;
    return n;
}
