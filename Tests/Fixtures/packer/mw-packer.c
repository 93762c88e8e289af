/*
 * mw-packer: a small packer of this repository's own, for tests. It stands for the packers
 * attackers use instead of UPX (any packer: the code must run unpacked in memory).
 *
 *   mw-packer pack [--memfd] [--delay S] IN OUT
 *                                     OUT = this program + IN encrypted + a trailer
 *   OUT ARGS...                       decrypts IN into memory and runs it with ARGS:
 *                                     by default with a loader of its own (the ELF's segments and
 *                                     its interpreter mapped into anonymous memory, then a jump to
 *                                     the interpreter: no file, no memfd, /proc/self/exe stays OUT);
 *                                     with --memfd through memfd_create + fexecve (a fileless launch);
 *                                     with --delay, after sleeping S seconds with nothing unpacked
 *                                     (droppers wait out a sandbox's or a scanner's first look).
 *
 * The payload is XORed with an xorshift64* key stream: the file holds none of IN's bytes, so no
 * string, constant or packer signature of IN is in OUT. x86-64 Linux, ELF64 payloads.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "MWPACKv1"
struct trailer { char magic[8]; uint64_t size; uint64_t seed; uint64_t flags; };
enum { FLAG_MEMFD = 1, DELAY_SHIFT = 8 };

static void die(const char *what) { fprintf(stderr, "mw-packer: %s: %s\n", what, strerror(errno)); exit(70); }
static void fail(const char *what) { fprintf(stderr, "mw-packer: %s\n", what); exit(70); }

static void keystream_xor(uint8_t *b, uint64_t n, uint64_t seed) {
  uint64_t x = seed ? seed : 0x9e3779b97f4a7c15ull;
  for (uint64_t i = 0; i < n; i += 8) {
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    uint64_t k = x * 0x2545f4914f6cdd1dull;
    for (int j = 0; j < 8 && i + j < n; j++) b[i + j] ^= (uint8_t)(k >> (8 * j));
  }
}

static uint8_t *slurp(const char *path, uint64_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(path);
  struct stat st;
  if (fstat(fd, &st) != 0) die(path);
  uint8_t *b = malloc((size_t)st.st_size + 1);
  if (!b) die("malloc");
  uint64_t got = 0;
  while (got < (uint64_t)st.st_size) {
    ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
    if (n <= 0) die(path);
    got += (uint64_t)n;
  }
  close(fd);
  *len = got;
  return b;
}

static int pack(int memfd, unsigned delay, const char *in, const char *out) {
  uint64_t self_len, in_len;
  uint8_t *self = slurp("/proc/self/exe", &self_len);
  uint8_t *payload = slurp(in, &in_len);
  struct trailer t;
  memcpy(t.magic, MAGIC, 8);
  t.size = in_len;
  t.seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ 0x5bd1e995ull;
  t.flags = (memfd ? FLAG_MEMFD : 0) | ((uint64_t)(delay & 0xffff) << DELAY_SHIFT);
  keystream_xor(payload, in_len, t.seed);
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  if (fd < 0) die(out);
  if (write(fd, self, self_len) != (ssize_t)self_len || write(fd, payload, in_len) != (ssize_t)in_len ||
      write(fd, &t, sizeof t) != (ssize_t)sizeof t) die(out);
  close(fd);
  return 0;
}

/* ---- the loader ---- */

#define PAGE 4096ull
#define DOWN(x) ((x) & ~(PAGE - 1))
#define UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))

struct loaded { uint64_t base; uint64_t entry; uint64_t phdr; uint16_t phnum; char interp[256]; };

static int prot(uint32_t f) { return (f & PF_R ? PROT_READ : 0) | (f & PF_W ? PROT_WRITE : 0) | (f & PF_X ? PROT_EXEC : 0); }

/* Maps an ELF64 image held in memory into anonymous mappings, as the kernel would map its file. */
static void load(const uint8_t *img, uint64_t len, struct loaded *out) {
  const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
  if (len < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) fail("payload is not ELF64");
  if (eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len) fail("bad program headers");
  const Elf64_Phdr *ph = (const Elf64_Phdr *)(img + eh->e_phoff);
  uint64_t lo = UINT64_MAX, hi = 0;
  out->interp[0] = 0;
  for (int i = 0; i < eh->e_phnum; i++) {
    if (ph[i].p_type == PT_LOAD) {
      if (DOWN(ph[i].p_vaddr) < lo) lo = DOWN(ph[i].p_vaddr);
      if (UP(ph[i].p_vaddr + ph[i].p_memsz) > hi) hi = UP(ph[i].p_vaddr + ph[i].p_memsz);
    } else if (ph[i].p_type == PT_INTERP && ph[i].p_filesz < sizeof out->interp && ph[i].p_offset + ph[i].p_filesz <= len) {
      memcpy(out->interp, img + ph[i].p_offset, ph[i].p_filesz);
      out->interp[ph[i].p_filesz] = 0;
    }
  }
  if (lo >= hi) fail("no loadable segment");
  uint64_t base = 0;
  if (eh->e_type == ET_DYN) {
    void *r = mmap(NULL, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) die("mmap");
    base = (uint64_t)r - lo;
  } else {
    void *r = mmap((void *)lo, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (r == MAP_FAILED) die("mmap fixed");
  }
  for (int i = 0; i < eh->e_phnum; i++) {
    if (ph[i].p_type != PT_LOAD) continue;
    uint64_t start = DOWN(base + ph[i].p_vaddr), end = UP(base + ph[i].p_vaddr + ph[i].p_memsz);
    if (mmap((void *)start, end - start, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) die("mmap segment");
    if (ph[i].p_offset + ph[i].p_filesz > len) fail("segment past the end of the payload");
    memcpy((void *)(base + ph[i].p_vaddr), img + ph[i].p_offset, ph[i].p_filesz);
    if (mprotect((void *)start, end - start, prot(ph[i].p_flags)) != 0) die("mprotect");
  }
  out->base = base;
  out->entry = base + eh->e_entry;
  out->phnum = eh->e_phnum;
  out->phdr = 0;
  for (int i = 0; i < eh->e_phnum; i++) if (ph[i].p_type == PT_PHDR) out->phdr = base + ph[i].p_vaddr;
  if (!out->phdr) {
    for (int i = 0; i < eh->e_phnum; i++)
      if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0) out->phdr = base + ph[i].p_vaddr + eh->e_phoff;
  }
}

static void run_in_memory(const uint8_t *img, uint64_t len, int argc, char **argv, char **envp) {
  struct loaded prog, interp;
  load(img, len, &prog);
  uint64_t entry = prog.entry, interp_base = 0;
  if (prog.interp[0]) {
    uint64_t ilen;
    uint8_t *ibytes = slurp(prog.interp, &ilen);
    load(ibytes, ilen, &interp);
    entry = interp.entry;
    interp_base = interp.base;
  }
  size_t stack_size = 8 << 20;
  uint8_t *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) die("mmap stack");
  uint8_t *top = stack + stack_size;
  int envc = 0;
  while (envp[envc]) envc++;
  /* Strings at the top: argv, envp, the platform, 16 random bytes. */
  char **sargv = calloc((size_t)argc + 1, sizeof(char *)), **senv = calloc((size_t)envc + 1, sizeof(char *));
  for (int i = argc - 1; i >= 0; i--) { size_t n = strlen(argv[i]) + 1; top -= n; memcpy(top, argv[i], n); sargv[i] = (char *)top; }
  for (int i = envc - 1; i >= 0; i--) { size_t n = strlen(envp[i]) + 1; top -= n; memcpy(top, envp[i], n); senv[i] = (char *)top; }
  top -= 7; memcpy(top, "x86_64", 7); char *platform = (char *)top;
  top -= 16; for (int i = 0; i < 16; i++) top[i] = (uint8_t)rand(); uint8_t *random = top;
  uint64_t aux[][2] = {
    { AT_PHDR, prog.phdr }, { AT_PHENT, sizeof(Elf64_Phdr) }, { AT_PHNUM, prog.phnum }, { AT_PAGESZ, PAGE },
    { AT_BASE, interp_base }, { AT_FLAGS, 0 }, { AT_ENTRY, prog.entry }, { AT_UID, getuid() }, { AT_EUID, geteuid() },
    { AT_GID, getgid() }, { AT_EGID, getegid() }, { AT_SECURE, 0 }, { AT_RANDOM, (uint64_t)random },
    { AT_HWCAP, getauxval(AT_HWCAP) }, { AT_HWCAP2, getauxval(AT_HWCAP2) }, { AT_CLKTCK, (uint64_t)sysconf(_SC_CLK_TCK) },
    { AT_SYSINFO_EHDR, getauxval(AT_SYSINFO_EHDR) }, { AT_PLATFORM, (uint64_t)platform }, { AT_EXECFN, (uint64_t)sargv[0] },
    { AT_MINSIGSTKSZ, getauxval(AT_MINSIGSTKSZ) }, { AT_NULL, 0 },
  };
  size_t words = 1 + (size_t)argc + 1 + (size_t)envc + 1 + sizeof aux / sizeof(uint64_t);
  uint64_t *sp = (uint64_t *)(((uint64_t)top - words * 8) & ~15ull);
  uint64_t *w = sp;
  *w++ = (uint64_t)argc;
  for (int i = 0; i < argc; i++) *w++ = (uint64_t)sargv[i];
  *w++ = 0;
  for (int i = 0; i < envc; i++) *w++ = (uint64_t)senv[i];
  *w++ = 0;
  memcpy(w, aux, sizeof aux);
  __asm__ volatile("mov %0, %%rsp\n\txor %%edx, %%edx\n\tjmp *%1\n" : : "r"(sp), "r"(entry) : "memory");
  __builtin_unreachable();
}

/* The trailer alone, read from the end of the file: a delayed loader holds nothing else until it wakes. */
static int read_trailer(struct trailer *t) {
  int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  off_t end = lseek(fd, 0, SEEK_END);
  int ok = end > (off_t)sizeof *t && pread(fd, t, sizeof *t, end - (off_t)sizeof *t) == (ssize_t)sizeof *t &&
           memcmp(t->magic, MAGIC, 8) == 0;
  close(fd);
  return ok;
}

int main(int argc, char **argv, char **envp) {
  struct trailer t;
  if (read_trailer(&t) && (t.flags >> DELAY_SHIFT) != 0) {
    struct timespec d = { (time_t)((t.flags >> DELAY_SHIFT) & 0xffff), 0 };
    while (nanosleep(&d, &d) != 0 && errno == EINTR) {}
  }
  uint64_t self_len;
  uint8_t *self = slurp("/proc/self/exe", &self_len);
  if (self_len > sizeof t) memcpy(&t, self + self_len - sizeof t, sizeof t);
  if (self_len > sizeof t && memcmp(t.magic, MAGIC, 8) == 0 && t.size <= self_len - sizeof t) {
    uint8_t *payload = self + self_len - sizeof t - t.size;
    keystream_xor(payload, t.size, t.seed);
    if (t.flags & FLAG_MEMFD) {
      int fd = (int)syscall(SYS_memfd_create, "kworker", 0);
      if (fd < 0) die("memfd_create");
      for (uint64_t off = 0; off < t.size;) {
        ssize_t n = write(fd, payload + off, t.size - off);
        if (n <= 0) die("write memfd");
        off += (uint64_t)n;
      }
      free(self);
      fexecve(fd, argv, envp);
      die("fexecve");
    }
    run_in_memory(payload, t.size, argc, argv, envp);
  }
  if (argc >= 4 && strcmp(argv[1], "pack") == 0) {
    int memfd = 0, i = 2;
    unsigned delay = 0;
    for (; i < argc - 2; i++) {
      if (strcmp(argv[i], "--memfd") == 0) {
        memfd = 1;
      } else if (strcmp(argv[i], "--delay") == 0 && i + 1 < argc - 2) {
        char *end;
        unsigned long v = strtoul(argv[++i], &end, 10);
        if (*end != 0 || v > 0xffff) fail("--delay: seconds from 0 to 65535");
        delay = (unsigned)v;
      } else {
        break;
      }
    }
    if (argc - i != 2) fail("usage: mw-packer pack [--memfd] [--delay S] IN OUT");
    return pack(memfd, delay, argv[i], argv[i + 1]);
  }
  fprintf(stderr, "usage: mw-packer pack [--memfd] [--delay S] IN OUT\n");
  return 64;
}
