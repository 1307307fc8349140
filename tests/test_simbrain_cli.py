"""`tinytribe simbrain` end to end: feature files in, an Algonauts-style fMRI data set, teacher segments,
noise ceilings and brain maps out; the same seed gives the same files; a bad feature file is skipped
with its reason and does not stop the others; `describe` reads every output."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest

ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"


def simbrain(fd, out, *extra):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
    cmd = [sys.executable, '-c', ENTRY, 'simbrain', str(fd), '--out', str(out), '--subjects', '2', '--repeats', '2',
           '--snr', '1.0', '--seed', '4', '--dataset', 'movie10', *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def features(tmp_path_factory):
    from tinytribe.featfile import save_features, random_features
    fd = tmp_path_factory.mktemp('feat')
    save_features(fd / 'life01.npz', random_features('life01', 40.0, dims={'video': 1280}, seed=1))
    save_features(fd / 'sub' / 'life02.npz', random_features('life02', 25.0, seed=2, absent=('audio',)))
    (fd / 'broken.npz').write_bytes(b'not a zip file')
    return fd


@pytest.fixture(scope='module')
def run1(features, tmp_path_factory):
    out = tmp_path_factory.mktemp('sim1')
    r = simbrain(features, out)
    assert r.returncode == 0, r.stderr
    return out, r


def test_outputs(run1):
    import h5py
    from tinytribe.simbrain import describe, fmri_paths
    from tinytribe.segfile import load_segment
    out, r = run1
    assert 'broken.npz' in r.stderr                                              # named, skipped, not fatal
    assert 'broken.npz' in next(iter(json.loads((out / 'simbrain_failed.json').read_text())))
    assert 'broken.npz' in next(iter(json.loads((out / 'simbrain.json').read_text())['failed']))
    s = json.loads((out / 'simbrain.json').read_text())
    assert [c['clip_id'] for c in s['clips']] == ['life01', 'life02']
    for sub in (0, 1):
        P = fmri_paths(out, sub, 'movie10')
        with h5py.File(P['parcels']) as f:
            assert sorted(f) == ['ses-001_task-life01_run-1', 'ses-001_task-life01_run-2',
                                 'ses-002_task-life02_run-1', 'ses-002_task-life02_run-2']
            assert f['ses-001_task-life01_run-1'].shape == (26, 400)
            a, b = f['ses-001_task-life01_run-1'][:], f['ses-001_task-life01_run-2'][:]
            assert not np.allclose(a, b)                                      # repeats: independent noise
        with h5py.File(P['vertices']) as f: assert f['ses-002_task-life02_run-2'].shape == (16, 20484)
        side = json.loads(P['sidecar'].read_text())
        assert side['RepetitionTime'] == 1.49 and side['snr'] == 1.0 and side['seed'] == 4
        c = np.load(P['ceiling_analytic_fsaverage5']); assert c.shape == (20484,) and 0 <= c.min() and c.max() <= 1
        assert np.load(P['ceiling_splithalf_schaefer400']).shape == (400,)
    segs = sorted((out / 'teacher').glob('*.npz'))
    assert [p.name for p in segs] == ['movie10_life01_00000.npz', 'movie10_life02_00000.npz']
    seg = load_segment(segs[0])
    assert seg.pred.shape == (40, 20484) and seg.pred.dtype == np.float16
    assert set(seg.hiddens) == {'fusion_l4', 'fusion_l6', 'low_rank'} and seg.source_sha256
    for png in ('simbrain_noise_ceiling.png', 'simbrain_drivers.png'):
        assert (out / png).stat().st_size > 20_000
    d = describe(out)
    assert d['n_clips'] == 2 and d['subjects'] == ['sub-01', 'sub-02'] and d['n_teacher_segments'] == 2
    assert describe(fmri_paths(out, 0, 'movie10')['sidecar'])['n_runs'] == 4


def test_same_seed_same_files(features, run1, tmp_path):
    import h5py
    from tinytribe.simbrain import fmri_paths
    out1, _ = run1
    r = simbrain(features, tmp_path, '--no-figures', '--no-teacher')
    assert r.returncode == 0, r.stderr
    for kind in ('parcels', 'vertices'):
        with h5py.File(fmri_paths(out1, 1, 'movie10')[kind]) as f1, h5py.File(fmri_paths(tmp_path, 1, 'movie10')[kind]) as f2:
            for k in f1: np.testing.assert_array_equal(f1[k][:], f2[k][:])


def test_bad_input(tmp_path):
    r = simbrain(tmp_path / 'nowhere', tmp_path / 'o')
    assert r.returncode == 2 and 'not a folder' in r.stderr
    (tmp_path / 'empty').mkdir()
    r = simbrain(tmp_path / 'empty', tmp_path / 'o')
    assert r.returncode == 2 and 'no usable feature files' in r.stderr      # bad input: exit code 2 (tinytribe.cli.main)
