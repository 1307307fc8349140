"""Preemption: sessions killed with SIGKILL (the whole process group, rclone included, as when a VM is taken
away) at random points while they write items and while they push, each followed by a new session in a fresh,
empty folder that resumes from the remote alone.

- A batch job (real `run_items`/`Manifest`, real rclone remote) is killed 20 times; after every kill the remote's
  sync manifests name only files that are there and intact; in the end every item is done exactly once and
  nothing partial or unlisted is left on the remote.
- Phase 1 training (tiny preset) is killed several times; the run that finally completes, from the last pushed
  checkpoint, ends with the same weights, bit for bit, as an uninterrupted run.
- A training session whose budget runs out stops before its deadline, with a final push holding its last
  checkpoint.
"""
import json, os, random, subprocess, sys, time
from pathlib import Path
from conftest import stop_when, assert_same_weights

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}


def spawn(code, log):
    f = open(log, 'w')
    return subprocess.Popen([sys.executable, '-c', code], env=ENV, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def remote_state(spec, tmp):
    """verify() of the remote, and whether a push was caught half-way: objects that no generation lists yet, or a
    generation file cut or not yet collected (the protocol writes no staging folders or partial names)."""
    from tinytribe.sync import JobSync
    s = JobSync(tmp, spec, credentials={})
    v = s.verify()
    root = Path(spec.split(':', 1)[1])
    gens = list((root/'_sync').glob('main.gen-*.json')) if (root/'_sync').exists() else []
    mid_push = bool(v['unlisted'] or v['damaged_generations'] or len(gens) > 2)
    return v, mid_push


def batch_code(local, spec, n):
    return (f"from tinytribe.session import run_session\nfrom tinytribe.testing import demo_batch_job\n"
            f"run_session(demo_batch_job({str(local)!r}, n={n}, sleep_s=0.2), {str(local)!r}, remote={spec!r},"
            f" push_every_min=0.15/60, budget_hours=None, credentials={{}}, quiet=True)\n")


def test_batch_job_killed_20_times(tmp_path):
    # 300 items of 0.2 s outlast the 20 kills' 43 s of running time, so no session can finish before its kill
    rng = random.Random(12)
    spec, n = f"rclone:{tmp_path/'remote'}", 300
    mid_push, mid_write, progress = 0, 0, []
    for i in range(20):
        local = tmp_path/f"session{i:02d}"                      # a new session: an empty disk
        log = tmp_path/f"log{i:02d}.txt"
        stop_when(spawn(batch_code(local, spec, n), log), delay=rng.uniform(1.0, 3.5), group=True, log=log,
                  what=f"batch session {i}")
        mid_write += any(local.rglob('.*.tmp'))                  # an atomic write was cut off
        for f in (local/'items').glob('*.json'): json.loads(f.read_text())   # what is in place locally is whole
        v, mp = remote_state(spec, tmp_path/'check')
        mid_push += mp
        assert v['bad'] == {}, (i, v['bad'])                     # the manifest never names a missing or changed file
        progress.append(v['listed'])
    print(f"\n20 kills: {mid_push} during a push, {mid_write} during a write; files listed after each: {progress}")
    assert mid_push >= 1, 'no kill landed during a push: the test would not mean anything'
    assert progress[-1] > progress[0]
    final = tmp_path/'final'
    p = spawn(batch_code(final, spec, n), tmp_path/'final.txt'); assert p.wait(timeout=600) == 0
    from tinytribe.sync import JobSync
    check = JobSync(tmp_path/'fresh', spec, credentials={})
    check.pull()
    items = sorted((tmp_path/'fresh'/'items').glob('*.json'))
    assert [p.stem for p in items] == sorted(f"k{i}" for i in range(n))        # every item, exactly once
    for p in items:
        d = json.loads(p.read_text()); assert d['square'] == int(d['key'][1:]) ** 2
    assert len(list((tmp_path/'fresh'/'manifest'/'done').glob('*.json'))) == n
    assert not (tmp_path/'fresh'/'manifest'/'failed').exists()
    v = check.verify()
    assert v['bad'] == {} and v['unlisted'] == [], v                           # nothing partial or stray is left
    root = tmp_path/'remote'
    assert not [p for p in root.rglob('*') if p.name.endswith(('.partial', '.tmp')) or p.name.startswith('stage-')]


STEPS = 120


def train_code(fd, run, spec, budget=None, margin_min=10.0, steps=STEPS, started=None):
    return (f"from tinytribe.session import train_session\n"
            f"r = train_session(1, {str(fd)!r}, {str(run)!r}, remote={spec!r}, budget_hours={budget!r}, margin_min={margin_min!r},"
            f" started_at={started!r}, push_every_min=0.3/60, gpus=0, preset='tiny', steps={steps}, batch_size=4,"
            f" seg_steps=16, stride=8, lr=2e-3, log_every=1, ckpt_every=3, seed=3, no_progress=True, train_margin_min=0.01)\n"
            f"print(r.state, r.job.get('step'))\n")


def pushed_ckpt(remote_root):
    "The checkpoint entry of the remote's newest complete sync generation (None before the first push)."
    from tinytribe.sync import unseal
    for g in sorted((remote_root/'_sync').glob('main.gen-*.json'), reverse=True):
        with __import__('contextlib').suppress(FileNotFoundError):
            if (m := unseal(g.read_bytes())) is not None: return m['files'].get('ckpt/last.pt')
    return None


def test_training_killed_resumes_to_the_same_weights(synthetic_features, tmp_path):
    from tinytribe.engine import load_checkpoint
    features = synthetic_features
    rng = random.Random(5)
    spec = f"rclone:{tmp_path/'remote'}"
    ref = tmp_path/'ref'
    p = spawn(train_code(features, ref, None), tmp_path/'ref.txt')
    steps_seen = []
    for i in range(5):
        run = tmp_path/f"session{i}"
        before = pushed_ckpt(tmp_path/'remote')
        log = tmp_path/f"log{i}.txt"
        # wait for this session's first pushed checkpoint, then kill it anywhere: training, writing, pushing
        stop_when(spawn(train_code(features, run, spec), log), lambda: pushed_ckpt(tmp_path/'remote') != before,
                  poll=0.05, delay=rng.uniform(0.0, 1.0), group=True, log=log, what=f"training session {i}")
        v, _ = remote_state(spec, tmp_path/'check')
        assert v['bad'] == {}, v['bad']
        from tinytribe.sync import JobSync
        listed = JobSync(tmp_path/'c', spec, credentials={}).listed()
        steps_seen.append(None)
        if 'ckpt/last.pt' in listed:                              # the pushed checkpoint is whole and loadable
            d = tmp_path/f"pulled{i}"
            JobSync(d, spec, credentials={}).pull(include=['ckpt/last.pt'])
            steps_seen[-1] = load_checkpoint(d/'ckpt'/'last.pt')['step']
    print(f"\ncheckpoint step on the remote after each kill: {steps_seen}")
    assert all(steps_seen) and steps_seen == sorted(steps_seen) and steps_seen[-1] < STEPS, steps_seen
    final = tmp_path/'final'
    q = spawn(train_code(features, final, spec), tmp_path/'final.txt')
    assert q.wait(timeout=600) == 0, (tmp_path/'final.txt').read_text()[-3000:]
    assert p.wait(timeout=600) == 0, (tmp_path/'ref.txt').read_text()[-3000:]
    st = json.loads((final/'status.json').read_text())
    assert st['state'] == 'done' and st['step'] == STEPS and st['resumed_from'] == steps_seen[-1], (st, steps_seen)
    assert_same_weights(final, ref, 'after five kills and a resume from the remote')


def test_budget_stops_training_before_the_deadline_with_a_final_push(synthetic_features, tmp_path):
    from tinytribe.sync import JobSync
    from tinytribe.engine import load_checkpoint
    spec = f"rclone:{tmp_path/'remote'}"
    started = time.time()
    budget_s = 60.0
    q = spawn(train_code(synthetic_features, tmp_path/'a', spec, budget=budget_s / 3600, margin_min=20 / 60, steps=100000,
                         started=started), tmp_path/'a.txt')
    assert q.wait(timeout=300) == 0, (tmp_path/'a.txt').read_text()[-3000:]
    ended = time.time()
    assert ended < started + budget_s, f"ran {ended - started:.1f} s of a {budget_s} s budget"
    ses = json.loads((tmp_path/'a'/'session.json').read_text())
    assert ses['state'] == 'stopped_budget' and 'resumes' in ses['next'], ses
    b = JobSync(tmp_path/'b', spec, credentials={})
    b.pull()                                                      # the final push holds the last checkpoint
    ck = load_checkpoint(tmp_path/'b'/'ckpt'/'last.pt')['step']
    assert ck > 0
    if (tmp_path/'b'/'status.json').exists():                    # the trainer stopped itself (else: the backstop did)
        st = json.loads((tmp_path/'b'/'status.json').read_text())
        assert st['state'] == 'stopped_budget' and st['step'] == ck
    assert json.loads((tmp_path/'b'/'session.json').read_text())['state'] == 'stopped_budget'
    print(f"\nbudget {budget_s:.0f} s: ended after {ended - started:.1f} s, checkpoint at step {ck}, {ses['job'].get('message')}")


def test_the_backstop_stops_a_job_that_ignores_its_deadline(tmp_path):
    code = (f"import time\nfrom pathlib import Path\nfrom tinytribe.store import write_json\n"
            f"from tinytribe.session import run_session\n"
            f"def stubborn(deadline):\n    write_json(Path({str(tmp_path/'a')!r})/'out.json', {{'ok': 1}})\n    time.sleep(60)\n"
            f"r = run_session(stubborn, {str(tmp_path/'a')!r}, remote={str(tmp_path/'r')!r}, budget_hours=6/3600,"
            f" margin_min=3/60, credentials={{}})\nprint('STATE', r.state)\n")
    t = time.time()
    r = subprocess.run([sys.executable, '-c', code], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and 'STATE stopped_budget' in r.stdout, r.stdout + r.stderr
    assert time.time() - t < 30
    from tinytribe.sync import JobSync
    assert sorted(JobSync(tmp_path/'b', str(tmp_path/'r'), credentials={}).listed()) == ['out.json', 'session.json']
