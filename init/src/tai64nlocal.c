/*
 * tai64nlocal.c: converts the TAI64N labels that start lines to local time, as daemontools'.
 *
 *   tai64nlocal < log
 *
 * A line starting with "@" and hex digits (lower case) gets them replaced by
 * "YYYY-MM-DD HH:MM:SS.NNNNNNNNN" in the local time zone (TZ); the last 8 digits are the nanoseconds,
 * the ones before the TAI64 seconds. Other lines are copied unchanged. Like djb's, an "@" and digits
 * cut short by the end of input print nothing. Exit 0 at EOF, 111 when reading or writing fails.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "sv.h"

static char out[65536];
static size_t outlen;

static void flush(void)
{
  if (outlen && sv_write_all(1, out, outlen) == -1) sv_diesys(EXIT_TEMP, "unable to write output");
  outlen = 0;
}

static void put(const char *p, size_t len)
{
  if (outlen + len > sizeof out) {
    flush();
    if (len > sizeof out) {
      if (sv_write_all(1, p, len) == -1) sv_diesys(EXIT_TEMP, "unable to write output");
      return;
    }
  }
  memcpy(out + outlen, p, len);
  outlen += len;
}

/* The label being read: seconds and nanoseconds as djb's accumulate them, and its digits. */
static uint64_t secs;
static unsigned long nano;
static char digits[64];
static size_t ndigits;

static int hexval(char ch)
{
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}

static void put_time(void)
{
  char s[96];
  time_t t = (time_t)(secs - TAI64_UNIX_OFFSET);
  struct tm *tm = localtime(&t);
  if (!tm) { /* out of range for the calendar: keep the label */
    put("@", 1);
    put(digits, ndigits);
    return;
  }
  int n = snprintf(s, sizeof s, "%d-%02d-%02d %02d:%02d:%02d.%09lu", 1900 + tm->tm_year, 1 + tm->tm_mon,
                   tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec, nano);
  if (n > 0) put(s, (size_t)n < sizeof s ? (size_t)n : sizeof s - 1);
}

int tai64nlocal_main(int argc, char **argv)
{
  static char in[65536];
  enum { START, LABEL, COPY } state = START;
  (void)argc, (void)argv;
  sv_progname = "tai64nlocal";

  for (;;) {
    ssize_t r = read(0, in, sizeof in);
    if (r == -1) {
      if (errno == EINTR) continue;
      sv_diesys(EXIT_TEMP, "unable to read input");
    }
    if (r == 0) break;
    const char *p = in, *end = in + r;
    while (p < end) {
      if (state == START) {
        if (*p == '@') {
          state = LABEL;
          secs = 0;
          nano = 0;
          ndigits = 0;
          ++p;
          continue;
        }
        state = COPY;
      }
      if (state == LABEL) {
        int u = hexval(*p);
        if (u >= 0) {
          secs = (secs << 4) + (nano >> 28);
          nano = ((nano & 0xfffffff) << 4) + (unsigned long)u;
          if (ndigits < sizeof digits) digits[ndigits++] = *p;
          ++p;
          continue;
        }
        put_time();
        state = COPY;
      }
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      const char *stop = nl ? nl + 1 : end;
      put(p, (size_t)(stop - p));
      p = stop;
      if (nl) state = START;
    }
    flush(); /* before waiting for more, so a follower sees each line at once */
  }
  flush();
  return 0;
}
