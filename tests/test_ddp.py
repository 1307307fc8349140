"""Two CPU processes (torchrun, gloo) train like one process with the same global batch.

The engine splits each global batch over the ranks and DDP averages the gradients of the per-rank
mean losses, so 2 processes x batch b must follow the same trajectory as 1 process x batch 2b.
Checked on `FeatureRegression` (deterministic per sample, a mean over samples) to float tolerance;
then a short Phase 1 run under torchrun checks that the real task (hooks, three passes, unused
read-out parameters, random masking per rank) runs, checkpoints and publishes its model under DDP.
"""
import json, os, socket, subprocess, sys, textwrap
from pathlib import Path
import pytest

WORKER = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from tinytribe.engine import Trainer, TrainConfig
    from tinytribe.testing import FeatureRegression
    from tinytribe.data import FeatureSegments
    fd, out = sys.argv[1], sys.argv[2]
    dims = {'text': 8, 'audio': 6, 'video': 10}
    torch.manual_seed(0)
    task = FeatureRegression(dims, hidden=16)
    cfg = TrainConfig(steps=12, batch_size=8, lr=1e-2, ckpt_every=100, log_every=1, progress=False, seed=1,
                      schedule='onecycle', warmup_frac=0.2, find_unused_parameters=False)
    rep = Trainer(task, FeatureSegments(fd, seg_steps=10, stride=5), cfg, out).fit()
    import os
    if int(os.environ.get('RANK', '0')) == 0: sys.stdout.write(f"REPORT {rep['world_size']} {rep['step']}\\n")   # one writer: ranks share stdout
""")
ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"


def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def env():
    return {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}


def torchrun(n, *args):
    return [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '1', '--nproc_per_node', str(n),
            '--master_addr', '127.0.0.1', '--master_port', str(free_port()), *args]


@pytest.fixture(scope='module')
def features(tmp_path_factory):
    from tinytribe.featfile import random_features, save_features
    fd = tmp_path_factory.mktemp('feat')
    for i in range(4):
        save_features(fd/f"c{i}.npz", random_features(f"c{i}", 15.0, dims={'text': 8, 'audio': 6, 'video': 10}, seed=i))
    return fd


def test_two_gloo_processes_match_one(features, tmp_path):
    import torch
    from tinytribe.engine import load_checkpoint, read_metrics
    script = tmp_path/'worker.py'; script.write_text(WORKER)
    one, two = tmp_path/'one', tmp_path/'two'
    r1 = subprocess.run([sys.executable, str(script), str(features), str(one)], env=env(), capture_output=True, text=True, timeout=300)
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert 'REPORT 1 12' in r1.stdout
    r2 = subprocess.run(torchrun(2, str(script), str(features), str(two)), env=env(), capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert 'REPORT 2 12' in r2.stdout
    a, b = load_checkpoint(one/'ckpt'/'last.pt'), load_checkpoint(two/'ckpt'/'last.pt')
    assert b['world_size'] == 2 and len(b['rng']) == 2
    moved = 0.0
    for k in a['task']:
        torch.testing.assert_close(b['task'][k], a['task'][k], rtol=1e-4, atol=1e-5, msg=f"{k} differs between 1 and 2 processes")
    la, lb = read_metrics(one), read_metrics(two)
    assert [r['step'] for r in la] == [r['step'] for r in lb] == list(range(1, 13))
    for x, y in zip(la, lb):
        assert abs(x['loss'] - y['loss']) < 1e-4 * max(1.0, abs(x['loss'])), (x, y)
    assert la[-1]['loss'] < la[0]['loss']


def test_phase1_under_torchrun(tmp_path):
    from tinytribe.featfile import save_features
    from tinytribe.phase1 import correlated_features
    from tinytribe.model import TinyTribe
    fd = tmp_path/'feat'
    dims = {'text': 16, 'audio': 12, 'video': 20}
    for i in range(3): save_features(fd/f"c{i}.npz", correlated_features(f"c{i}", 20.0, dims, seed=i))
    script = tmp_path/'entry.py'; script.write_text(ENTRY)
    out = tmp_path/'run'
    r = subprocess.run(torchrun(2, str(script), 'train', '--phase', '1', '--preset', 'tiny', '--features', str(fd),
                                '--out', str(out), '--steps', '6', '--batch-size', '4', '--seg-steps', '16', '--stride', '8',
                                '--log-every', '2', '--ckpt-every', '3', '--no-progress'),
                       env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    st = json.loads((out/'status.json').read_text())
    assert st['state'] == 'done' and st['world_size'] == 2 and st['step'] == 6
    TinyTribe.from_pretrained(out/'model')


def test_fit_processes_spawns_the_ranks(tmp_path):
    "The sessions' multi-GPU path, without the CLI: `fit_processes` runs the typed `fit` in two ranks (gloo on CPU)."
    from tinytribe.featfile import save_features
    from tinytribe.phase1 import correlated_features
    from tinytribe.train import train_options, fit_processes
    fd = tmp_path/'feat'
    dims = {'text': 16, 'audio': 12, 'video': 20}
    for i in range(3): save_features(fd/f"c{i}.npz", correlated_features(f"c{i}", 20.0, dims, seed=i))
    opts = train_options(1, fd, tmp_path/'run', preset='tiny', steps=4, batch_size=4, seg_steps=16, stride=8,
                         log_every=2, ckpt_every=2, device='cpu', no_progress=True)
    st = fit_processes(1, opts, 2)
    assert st['state'] == 'done' and st['world_size'] == 2 and st['step'] == 4, st
    assert (tmp_path/'run'/'model'/'model.safetensors').exists()
