"""A teacher cache run killed with SIGKILL mid-way resumes with nothing lost or duplicated.

The cache job runs in a subprocess with the slow deterministic test teacher (`LinearHRFTeacher`,
0.4 s per clip). Once a few clips are done it is killed without warning, so one clip is left claimed and
half-done (and maybe a temporary file half-written). A second run on the same machine must release
the dead claim, finish every clip exactly once, leave no temporary files, and produce byte-for-byte the
arrays of an uninterrupted run.
"""
import os, signal, subprocess, sys, textwrap, time
import numpy as np
import pytest

N_CLIPS, SEG_LEN = 8, 4

SCRIPT = textwrap.dedent("""
    import sys
    from tinytribe.testing import LinearHRFTeacher
    from tinytribe.teacher_cache import cache_teacher
    fd, od, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    t = LinearHRFTeacher(hidden_dims={'fusion_l4': 16, 'fusion_l6': 16, 'low_rank': 8}, delay_s=delay)
    rep = cache_teacher(fd, t, od, dataset='kill', seg_len=%d, spaces=('fsaverage5', 'fsaverage4'), progress=False)
    print('DONE', len(rep.done), len(rep.skipped), len(rep.failed))
""" % SEG_LEN)


def run_cache(fd, od, delay=0.0, **kw):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    return subprocess.Popen([sys.executable, '-c', SCRIPT, str(fd), str(od), str(delay)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    from tinytribe.featfile import random_features, save_features
    fd = tmp_path_factory.mktemp('feat')
    for i in range(N_CLIPS):
        f = random_features(f"clip{i}", 9.5 + i, dims={'text': 8, 'audio': 8, 'video': 8}, seed=i)
        save_features(fd/f"clip{i}.npz", f)
    return fd


def test_killed_run_resumes(corpus, tmp_path):
    from tinytribe.segfile import load_segment
    from tinytribe.store import Manifest
    killed, ref = tmp_path/'killed', tmp_path/'ref'

    p = run_cache(corpus, killed, delay=0.4)
    done_dir = killed/'manifest'/'done'
    t0 = time.time()
    while len(list(done_dir.glob('*.json'))) < 3:
        assert p.poll() is None, f"cache run ended before it could be killed: {p.communicate()}"
        assert time.time() - t0 < 120, 'cache run made no progress'
        time.sleep(0.02)
    time.sleep(0.2)                                   # into the next clip
    os.kill(p.pid, signal.SIGKILL); p.wait()
    n_done_before = len(list(done_dir.glob('*.json')))
    assert n_done_before < N_CLIPS, 'the run finished before the kill; make the teacher slower'
    claims = list((killed/'manifest'/'claims').glob('*.claim'))
    assert claims, 'the killed run should have left its claim behind'

    q = run_cache(corpus, killed)
    out, err = q.communicate(timeout=300)
    assert q.returncode == 0, err[-2000:]
    done, skipped, failed = map(int, out.split('DONE')[1].split())
    assert (done, failed) == (N_CLIPS - n_done_before, 0)
    assert skipped == n_done_before

    r = run_cache(corpus, ref)
    out_r, err_r = r.communicate(timeout=300)
    assert r.returncode == 0, err_r[-2000:]

    names_k = sorted(p.name for p in killed.glob('*.npz'))
    names_r = sorted(p.name for p in ref.glob('*.npz'))
    assert names_k == names_r and len(names_k) == len(set(names_k))
    assert not list(killed.glob('.*.tmp')), 'temporary files of the killed run were left behind'
    assert not list((killed/'manifest'/'claims').glob('*.claim'))
    m = Manifest(killed/'manifest')
    assert sorted(m.done_items()) == [f"clip{i}" for i in range(N_CLIPS)] and not m.failed_items()
    # every clip's segments listed once in its done record, and they are exactly the files on disk
    listed = sorted(n for d in m.done_items().values() for n in d['segments'])
    assert listed == names_k
    for name in names_k:
        a, b = load_segment(killed/name), load_segment(ref/name)
        np.testing.assert_array_equal(a.pred, b.pred)
        np.testing.assert_array_equal(a.extra_preds['fsaverage4'], b.extra_preds['fsaverage4'])
        for h in a.hiddens: np.testing.assert_array_equal(a.hiddens[h], b.hiddens[h])
        assert a.grid == b.grid
    # rows: every clip covered from row 0 to its end with no gap or overlap
    for i in range(N_CLIPS):
        segs = sorted((load_segment(killed/n) for n in names_k if n.startswith(f"kill_clip{i}_")), key=lambda s: s.tr_start)
        starts = [s.tr_start for s in segs]
        assert starts == list(range(0, sum(s.n for s in segs), SEG_LEN))
