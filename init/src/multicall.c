/*
 * multicall: the entry point of svinit's one static program. It runs the program its name says: the
 * base name of argv[0], which is the name of the link it was run through (/usr/lib/svinit/bin/svscan,
 * /init). Any other name: an error naming the programs it has, exit 100.
 */
#include <stdio.h>
#include <string.h>
#include "sv.h"

static const struct {
  const char *name;
  int (*main)(int, char **);
} programs[] = {
#define SV_PROGRAM_ENTRY(name) { #name, name##_main },
  SV_PROGRAMS(SV_PROGRAM_ENTRY)
#undef SV_PROGRAM_ENTRY
};

int main(int argc, char **argv)
{
  const char *name = argc > 0 && argv[0] ? argv[0] : "";
  const char *slash = strrchr(name, '/');
  if (slash) name = slash + 1;
  for (size_t i = 0; i < sizeof programs / sizeof programs[0]; ++i)
    if (strcmp(name, programs[i].name) == 0) return programs[i].main(argc, argv);

  fprintf(stderr, "svinit: fatal: unknown program name \"%s\": this file is svinit's multi-call program; "
          "run it through a link named after one of its programs:\n ", name);
  for (size_t i = 0; i < sizeof programs / sizeof programs[0]; ++i) fprintf(stderr, " %s", programs[i].name);
  fputs("\nusage: ln -s THIS_FILE svscan; ./svscan dir (as `make -C init install` links them)\n", stderr);
  return EXIT_PERM;
}
