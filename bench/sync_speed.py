"""Push and pull of a job folder through tinytribe's sync protocol, beside plain `rclone copy` of the same folder in
the same run, on rclone's local backend and on a WebDAV server (`rclone serve webdav` on 127.0.0.1).

The job folder (`--size-mb`, default 1024) is one large checkpoint (`ckpt/last.pt`) and `--small-files` small files
(items of 4-64 KiB and a manifest record for each, as extraction and the teacher cache write them). For each backend:

- `rclone_push_s` / `rclone_pull_s`: `rclone copy FOLDER REMOTE` and back into an empty folder (rclone's own checks);
- `push_s` / `pull_s`: `JobSync.push()` into an empty remote folder (snapshot, MD5, upload, read-back of sizes and
  hashes, a new generation read back whole, collection) and `JobSync.pull()` into an empty folder (download, size
  and MD5 of every file checked here, renamed into place);
- `push_ratio` / `pull_ratio`: tinytribe's time over rclone's, per run (the target: at most 1.2); the backend's
  figures are the medians over `--repeats` runs. `*_cpu_s`: CPU seconds (user + system) of this process and the
  rclone processes it ran (not the WebDAV server's); `*_rclone_calls_s`: tinytribe's time inside rclone calls.

The two sides of each pair run one after the other, in an order that alternates from run to run, each started after
`sync` (so neither pays for writing back the other's bytes); the load average is recorded with every run, since
on a shared machine the side-by-side ratio is what compares.

    python bench/sync_speed.py [--size-mb 1024] [--small-files 1000] [--backends local,webdav] [--out bench/results/sync_speed.json]
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, socket, subprocess, sys, tempfile, time
from pathlib import Path


def make_job(root: Path, size_mb: int, n_small: int, seed: int = 0) -> int:
    "A job folder of about `size_mb` MiB: `n_small` small items + manifest records, the rest one checkpoint."
    import random
    rng = random.Random(seed)
    total = 0
    for i in range(n_small):
        b = rng.randbytes(rng.randint(4, 64) * 1024)
        (root/'items').mkdir(parents=True, exist_ok=True)
        (root/'items'/f"clip{i:05d}.npz").write_bytes(b)
        (root/'manifest'/'done').mkdir(parents=True, exist_ok=True)
        rec = json.dumps({'key': f"clip{i:05d}", 'file': f"items/clip{i:05d}.npz"}).encode()
        (root/'manifest'/'done'/f"clip{i:05d}.json").write_bytes(rec)
        total += len(b) + len(rec)
    big = max(1, size_mb * 2**20 - total)
    (root/'ckpt').mkdir(parents=True, exist_ok=True)
    with open(root/'ckpt'/'last.pt', 'wb') as f:
        left = big
        while left > 0:
            n = min(left, 16 * 2**20)
            f.write(os.urandom(n))
            left -= n
    return total + big


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def drop_caches_hint(folder: Path):
    "Read the folder once so every timed run starts with it in the page cache (the same for rclone and tinytribe)."
    for p in folder.rglob('*'):
        if p.is_file():
            with open(p, 'rb') as f:
                while f.read(1 << 24): pass


def cpu_s() -> float:
    "CPU seconds (user + system) of this process and its finished children so far."
    import resource
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def timed(fn) -> tuple[float, float]:
    "(wall seconds, CPU seconds) of `fn()`, started with nothing left to write back from the step before."
    os.sync()
    c, t = cpu_s(), time.perf_counter()
    fn()
    return round(time.perf_counter() - t, 3), round(cpu_s() - c, 3)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return round(xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2, 3)


def timed_remote(spec: str):
    "The `RcloneRemote` of `spec`, timing its rclone calls by subcommand (`calls_s`)."
    from tinytribe.sync import RcloneRemote

    class TimedRclone(RcloneRemote):
        def run(self, *args, **kw):
            t = time.perf_counter()
            try: return super().run(*args, **kw)
            finally:
                k = args[0] + (' --hash' if '--hash' in args else '')
                self.calls_s[k] = round(self.calls_s.get(k, 0.0) + time.perf_counter() - t, 3)
    r = TimedRclone(spec)
    r.calls_s = {}
    return r


def run_backend(name: str, job: Path, work: Path, nbytes: int, repeats: int) -> dict:
    from tinytribe.sync import JobSync
    srv, env = None, {}
    if name == 'webdav':
        served = work/'served'
        served.mkdir()
        port = free_port()
        srv = subprocess.Popen(['rclone', 'serve', 'webdav', str(served), '--addr', f'127.0.0.1:{port}'],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(('127.0.0.1', port)) == 0: break
            time.sleep(0.05)
        env = {'RCLONE_CONFIG_BENCHDAV_TYPE': 'webdav', 'RCLONE_CONFIG_BENCHDAV_URL': f'http://127.0.0.1:{port}/',
               'RCLONE_CONFIG_BENCHDAV_VENDOR': 'other'}
        base = 'benchdav:'
    else:
        (work/'remote').mkdir()
        base = str(work/'remote') + '/'
    os.environ.update(env)
    out = {'backend': name, 'bytes': nbytes, 'runs': []}
    try:
        for r in range(repeats):
            rc = lambda *a: subprocess.run(['rclone', '-q', *a], check=True)
            row = {'load_avg_1min': round(os.getloadavg()[0], 2), 'first': 'rclone' if r % 2 == 0 else 'tinytribe'}
            rep = {}
            shutil.rmtree(job/'.sync', ignore_errors=True)
            push, pull = JobSync(job, timed_remote(base + f"tt{r}"), credentials={}), None
            steps = {'rclone_push': lambda: rc('copy', str(job), f"{base}rclone{r}"),
                     'push': lambda: rep.update(push=push.push())}
            for k in (steps if r % 2 == 0 else reversed(steps)):    # the order alternates from run to run
                row[k + '_s'], row[k + '_cpu_s'] = timed(steps[k])
            pull = JobSync(work/f"tt-pull{r}", timed_remote(base + f"tt{r}"), credentials={})
            steps = {'rclone_pull': lambda: rc('copy', f"{base}rclone{r}", str(work/f"rclone-pull{r}")),
                     'pull': lambda: rep.update(pull=pull.pull())}
            for k in (steps if r % 2 == 0 else reversed(steps)):
                row[k + '_s'], row[k + '_cpu_s'] = timed(steps[k])
            assert rep['push'].bytes == nbytes and rep['pull'].bytes == nbytes, (rep['push'].bytes, rep['pull'].bytes, nbytes)
            row['push_MBps'] = round(nbytes / 2**20 / row['push_s'], 1)
            row['pull_MBps'] = round(nbytes / 2**20 / row['pull_s'], 1)
            row['push_ratio'] = round(row['push_s'] / row['rclone_push_s'], 3)
            row['pull_ratio'] = round(row['pull_s'] / row['rclone_pull_s'], 3)
            row['push_cpu_ratio'] = round(row['push_cpu_s'] / row['rclone_push_cpu_s'], 3)
            row['pull_cpu_ratio'] = round(row['pull_cpu_s'] / row['rclone_pull_cpu_s'], 3)
            row['push_rclone_calls_s'], row['pull_rclone_calls_s'] = push.remote.calls_s, pull.remote.calls_s
            row['object_check'] = push.object_check
            out['runs'].append(row)
            print(f"{name} run {r}: {row}", flush=True)
            for d in (work/f"rclone-pull{r}", work/f"tt-pull{r}"): shutil.rmtree(d, ignore_errors=True)
            for d in (f"{base}rclone{r}", f"{base}tt{r}"): subprocess.run(['rclone', 'purge', d], capture_output=True)
        for k in ('rclone_push_s', 'rclone_pull_s', 'push_s', 'pull_s', 'push_ratio', 'pull_ratio', 'push_cpu_ratio',
                  'pull_cpu_ratio'):
            out[k] = median([x[k] for x in out['runs']])       # ratios: the median of each run's side-by-side ratio
    finally:
        for k in env: os.environ.pop(k, None)
        if srv:
            srv.kill()
            srv.wait()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--size-mb', type=int, default=1024)
    ap.add_argument('--small-files', type=int, default=1000)
    ap.add_argument('--backends', default='local,webdav')
    ap.add_argument('--repeats', type=int, default=3, help='timed runs per backend (the median ratio is reported)')
    ap.add_argument('--work', default=None, help='scratch folder (default: a temporary one)')
    ap.add_argument('--out', default='bench/results/sync_speed.json')
    ap.add_argument('--note', default='')
    a = ap.parse_args(argv)
    work = Path(a.work or tempfile.mkdtemp(prefix='sync_speed-'))
    work.mkdir(parents=True, exist_ok=True)
    try:
        job = work/'job'
        nbytes = make_job(job, a.size_mb, a.small_files)
        drop_caches_hint(job)
        res = {'size_mb': a.size_mb, 'small_files': a.small_files, 'bytes': nbytes, 'note': a.note,
               'rclone': subprocess.run(['rclone', 'version'], capture_output=True, text=True).stdout.splitlines()[0],
               'machine': {'cpus': os.cpu_count(), 'load_avg_start': os.getloadavg(), 'python': platform.python_version()},
               'backends': {}}
        for b in [x for x in a.backends.split(',') if x]:
            bw = work/b
            bw.mkdir()
            res['backends'][b] = run_backend(b, job, bw, nbytes, a.repeats)
            shutil.rmtree(bw, ignore_errors=True)
        res['machine']['load_avg_end'] = os.getloadavg()
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(out.read_text()) if out.exists() else {}
        old = old if isinstance(old, dict) else {}
        runs = [r for r in old.get('runs', []) if r.get('size_mb') != a.size_mb] + [res]
        out.write_text(json.dumps({**old, 'runs': runs}, indent=1) + '\n')       # other keys (e.g. 'before') kept
        print(json.dumps({b: {k: v for k, v in r.items() if k != 'runs'} for b, r in res['backends'].items()}, indent=1))
    finally:
        if not a.work: shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
