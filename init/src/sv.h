/* sv.h: the names on disk, the exit codes and the helpers every svinit program shares. */
#ifndef SV_H
#define SV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* daemontools 0.76 layout of a service directory. */
#define SV_SUPERVISE_DIR "supervise"
#define SV_CONTROL "supervise/control"
#define SV_OK "supervise/ok"
#define SV_LOCK "supervise/lock"
#define SV_STATUS "supervise/status"
#define SV_STATUS_NEW "supervise/status.new"
#define SV_RUN "run"
#define SV_FINISH "finish"
#define SV_DOWN "down"
#define SV_LOGDIR "log"

/* svscan's own directory inside the scan directory (svinit's extension). */
#define SVSCAN_DIR ".svscan"
#define SVSCAN_CONTROL ".svscan/control"
#define SVSCAN_FINISH ".svscan/finish"
#define SVSCAN_CRASH ".svscan/crash"

/* Exit codes, as daemontools and s6: usage or permanent error, temporary error. */
#define EXIT_PERM 100
#define EXIT_TEMP 111

/*
 * supervise/status. Bytes 0-17 are daemontools 0.76's record, so djb's svstat reads ours:
 *   0-7   TAI64 seconds of the last change, big-endian
 *   8-11  nanoseconds, big-endian
 *   12-15 pid, little-endian, 0 when down
 *   16    1 when paused
 *   17    want: 'u', 'd' or 0 (run once)
 * svinit appends (djb's svstat reads 18 bytes and ignores these):
 *   18    state: SV_STATE_* below
 *   19-22 the last wait status of run, little-endian, 0xffffffff before the first exit
 */
#define SV_STATUS_DJB 18
#define SV_STATUS_LEN 23
#define SV_STATE_DOWN 'd'    /* not running, not wanted up */
#define SV_STATE_RUN 'r'     /* run is running */
#define SV_STATE_FINISH 'f'  /* finish is running */
#define SV_STATE_WAIT 'w'    /* wanted up, waiting out the 1 s between starts */
#define SV_STATE_BROKEN 'b'  /* wanted up, but run is missing or not executable */

struct sv_status {
  uint64_t sec;      /* TAI64 label */
  uint32_t nano;
  uint32_t pid;
  unsigned char paused;
  unsigned char want;
  unsigned char state;   /* 0 when the record has only djb's 18 bytes */
  uint32_t lastwait;
};

void sv_status_pack(unsigned char *s, const struct sv_status *st);
/* Returns the number of meaningful bytes (18 or 23); fewer than 18 means bad format. */
size_t sv_status_unpack(const unsigned char *s, size_t len, struct sv_status *st);

/* TAI64N. */
#define TAI64_UNIX_OFFSET 4611686018427387914ULL /* 2^62 + 10 */
struct tai64n { uint64_t sec; uint32_t nano; };
void tai64n_now(struct tai64n *t);
void tai64n_pack(unsigned char out[12], const struct tai64n *t);
/* "@" and 24 lower-case hex digits, NUL-terminated: out has room for 26 bytes. */
void tai64n_label(char out[26], const struct tai64n *t);

/* Messages. sv_progname is set by each program; messages go to stderr as "PROG: LEVEL: text". */
extern const char *sv_progname;
/* djb's wording for an errno ("file does not exist"), so messages match daemontools'. */
const char *sv_strerror(int e);
void sv_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sv_warnsys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sv_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void sv_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void sv_diesys(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void sv_usage(const char *usage);

/* File helpers; each returns 0 or -1 with errno set. */
int sv_coe(int fd);
int sv_nonblock(int fd, int on);
/* mkfifo, accepting one that exists. */
int sv_fifo_make(const char *path, mode_t mode);
/* mkdir, accepting one that exists; a dangling symlink gets its target created (as Debian's supervise). */
int sv_mkdir_follow(const char *path, mode_t mode);
/* Writes all of buf, retrying short writes and EINTR. */
int sv_write_all(int fd, const void *buf, size_t len);
/* Writes len bytes to path.new and renames it to path. */
int sv_replace_file(const char *path, const char *tmp, const void *buf, size_t len);

/* Time on CLOCK_MONOTONIC, in milliseconds. */
int64_t sv_now_ms(void);

/* For a child of svscan or supervise about to exec: SIGPIPE (which they ignore) back to its default and
   no signal blocked; exec itself resets the caught ones. */
void sv_child_signals(void);
/* Starts PROG (searched in $PATH when SEARCH) with ARGV, as svscan and supervise start their children: in
   a session of its own, SIGPIPE back to its default and no signal blocked, fd 0 or 1 from IN and OUT (-1
   to keep), in SUBDIR (NULL to stay). musl's posix_spawn shares the parent's memory until the exec, as
   vfork: no page tables copied. Returns 0 with *PID set, or the error number: no process (EAGAIN,
   ENOMEM), or the exec's errno, so a program that cannot start is seen at once. */
int sv_spawn(pid_t *pid, const char *prog, char *const argv[], int in, int out, const char *subdir, int search);
/* Every signal back to its default and none blocked: what sigreset gives CMD, whose sh ignored some. */
void sv_default_signals(void);

/* Messages go to sv_msgfd (2 unless a program changes it). When it is non-blocking and full, the message
   is dropped and counted in sv_msglost, for the program to report later. */
extern int sv_msgfd;
extern unsigned long sv_msglost;

/* Is it harmless for this process to exit? Yes when it is not process 1, or is process 1 of a child PID
   namespace (a container, which its exit ends). Process 1 of the initial namespace (a machine) must never
   exit: the kernel would panic. There the kernel's kthreadd is visible, as pid 2 whose parent is 0; in a
   child namespace no process but 1 has parent 0. Without /proc nobody can tell: not harmless. */
int sv_exit_harmless(void);

#include "programs.h"

#endif
