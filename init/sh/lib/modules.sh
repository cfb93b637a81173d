# sv_load_modules LIST: loads the kernel modules of LIST (svinit's build wrote it: svinit/build/modules.py,
# the one resolver), in its order, each after its dependencies and softdeps, so nothing is resolved here.
# Sourced by boot.d/10-modules.sh and by the disk layout's initramfs (which defines sv_error and sv_skip).
#   load NAME [PARAMS]          must load
#   try NAME [PARAMS]           may not on this CPU (an alias's provider: crc32c_intel needs SSE4.2)
#   load@virtio:N NAME ...      only on a VM with a virtio device of type N (1 a network card, 9 a 9p
#   try@virtio:N NAME ...       share), known once the unconditional modules (virtio_pci) are loaded
#   try@cpu:F[,F...] NAME       only on a CPU with one of these features (the kernel's cpu modalias:
#                               crc32c_intel needs SSE4.2, 0094; a failed load costs ~80 ms under TCG)
# Each pass loads its "try" and "load" lines with one `modprobe -a`, in their order (a fork and exec cost
# tens of ms on an emulated CPU; modprobe loads what each needs first). When that fails, the "try" lines
# again with `modprobe -qa` (their failure is only said) and the "load" lines one by one, to say which
# failed. A line with parameters loads alone, when read.
# Returns 1 when a "load" failed. The modprobe is $SV_MODPROBE (default: modprobe in PATH).
sv_load_modules() {
  _ml_rc=0
  _ml_pass "$1" ""
  _ml_have=" "
  for _ml_d in "${SV_VIRTIO_DEVICES:-/sys/bus/virtio/devices}"/*/device; do
    { read -r _ml_id < "$_ml_d"; } 2>/dev/null && _ml_have="$_ml_have$((_ml_id)) "
  done
  _ml_pass "$1" "$_ml_have"
  return $_ml_rc
}
# _ml_pass LIST HAVE: the unconditional lines (HAVE empty), or the conditional ones whose virtio device
# type is in HAVE (" 1 2 9 ").
_ml_pass() {
  _ml_load=
  _ml_try=
  _ml_all=
  while read -r _ml_how _ml_mod _ml_params; do
    case $_ml_how in
      load | try) [ -z "$2" ] || continue ;;
      try@cpu:*)
        [ -z "$2" ] || continue
        _ml_cpu_has "${_ml_how#*@cpu:}" || continue
        _ml_how=try
        ;;
      load@virtio:* | try@virtio:*)
        [ -n "$2" ] || continue
        case $2 in *" ${_ml_how#*@virtio:} "*) _ml_how=${_ml_how%@*} ;; *) continue ;; esac
        ;;
      *) continue ;;
    esac
    if [ -z "$_ml_params" ]; then
      if [ "$_ml_how" = load ]; then _ml_load="$_ml_load $_ml_mod"; else _ml_try="$_ml_try $_ml_mod"; fi
      _ml_all="$_ml_all $_ml_mod"
    elif [ "$_ml_how" = load ]; then
      # shellcheck disable=SC2086 # the parameters are words
      "${SV_MODPROBE:-modprobe}" "$_ml_mod" $_ml_params || { sv_error "unable to load module $_ml_mod ($1)"; _ml_rc=1; }
    else
      # shellcheck disable=SC2086
      "${SV_MODPROBE:-modprobe}" -q "$_ml_mod" $_ml_params 2>/dev/null || sv_skip "module $_ml_mod did not load (optional)"
    fi
  done < "$1"
  # (modprobe -a goes on past a module that fails, loading the others)
  # shellcheck disable=SC2086 # the names are words
  [ -z "$_ml_all" ] || "${SV_MODPROBE:-modprobe}" -a $_ml_all 2>/dev/null && return 0
  # shellcheck disable=SC2086
  [ -z "$_ml_try" ] || "${SV_MODPROBE:-modprobe}" -qa $_ml_try 2>/dev/null ||
    sv_skip "not every optional module loaded (they may not on this CPU):$_ml_try"
  for _ml_m in $_ml_load; do
    "${SV_MODPROBE:-modprobe}" "$_ml_m" || { sv_error "unable to load module $_ml_m ($1)"; _ml_rc=1; }
  done
}
# _ml_cpu_has F[,F...]: whether this CPU has one of the features F (hex, as the kernel's modalias
# /sys/devices/system/cpu/modalias lists them: cpu:type:x86,...:feature:,0000,0001,...); yes when unknown
_ml_cpu_has() {
  [ -n "${_ml_cpu+set}" ] || { { read -r _ml_cpu < "${SV_CPU_MODALIAS:-/sys/devices/system/cpu/modalias}"; } 2>/dev/null || _ml_cpu=; }
  case $_ml_cpu in *:feature:*) ;; *) return 0 ;; esac
  _ml_f=$1,
  while [ -n "$_ml_f" ]; do
    case "$_ml_cpu," in *",${_ml_f%%,*},"*) return 0 ;; esac
    _ml_f=${_ml_f#*,}
  done
  return 1
}
