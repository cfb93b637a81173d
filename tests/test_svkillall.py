"""svkillall, the shutdown's sweep, as process 1's child in a real PID namespace: it signals every
process but itself, its ancestors and what it is told to spare (sessions, pids, names), KILLs what
outlives the grace, and assumes nothing of pid 2 (a kernel thread only on a VM)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("have_unshare")

# Process 1 starts the cast, runs svkillall from a child shell (so process 1 and that shell are its
# ancestors), then reports, for each, whether it is still alive (a zombie counts as gone).
SCRIPT = """
sleep 1000 & first=$!
setsid sleep 1001 & session=$!
"$KEEPME" 1002 & named=$!
sleep 1003 & spared=$!
sh -c 'trap "" TERM; exec sleep 1004' & stubborn=$!
sleep 1005 & plain=$!
sleep 0.2
sh -c '"$SVKILLALL" -g 300 -s "$1" -n keepme -x "$2" TERM; echo "rc=$?"' sh "$session" "$spared"
state() {
  s=$(cut -d' ' -f3 /proc/$1/stat 2>/dev/null)
  if [ -n "$s" ] && [ "$s" != Z ]; then echo alive; else echo gone; fi
}
for v in first session named spared stubborn plain; do eval "p=\\$$v"; echo "$v=$p $(state "$p")"; done
echo "process1 alive"
"""


def in_namespace(script: str, env: dict[str, str]) -> dict[str, str]:
    """Runs *script* as process 1 of a new PID namespace; its KEY=VALUE lines, and its stderr."""
    out = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    result = dict(line.partition("=")[::2] for line in out.stdout.splitlines())
    result["stderr"] = out.stderr
    return result


def run(init_bin: Path, tmp_path: Path) -> dict[str, str]:
    keepme = tmp_path / "keepme"
    shutil.copy2(shutil.which("sleep"), keepme)
    return in_namespace(SCRIPT, {"KEEPME": str(keepme), "SVKILLALL": str(init_bin / "svkillall")})


def test_signals_all_but_ancestors_and_the_spared_and_kills_the_stubborn(init_bin, tmp_path):
    r = run(init_bin, tmp_path)
    assert r["rc"] == "0", r
    assert r["first"] == "2 gone", "pid 2 is an ordinary process in a container: it is signalled"
    assert r["plain"].endswith(" gone") and r["stubborn"].endswith(" gone"), r
    assert r["session"].endswith(" alive") and r["named"].endswith(" alive"), r
    assert r["spared"].endswith(" alive"), r
    assert "process1 alive" in r, "its ancestors (process 1, the shell that ran it) are spared"


def test_usage_errors_exit_100(init_bin):
    # in a namespace of its own all the same: a svkillall on the host would signal the whole machine
    ns = ["unshare", "--pid", "--fork", "--mount-proc"]
    for argv in (["-g", "-5"], ["NOSUCHSIGNAL"], ["TERM", "extra"], ["-q"]):
        r = subprocess.run([*ns, init_bin / "svkillall", *argv], capture_output=True, text=True)
        assert r.returncode == 100 and "usage: svkillall" in r.stderr, (argv, r.stderr)


# A logger under supervise (its run a session leader, with a child in its session) is spared with -S and
# its directory; a directory whose supervise is not running spares nothing (its stale status names the
# plain sleep's pid, which must still be signalled).
SCRIPT_S = """
mkdir -p "$D/up" "$D/stale/supervise"
printf '#!/bin/sh\\nsleep 1010 &\\nexec sleep 1011\\n' > "$D/up/run"
chmod +x "$D/up/run"
"$BIN/supervise" "$D/up" & sup=$!
sleep 1005 & plain=$!
until [ -n "$(sed -n 's/.*: up (pid \\([0-9]*\\)).*/\\1/p' "$D/out" 2>/dev/null)" ]; do
  "$BIN/svstat" "$D/up" > "$D/out"; sleep 0.05
done
run=$(sed -n 's/.*: up (pid \\([0-9]*\\)).*/\\1/p' "$D/out")
sleep 0.2
read -r child _ < /proc/$run/task/$run/children
# a status record (djb's 18 bytes) naming the plain sleep, with no supervise
"$BIN/svstat" "$D/up" > /dev/null
cp "$D/up/supervise/status" "$D/stale/supervise/status"
sh -c '"$BIN/svkillall" -g 300 -n supervise -S "$D/up" -S "$D/stale" -S "$D/nosuch" TERM; echo "rc=$?"'
state() {
  s=$(cut -d' ' -f3 /proc/$1/stat 2>/dev/null)
  if [ -n "$s" ] && [ "$s" != Z ]; then echo alive; else echo gone; fi
}
for v in sup run child plain; do eval "p=\\$$v"; echo "$v=$p $(state "$p")"; done
"""


def test_dash_S_spares_what_is_up_in_a_directory_and_its_session(init_bin, tmp_path):
    d = tmp_path / "sv"
    d.mkdir()
    r = in_namespace(SCRIPT_S, {"BIN": str(init_bin), "D": str(d)})
    assert r.get("rc") == "0", r
    assert r["run"].endswith(" alive") and r["child"].endswith(" alive"), r
    assert r["sup"].endswith(" alive"), r
    assert r["plain"].endswith(" gone"), "a directory whose supervise is not running spares nothing"
