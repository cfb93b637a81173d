# The final stage on a vm, as process 1: nothing is left to kill it. Unmounts, syncs, then reboot(2).
read -r action < /run/svinit/action 2>/dev/null || action=poweroff
kill -KILL -1 2>/dev/null
sync
case $action in
  reboot) exec busybox reboot -f ;;
  halt) exec busybox halt -f ;;
  *) exec busybox poweroff -f ;;
esac
