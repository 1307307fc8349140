"""`tinytribe evaluate` end to end on the in-silico brain: feature files -> `tinytribe simbrain` -> models
(the noiseless ground truth and a time-shuffled copy as prediction folders, an untrained tiny Tiny-TRIBE)
-> report.json, report.html and PNGs. The truth scores at the ceiling, the shuffled copy at zero, the
measured ceiling agrees with simbrain's analytic one within its interval, the ridge never sees a scored
clip, every figure is a non-empty PNG, and `describe_report` reads the folder."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest

ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"
CLIPS = ('life01', 'life02', 'life03', 'life04', 'life05')
SCORED = 'life04,life05'


def cli(*args, timeout=900):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
    return subprocess.run([sys.executable, '-c', ENTRY, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _truth_folder(fd, sim, out, space, shuffle=False):
    "Prediction files holding simbrain's noiseless response of subject 1 (optionally shuffled in time)."
    from tinytribe.featfile import load_features
    from tinytribe.simbrain import SimBrain, SimBrainConfig, clip_inputs, fmri_grid
    from tinytribe.predict import Prediction, save_prediction
    from tinytribe import spaces
    cfg = json.loads((sim / 'simbrain.json').read_text())['config']
    brain = SimBrain(SimBrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}))
    for f in sorted(fd.glob('*.npz')):
        feats, masks, dur, cid = clip_inputs(load_features(f))
        g = fmri_grid(dur, brain.cfg.tr_s)
        y = brain.response(brain.latents(feats, masks), g.times, subject=0).astype(np.float32)
        y = np.asarray(spaces.vertex_to_space(y, space), np.float32)
        if shuffle: y = y[np.random.default_rng(0).permutation(len(y))]
        save_prediction(out / f"{cid}.npz", Prediction(cid, y, g, space, np.ones(g.n, bool), {'model': 'simbrain truth'}))
    return out


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    from tinytribe.featfile import save_features, random_features
    from tinytribe.model import TinyTribe, get_config
    d = tmp_path_factory.mktemp('eval')
    fd = d / 'feat'
    for i, c in enumerate(CLIPS): save_features(fd / f"{c}.npz", random_features(c, 45.0, seed=i))
    r = cli('simbrain', fd, '--out', d / 'sim', '--subjects', '1', '--repeats', '2', '--snr', '1.0', '--seed', '2',
            '--dataset', 'movie10', '--no-figures')
    assert r.returncode == 0, r.stderr
    TinyTribe(get_config('tiny', text_dim=384, audio_dim=384, video_dim=640)).save_pretrained(d / 'tiny')
    return d, fd


def test_parcels_with_ridge_and_teacher(world):
    d, fd = world
    truth = _truth_folder(fd, d / 'sim', d / 'truth400', 'schaefer400')
    out = d / 'rep400'
    r = cli('evaluate', truth, d / 'tiny', '--features', fd, '--fmri', d / 'sim', '--teacher', d / 'sim' / 'teacher',
            '--split', SCORED, '--space', 'schaefer400', '--out', out)
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / 'report.json').read_text())
    for k in ('r_mean', 'noise_ceiling_mean', 'fraction_of_ceiling', 'rois', 'subjects', 'ridge', 'split', 'provenance'):
        assert k in rep, k
    assert rep['space'] == 'schaefer400' and set(rep['models']) == {'truth400', 'tiny'}
    sp = rep['split']
    assert sp['clips_scored'] == ['life04', 'life05']
    assert sorted(sp['clips_trained_on']['ridge']) == ['life01', 'life02', 'life03']
    assert not set(sp['clips_trained_on']['ridge']) & set(sp['clips_scored'])        # the ridge never saw a test clip
    assert abs(rep['fraction_of_ceiling'] - 1) < 0.2, rep['fraction_of_ceiling']     # the truth scores at the ceiling
    assert abs(rep['models']['tiny']['r_mean']) < 0.1                                # untrained: chance
    assert 0.3 < rep['teacher']['fraction_of_ceiling'] < 0.95                        # teacher_quality 0.8: about 0.64
    assert rep['models']['truth400']['agreement_with_teacher']['r_mean'] > 0.5
    for roi in ('early_visual_V1V2V3', 'MT_complex', 'early_auditory_A1_belt', 'language_STS', 'dmn_schaefer7_default'):
        assert set(rep['rois'][roi]) >= {'r_mean', 'noise_ceiling_mean', 'fraction_of_ceiling'}
        assert set(rep['ridge']['rois'][roi]) >= {'r_mean', 'noise_ceiling_mean', 'fraction_of_ceiling'}
    for f in rep['figures']:
        b = (out / f).read_bytes()
        assert b[:8] == b'\x89PNG\r\n\x1a\n' and len(b) > 5000, f
    html = (out / 'report.html').read_text()
    assert html.count('data:image/png;base64,') == len(rep['figures']) and 'src="http' not in html
    assert {'gates_1.png', 'experts_1.png', 'hrf_1.png', 'roi_bars.png', 'timecourses.png'} <= set(rep['figures'])
    from tinytribe.report import describe_report
    desc = describe_report(out)
    assert desc['kind'] == 'evaluation_report' and desc['n_clips_scored'] == 2


def test_vertices_truth_shuffled_and_ceiling(world):
    d, fd = world
    truth = _truth_folder(fd, d / 'sim', d / 'truth', 'fsaverage5')
    shuf = _truth_folder(fd, d / 'sim', d / 'shuffled', 'fsaverage5', shuffle=True)
    out = d / 'rep5'
    r = cli('evaluate', truth, shuf, '--features', fd, '--fmri', d / 'sim', '--split', SCORED, '--baseline', 'none',
            '--out', out)
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / 'report.json').read_text())
    assert rep['ridge'] is None and rep['space'] == 'fsaverage5'
    t, s = rep['models']['truth'], rep['models']['shuffled']
    assert abs(t['fraction_of_ceiling'] - 1) < 0.2, t
    assert abs(s['fraction_of_ceiling']) < 0.05 and abs(s['r_mean']) < 0.03, s
    nc = rep['noise_ceiling']['sub-01']
    # 60 TRs, two repeats: the measured ceiling agrees with the analytic one within its 95% interval (+ slack)
    assert nc['ci95'][0] - 0.02 <= nc['analytic_rms'] <= nc['ci95'][1] + 0.02, nc
    assert abs(nc['ceiling_rms'] - nc['analytic_rms']) < 0.06, nc


def test_bad_inputs(world, tmp_path):
    d, fd = world
    r = cli('evaluate', d / 'tiny', '--features', fd, '--fmri', tmp_path, '--out', tmp_path / 'o')
    assert r.returncode == 2 and 'no fMRI found' in r.stderr
    r = cli('evaluate', d / 'tiny', '--features', fd, '--fmri', d / 'sim', '--split', 'nope', '--out', tmp_path / 'o')
    assert r.returncode == 2 and 'nope' in r.stderr
    r = cli('evaluate', d / 'tiny', '--features', fd, '--fmri', d / 'sim', '--split', 'all', '--space', 'schaefer400',
            '--out', tmp_path / 'o')
    assert r.returncode == 0, r.stderr                                              # 'all': scored, no baseline
    assert json.loads((tmp_path / 'o' / 'report.json').read_text())['ridge'] is None


def test_clips_shown_once_borrow_the_ceiling(world, tmp_path):
    "Scored clips shown once (their second runs dropped from the sidecar) take the ceiling of the repeated clips."
    import shutil
    d, fd = world
    sim = tmp_path / 'sim_once'
    shutil.copytree(d / 'sim', sim)
    for side in sim.rglob('*_desc-simbrain_bold.json'):
        s = json.loads(side.read_text())
        for r in s['runs']:
            if r['clip_id'] in SCORED.split(','): r['keys'] = r['keys'][:1]
        side.write_text(json.dumps(s))
    truth = _truth_folder(fd, sim, tmp_path / 'truth', 'schaefer400')
    out = tmp_path / 'rep'
    r = cli('evaluate', truth, '--features', fd, '--fmri', sim, '--split', SCORED, '--space', 'schaefer400',
            '--baseline', 'none', '--out', out)
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / 'report.json').read_text())
    nc = rep['noise_ceiling']['sub-01']
    assert nc['source'] == 'repeated clips' and nc['source_clips'] == ['life01', 'life02', 'life03'], nc
    assert 85 <= nc['n_trs'] <= 95 and nc['ci95'][0] < nc['ceiling_rms'] < nc['ci95'][1]
    assert rep['fraction_of_ceiling'] is not None and abs(rep['fraction_of_ceiling'] - 1) < 0.3, rep['fraction_of_ceiling']
    assert 'from repeated clips (life01, life02, life03)' in (out / 'report.html').read_text()
    # the stated interval is for the scored clips' own ceiling: the repeated clips' widened for their stimulus
    assert nc['n_trs_scored'] > 0 and nc['ci95'][0] < nc['ci95_repeated'][0] < nc['ci95_repeated'][1] < nc['ci95'][1]
    assert '95% interval for clips like the scored ones' in (out / 'report.html').read_text()
