"""`tinytribe train` keeps a run safe: a Ctrl-C (SIGINT) sent to a real training process stops it after the
current step with a checkpoint and `status.json`, and the command exits with one line (code 130, no traceback);
`train` again without `--resume` refuses to start over on that folder; `--resume` finishes the run."""
import json, os, signal, subprocess, sys
from pathlib import Path
from conftest import stop_when

ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"
STEPS = 400


def train(fd, out, *extra):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1', 'PYTHONWARNINGS': 'ignore'}
    cmd = [sys.executable, '-c', ENTRY, 'train', '--phase', '1', '--preset', 'tiny', '--features', str(fd),
           '--out', str(out), '--steps', str(STEPS), '--batch-size', '4', '--seg-steps', '16', '--stride', '8',
           '--log-every', '1', '--ckpt-every', '1000', '--no-progress', *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def logged_lines(run) -> int:
    p = run/'metrics.jsonl'
    return len(p.read_text().splitlines()) if p.exists() else 0


def test_ctrl_c_then_refuse_then_resume(synthetic_features, tmp_path):
    features, run = synthetic_features, tmp_path/'run'
    p = train(features, run)
    stop_when(p, lambda: logged_lines(run) >= 3, signal.SIGINT, what='training (before its Ctrl-C)')
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (p.returncode, err[-2000:])
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and 'Traceback' not in err, err[-2000:]
    assert 'Ctrl-C' in lines[0] and '--resume' in lines[0], lines
    status = json.loads((run/'status.json').read_text())
    from tinytribe.engine import load_checkpoint
    assert status['state'] == 'stopped_by_user' and 0 < status['step'] < STEPS
    assert load_checkpoint(run/'ckpt'/'last.pt')['step'] == status['step']

    again = train(features, run)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 2 and 'already holds a training checkpoint' in err and '--resume' in err, err[-2000:]
    assert json.loads((run/'status.json').read_text()) == status, 'a refused start must leave the run as it was'

    resumed = train(features, run, '--resume', '--steps', str(status['step'] + 2))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    final = json.loads((run/'status.json').read_text())
    assert final['state'] == 'done' and final['resumed_from'] == status['step']
