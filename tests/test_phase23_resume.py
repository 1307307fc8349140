"""Phase 2 and Phase 3 runs killed with SIGKILL and resumed end with the same weights as runs never interrupted.

`tinytribe train --phase 2` (teacher segments of the in-silico brain) and `--phase 3` (its fMRI on Schaefer-400
parcels, two subjects, the teacher as regulariser) run in a subprocess on the tiny preset; each is killed without
warning between two checkpoints and resumed with `--resume`. Phase 3's kill lands before its segment curriculum
and dropout schedule switch, so the resumed run must restore both. The final model and heads must equal, bit for
bit, an uninterrupted run's, and `metrics.jsonl` must list every step once with the same numbers. A Phase 3 run
stopped by its time budget resumes too.
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import logged_steps

ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"
STEPS = {2: 24, 3: 40}           # phase 3: 10 batches per epoch, the curriculum switches after epoch 3


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    from tinytribe.featfile import save_features
    from tinytribe.phase1 import correlated_features
    from tinytribe.simbrain import write_dataset, SimBrainConfig
    root = tmp_path_factory.mktemp('world')
    fd = root/'features'; fd.mkdir()
    dims = {'text': 16, 'audio': 12, 'video': 20}
    for i in range(5): save_features(fd/f"c{i}.npz", correlated_features(f"c{i}", 45.0, dims, seed=i))
    write_dataset(sorted(fd.glob('*.npz')), root/'sim', cfg=SimBrainConfig(n_subjects=2), n_repeats=1, figures=False,
                  progress=False)
    return root


def train(world, phase, out, *extra, steps=None):
    steps = steps or STEPS[phase]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    cmd = [sys.executable, '-c', ENTRY, 'train', '--phase', str(phase), '--preset', 'tiny', '--features', str(world/'features'),
           '--teacher', str(world/'sim'/'teacher'), '--out', str(out), '--steps', str(steps), '--batch-size', '4',
           '--seg-trs', '12', '--lr', '2e-3', '--log-every', '1', '--ckpt-every', '5', '--no-progress', '--seed', '3',
           '--amp', 'off', '--val-frac', '0.2', *extra]
    if phase == 3: cmd += ['--fmri', str(world/'sim'), '--fmri-space', 'schaefer400']
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def weights(run):
    from safetensors.torch import load_file
    return load_file(run/'model'/'model.safetensors'), load_file(run/'distill_heads'/'heads.safetensors')


@pytest.mark.parametrize('phase', [2, 3])
def test_sigkill_and_resume_gives_identical_weights(world, tmp_path, phase):
    from tinytribe.engine import read_metrics, load_checkpoint
    killed, ref = tmp_path/'killed', tmp_path/'ref'
    p = train(world, phase, killed)
    t0 = time.time()
    while logged_steps(killed) < 8:
        assert p.poll() is None, f"run ended before it could be killed: {p.communicate()[1][-3000:]}"
        assert time.time() - t0 < 300, 'run made no progress'
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert not (killed/'status.json').exists(), 'the run finished before the kill'
    ck = load_checkpoint(killed/'ckpt'/'last.pt')
    assert 5 <= ck['step'] < STEPS[phase] and ck['step'] % 5 == 0
    q = train(world, phase, killed, '--resume')
    _, err = q.communicate(timeout=600)
    assert q.returncode == 0, err[-3000:]
    status = json.loads((killed/'status.json').read_text())
    assert status['state'] == 'done' and status['step'] == STEPS[phase] and status['resumed_from'] == ck['step']
    r = train(world, phase, ref)
    _, err_r = r.communicate(timeout=600)
    assert r.returncode == 0, err_r[-3000:]
    (mk, hk), (mr, hr) = weights(killed), weights(ref)
    assert mk.keys() == mr.keys() and hk.keys() == hr.keys()
    for k in mr: assert (mk[k] == mr[k]).all(), f"model weight {k} differs after kill + resume"
    for k in hr: assert (hk[k] == hr[k]).all(), f"head weight {k} differs after kill + resume"
    rk = [x for x in read_metrics(killed) if 'loss' in x]
    rr = [x for x in read_metrics(ref) if 'loss' in x]
    assert [x['step'] for x in rk] == list(range(1, STEPS[phase] + 1)), 'each step must be logged exactly once'
    assert [x['loss'] for x in rk] == [x['loss'] for x in rr]
    if phase == 3:
        assert len({x['seg_trs'] for x in rr}) == 2, 'the curriculum should switch within the run'
        assert len({x['modality_dropout'] for x in rr}) >= 2
        cfg = json.loads((killed/'model'/'config.json').read_text())
        assert cfg['meta']['phases'] == [3] and cfg['meta']['subjects'] == {'sub-01': 1, 'sub-02': 2}
    assert not list(killed.rglob('.*.tmp')), 'temporary files were left behind'


def test_phase3_budget_stop_then_resume(world, tmp_path):
    run, steps = tmp_path/'budget', 5000
    reports = []
    for session in range(2):
        p = train(world, 3, run, *(['--resume'] if session else []), '--budget-hours', '0.004', '--margin-min', '0.1',
                  steps=steps)
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        reports.append(json.loads((run/'status.json').read_text()))
    a, b = reports
    assert a['state'] == b['state'] == 'stopped_budget'
    assert 0 < a['step'] < steps and b['resumed_from'] == a['step'] and b['step'] > a['step']
    assert (run/'model'/'model.safetensors').exists()


def test_phase_choices_and_missing_inputs(world, tmp_path):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    base = [sys.executable, '-c', ENTRY, 'train', '--preset', 'tiny', '--features', str(world/'features'), '--out', str(tmp_path/'y')]
    r = subprocess.run(base + ['--phase', '3'], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and 'needs --fmri' in r.stderr
    r = subprocess.run(base + ['--phase', '4'], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and 'phase 4 is not implemented yet (phases: 1, 2, 3)' in r.stderr
