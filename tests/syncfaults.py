"""The fault-injection harness of tests/test_sync_faults.py: a shim in front of the real `rclone` binary that kills
the process driving the sync (SIGKILL) at its Nth rclone call, before the call, during it (rclone killed too,
mid-transfer) or after it; a WebDAV server (`rclone serve webdav` on 127.0.0.1, no hashes); and the checks run on
the remote after every kill."""
import os, shutil, signal, socket, subprocess, sys, time
from pathlib import Path

REAL_RCLONE = shutil.which('rclone')

SHIM = r'''#!/bin/sh
# tinytribe fault shim: count rclone calls; at call $FAULT_AT kill the caller ($PPID) before, during or after it
d="$FAULT_DIR"
exec 9>>"$d/lock"; flock 9      # calls may run at once (a push sends its large files beside the rest)
n=$(( $(cat "$d/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$d/count"
echo "$n $*" >> "$d/calls"
flock -u 9; exec 9>&-
if [ "$n" = "${FAULT_AT:-0}" ]; then
  echo "$FAULT_MODE $*" > "$d/killed"
  case "$FAULT_MODE" in
    before) kill -9 "$PPID"; exit 137;;
    during) "$REAL_RCLONE" "$@" & c=$!; sleep "${FAULT_DELAY:-0.05}"; kill -9 "$PPID" "$c" 2>/dev/null; exit 137;;
    after) "$REAL_RCLONE" "$@"; kill -9 "$PPID"; exit 137;;
  esac
fi
exec "$REAL_RCLONE" "$@"
'''


def make_shim(where: Path) -> Path:
    "A folder holding the `rclone` shim (put it first on PATH)."
    b = Path(where)/'shim-bin'
    b.mkdir(parents=True, exist_ok=True)
    (b/'rclone').write_text(SHIM)
    (b/'rclone').chmod(0o755)
    return b


def shim_env(shim_bin: Path, fault_dir: Path, at: int = 0, mode: str = 'before', delay: float = 0.05,
             base: dict | None = None) -> dict:
    "The environment of a process whose Nth rclone call (`at`; 0: none) is the fault."
    fault_dir = Path(fault_dir)
    fault_dir.mkdir(parents=True, exist_ok=True)
    for f in ('count', 'calls', 'killed'):
        with __import__('contextlib').suppress(FileNotFoundError): (fault_dir/f).unlink()
    env = dict(base or os.environ)
    env.update(PATH=f"{shim_bin}{os.pathsep}{env.get('PATH', '')}", FAULT_DIR=str(fault_dir), FAULT_AT=str(at),
               FAULT_MODE=mode, FAULT_DELAY=f"{delay:.3f}", REAL_RCLONE=REAL_RCLONE, OMP_NUM_THREADS='1',
               PYTHONUNBUFFERED='1')
    return env


def calls(fault_dir: Path) -> list[str]:
    "The rclone calls the last run made (`N subcommand args...`)."
    p = Path(fault_dir)/'calls'
    return p.read_text().splitlines() if p.exists() else []


SUBCOMMANDS = ('copy', 'copyto', 'move', 'moveto', 'lsjson', 'delete', 'deletefile', 'purge', 'serve')


def subcommand(call: str) -> str | None:
    "The rclone subcommand of a logged call (`N -q --retries 3 ... copyto SRC DST` -> 'copyto')."
    return next((t for t in call.split() if t in SUBCOMMANDS), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class WebDAV:
    "`rclone serve webdav DIR` on 127.0.0.1 (the real binary); `env` makes `dav:` point at it."
    def __init__(self, served: Path):
        self.served = Path(served)
        self.served.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen([REAL_RCLONE, 'serve', 'webdav', str(self.served), '--addr', f'127.0.0.1:{self.port}'],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(('127.0.0.1', self.port)) == 0: break
            time.sleep(0.05)
        self.env = {'RCLONE_CONFIG_DAV_TYPE': 'webdav', 'RCLONE_CONFIG_DAV_URL': f'http://127.0.0.1:{self.port}/',
                    'RCLONE_CONFIG_DAV_VENDOR': 'other'}

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def remote_check(spec: str, where: Path, env: dict | None = None, full: bool = False):
    """What the remote lists, checked in full: a pull into an empty folder downloads every listed file and checks
    its size and MD5 here (also on WebDAV), raising on any missing or wrong one. Returns (`verify()`'s dict when
    `full`, else None; {rel: bytes} of the listed files)."""
    from tinytribe.sync import JobSync
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        shutil.rmtree(where, ignore_errors=True)
        s = JobSync(where, spec, credentials={})
        s.pull()
        got = {p.relative_to(where).as_posix(): p.read_bytes() for p in Path(where).rglob('*')
               if p.is_file() and '.sync' not in p.relative_to(where).parts}
        return (s.verify(deep=True) if full else None), got
    finally:
        os.environ.clear()
        os.environ.update(old)
