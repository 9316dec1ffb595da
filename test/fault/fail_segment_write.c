/*
 * An LD_PRELOAD shim for the TAP tests: a device error on the engine's log, on demand.
 *
 * While the file named by ELOQKV_FAIL_WRITE_TRIGGER exists, the next pwrite or fdatasync on an
 * engine segment file (a name ending in ".seg") fails with EIO, and the trigger is renamed to
 * "<trigger>.fired": exactly one failure per trigger, whichever process of the server hits it.
 * A trigger whose content starts with "sticky" is a device that keeps failing: every such call
 * fails while it exists (and "<trigger>.fired" is created). Everything else passes through. The
 * server must use eloqkv.io_mode = pread (io_uring does not go through these functions).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int is_segment(int fd) {
  char link[64];
  char path[4096];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, sizeof(path) - 1);
  if (n < 4) return 0;
  path[n] = '\0';
  return strcmp(path + n - 4, ".seg") == 0;
}

static int is_sticky(const char* trigger) {
  char content[6] = {0};
  FILE* f = fopen(trigger, "r");
  if (f == NULL) return 0;
  const size_t n = fread(content, 1, sizeof(content), f);
  fclose(f);
  return n == sizeof(content) && memcmp(content, "sticky", sizeof(content)) == 0;
}

/* Whether this call is to fail: the trigger exists and is sticky, or this process won the
 * rename. */
static int fail_now(int fd) {
  const char* trigger = getenv("ELOQKV_FAIL_WRITE_TRIGGER");
  if (trigger == NULL || access(trigger, F_OK) != 0 || !is_segment(fd)) return 0;
  char fired[4096];
  snprintf(fired, sizeof(fired), "%s.fired", trigger);
  if (is_sticky(trigger)) {
    FILE* f = fopen(fired, "a");
    if (f != NULL) fclose(f);
    return 1;
  }
  return rename(trigger, fired) == 0;
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) {
  static ssize_t (*real)(int, const void*, size_t, off_t);
  if (real == NULL) real = (ssize_t(*)(int, const void*, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
  if (fail_now(fd)) {
    errno = EIO;
    return -1;
  }
  return real(fd, buf, n, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t offset) {
  return pwrite(fd, buf, n, offset);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  if (fail_now(fd)) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}
