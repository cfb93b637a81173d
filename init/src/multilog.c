/*
 * multilog.c: the service logger, compatible with daemontools 0.76's multilog in its command line and
 * its files on disk.
 *
 *   multilog script
 *
 * Each line read from stdin goes through the script's actions, left to right:
 *   t          (first action only) prefix each line with "@" + TAI64N label (24 hex digits) + " "
 *   sN         files in later directories are full at N bytes, 4096..16777215 (default 99999)
 *   nN         later directories keep N log files, current included (default 10, at least 2)
 *   -pattern   deselect the line if it matches pattern; +pattern select it; '*' as djb's match
 *   e          copy the selected line to stderr (its first 200 bytes and "..." when longer)
 *   =file      write the selected line's first 1000 bytes, then newlines up to 1001 bytes, at the start
 *              of file (created 0600 at start; as djb's, never truncated, so a longer file keeps its tail)
 *   !processor later directories are rotated through `sh -c processor` (below)
 *   ./dir /dir append the selected line to dir/current; a full current is synced, made 0744 and
 *              renamed @<tai64n>.s, the oldest @ files are removed, and an empty current begins
 * Patterns, e and =file see the first 1000 bytes of a line (with its label); directories get the whole
 * line. As djb's, an action it does not know is ignored (with a warning), and so is a t that is not
 * first: a logger that refused to start would back its service's output up.
 *
 * A processor, as djb's: the full current is synced, made 0744 and renamed `previous`, a new current
 * begins, and `sh -c processor` runs in dir with previous on stdin, `processed` (new) on stdout, `state`
 * on fd 4 and `newstate` (new) on fd 5. When it exits 0, processed is synced and made 0744, previous is
 * removed, newstate becomes state and processed becomes @<tai64n>.s; otherwise it is run again after a
 * pause, with a warning. Input waits meanwhile, in the pipe.
 *
 * On disk, as djb's: dir/lock is held with flock; at start a current left 0744 (closed cleanly) is
 * appended to; otherwise (its writer died) state and newstate are removed, a complete (0744) processed
 * becomes @<tai64n>.s and previous is removed, or else previous becomes @<tai64n>.u, then current becomes
 * @<tai64n>.u and state begins empty. At exit current is 0744.
 *
 * Nothing is lost. When stdin is a pipe (svscan keeps both ends open), input is peeked with tee(2)
 * into a private pipe, complete lines are written with write(2), and only then are their bytes read
 * from stdin: a multilog killed at any moment leaves the unwritten lines in the pipe for the next one
 * (at worst some lines are written twice). Peeked bytes with no newline are consumed into memory, so a
 * partial line never makes poll spin. A failed write (a full disk) is retried every second, with a
 * warning naming the file, and stdin is not read meanwhile. SIGTERM: the bytes already in the pipe
 * (FIONREAD) are logged, then the line in progress, waiting at most 1 s for its newline; exit 0.
 * SIGALRM rotates every non-empty current, as djb's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "sv.h"

extern char **environ;

#define LINEHEAD 1000     /* bytes of a line that patterns, e and =file see, as djb's */
#define EQLEN 1001        /* bytes =file writes: the line's head, then newlines */
#define ESHOW 200         /* bytes of a line that e prints */
#define OBUF 65536        /* output buffer of each directory */
#define PAUSE_MS 1000     /* between retries of a failed write, rename ... */
#define DRAIN_MS 1000     /* at TERM, the longest wait for the newline of a partial line */

struct logdir {
  const char *name;
  int fddir;
  int fd;                 /* current */
  unsigned long size;     /* sN */
  unsigned long num;      /* nN */
  unsigned long bytes;    /* size of current */
  const char *processor;  /* !processor, or NULL */
  int selected;           /* the line in progress goes here */
  char *ob;
  size_t olen;
};

static char **script;
static int *eqfd;        /* for each action, the fd of its =file, or -1 */
static struct logdir *dirs;
static int ndirs;
static int flagstamp;    /* t */
static int plain;        /* no t, patterns nor e: every byte goes to every directory */
static int starting = 1; /* errors are fatal until the directories are set up */

/* The line in progress: its first LINEHEAD bytes until the script has run on it. */
static char line[LINEHEAD];
static size_t linelen;
static int midline, decided;

static char ebuf[8192];
static size_t elen;

static volatile sig_atomic_t flagterm, flagalrm;

static void on_signal(int sig)
{
  if (sig == SIGTERM) flagterm = 1;
  else flagalrm = 1;
}

/* A failure on name/file (or name): fatal while starting, otherwise warn, wait and let the caller retry. */
static void pausing_on(const char *name, const char *what, const char *file)
{
  const char *sep = file ? "/" : "";
  if (!file) file = "";
  if (starting) sv_diesys(EXIT_TEMP, "unable to %s %s%s%s", what, name, sep, file);
  sv_warnsys("unable to %s %s%s%s, pausing", what, name, sep, file);
  poll(NULL, 0, PAUSE_MS);
}

static void pausing(const struct logdir *d, const char *what, const char *file)
{
  pausing_on(d->name, what, file);
}

/* djb's match: '*' matches up to the first occurrence of the pattern's next byte, or all at the end. */
static int match(const char *pat, const char *s, size_t len)
{
  for (;;) {
    char ch = *pat++;
    if (!ch) return !len;
    if (ch == '*') {
      ch = *pat;
      if (!ch) return 1;
      const char *p = memchr(s, ch, len);
      if (!p) return 0;
      len -= (size_t)(p - s);
      s = p;
      continue;
    }
    if (!len || *s != ch) return 0;
    ++s;
    --len;
  }
}

/* Keeps at most num - 1 old files: removes the oldest @ file while there are num or more. */
static void prune(struct logdir *d)
{
  for (;;) {
    char oldest[NAME_MAX + 1] = "";
    unsigned long count = 0;
    struct dirent *x;
    DIR *dir = NULL;
    int fd = openat(d->fddir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd != -1 && !(dir = fdopendir(fd))) close(fd);
    if (!dir) { pausing(d, "read directory", NULL); continue; }
    errno = 0;
    while ((x = readdir(dir))) {
      if (x->d_name[0] != '@' || strlen(x->d_name) < 25) continue;
      ++count;
      if (!oldest[0] || strcmp(x->d_name, oldest) < 0) strcpy(oldest, x->d_name);
    }
    int e = errno;
    closedir(dir);
    if (e) { errno = e; pausing(d, "read directory", NULL); continue; }
    if (count < d->num) return;
    if (unlinkat(d->fddir, oldest, 0) == -1 && errno != ENOENT) pausing(d, "remove", oldest);
  }
}

/* Renames dir/file to @<tai64n>.code (a new name) and prunes; returns 0 when file does not exist. */
static int archive(struct logdir *d, const char *file, char code)
{
  struct tai64n t;
  struct stat st;
  char fn[28];
  tai64n_now(&t);
  for (;;) {
    tai64n_label(fn, &t);
    fn[25] = '.';
    fn[26] = code;
    fn[27] = 0;
    if (fstatat(d->fddir, fn, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (++t.nano >= 1000000000) { t.nano = 0; ++t.sec; }
      continue;
    }
    if (renameat(d->fddir, file, d->fddir, fn) == 0) break;
    if (errno == ENOENT) return 0;
    pausing(d, "rename", file);
  }
  prune(d);
  return 1;
}

static void open_current(struct logdir *d)
{
  while ((d->fd = openat(d->fddir, "current", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) == -1)
    pausing(d, "open", "current");
  while (fchmod(d->fd, 0644) == -1) pausing(d, "set mode of", "current");
}

/* Marks current complete: on disk, and mode 0744 (at exit, and before it becomes an old file). */
static void seal(struct logdir *d)
{
  while (fsync(d->fd) == -1) pausing(d, "sync", "current");
  while (fchmod(d->fd, 0744) == -1) pausing(d, "set mode of", "current");
}

/* Moves fd to number to (which it leaves open across exec); in the processor's child, so errors are fatal. */
static void child_fd(int fd, int to, const char *file)
{
  if (fd == -1) sv_diesys(EXIT_TEMP, "unable to open %s for the processor", file);
  if (fd == to) return;
  if (dup2(fd, to) == -1) sv_diesys(EXIT_TEMP, "unable to set up descriptors for the processor");
  close(fd);
}

/* The processor's child: previous on 0, processed on 1, state on 4, newstate on 5, then sh -c. */
static _Noreturn void exec_processor(const struct logdir *d)
{
  char *argv[] = { "sh", "-c", (char *)d->processor, NULL };
  sv_child_signals();
  if (fchdir(d->fddir) == -1) sv_diesys(EXIT_TEMP, "unable to switch to %s", d->name);
  child_fd(open("previous", O_RDONLY), 0, "previous");
  child_fd(open("processed", O_WRONLY | O_CREAT | O_TRUNC, 0644), 1, "processed");
  child_fd(open("state", O_RDONLY), 4, "state");
  child_fd(open("newstate", O_WRONLY | O_CREAT | O_TRUNC, 0644), 5, "newstate");
  execve("/bin/sh", argv, environ);
  sv_diesys(EXIT_TEMP, "unable to run %s", d->processor);
}

/* Opens dir/file for appending, syncs it and, unless mode is 0, sets its mode. */
static void sync_file(struct logdir *d, const char *file, mode_t mode)
{
  int fd;
  while ((fd = openat(d->fddir, file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) == -1)
    pausing(d, "open", file);
  while (fsync(fd) == -1) pausing(d, "sync", file);
  while (mode && fchmod(fd, mode) == -1) pausing(d, "set mode of", file);
  close(fd);
}

/* Whether a TERM came (its handler ran in ppoll) or waits (it is blocked everywhere else). */
static int term_pending(void)
{
  sigset_t set;
  return flagterm || (sigpending(&set) == 0 && sigismember(&set, SIGTERM) == 1);
}

/*
 * Runs the processor on previous until it succeeds; then processed is the new @<tai64n>.s file. A failed
 * processor is run again after a pause, as djb's; but once TERM has come, previous is kept unprocessed as
 * @<tai64n>.u (what the next start would make of it) and the drain goes on.
 */
static void process(struct logdir *d)
{
  for (;;) {
    int wstat = 0;
    pid_t r, pid = fork();
    if (pid == -1) { pausing(d, "fork for the processor in", NULL); continue; }
    if (pid == 0) exec_processor(d);
    while ((r = waitpid(pid, &wstat, 0)) == -1 && errno == EINTR) {}
    if (r == -1) sv_warnsys("unable to wait for the processor in %s, pausing", d->name);
    else if (WIFEXITED(wstat) && WEXITSTATUS(wstat) == 0) break;
    else if (WIFSIGNALED(wstat))
      sv_warn("processor %s in %s killed by signal %d, pausing", d->processor, d->name, WTERMSIG(wstat));
    else
      sv_warn("processor %s failed in %s (exit code %d), pausing", d->processor, d->name, WEXITSTATUS(wstat));
    if (term_pending()) {
      sv_warn("giving up the processor in %s at TERM: previous is kept unprocessed, as @<tai64n>.u",
              d->name);
      unlinkat(d->fddir, "processed", 0);
      unlinkat(d->fddir, "newstate", 0);
      archive(d, "previous", 'u');
      return;
    }
    poll(NULL, 0, PAUSE_MS);
  }
  sync_file(d, "processed", 0744);
  sync_file(d, "newstate", 0);
  while (unlinkat(d->fddir, "previous", 0) == -1 && errno != ENOENT) pausing(d, "remove", "previous");
  while (renameat(d->fddir, "newstate", d->fddir, "state") == -1)
    pausing(d, "rename newstate to state in", NULL);
  archive(d, "processed", 's');
}

/* Current is full: it becomes @<tai64n>.s (through the processor, if any) and an empty current begins. */
static void rotate(struct logdir *d)
{
  seal(d);
  close(d->fd);
  if (!d->processor) {
    archive(d, "current", 's');
    open_current(d);
    d->bytes = 0;
    return;
  }
  while (renameat(d->fddir, "current", d->fddir, "previous") == -1)
    pausing(d, "rename current to previous in", NULL);
  open_current(d);
  d->bytes = 0;
  process(d);
}

/* Locks dir and opens current; an existing current is continued if 0744, else kept as @....u. */
static void start_dir(struct logdir *d)
{
  struct stat st;
  int fd, processed = 0;
  mkdir(d->name, 0700);
  d->fddir = open(d->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d->fddir == -1) sv_diesys(EXIT_TEMP, "unable to open directory %s", d->name);
  fd = openat(d->fddir, "lock", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1) sv_diesys(EXIT_TEMP, "unable to open %s/lock", d->name);
  if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK) sv_die(EXIT_TEMP, "unable to lock directory %s: another multilog holds it", d->name);
    sv_diesys(EXIT_TEMP, "unable to lock directory %s", d->name);
  }
  if (fstatat(d->fddir, "current", &st, 0) == 0) {
    if (st.st_mode & 0100) {
      open_current(d);
      d->bytes = (unsigned long)st.st_size;
      return;
    }
  } else if (errno != ENOENT) {
    sv_diesys(EXIT_TEMP, "unable to stat %s/current", d->name);
  }
  unlinkat(d->fddir, "state", 0);
  unlinkat(d->fddir, "newstate", 0);
  /* A processor had finished with previous when processed is 0744: processed is the rotated file. */
  if (fstatat(d->fddir, "processed", &st, 0) == 0) processed = (st.st_mode & 0100) != 0;
  else if (errno != ENOENT) sv_diesys(EXIT_TEMP, "unable to stat %s/processed", d->name);
  if (processed) {
    unlinkat(d->fddir, "previous", 0);
    archive(d, "processed", 's');
  } else {
    unlinkat(d->fddir, "processed", 0);
    archive(d, "previous", 'u');
  }
  archive(d, "current", 'u');
  fd = openat(d->fddir, "state", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1) sv_diesys(EXIT_TEMP, "unable to write to %s/state", d->name);
  close(fd);
  open_current(d);
  d->bytes = 0;
}

/*
 * Appends to current, rotating as djb's: current is full at size bytes, or at the first newline that
 * brings it within 2000 bytes of size.
 */
static void dir_write(struct logdir *d, const char *p, size_t len)
{
  while (len) {
    size_t n = len, room, done = 0;
    int full = 0;
    if (d->bytes >= d->size) rotate(d);
    room = d->size - d->bytes;
    if (n > room) n = room;
    if (d->bytes + n >= d->size - 2000) {
      size_t from = d->bytes + 2000 >= d->size ? 0 : d->size - 2000 - d->bytes - 1;
      const char *nl = memchr(p + from, '\n', n - from);
      if (nl) { n = (size_t)(nl - p) + 1; full = 1; }
    }
    while (done < n) {
      ssize_t w = write(d->fd, p + done, n - done);
      if (w > 0) { done += (size_t)w; continue; }
      if (w == -1 && errno == EINTR) continue;
      if (w == 0) errno = EIO;
      pausing(d, "write to", "current");
    }
    d->bytes += n;
    p += n;
    len -= n;
    if (full) rotate(d);
  }
}

static void dir_flush(struct logdir *d)
{
  dir_write(d, d->ob, d->olen);
  d->olen = 0;
}

static void dir_put(struct logdir *d, const char *p, size_t len)
{
  if (d->olen + len > OBUF || (!d->olen && len >= OBUF / 4)) {
    dir_flush(d);
    if (len >= OBUF / 4) { dir_write(d, p, len); return; }
  }
  memcpy(d->ob + d->olen, p, len);
  d->olen += len;
}

static void eflush(void)
{
  if (elen) sv_write_all(2, ebuf, elen); /* as djb's, a failing stderr is not an error */
  elen = 0;
}

static void eput(const char *p, size_t len)
{
  if (elen + len > sizeof ebuf) eflush();
  memcpy(ebuf + elen, p, len);
  elen += len;
}

static void flush_all(void)
{
  for (int j = 0; j < ndirs; ++j) dir_flush(&dirs[j]);
  eflush();
}

static void put_selected(const char *p, size_t len)
{
  for (int j = 0; j < ndirs; ++j)
    if (dirs[j].selected) dir_put(&dirs[j], p, len);
}

/* =file: the line's head, then newlines, 1001 bytes at the start of the file, as djb's. */
static void eq_write(int fd, const char *file)
{
  char b[EQLEN];
  size_t done = 0;
  memcpy(b, line, linelen);
  memset(b + linelen, '\n', EQLEN - linelen);
  while (done < EQLEN) {
    ssize_t w = pwrite(fd, b + done, EQLEN - done, (off_t)done);
    if (w > 0) { done += (size_t)w; continue; }
    if (w == -1 && errno == EINTR) continue;
    if (w == 0) errno = EIO;
    pausing_on(file, "write", NULL);
  }
}

/* Runs the script on the head of the line in progress and sends the head where it is selected. */
static void decide(void)
{
  int sel = 1, j = 0;
  for (int i = 0; script[i]; ++i) {
    const char *a = script[i];
    switch (a[0]) {
    case '=': if (sel) eq_write(eqfd[i], a + 1); break;
    case '+': if (!sel && match(a + 1, line, linelen)) sel = 1; break;
    case '-': if (sel && match(a + 1, line, linelen)) sel = 0; break;
    case 'e':
      if (!sel) break;
      if (linelen > ESHOW) { eput(line, ESHOW); eput("...\n", 4); }
      else { eput(line, linelen); eput("\n", 1); }
      break;
    case '.': case '/': dirs[j++].selected = sel; break;
    }
  }
  decided = 1;
  put_selected(line, linelen);
}

static void endline(void)
{
  put_selected("\n", 1);
  midline = 0;
}

/* Passes input bytes through the script, line by line. */
static void feed(const char *p, size_t len)
{
  if (plain) {
    if (!len) return;
    put_selected(p, len);
    midline = p[len - 1] != '\n';
    return;
  }
  while (len) {
    const char *nl;
    size_t take;
    if (!midline) {
      midline = 1;
      decided = 0;
      linelen = 0;
      if (flagstamp) {
        struct tai64n t;
        tai64n_now(&t);
        tai64n_label(line, &t);
        line[25] = ' ';
        linelen = 26;
      }
    }
    if (!decided) {
      take = LINEHEAD - linelen;
      if (take > len) take = len;
      nl = memchr(p, '\n', take);
      if (nl) take = (size_t)(nl - p);
      memcpy(line + linelen, p, take);
      linelen += take;
      p += take;
      len -= take;
      if (!nl && linelen < LINEHEAD) return;
      decide();
      if (!nl) continue;
    } else {
      nl = memchr(p, '\n', len);
      take = nl ? (size_t)(nl - p) : len;
      put_selected(p, take);
      p += take;
      len -= take;
      if (!nl) return;
    }
    endline();
    ++p;
    --len;
  }
}

/* Ends the line in progress with a newline, as djb's at EOF. */
static void finish_line(void)
{
  if (!midline) return;
  if (!decided) decide();
  endline();
}

/* Input. */
static int peek[2] = { -1, -1 }; /* the private pipe; -1 when stdin is read plainly */
static char *buf;
static size_t bufsize;

static void setup_input(void)
{
  int cap = fcntl(0, F_GETPIPE_SZ);
  bufsize = 65536;
  if (cap > 0 && pipe2(peek, O_CLOEXEC | O_NONBLOCK) == 0) {
    fcntl(peek[1], F_SETPIPE_SZ, cap);
    int got = fcntl(peek[1], F_GETPIPE_SZ);
    if (got > cap) cap = got;
    if ((size_t)cap > bufsize) bufsize = (size_t)cap;
  }
  buf = malloc(bufsize);
  if (!buf) sv_die(EXIT_TEMP, "out of memory");
}

static void read_exact(int fd, char *p, size_t n)
{
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r > 0) { p += r; n -= (size_t)r; continue; }
    if (r == -1 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r == 0) errno = EPIPE;
    sv_diesys(EXIT_TEMP, "unable to read standard input");
  }
}

/*
 * Takes at most max bytes of input through the script; with a pipe, up to and including the last
 * newline seen (the first one when firstnl), and reads them from stdin only once they are written.
 * Returns the bytes taken, 0 at EOF, -1 when nothing is there.
 */
static ssize_t batch(size_t max, int firstnl)
{
  ssize_t n;
  if (max > bufsize) max = bufsize;
  if (peek[0] != -1) {
    n = tee(0, peek[1], max, SPLICE_F_NONBLOCK);
    if (n > 0) {
      const char *nl;
      size_t take;
      read_exact(peek[0], buf, (size_t)n);
      nl = firstnl ? memchr(buf, '\n', (size_t)n) : memrchr(buf, '\n', (size_t)n);
      take = nl ? (size_t)(nl - buf) + 1 : (size_t)n;
      feed(buf, take);
      flush_all();
      read_exact(0, buf, take);
      return (ssize_t)take;
    }
    if (n == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) {
      if (errno == EAGAIN || errno == EINTR) return -1;
      sv_diesys(EXIT_TEMP, "unable to read standard input");
    }
    close(peek[0]); /* not a pipe after all: read plainly */
    close(peek[1]);
    peek[0] = peek[1] = -1;
  }
  n = read(0, buf, max);
  if (n == -1) {
    if (errno == EAGAIN || errno == EINTR) return -1;
    sv_diesys(EXIT_TEMP, "unable to read standard input");
  }
  feed(buf, (size_t)n);
  flush_all();
  return n;
}

/* At TERM: what the pipe holds now, then the rest of a partial line for at most DRAIN_MS. */
static void drain(void)
{
  struct pollfd pfd = { 0, POLLIN, 0 };
  int avail = 0;
  int64_t deadline;
  if (ioctl(0, FIONREAD, &avail) == -1) avail = 0;
  while (avail > 0) {
    ssize_t r = batch((size_t)avail, 0);
    if (r <= 0) return;
    avail -= (int)r;
  }
  deadline = sv_now_ms() + DRAIN_MS;
  while (midline) {
    int64_t left = deadline - sv_now_ms();
    struct timespec ts;
    if (left <= 0) return;
    ts.tv_sec = left / 1000;
    ts.tv_nsec = (left % 1000) * 1000000;
    int r = ppoll(&pfd, 1, &ts, NULL);
    if (r == 0) return;
    if (r > 0 && batch(bufsize, 1) == 0) return;
  }
}

/* sN, nN: the number as djb's scan_ulong reads it (its leading digits, 0 when none), with a warning when
   that is not the whole argument. */
static unsigned long number(const char *a)
{
  unsigned long x = 0;
  const char *p = a + 1;
  for (; *p >= '0' && *p <= '9'; ++p)
    if (x < 100000000) x = x * 10 + (unsigned long)(*p - '0');
  if (*p || p == a + 1) sv_warn("%s: not a number, read as %c%lu", a, a[0], x);
  return x;
}

/* =file: created 0600 if need be, relative to the starting directory, as djb's. */
static int eq_open(const char *file)
{
  int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1) sv_diesys(EXIT_TEMP, "unable to create %s", file);
  return fd;
}

static void parse(char **argv)
{
  unsigned long size = 99999, num = 10;
  const char *processor = NULL;
  int i, n = 0;
  script = argv;
  for (i = 0; argv[i]; ++i)
    if (argv[i][0] == '.' || argv[i][0] == '/') ++n;
  dirs = calloc((size_t)n + 1, sizeof *dirs);
  eqfd = calloc((size_t)i + 1, sizeof *eqfd);
  if (!dirs || !eqfd) sv_die(EXIT_TEMP, "out of memory");
  plain = 1;
  for (i = 0; argv[i]; ++i) {
    const char *a = argv[i];
    eqfd[i] = -1;
    switch (a[0]) {
    case 't':
      if (i) sv_warn("t has effect only as the first action; ignored");
      else flagstamp = 1;
      plain = 0;
      break;
    case 's':
      size = number(a);
      if (size < 4096) size = 4096;
      if (size > 16777215) size = 16777215;
      break;
    case 'n':
      num = number(a);
      if (num < 2) num = 2;
      break;
    case '+': case '-': case 'e':
      plain = 0;
      break;
    case '=':
      eqfd[i] = eq_open(a + 1);
      plain = 0;
      break;
    case '!':
      processor = a + 1;
      break;
    case '.': case '/':
      dirs[ndirs].name = a;
      dirs[ndirs].size = size;
      dirs[ndirs].num = num;
      dirs[ndirs].processor = processor;
      dirs[ndirs].selected = 1;
      dirs[ndirs].ob = malloc(OBUF);
      if (!dirs[ndirs].ob) sv_die(EXIT_TEMP, "out of memory");
      ++ndirs;
      break;
    default:
      sv_warn("unknown action ignored: %s", a);
    }
  }
}

int multilog_main(int argc, char **argv)
{
  struct sigaction sa;
  struct pollfd pfd = { 0, POLLIN, 0 };
  sigset_t block, waitmask;
  (void)argc;
  sv_progname = "multilog";
  umask(022);

  /* TERM and ALRM are blocked except while waiting for input; the handlers only set flags. */
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGALRM);
  sigprocmask(SIG_BLOCK, &block, &waitmask);
  sigdelset(&waitmask, SIGTERM);
  sigdelset(&waitmask, SIGALRM);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);

  parse(argv + 1);
  for (int j = 0; j < ndirs; ++j) start_dir(&dirs[j]);
  starting = 0;
  setup_input();

  for (;;) {
    if (flagalrm) {
      flagalrm = 0;
      for (int j = 0; j < ndirs; ++j)
        if (dirs[j].bytes) rotate(&dirs[j]);
    }
    if (flagterm) { drain(); break; }
    if (ppoll(&pfd, 1, NULL, &waitmask) == -1) {
      if (errno == EINTR) continue;
      sv_diesys(EXIT_TEMP, "unable to poll standard input");
    }
    if (batch(bufsize, 0) == 0) break;
  }

  finish_line();
  flush_all();
  for (int j = 0; j < ndirs; ++j) seal(&dirs[j]);
  _exit(0);
}
