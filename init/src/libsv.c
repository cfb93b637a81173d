/* libsv.c: helpers shared by the svinit programs (messages, TAI64N, the status record, files). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "sv.h"

const char *sv_progname = "svinit";

/* djb's wording, for the errors these programs report; strerror() for the rest. */
const char *sv_strerror(int e)
{
  switch (e) {
  case 0: return "no error";
  case EINTR: return "interrupted system call";
  case ENOMEM: return "out of memory";
  case ENOENT: return "file does not exist";
  case ETXTBSY: return "text busy";
  case EIO: return "input/output error";
  case EEXIST: return "file already exists";
  case ETIMEDOUT: return "timed out";
  case EAGAIN: return "temporary failure";
  case EPIPE: return "broken pipe";
  case EPERM: return "permission denied";
  case EACCES: return "access denied";
  case ENXIO: return "device not configured";
  case EISDIR: return "is a directory";
  case ENOTDIR: return "not a directory";
  case ESRCH: return "no such process";
  case E2BIG: return "argument list too long";
  case ENOEXEC: return "exec format error";
  case EBADF: return "file descriptor not open";
  case ECHILD: return "no child processes";
  case EBUSY: return "device busy";
  case EXDEV: return "cross-device link";
  case EINVAL: return "invalid argument";
  case ENFILE: return "system cannot open more files";
  case EMFILE: return "process cannot open more files";
  case ENOTTY: return "not a tty";
  case EFBIG: return "file too big";
  case ENOSPC: return "out of disk space";
  case EROFS: return "read-only file system";
  case EMLINK: return "too many links";
  case ELOOP: return "symbolic link loop";
  case ENAMETOOLONG: return "file name too long";
  case ENOTEMPTY: return "directory not empty";
  case EDQUOT: return "disk quota exceeded";
  default: return strerror(e);
  }
}

static void vmsg(const char *level, int err, const char *fmt, va_list ap)
{
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "%s: %s", sv_progname, level);
  if (n < 0) return;
  if ((size_t)n < sizeof buf) {
    int m = vsnprintf(buf + n, sizeof buf - n, fmt, ap);
    if (m > 0) n += m;
  }
  if ((size_t)n >= sizeof buf - 80) n = sizeof buf - 80;
  if (err >= 0) n += snprintf(buf + n, sizeof buf - n, ": %s", sv_strerror(err));
  buf[n++] = '\n';
  /* One write, so lines from many processes sharing stderr do not interleave. */
  if (sv_write_all(sv_msgfd, buf, n) == -1 && errno == EAGAIN) ++sv_msglost;
}

void sv_warn(const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); vmsg("warning: ", -1, fmt, ap); va_end(ap); }

void sv_warnsys(const char *fmt, ...)
{ int e = errno; va_list ap; va_start(ap, fmt); vmsg("warning: ", e, fmt, ap); va_end(ap); errno = e; }

void sv_info(const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); vmsg("info: ", -1, fmt, ap); va_end(ap); }

void sv_die(int code, const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); vmsg("fatal: ", -1, fmt, ap); va_end(ap); _exit(code); }

void sv_diesys(int code, const char *fmt, ...)
{ int e = errno; va_list ap; va_start(ap, fmt); vmsg("fatal: ", e, fmt, ap); va_end(ap); _exit(code); }

void sv_usage(const char *usage)
{
  char buf[512];
  int n = snprintf(buf, sizeof buf, "%s: usage: %s\n", sv_progname, usage);
  if (n > 0) sv_write_all(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
  _exit(EXIT_PERM);
}

/* The status record. */
static void put_be(unsigned char *s, uint64_t x, int n)
{ for (int i = n - 1; i >= 0; --i) { s[i] = x & 255; x >>= 8; } }
static void put_le(unsigned char *s, uint64_t x, int n)
{ for (int i = 0; i < n; ++i) { s[i] = x & 255; x >>= 8; } }
static uint64_t get_be(const unsigned char *s, int n)
{ uint64_t x = 0; for (int i = 0; i < n; ++i) x = (x << 8) | s[i]; return x; }
static uint64_t get_le(const unsigned char *s, int n)
{ uint64_t x = 0; for (int i = n - 1; i >= 0; --i) x = (x << 8) | s[i]; return x; }

void sv_status_pack(unsigned char *s, const struct sv_status *st)
{
  put_be(s, st->sec, 8);
  put_be(s + 8, st->nano, 4);
  put_le(s + 12, st->pid, 4);
  s[16] = st->paused;
  s[17] = st->want;
  s[18] = st->state;
  put_le(s + 19, st->lastwait, 4);
}

size_t sv_status_unpack(const unsigned char *s, size_t len, struct sv_status *st)
{
  memset(st, 0, sizeof *st);
  st->lastwait = 0xffffffffu;
  if (len < SV_STATUS_DJB) return len;
  st->sec = get_be(s, 8);
  st->nano = (uint32_t)get_be(s + 8, 4);
  st->pid = (uint32_t)get_le(s + 12, 4);
  st->paused = s[16];
  st->want = s[17];
  if (len < SV_STATUS_LEN) return SV_STATUS_DJB;
  st->state = s[18];
  st->lastwait = (uint32_t)get_le(s + 19, 4);
  return SV_STATUS_LEN;
}

/* TAI64N. Like daemontools, this ignores leap seconds after 1972: TAI64 = 2^62 + 10 + unix. */
void tai64n_now(struct tai64n *t)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  t->sec = TAI64_UNIX_OFFSET + (uint64_t)ts.tv_sec;
  t->nano = (uint32_t)ts.tv_nsec;
}

void tai64n_pack(unsigned char out[12], const struct tai64n *t)
{
  put_be(out, t->sec, 8);
  put_be(out + 8, t->nano, 4);
}

void tai64n_label(char out[26], const struct tai64n *t)
{
  static const char hex[] = "0123456789abcdef";
  unsigned char b[12];
  tai64n_pack(b, t);
  out[0] = '@';
  for (int i = 0; i < 12; ++i) {
    out[1 + 2 * i] = hex[b[i] >> 4];
    out[2 + 2 * i] = hex[b[i] & 15];
  }
  out[25] = 0;
}

/* Files. */
int sv_coe(int fd)
{
  int f = fcntl(fd, F_GETFD);
  return f == -1 ? -1 : fcntl(fd, F_SETFD, f | FD_CLOEXEC);
}

int sv_nonblock(int fd, int on)
{
  int f = fcntl(fd, F_GETFL);
  if (f == -1) return -1;
  return fcntl(fd, F_SETFL, on ? f | O_NONBLOCK : f & ~O_NONBLOCK);
}

int sv_fifo_make(const char *path, mode_t mode)
{
  struct stat st;
  if (mkfifo(path, mode) == 0) return 0;
  if (errno != EEXIST) return -1;
  if (stat(path, &st) == -1) return -1;
  if (!S_ISFIFO(st.st_mode)) { errno = EEXIST; return -1; }
  return 0;
}

int sv_mkdir_follow(const char *path, mode_t mode)
{
  char target[4096];
  struct stat st;
  ssize_t r;
  if (mkdir(path, mode) == 0) return 0;
  if (errno != EEXIST) return -1;
  if (stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return 0;
    errno = ENOTDIR;
    return -1;
  }
  r = readlink(path, target, sizeof target - 1);
  if (r == -1) return -1;
  target[r] = 0;
  if (target[0] != '/') { errno = EINVAL; return -1; }
  return mkdir(target, mode) == 0 || errno == EEXIST ? 0 : -1;
}

int sv_write_all(int fd, const void *buf, size_t len)
{
  const char *p = buf;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w == -1) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

int sv_replace_file(const char *path, const char *tmp, const void *buf, size_t len)
{
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1) return -1;
  if (sv_write_all(fd, buf, len) == -1) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  if (close(fd) == -1) return -1;
  return rename(tmp, path);
}

int64_t sv_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sv_child_signals(void)
{
  sigset_t none;
  signal(SIGPIPE, SIG_DFL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

int sv_spawn(pid_t *pid, const char *prog, char *const argv[], int in, int out, const char *subdir, int search)
{
  extern char **environ;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t fa;
  sigset_t none, def;
  int err;
  sigemptyset(&none);
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  if ((err = posix_spawnattr_init(&attr))) return err;
  if ((err = posix_spawn_file_actions_init(&fa))) { posix_spawnattr_destroy(&attr); return err; }
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &def);
  if (in != -1) err = posix_spawn_file_actions_adddup2(&fa, in, 0);
  if (!err && out != -1) err = posix_spawn_file_actions_adddup2(&fa, out, 1);
  if (!err && subdir) err = posix_spawn_file_actions_addchdir_np(&fa, subdir);
  if (!err)
    err = search ? posix_spawnp(pid, prog, &fa, &attr, argv, environ) : posix_spawn(pid, prog, &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return err;
}

void sv_default_signals(void)
{
  sigset_t none;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    if (s == SIGKILL || s == SIGSTOP) continue;
    sigaction(s, &sa, NULL);
  }
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Where messages go, and how many a non-blocking sv_msgfd could not take (svscan as process 1). */
int sv_msgfd = 2;
unsigned long sv_msglost;

int sv_exit_harmless(void)
{
  char buf[512], *p;
  ssize_t r;
  int fd;
  if (getpid() != 1) return 1;
  fd = open("/proc/2/stat", O_RDONLY | O_CLOEXEC);
  if (fd == -1) return errno == ENOENT && access("/proc/self/stat", R_OK) == 0;
  r = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (r <= 0) return 0;
  buf[r] = 0;
  p = strrchr(buf, ')'); /* then " STATE PPID ..." */
  return p && strtol(p + 3, NULL, 10) != 0;
}
