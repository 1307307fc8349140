"""A Phase 1 run killed with SIGKILL and resumed ends with the same weights as a run never interrupted.

`tinytribe train --phase 1` (tiny preset, a small synthetic feature cache with cross-modal structure) runs
in a subprocess; once it has logged a few steps it is killed without warning, somewhere between two
checkpoints. `--resume` continues from the last checkpoint. The final model and heads must equal,
bit for bit, those of an uninterrupted run with the same seed, and `metrics.jsonl` must list every step
once with the same numbers. A second test stops a run by its time budget and resumes it.
"""
import json, os, subprocess, sys
from pathlib import Path
from conftest import stop_when, assert_same_weights

STEPS = 30
ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"


def train(fd, out, *extra, steps=STEPS, **kw):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    cmd = [sys.executable, '-c', ENTRY, 'train', '--phase', '1', '--preset', 'tiny', '--features', str(fd),
           '--out', str(out), '--steps', str(steps), '--batch-size', '4', '--seg-steps', '16', '--stride', '8',
           '--lr', '2e-3', '--log-every', '1', '--ckpt-every', '5', '--no-progress', '--seed', '3', *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def logged_steps(run):
    p = run/'metrics.jsonl'
    if not p.exists(): return 0
    return sum(1 for l in p.read_text().splitlines() if l.strip().endswith('}'))


def test_sigkill_and_resume_gives_identical_weights(synthetic_features, tmp_path):
    from tinytribe.engine import read_metrics, load_checkpoint
    features, killed, ref = synthetic_features, tmp_path/'killed', tmp_path/'ref'
    stop_when(train(features, killed), lambda: logged_steps(killed) >= 12, poll=0.01, what='the run')
    assert not (killed/'status.json').exists(), 'the run finished before the kill'
    ck = load_checkpoint(killed/'ckpt'/'last.pt')
    assert 5 <= ck['step'] < STEPS and ck['step'] % 5 == 0
    n_logged = logged_steps(killed)

    q = train(features, killed, '--resume')
    out, err = q.communicate(timeout=300)
    assert q.returncode == 0, err[-3000:]
    status = json.loads((killed/'status.json').read_text())
    assert status['state'] == 'done' and status['step'] == STEPS and status['resumed_from'] == ck['step']

    r = train(features, ref)
    out_r, err_r = r.communicate(timeout=300)
    assert r.returncode == 0, err_r[-3000:]

    assert_same_weights(killed, ref)
    rk, rr = read_metrics(killed), read_metrics(ref)
    assert [x['step'] for x in rk] == list(range(1, STEPS + 1)), 'each step must be logged exactly once'
    assert [x['loss'] for x in rk] == [x['loss'] for x in rr]
    assert n_logged > ck['step'], 'the kill should have landed after the last checkpoint (steps were redone)'
    assert not list(killed.rglob('.*.tmp')), 'temporary files were left behind'


def test_budget_stop_then_resume(synthetic_features, tmp_path):
    """Two 'sessions' of ~11 s each (budget 0.003 h, margin 6 s) on a run far too long for them: each stops itself
    cleanly with a checkpoint, and the second continues where the first stopped."""
    features, run, steps = synthetic_features, tmp_path/'budget', 5000
    reports = []
    for session in range(2):
        p = train(features, run, *(['--resume'] if session else []), '--budget-hours', '0.003', '--margin-min', '0.1', steps=steps)
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        reports.append(json.loads((run/'status.json').read_text()))
    a, b = reports
    assert a['state'] == b['state'] == 'stopped_budget'
    assert 0 < a['step'] < steps and 'time budget' in a['message']
    assert b['resumed_from'] == a['step'] and b['step'] > a['step']
    assert (run/'model'/'model.safetensors').exists(), 'a budget stop still publishes the model so far'
    assert a['deadline_left_s'] > 0, 'it must stop before the deadline, not after'
