/*
 * programs.h: svinit's C programs, all linked into one static multi-call file (multicall.c) that runs
 * the one its name says (argv[0], as busybox), so musl and libsv are in it once. Each program keeps its
 * own file, NAME.c, whose entry point is NAME_main. A new program: its file, and one line here.
 * The Makefile reads the names from this list.
 */
#ifndef PROGRAMS_H
#define PROGRAMS_H

#define SV_PROGRAMS(X) \
  X(svscan) \
  X(supervise) \
  X(svc) \
  X(svstat) \
  X(svok) \
  X(svscanctl) \
  X(multilog) \
  X(tai64nlocal) \
  X(envdir) \
  X(sigreset) \
  X(svkillall) \
  X(svpower) \
  X(svacpid) \
  X(svwait) \
  X(svpty) \
  X(svstamp) \
  X(init)

#define SV_PROGRAM_DECLARE(name) int name##_main(int argc, char **argv);
SV_PROGRAMS(SV_PROGRAM_DECLARE)
#undef SV_PROGRAM_DECLARE

#endif
