"""Budgets, resume with changed settings and the small edges of sessions (real processes, real training):

- resuming with a larger `--batch-size` recomputes the epoch position and finishes (it used to hang);
- a short budget (0.02 h) still trains; a budget too short for a step is refused up front, naming the minimum;
- a session that stopped at step 0 writes no checkpoint;
- Ctrl-C under `--remote` is one line on stderr;
- `tinytribe sync verify | head -1` ends without a BrokenPipe traceback;
- `train --remote` pointed at a teacher-cache job's folder is refused with one line naming both jobs.
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path
from conftest import save_synthetic_features

ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1', 'PYTHONWARNINGS': 'ignore'}
TRAIN = ['train', '--phase', '1', '--preset', 'tiny', '--seg-steps', '16', '--stride', '8', '--log-every', '1',
         '--no-progress', '--seed', '3']


def tt(*args, timeout=600):
    return subprocess.run([sys.executable, '-c', ENTRY, *map(str, args)], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def test_resume_with_a_larger_batch_finishes(tmp_path):
    fd = save_synthetic_features(tmp_path/'feat', n=3)          # 12 segments: 3 batches of 4, 1 of 8 per epoch
    run = tmp_path/'run'
    r = tt(*TRAIN, '--features', fd, '--out', run, '--steps', '2', '--batch-size', '4', '--ckpt-every', '1')
    assert r.returncode == 0, r.stderr[-2000:]
    r = tt(*TRAIN, '--features', fd, '--out', run, '--steps', '5', '--batch-size', '8', '--resume', timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'global batch changed from 4 to 8' in r.stdout + r.stderr, r.stdout + r.stderr
    st = json.loads((run/'status.json').read_text())
    assert st['state'] == 'done' and st['step'] == 5 and st['resumed_from'] == 2 and st['epoch'] >= 3, st


def test_short_budgets(tmp_path):
    fd = save_synthetic_features(tmp_path/'feat', n=3)
    # too short for anything: refused before a file is written, with the minimum
    r = tt(*TRAIN, '--features', fd, '--out', tmp_path/'a', '--steps', '10', '--remote', tmp_path/'r1', '--budget-hours', '0.005')
    assert r.returncode == 2 and 'minimum is 60 s' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path/'a').exists() and not (tmp_path/'r1').exists()
    # 0.02 h (72 s) under a session: one margin (20 s), the trainer gets the rest and trains
    t0 = time.time()
    r = tt(*TRAIN, '--features', fd, '--out', tmp_path/'b', '--steps', '1000000', '--batch-size', '4', '--ckpt-every', '50',
           '--remote', tmp_path/'r2', '--budget-hours', '0.02', '--push-every-min', '0.2')
    assert r.returncode == 0 and time.time() - t0 < 72 + 10, (r.returncode, r.stderr[-2000:])
    st = json.loads((tmp_path/'b'/'status.json').read_text())
    assert st['state'] == 'stopped_budget' and st['step'] > 0, st
    # the trainer's own margin, scaled: a standalone 30 s budget still trains (the old 5-minute margin never did)
    r = tt(*TRAIN, '--features', fd, '--out', tmp_path/'c', '--steps', '1000000', '--batch-size', '4',
           '--budget-hours', str(30 / 3600))
    st = json.loads((tmp_path/'c'/'status.json').read_text())
    assert r.returncode == 0 and st['step'] > 0, (st, r.stderr[-2000:])
    # a budget over before the first step: stopped at step 0, and no checkpoint written
    r = tt(*TRAIN, '--features', fd, '--out', tmp_path/'d', '--steps', '10', '--budget-hours', '0.0000001')
    st = json.loads((tmp_path/'d'/'status.json').read_text())
    assert r.returncode == 0 and st['step'] == 0 and st['state'] == 'stopped_budget', st
    assert not (tmp_path/'d'/'ckpt'/'last.pt').exists()


def test_session_edges(tmp_path):
    fd = save_synthetic_features(tmp_path/'feat', n=2)
    run, remote = tmp_path/'run', f"rclone:{tmp_path/'drive'}/job"
    # Ctrl-C under --remote: one line on stderr, exit 130, and the final push holds the checkpoint
    p = subprocess.Popen([sys.executable, '-c', ENTRY, *TRAIN, '--features', str(fd), '--out', str(run), '--steps',
                          '100000', '--batch-size', '4', '--ckpt-every', '5', '--remote', remote], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (run/'metrics.jsonl').exists():
        assert p.poll() is None and time.time() - t0 < 180, p.communicate()
        time.sleep(0.05)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and len(err.strip().splitlines()) == 1 and 'Ctrl-C' in err, (p.returncode, err)
    from tinytribe.sync import JobSync
    assert 'ckpt/last.pt' in JobSync(tmp_path/'look', remote, credentials={}).listed()
    # verify piped into `head -1`: no traceback when the reader goes away
    r = subprocess.run(f"{sys.executable} -c '{ENTRY}' sync verify {tmp_path/'v'} {remote} | head -1", shell=True,
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == '{' and 'Traceback' not in r.stderr and 'BrokenPipe' not in r.stderr, r.stderr
    # another job's folder: a teacher cache, then training pointed at it, refused; nothing written into it
    tremote = f"rclone:{tmp_path/'drive'}/teacher"
    r = tt('teacher-cache', fd, '--teacher', 'simbrain', '--out', tmp_path/'tc', '--remote', tremote, '--quiet')
    assert r.returncode == 0, r.stderr[-2000:]
    before = sorted(p.name for p in (tmp_path/'drive'/'teacher').rglob('*'))
    r = tt(*TRAIN, '--features', fd, '--out', tmp_path/'t2', '--steps', '3', '--remote', tremote)
    err = r.stderr.strip()
    assert r.returncode == 2 and len(err.splitlines()) == 1, err
    assert 'teacher-cache' in err and 'train (phase 1, preset tiny)' in err and '--adopt' in err, err
    assert sorted(p.name for p in (tmp_path/'drive'/'teacher').rglob('*')) == before
