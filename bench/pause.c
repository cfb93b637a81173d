/* The run of bench/supervision.py's "supervision alone" figure: a service that starts at once and waits,
   static, so that its start costs next to nothing and the figure is svscan's and supervise's own. */
#include <unistd.h>

int main(void)
{
  for (;;) pause();
}
