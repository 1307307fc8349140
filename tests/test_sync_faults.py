"""Fault injection: sessions killed (SIGKILL) at every rclone call of a pull and a push, before the call, during it
(rclone killed too, mid-transfer) and after it, on rclone's local backend and on a real `rclone serve webdav`
(127.0.0.1, no hashes), each followed by a new session in a fresh, empty folder that resumes from the remote alone.
After every kill the remote is checked in full (`verify(deep=True)`: every listed file downloaded and hashed):
it never lists a missing or wrong file and never loses what it listed before. In the end every item is there
exactly once and nothing unlisted is left. The harness (a shim in front of the rclone binary) is tests/syncfaults.py.

- a batch job (real `run_items`/`Manifest`) that also replaces a same-size checkpoint every session;
- real `tinytribe teacher-cache`, `tinytribe extract` and `tinytribe train --remote` sessions killed at rclone calls
  spread over their pushes; training then ends bit-identical to an uninterrupted run.
"""
import json, os, random, shutil, subprocess, sys, time
from pathlib import Path
import pytest
from syncfaults import make_shim, shim_env, calls, subcommand, WebDAV, remote_check, REAL_RCLONE
from conftest import assert_same_weights, save_synthetic_features

ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"
KILLS = {}            # test -> kills, printed at the end of each test

DRIVER = r'''
import sys
from pathlib import Path
from tinytribe.session import run_session
from tinytribe.store import Manifest, run_items, write_json, atomic_write
from tinytribe.sync import JobSync
local, remote, upto, gen = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
JobSync.split_bytes = 4096         # the checkpoint goes up beside the other files, as a large one would
def job(deadline):
    out = Path(local)
    with atomic_write(out/'ckpt'/'last.pt') as f: f.write(bytes([gen % 251]) * 4096)   # same size every session
    def one(key, x):
        write_json(out/'items'/f"{key}.json", {'key': key, 'square': x * x})
        return {'file': f"items/{key}.json"}
    return run_items({f"k{i:03d}": i for i in range(upto)}, one, Manifest(out/'manifest'), progress=False, desc='demo')
run_session(job, local, remote=remote, name='faults-demo', budget_hours=None, push_every_min=1e6, credentials={},
            quiet=True)
'''


@pytest.fixture(scope='module', autouse=True)
def kill_count():
    "Say how many kills the module's tests made in all (the issue asks for at least 100)."
    yield
    print(f"\nkills in all: {sum(KILLS.values())} {KILLS}")


@pytest.fixture(params=['local', 'webdav'])
def backend(request, tmp_path):
    "(remote spec, environment for rclone) of rclone's local backend or a WebDAV server started here."
    if request.param == 'local':
        yield f"rclone:{tmp_path/'remote'}", {}
    else:
        srv = WebDAV(tmp_path/'served')
        yield 'dav:job', srv.env
        srv.stop()


def _check_items(got: dict, before: set) -> set:
    items = {k for k in got if k.startswith('items/')}
    assert items >= before, f"the remote lost {sorted(before - items)}"
    for k in items:
        d = json.loads(got[k])
        assert d['square'] == int(d['key'][1:]) ** 2
    done = {k.split('/')[-1] for k in got if k.startswith('manifest/done/')}
    assert {k.split('/')[-1] for k in items} >= done, 'the manifest calls an item done whose output is not listed'
    ck = got.get('ckpt/last.pt')
    assert ck is None or (len(ck) == 4096 and len(set(ck)) == 1), 'a listed checkpoint is not one session\'s whole file'
    return items


def test_batch_job_killed_at_every_rclone_call(backend, tmp_path):
    spec, denv = backend
    rng, shim, fd = random.Random(7), make_shim(tmp_path), tmp_path/'fault'
    base = {**os.environ, **denv}
    kills, session, before, where, t0 = 0, 0, set(), [], time.time()
    for mode in ('before', 'during', 'after'):
        at = 1
        while True:
            session += 1
            env = shim_env(shim, fd, at=at, mode=mode, delay=rng.uniform(0.0, 0.12), base=base)
            r = subprocess.run([sys.executable, '-c', DRIVER, str(tmp_path/f"s{session:03d}"), spec, str(2 + session),
                                str(session)], env=env, capture_output=True, text=True, timeout=180)
            if not (fd/'killed').exists():                    # fewer calls than `at`: this mode is through
                assert r.returncode == 0, r.stderr[-3000:]
                break
            assert r.returncode == -9, (r.returncode, r.stderr[-3000:])
            kills += 1
            where.append(subcommand((fd/'killed').read_text()))
            _, got = remote_check(spec, tmp_path/'check', denv)    # raises on a listed file missing or wrong
            before = _check_items(got, before)
            at += 1
    # the last session, unhurt, finishes the job; the remote then holds every item once, nothing unlisted or cut
    n = 2 + session + 1
    r = subprocess.run([sys.executable, '-c', DRIVER, str(tmp_path/'final'), spec, str(n), str(session + 1)],
                       env=shim_env(shim, fd, base=base), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    moves = [c.split() for c in calls(fd) if subcommand(c) in ('move', 'moveto')]   # only temporary -> content name
    assert all('~up-' in m[-2] and '~up-' not in m[-1] for m in moves), ('a rename of a listed name', moves)
    v, got = remote_check(spec, tmp_path/'check', denv, full=True)
    assert v['bad'] == {} and v['unlisted'] == [] and v['damaged_generations'] == [], v
    items = _check_items(got, before)
    assert sorted(items) == [f"items/k{i:03d}.json" for i in range(n)]
    assert len([k for k in got if k.startswith('manifest/done/')]) == n
    assert got['ckpt/last.pt'] == bytes([(session + 1) % 251]) * 4096        # the newest same-size checkpoint
    kinds = sorted(set(where))
    KILLS[f"batch/{spec.split(':')[0]}"] = kills
    print(f"\n{spec}: {kills} kills over {session} sessions ({', '.join(kinds)}) in {time.time() - t0:.0f} s")
    assert kills >= 30 and {'copy', 'copyto', 'moveto', 'lsjson', 'delete'} <= set(kinds), kinds   # moveto: the checkpoint's


def test_same_size_replacement_on_webdav(tmp_path, monkeypatch):
    "A checkpoint replaced by one of the same size, on a backend without hashes: the remote holds the new bytes."
    from tinytribe.sync import JobSync
    srv = WebDAV(tmp_path/'served')
    for k, v in srv.env.items(): monkeypatch.setenv(k, v)
    try:
        a = JobSync(tmp_path/'a', 'dav:job', credentials={})
        (tmp_path/'a'/'ckpt').mkdir(parents=True)
        for b in (b'A', b'B', b'C'):
            (tmp_path/'a'/'ckpt'/'last.pt').write_bytes(b * 10000)
            assert a.push().files == ['ckpt/last.pt']
            shutil.rmtree(tmp_path/'b', ignore_errors=True)
            JobSync(tmp_path/'b', 'dav:job', credentials={}).pull()
            assert (tmp_path/'b'/'ckpt'/'last.pt').read_bytes() == b * 10000
        assert a.object_check == 'size'                  # what WebDAV lets a read-back check
        v = a.verify(deep=True)
        assert v['bad'] == {} and v['unlisted'] == [] and 'size only' in a.verify()['checks']['objects'], v
    finally:
        srv.stop()


def test_no_delete_then_rename_window(tmp_path, monkeypatch):
    """Every rclone call of three pushes, logged: no move or rename at all; every generation written under a name
    that did not exist; nothing deleted that the newest generation lists; so no window in which the remote lists
    nothing (the old protocol's `moveto` over the manifest deleted it first)."""
    from tinytribe.sync import JobSync, unseal
    shim, fd = make_shim(tmp_path), tmp_path/'fault'
    root = tmp_path/'remote'
    for k, v in shim_env(shim, fd).items(): monkeypatch.setenv(k, v)
    a = JobSync(tmp_path/'a', f"rclone:{root}", credentials={})
    (tmp_path/'a').mkdir()
    seen = set()
    for i in range(3):
        (tmp_path/'a'/'last.pt').write_bytes(bytes([i]) * 5000)
        (tmp_path/'a'/f"item{i}.json").write_text(json.dumps({'i': i}))
        names_before = {p.name for p in (root/'_sync').glob('*')} if (root/'_sync').exists() else set()
        (fd/'calls').unlink(missing_ok=True)
        rep = a.push()
        log = calls(fd)
        assert not [c for c in log if subcommand(c) in ('move', 'moveto')], log
        written = [c.split()[-1].rsplit('/', 1)[-1] for c in log if subcommand(c) == 'copyto']
        assert written == [f"main.gen-{rep.generation:08d}.json"] and written[0] not in names_before | seen, (written, log)
        seen |= set(written)
        newest = unseal((root/'_sync'/written[0]).read_bytes())
        assert all((root/'data'/e['obj']).is_file() for e in newest['files'].values())
    assert sorted(p.name for p in (root/'_sync').glob('*')) == [f"main.gen-{n:08d}.json" for n in (2, 3)]


def test_bad_remotes_one_line_nothing_lost(tmp_path):
    """Unreachable remote, an object missing, an object corrupt (same size), a generation cut in half, a folder of
    another job: each one line, a non-zero exit, nothing local lost; the next run repairs or refuses, never deleting
    what the last good generation lists."""
    root, spec = tmp_path/'remote', f"rclone:{tmp_path/'remote'}"
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    tt = lambda *a: subprocess.run([sys.executable, '-c', ENTRY, *map(str, a)], env=env, capture_output=True, text=True,
                                   timeout=120)
    a = tmp_path/'a'
    for i in range(4): (a/'items').mkdir(parents=True, exist_ok=True) or (a/'items'/f"{i}.bin").write_bytes(os.urandom(3000))
    assert tt('sync', 'push', a, spec).returncode == 0
    from tinytribe.sync import JobSync
    listed = JobSync(tmp_path/'x', spec, credentials={}).listed()
    def one_line(r, *words):
        err = r.stderr.strip()
        assert r.returncode != 0 and len(err.splitlines()) == 1 and 'Traceback' not in err, (r.returncode, err)
        for w in words: assert w in err, (w, err)
    # unreachable (a WebDAV server that is gone)
    srv = WebDAV(tmp_path/'served')
    srv.stop()
    env.update(srv.env)
    one_line(tt('sync', 'push', a, 'dav:job'), 'dav:job')
    assert len(list((a/'items').iterdir())) == 4
    # an object missing: the pull says which, brings the rest; a push from a folder that has it sends it again
    obj = root/'data'/listed['items/1.bin']['obj']
    obj.unlink()
    one_line(tt('sync', 'pull', tmp_path/'b', spec), listed['items/1.bin']['obj'], 'missing')
    assert sorted(p.name for p in (tmp_path/'b'/'items').iterdir()) == ['0.bin', '2.bin', '3.bin']
    r = tt('sync', 'push', tmp_path/'b', spec)             # a folder without it: the listing is kept, not dropped
    assert r.returncode == 0 and 'items/1.bin' in JobSync(tmp_path/'x', spec, credentials={}).listed()
    r = tt('sync', 'push', a, spec)
    assert r.returncode == 0 and '1 repaired' in r.stdout, r.stdout + r.stderr
    assert tt('sync', 'pull', tmp_path/'b', spec).returncode == 0
    assert (tmp_path/'b'/'items'/'1.bin').read_bytes() == (a/'items'/'1.bin').read_bytes()
    # an object corrupt, same size: the pull refuses it and keeps the good local copy
    good = (tmp_path/'b'/'items'/'2.bin').read_bytes()
    (tmp_path/'b'/'items'/'2.bin').write_bytes(b'local edit')            # a local copy that differs: pull wants it back
    p = root/'data'/listed['items/2.bin']['obj']
    p.write_bytes(bytes([p.read_bytes()[0] ^ 1]) + p.read_bytes()[1:])
    one_line(tt('sync', 'pull', tmp_path/'b', spec), 'MD5 differs')
    assert (tmp_path/'b'/'items'/'2.bin').read_bytes() == b'local edit'
    assert tt('sync', 'verify', tmp_path/'v', spec).returncode == 1
    p.write_bytes(good)
    # a generation cut in half: the one before it is used; verify names it; the next push writes past it
    gens = sorted((root/'_sync').glob('main.gen-*.json'))
    g = gens[-1]
    (a/'items'/'4.bin').write_bytes(b'new')
    assert tt('sync', 'push', a, spec).returncode == 0
    newest = sorted((root/'_sync').glob('main.gen-*.json'))[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    r = tt('sync', 'verify', tmp_path/'v', spec)
    assert r.returncode == 1 and json.loads(r.stdout)['damaged_generations'] == [newest.name], r.stdout
    assert sorted(JobSync(tmp_path/'x', spec, credentials={}).listed()) == sorted(listed)    # the generation before
    r = tt('sync', 'push', a, spec)
    assert r.returncode == 0 and not newest.exists() and 'items/4.bin' in JobSync(tmp_path/'x', spec, credentials={}).listed()
    assert tt('sync', 'verify', tmp_path/'v', spec).returncode == 0
    # a folder of another job: refused with one line naming both; --adopt takes it on purpose
    code = ("import sys; from tinytribe.session import run_session\n"
            "run_session(lambda d: {'state': 'done'}, sys.argv[1], remote=sys.argv[2], name=sys.argv[3], budget_hours=None,"
            " credentials={}, adopt=len(sys.argv) > 4)\n")
    ses = lambda *a: subprocess.run([sys.executable, '-c', "import sys; from tinytribe.store import ArtifactError\n"
                                     f"try:\n exec({code!r})\nexcept ArtifactError as e: print(e, file=sys.stderr); sys.exit(2)\n",
                                     *map(str, a)], env=env, capture_output=True, text=True, timeout=120)
    assert ses(tmp_path/'e', f"{spec}2", 'features').returncode == 0
    one_line(ses(tmp_path/'t', f"{spec}2", 'phase1'), 'extract', 'train (phase 1)', '--adopt')
    assert JobSync(tmp_path/'y', f"{spec}2", credentials={}).verify()['job'] == {'kind': 'extract'}
    assert ses(tmp_path/'t', f"{spec}2", 'phase1', 'adopt').returncode == 0
    assert JobSync(tmp_path/'y', f"{spec}2", credentials={}).verify()['job'] == {'kind': 'train', 'phase': 1}


def _ff(*args):
    subprocess.run(['ffmpeg', '-y', '-loglevel', 'error', *map(str, args)], check=True)


def _job_args(kind: str, tmp: Path) -> list:
    "A real job's command line (its output folder is added per session), with its inputs made here."
    feats = tmp/'feats'
    if kind in ('teacher-cache', 'train') and not feats.exists(): save_synthetic_features(feats, n=3, seconds=20.0)
    if kind == 'teacher-cache': return ['teacher-cache', feats, '--teacher', 'simbrain', '--quiet']
    if kind == 'train':
        return ['train', '--phase', '1', '--preset', 'tiny', '--features', feats, '--steps', '24', '--batch-size', '4',
                '--seg-steps', '16', '--stride', '8', '--lr', '2e-3', '--log-every', '1', '--ckpt-every', '3',
                '--seed', '3', '--no-progress']
    media = tmp/'media'
    if not media.exists():
        media.mkdir()
        for i in range(3):
            _ff('-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=10', '-f', 'lavfi', '-i',
                f'sine=frequency={200 + 50 * i}:sample_rate=16000', '-t', 4, '-pix_fmt', 'yuv420p', '-shortest',
                media/f'clip{i}.mp4')
    return ['extract', media, '--video-backbone', 'efficientnet_lite0', '--no-asr', '--threads', '1', '--json']


# rclone call numbers to kill at (a session makes ~3 calls to pull, then ~9 per push), with the kind of kill
POINTS = {'teacher-cache': [(2, 'during'), (6, 'before'), (9, 'during'), (11, 'during'), (13, 'after'), (15, 'before'),
                           (17, 'during')],
          'train': [(7, 'during'), (12, 'after'), (16, 'during'), (21, 'before'), (26, 'during')],
          'extract': [(5, 'during'), (9, 'after'), (12, 'during')]}


@pytest.mark.parametrize('kind', ['teacher-cache', 'train', 'extract'])
def test_real_jobs_killed_during_their_pushes(kind, backend, tmp_path):
    """`tinytribe KIND --remote` killed at rclone calls spread over its pull and pushes, resumed each time in a fresh
    folder: the remote never lists a missing or wrong file, and the finished job equals an uninterrupted run (the
    same files, each once; training: the same weights, bit for bit)."""
    spec, denv = backend
    shim, fd = make_shim(tmp_path), tmp_path/'fault'
    base = {**os.environ, **denv, 'PYTHONWARNINGS': 'ignore'}
    args = _job_args(kind, tmp_path)
    tt = lambda out, env, *extra: subprocess.run([sys.executable, '-c', ENTRY, *map(str, args), '--out', str(out), *extra],
                                                 env=env, capture_output=True, text=True, timeout=600)
    ref = tmp_path/'ref'
    r = tt(ref, shim_env(shim, fd, base=base))                      # uninterrupted, no remote
    assert r.returncode == 0, r.stderr[-3000:]
    kills, t0 = 0, time.time()
    for i, (at, mode) in enumerate(POINTS[kind]):
        r = tt(tmp_path/f"s{i}", shim_env(shim, fd, at=at, mode=mode, delay=0.02 * i, base=base), '--remote', spec,
               '--push-every-min', '0.005')
        if (fd/'killed').exists():
            kills += 1
            remote_check(spec, tmp_path/'check', denv)             # raises on a listed file missing or wrong
        else: assert r.returncode == 0, r.stderr[-3000:]
    r = tt(tmp_path/'final', shim_env(shim, fd, base=base), '--remote', spec)
    assert r.returncode == 0, r.stderr[-3000:]
    v, got = remote_check(spec, tmp_path/'check', denv, full=True)
    assert v['bad'] == {} and v['unlisted'] == [] and v['damaged_generations'] == [], v
    skip = lambda rel: rel.startswith(('session', 'ckpt/step_')) or '/.' in rel or rel.startswith('.')
    want = sorted(p.relative_to(ref).as_posix() for p in ref.rglob('*') if p.is_file() and not skip(p.relative_to(ref).as_posix()))
    assert sorted(k for k in got if not skip(k)) == want                  # every output once, nothing more
    if kind == 'train':
        st = json.loads(got['status.json'])
        assert st['state'] == 'done' and st['step'] == 24, st
        assert_same_weights(tmp_path/'check', ref, f'after {kills} kills during pushes ({spec})')
    else:
        done = sorted(k for k in got if k.startswith('manifest/done/'))
        assert done == sorted(p.relative_to(ref).as_posix() for p in (ref/'manifest'/'done').glob('*.json'))
    KILLS[f"{kind}/{spec.split(':')[0]}"] = kills
    print(f"\n{kind} on {spec}: {kills} kills, then finished in {time.time() - t0:.0f} s in all")
    assert kills >= len(POINTS[kind]) - 1
