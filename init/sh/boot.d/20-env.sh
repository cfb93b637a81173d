# provides: env
# where: container
# The container's environment (docker run -e) as an envdir, /run/svinit/env, one file per variable:
# a service reads it with `envdir /run/svinit/env CMD`. svscan and services otherwise start with a clean
# environment. Values are cut at their first newline (envdir's rule). The values may be secrets
# (DB_PASSWORD): the envdir is 0700 and its files 0600, readable by root only, as Docker keeps a
# process's environment to its owner. A service that drops privileges reads them first:
# `exec envdir /run/svinit/env setuidgid nobody daemon` (or su-exec, chpst -u).
[ "$virt" = container ] || { sv_skip "a vm has no container environment to save"; return 0; }
umask 077
envd=$SVINIT_RUN/env
# (at a first boot /sbin/init made it, empty: no mkdir to fork; an earlier boot's is made anew; the
# variables are read from a file, not a pipe: no fork)
envd_empty=
if [ -d "$envd" ] && [ ! -L "$envd" ]; then
  envd_empty=1
  for f in "$envd"/* "$envd"/.[!.]* "$envd"/..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then envd_empty= && break; fi
  done
fi
if [ -z "$envd_empty" ]; then
  if [ -e "$envd" ] || [ -L "$envd" ]; then rm -rf "$envd" || return 1; fi
  mkdir "$envd" || return 1
fi
export -p > "$SVINIT_RUN/.env.export" || return 1
while IFS= read -r line; do
  case $line in "export "*) ;; *) continue ;; esac
  name=${line#export }
  name=${name%%=*}
  case $name in
    PATH | HOME | HOSTNAME | TERM | PWD | OLDPWD | SHLVL | container | SVINIT_*) continue ;;
    *[!A-Za-z0-9_]* | '') continue ;;
  esac
  eval "value=\${$name-}"
  printf '%s\n' "$value" > "$envd/$name"
done < "$SVINIT_RUN/.env.export"
: > "$SVINIT_RUN/.env.export"  # the values may be secrets: they stay in the envdir only
