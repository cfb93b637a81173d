# provides: vm-services
# where: vm
# needs: scandir
# On a vm, links the services only a vm has into the scan directory: a getty on the serial console,
# acpid (the ACPI power button powers off), and, with svinit.harness=TTY, a shell on TTY for a test
# harness's commands. A vm of `svinit run --vm` (svinit.run) has no getty: its console is a log.
[ "$virt" = vm ] || { sv_skip "getty and acpid are for a vm"; return 0; }
sv_get_scandir
scan=$SV_SCANDIR
# one ln for them all (a process each costs ~8 ms under an emulated CPU); in a function, whose arguments
# are its own (stage 1's are CMD's)
_vm_link() {
  set --
  for d in "$SVINIT_LIB"/vm-services/*; do
    name=${d##*/}
    [ "$name" = harness ] && continue
    # svinit run --vm: the console is a log, nobody logs in
    [ "$name" = getty-console ] && [ -n "${SVINIT_RUNCMD:-}" ] && continue
    [ -e "$scan/$name" ] || [ -L "$scan/$name" ] || set -- "$@" "$d"
  done
  [ $# -eq 0 ] || ln -s "$@" "$scan/"
}
_vm_link
[ ! -L "$scan/svinit-harness" ] || rm -f "$scan/svinit-harness"
[ -n "${SVINIT_HARNESS:-}" ] && ln -s "$SVINIT_LIB/vm-services/harness" "$scan/svinit-harness"
return 0
