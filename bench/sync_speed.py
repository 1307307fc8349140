"""Push and pull of a job folder through tinytribe's sync protocol, beside plain `rclone copy` of the same folder in
the same run, on rclone's local backend and on a WebDAV server (`rclone serve webdav` on 127.0.0.1).

The job folder (`--size-mb`, default 1024) is one large checkpoint (`ckpt/last.pt`) and `--small-files` small files
(items of 4-64 KiB and a manifest record for each, as extraction and the teacher cache write them). For each backend:

- `rclone_push_s` / `rclone_pull_s`: `rclone copy FOLDER REMOTE` and back into an empty folder (rclone's own checks);
- `push_s` / `pull_s`: `JobSync.push()` into an empty remote folder (snapshot, MD5, upload, read-back of sizes and
  hashes, a new generation read back whole, collection) and `JobSync.pull()` into an empty folder (download, size
  and MD5 of every file checked here, renamed into place);
- `push_ratio` / `pull_ratio`: tinytribe's time over rclone's (the target: at most 1.2).

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


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return round(time.perf_counter() - t, 3)


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
            row = {}
            row['rclone_push_s'] = timed(lambda: rc('copy', str(job), f"{base}rclone{r}"))
            row['rclone_pull_s'] = timed(lambda: rc('copy', f"{base}rclone{r}", str(work/f"rclone-pull{r}")))
            spec = f"rclone:{base}tt{r}"
            s = JobSync(job, spec, credentials={})
            shutil.rmtree(job/'.sync', ignore_errors=True)
            rep = {}
            row['push_s'] = timed(lambda: rep.update(push=s.push()))
            p = JobSync(work/f"tt-pull{r}", spec, credentials={})
            row['pull_s'] = timed(lambda: rep.update(pull=p.pull()))
            assert rep['push'].bytes == nbytes and rep['pull'].bytes == nbytes, (rep['push'].bytes, rep['pull'].bytes, nbytes)
            row['push_MBps'] = round(nbytes / 2**20 / row['push_s'], 1)
            row['pull_MBps'] = round(nbytes / 2**20 / row['pull_s'], 1)
            row['push_ratio'] = round(row['push_s'] / row['rclone_push_s'], 3)
            row['pull_ratio'] = round(row['pull_s'] / row['rclone_pull_s'], 3)
            row['object_check'] = s.object_check
            out['runs'].append(row)
            print(f"{name} run {r}: {row}", flush=True)
            for d in (work/f"rclone-pull{r}", work/f"tt-pull{r}"): shutil.rmtree(d, ignore_errors=True)
        best = lambda k: min(x[k] for x in out['runs'])
        out.update({k: best(k) for k in ('rclone_push_s', 'rclone_pull_s', 'push_s', 'pull_s')})
        out['push_ratio'] = round(out['push_s'] / out['rclone_push_s'], 3)
        out['pull_ratio'] = round(out['pull_s'] / out['rclone_pull_s'], 3)
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
    ap.add_argument('--repeats', type=int, default=2, help='timed runs per backend (the best is reported)')
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
        runs = old.get('runs', []) if isinstance(old, dict) else []
        runs = [r for r in runs if r.get('size_mb') != a.size_mb] + [res]
        out.write_text(json.dumps({'runs': runs}, indent=1) + '\n')
        print(json.dumps({b: {k: v for k, v in r.items() if k != 'runs'} for b, r in res['backends'].items()}, indent=1))
    finally:
        if not a.work: shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
