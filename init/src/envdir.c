/*
 * envdir: runs a program with environment variables set from a directory, as daemontools 0.76's.
 *
 *   envdir dir child...
 *
 * For each file NAME in dir not starting with '.': an empty file removes NAME from the
 * environment; otherwise NAME is set to the file's first line, trailing spaces and tabs removed,
 * NUL bytes turned into newlines. Then child is run, found through the PATH envdir was given.
 * Every failure exits 111, usage too (djb's envdir does, unlike its other programs).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sv.h"

extern char **environ;

#define USAGE "envdir: usage: envdir dir child\n"

static char **env;            /* the child's environment, NULL-terminated */
static size_t nenv, capenv;

static void *grow(void *p, size_t n)
{
  p = realloc(p, n);
  if (!p) sv_die(EXIT_TEMP, "out of memory");
  return p;
}

static void env_add(char *entry)
{
  if (nenv == capenv) env = grow(env, (capenv = 2 * capenv + 16) * sizeof *env);
  env[nenv++] = entry;
}

/* Applies "NAME=VALUE" (set) or "NAME" (remove) to env; as djb's, the name ends at the first '='. */
static void env_apply(char *entry)
{
  size_t n = strcspn(entry, "=");
  for (size_t i = 0; i < nenv; ++i)
    if (!strncmp(env[i], entry, n) && env[i][n] == '=') { env[i] = env[--nenv]; break; }
  if (entry[n]) env_add(entry);
}

/*
 * Reads file NAME up to its first newline; returns "NAME=VALUE", or "NAME" for an empty file (or
 * one that vanished, as a dangling symlink), or NULL with errno set.
 */
static char *entry_of(const char *name)
{
  size_t off = strlen(name) + 1, len = off, cap = off + 256, vlen;
  char *s = grow(NULL, cap), *v = s + off, *nl;
  int fd = open(name, O_RDONLY | O_NDELAY | O_CLOEXEC);

  if (fd == -1 && errno != ENOENT) { free(s); return NULL; }
  for (ssize_t r; fd != -1; len += (size_t)r) {
    if (cap - len < 128) { s = grow(s, cap *= 2); v = s + off; }
    r = read(fd, s + len, cap - len - 1);   /* 1 byte kept for the final NUL */
    if (r == -1 && errno == EINTR) r = 0;
    else if (r == -1) { int e = errno; close(fd); free(s); errno = e; return NULL; }
    else if (r == 0 || memchr(s + len, '\n', (size_t)r)) { close(fd); fd = -1; }
  }

  memcpy(s, name, off - 1);
  if (len == off) { s[off - 1] = 0; return s; }
  s[off - 1] = '=';
  vlen = len - off;
  if ((nl = memchr(v, '\n', vlen))) vlen = (size_t)(nl - v);
  while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) --vlen;
  for (size_t i = 0; i < vlen; ++i)
    if (!v[i]) v[i] = '\n';
  v[vlen] = 0;
  return s;
}

/* execvpe as djb's pathexec: PATH (default "/bin:/usr/bin"), an empty entry meaning "."; returns on failure. */
static void run(char **argv)
{
  const char *path = getenv("PATH");
  int saved = 0;

  if (strchr(argv[0], '/')) { execve(argv[0], argv, env); return; }
  if (!path) path = "/bin:/usr/bin";
  for (;;) {
    size_t split = strcspn(path, ":"), n = split + strlen(argv[0]) + 3;
    char *b = grow(NULL, n);
    int e;
    snprintf(b, n, "%.*s/%s", split ? (int)split : 1, split ? path : ".", argv[0]);
    execve(b, argv, env);
    e = errno;
    free(b);
    if (e != ENOENT) {
      saved = e;
      if (e != EACCES && e != EPERM && e != EISDIR) return;
    }
    if (!path[split]) { errno = saved ? saved : e; return; }
    path += split + 1;
  }
}

int envdir_main(int argc, char **argv)
{
  const char *dir;
  DIR *d;
  struct dirent *de;
  int orig;

  sv_progname = "envdir";
  if (argc < 3) { sv_write_all(2, USAGE, sizeof USAGE - 1); _exit(EXIT_TEMP); }
  dir = argv[1];

  for (char **e = environ; *e; ++e) env_add(*e);

  orig = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (orig == -1) sv_diesys(EXIT_TEMP, "unable to switch to current directory");
  if (chdir(dir) == -1) sv_diesys(EXIT_TEMP, "unable to switch to directory %s", dir);
  d = opendir(".");
  if (!d) sv_diesys(EXIT_TEMP, "unable to read directory %s", dir);
  for (;;) {
    char *entry;
    errno = 0;
    if (!(de = readdir(d))) {
      if (errno) sv_diesys(EXIT_TEMP, "unable to read directory %s", dir);
      break;
    }
    if (de->d_name[0] == '.') continue;
    if (!(entry = entry_of(de->d_name))) sv_diesys(EXIT_TEMP, "unable to read %s/%s", dir, de->d_name);
    env_apply(entry);
  }
  closedir(d);
  if (fchdir(orig) == -1) sv_diesys(EXIT_TEMP, "unable to switch to starting directory");
  close(orig);

  env_add(NULL);   /* the terminator */
  run(argv + 2);
  sv_diesys(EXIT_TEMP, "unable to run %s", argv[2]);
}
