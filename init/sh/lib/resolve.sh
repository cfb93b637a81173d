# Orders boot drop-ins by their headers, in pure POSIX sh: no external command (the seed's load.sh idea).
#
# A drop-in declares, in comment lines at its top:
#   # provides: NAME...    (default: its file name without a leading "NN-" and the ".sh")
#   # needs: NAME...       (what must have run before it)
#   # where: vm|container  (it applies there only: stage 1 skips it elsewhere without starting it)
# sv_resolve FILE... sets SV_ORDER to the files that can run, dependencies first and otherwise in the
# order given, one per line. A dependency cycle, or a need that nothing provides, is reported on stderr
# naming the scripts; those scripts, and every script that needs them, are left out.

# Variables are set through eval, which shellcheck cannot follow:
# shellcheck disable=SC2154,SC2034

_sv_name() {  # $1: path; sets _sv_nm to the default name
  _sv_nm=${1##*/}
  _sv_nm=${_sv_nm%.sh}
  case $_sv_nm in [0-9]*-*) _sv_nm=${_sv_nm#*-} ;; esac
}

_sv_valid() {  # a name usable in a variable: letters, digits, '_' and '-'
  case $1 in '' | *[!A-Za-z0-9_-]*) return 1 ;; esac
}

_sv_key() {  # $1: a name; sets _sv_k to it with every '-' turned into '_'
  _sv_k=$1
  while :; do
    case $_sv_k in *-*) _sv_k=${_sv_k%%-*}_${_sv_k#*-} ;; *) break ;; esac
  done
}

_sv_headers() {  # $1: index, $2: path
  _sv_prov=
  _sv_need=
  while IFS= read -r _sv_line || [ -n "$_sv_line" ]; do
    case $_sv_line in
      '#!'*) ;;
      '#'*provides:*) _sv_prov="$_sv_prov ${_sv_line#*provides:}" ;;
      '#'*needs:*) _sv_need="$_sv_need ${_sv_line#*needs:}" ;;
      '#'* | '') ;;
      *) break ;;
    esac
  done < "$2"
  if [ -z "${_sv_prov# }" ]; then _sv_name "$2"; _sv_prov=$_sv_nm; fi
  eval "_sv_p_$1=\$_sv_prov; _sv_n_$1=\$_sv_need; _sv_f_$1=\$2"
}

_sv_base() { _sv_b=${1##*/}; }

# sv_where FILE: sets SV_WHERE to FILE's "# where:" header, empty when it has none (it runs everywhere).
# While the order came from the cache, so do the headers (CACHE.sh, which sv_order sources: no drop-in
# is read, which busybox's `read` would do a byte at a time).
sv_where() {
  case $_sv_wc in
    *"
$1
"*)
      SV_WHERE=${_sv_wc#*"
$1
"}
      SV_WHERE=${SV_WHERE%%"
"*}
      return 0
      ;;
  esac
  SV_WHERE=
  while IFS= read -r _sv_line || [ -n "$_sv_line" ]; do
    case $_sv_line in
      '#'*where:*) SV_WHERE=${_sv_line#*where:} ;;
      '#'* | '') ;;
      *) break ;;
    esac
  done < "$1"
  # shellcheck disable=SC2086 # its words, spaces trimmed
  set -- $SV_WHERE
  SV_WHERE=$*
}

_sv_reject() {  # $1: index, $2: why; reports drop-in $1 as not run, once
  eval "_sv_st=\${_sv_s_$1}"
  [ "$_sv_st" = 3 ] && return 0
  eval "_sv_base \"\$_sv_f_$1\""
  sv_error "boot script $_sv_b $2: not run"
  eval "_sv_s_$1=3"
}

# Visits drop-in $1: 0 when it can run (appended to SV_ORDER), 1 when not (already reported).
# The positional parameters are the only variables local to a call in POSIX sh, so they hold the
# state that must survive the recursion: $1 the drop-in, $2... the needs still to visit.
_sv_visit() {
  eval "_sv_st=\${_sv_s_$1:-0}"
  case $_sv_st in
    2) return 0 ;;
    3) return 1 ;;
    1)
      # $1 is on the path being visited: the cycle is the path from $1 onwards
      _sv_cyc=
      _sv_on=
      for _sv_i in $_sv_path; do
        [ "$_sv_i" = "$1" ] && _sv_on=1
        [ -n "$_sv_on" ] || continue
        eval "_sv_base \"\$_sv_f_$_sv_i\""
        _sv_cyc="$_sv_cyc$_sv_b -> "
        eval "_sv_s_$_sv_i=3"
      done
      eval "_sv_base \"\$_sv_f_$1\""
      sv_error "boot scripts in a dependency cycle, not run: $_sv_cyc$_sv_b"
      return 1
      ;;
  esac
  eval "_sv_s_$1=1"
  _sv_path="$_sv_path $1"
  eval "set -- \"\$1\" \$_sv_n_$1"
  while [ $# -gt 1 ]; do
    _sv_key "$2"
    eval "_sv_j=\${_sv_by_$_sv_k:-}"
    if [ -z "$_sv_j" ]; then
      _sv_reject "$1" "needs '$2', which no boot script provides"
      break
    fi
    if ! _sv_visit "$_sv_j"; then
      _sv_reject "$1" "needs '$2', which cannot run"
      break
    fi
    _sv_t=$1
    shift 2
    set -- "$_sv_t" "$@"
  done
  _sv_path=${_sv_path% *}
  eval "_sv_st=\${_sv_s_$1}"
  [ "$_sv_st" = 3 ] && return 1
  eval "_sv_s_$1=2"
  eval "SV_ORDER=\"\${SV_ORDER}\${_sv_f_$1}
\""
  return 0
}

sv_resolve() {
  SV_ORDER=
  _sv_path=
  _sv_count=0
  for _sv_file in "$@"; do
    [ -f "$_sv_file" ] || continue
    _sv_count=$((_sv_count + 1))
    _sv_headers "$_sv_count" "$_sv_file"
    eval "_sv_list=\$_sv_p_$_sv_count"
    for _sv_p in $_sv_list; do
      if ! _sv_valid "$_sv_p"; then
        sv_error "boot script ${_sv_file##*/} provides '$_sv_p': names are letters, digits, '_' and '-'"
        continue
      fi
      _sv_key "$_sv_p"
      eval "_sv_prev=\${_sv_by_$_sv_k:-}"
      if [ -n "$_sv_prev" ]; then
        eval "_sv_base \"\$_sv_f_$_sv_prev\""
        sv_warn "boot scripts $_sv_b and ${_sv_file##*/} both provide '$_sv_p'; ${_sv_file##*/} is used"
      fi
      eval "_sv_by_$_sv_k=$_sv_count"
    done
  done
  _sv_i=1
  while [ "$_sv_i" -le "$_sv_count" ]; do
    _sv_visit "$_sv_i" || :
    _sv_i=$((_sv_i + 1))
  done
}

# The order resolved ahead (install.sh writes $SVINIT_LIB/boot.order with sv_order_write): stage 1 does
# not resolve again while the drop-ins are the ones it was made from.
#   sv_order CACHE FILE...   sets SV_ORDER as sv_resolve FILE... does: from CACHE when CACHE was made
#                            from these very arguments and no drop-in is newer than it; else it resolves
#                            (and reports cycles and missing needs).
#   sv_order_write CACHE PREFIX FILE...   resolves FILE... and writes CACHE, PREFIX removed from every
#                            path (the install tree's DESTDIR); 1 when a drop-in cannot run.
# CACHE: the arguments, one a line, a line "--", then the order, one a line. CACHE.sh: the same as sh,
# which stage 1 sources (busybox's `read` takes a file a byte at a time): _sv_cargs the arguments and
# _sv_corder the order, each line ended by a newline, and _sv_wc each drop-in's path and its "# where:"
# words, two lines each (sv_where reads them there). Without CACHE.sh, CACHE alone serves.
_sv_wc=
sv_order() {
  _sv_cache=$1
  shift
  _sv_wc=
  _sv_cargs=
  [ -f "$_sv_cache" ] && [ -r "$_sv_cache.sh" ] && . "$_sv_cache.sh"
  if [ -n "$_sv_cargs" ]; then
    _sv_cached_sh "$_sv_cache" "$@" && return 0
  elif _sv_cached "$_sv_cache" "$@"; then
    return 0
  fi
  _sv_wc=
  sv_resolve "$@"
}

# (-nt only reads CACHE: SC2094 mistakes it for a write)
# shellcheck disable=SC2094
_sv_cached_sh() {  # CACHE FILE...: CACHE.sh (sourced) made from these arguments, no drop-in newer
  _sv_cf=$1
  shift
  _sv_a=
  for _sv_f in "$@"; do
    _sv_a="$_sv_a$_sv_f
"
    # shellcheck disable=SC3013
    if [ -e "$_sv_f" ] && [ "$_sv_f" -nt "$_sv_cf" ]; then return 1; fi
  done
  [ "$_sv_a" = "$_sv_cargs" ] || return 1
  SV_ORDER=$_sv_corder
}

_sv_quote() {  # sets _sv_q to $1 quoted for sh: in '...', each ' as '\''
  _sv_q=
  _sv_s=$1
  while :; do
    case $_sv_s in
      *\'*)
        _sv_q="$_sv_q${_sv_s%%\'*}'\\''"
        _sv_s=${_sv_s#*\'}
        ;;
      *) break ;;
    esac
  done
  _sv_q="'$_sv_q$_sv_s'"
}

# (-nt only reads CACHE: SC2094 mistakes it for a write)
# shellcheck disable=SC2094
_sv_cached() {  # CACHE FILE...
  _sv_cf=$1
  shift
  [ -f "$_sv_cf" ] || return 1
  SV_ORDER=
  _sv_args=1
  while IFS= read -r _sv_line; do
    if [ -z "$_sv_args" ]; then
      SV_ORDER="$SV_ORDER$_sv_line
"
    elif [ "$_sv_line" = -- ]; then
      [ $# -eq 0 ] || return 1
      _sv_args=
    else
      [ $# -gt 0 ] && [ "$_sv_line" = "$1" ] || return 1
      # (test's -nt: dash, bash, busybox ash and POSIX 2024 have it)
      # shellcheck disable=SC3013
      if [ -e "$1" ] && [ "$1" -nt "$_sv_cf" ]; then return 1; fi
      shift
    fi
  done < "$_sv_cf"
  [ -z "$_sv_args" ]
}

sv_order_write() {
  _sv_cache=$1
  _sv_prefix=$2
  shift 2
  _sv_errors=$({ sv_resolve "$@" 2>&1 >/dev/null; } 2>&1)
  sv_resolve "$@" 2>/dev/null
  [ -z "$_sv_errors" ] || { printf '%s\n' "$_sv_errors" >&2; return 1; }
  {
    for _sv_a in "$@"; do printf '%s\n' "${_sv_a#"$_sv_prefix"}"; done
    echo --
    printf '%s' "$SV_ORDER" | while IFS= read -r _sv_a; do printf '%s\n' "${_sv_a#"$_sv_prefix"}"; done
  } > "$_sv_cache" || return 1
  _sv_w='
'
  _sv_a=
  for _sv_f in "$@"; do _sv_a="$_sv_a${_sv_f#"$_sv_prefix"}
"; done
  _sv_quote "$_sv_a"
  _sv_ca=$_sv_q
  _sv_o=
  _sv_ifs=$IFS
  IFS='
'
  for _sv_a in $SV_ORDER; do
    IFS=$_sv_ifs
    _sv_wc=
    sv_where "$_sv_a"
    _sv_w="$_sv_w${_sv_a#"$_sv_prefix"}
$SV_WHERE
"
    _sv_o="$_sv_o${_sv_a#"$_sv_prefix"}
"
  done
  IFS=$_sv_ifs
  _sv_quote "$_sv_o"
  _sv_co=$_sv_q
  _sv_quote "$_sv_w"
  printf '# %s as sh, which sv_order sources: the arguments, the order, each "# where:" header\n' \
    "${_sv_cache##*/}" > "$_sv_cache.sh" &&
    printf '_sv_cargs=%s\n_sv_corder=%s\n_sv_wc=%s\n' "$_sv_ca" "$_sv_co" "$_sv_q" >> "$_sv_cache.sh"
}
