"""Model cards and trust warnings on the in-silico brain, end to end through the command line.

A small world (16 synthetic clips of 60 s, the in-silico brain's teacher on Schaefer-400 parcels) trains two Phase 2
students of the tiny preset: one for 0 steps (`--epochs 0`: its validation is logged at the initial weights) and one
to convergence (150 steps; its validation r against the teacher levels off near 0.37). The card of each model folder
must copy the run's numbers; `tinytribe predict` must warn, in one line, for the first and say nothing for the
second; a clip without sound is named. Models by name: a Hugging Face Hub id resolves through a local cache built by
hand in a temporary HF_HOME (offline), a missing one fails in one line and leaves no output folder; `tinytribe push`
fails in one line without the Hub. Nothing touches the network (HF_HUB_OFFLINE=1 in every subprocess).
"""
import contextlib, io, json, os, shutil, subprocess, sys
from types import SimpleNamespace
from pathlib import Path
import pytest

ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"


def tt(*args, env=None):
    "`tinytribe ARGS...` in a subprocess (its own HF_HOME and offline mode: huggingface_hub reads them at import)."
    e = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', **(env or {})}
    return subprocess.run([sys.executable, '-c', ENTRY, *map(str, args)], env=e, capture_output=True, text=True)


def cli(*args):
    "`tinytribe ARGS...` in this process -> (exit code, stdout, stderr)."
    from tinytribe.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = main([str(a) for a in args])
    return SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    from tinytribe.featfile import save_features
    from tinytribe.phase1 import correlated_features
    root = tmp_path_factory.mktemp('cardworld')
    fd = root/'features'; fd.mkdir()
    for i in range(16): save_features(fd/f"c{i}.npz", correlated_features(f"c{i}", 60.0, {'text': 16, 'audio': 12, 'video': 20}, seed=i))
    r = cli('teacher-cache', fd, '--teacher', 'simbrain', '--out', root/'teacher', '--spaces', 'schaefer400', '--quiet')
    assert r.returncode == 0, r.stderr[-2000:]
    common = ['--phase', '2', '--preset', 'tiny', '--features', fd, '--teacher', root/'teacher', '--space', 'schaefer400',
              '--batch-size', '4', '--seg-trs', '12', '--val-frac', '0.25', '--log-every', '10', '--no-progress', '--amp', 'off']
    for name, extra in (('zero', ['--epochs', '0']), ('converged', ['--steps', '150', '--lr', '1e-2'])):
        r = cli('train', *common, '--out', root/name, *extra)
        assert r.returncode == 0, r.stderr[-2000:]
    return root


def last_val(run: Path) -> dict:
    rows = [json.loads(l) for l in (run/'metrics.jsonl').read_text().splitlines()]
    return [r for r in rows if any(k.startswith('val_') for k in r)][-1]


@pytest.mark.parametrize('name', ['zero', 'converged'])
def test_card_copies_the_run(world, name):
    from tinytribe.featfile import feature_files, features_meta
    run = world/name
    card = json.loads((run/'model'/'card.json').read_text())
    rec, val, tc = card['training'][-1], last_val(run), json.loads((run/'train_config.json').read_text())
    assert rec['validation'] == {k: v for k, v in val.items() if k != 'epoch'}
    assert rec['steps'] == json.loads((run/'status.json').read_text())['step'] == tc['train']['steps']
    metas = {features_meta(f)['clip_id']: features_meta(f) for f in feature_files(world/'features')}
    train = sorted(set(metas) - set(tc['info']['val_clips']))
    assert rec['data']['clips'] == len(train) and rec['data']['val_clips'] == len(tc['info']['val_clips'])
    assert rec['data']['hours'] == round(sum(metas[c]['duration_s'] for c in train) / 3600, 4)
    assert rec['data']['teacher']['name'] == 'simbrain' and card['license']['license'] == 'apache-2.0'
    assert card['trust']['r'] == val['val_r_teacher'] and card['trust']['n_trs'] == val['val_rows']
    readme = (run/'model'/'README.md').read_text()
    assert readme.startswith('---\nlicense: apache-2.0\nlibrary_name: tinytribe\n') and f"{val['val_r_teacher']:.3f}" in readme


def test_warning_for_the_untrained_model_only(world, tmp_path):
    from tinytribe.featfile import load_features, save_features
    clip = world/'features'/'c0.npz'
    z = cli('predict', clip, '--model', world/'zero'/'model', '--out', tmp_path/'z')
    c = cli('predict', clip, '--model', world/'converged'/'model', '--out', tmp_path/'c')
    assert z.returncode == 0 and c.returncode == 0, (z.stderr, c.stderr)
    warned = [l for l in z.stderr.splitlines() if 'warning:' in l]
    assert len(warned) == 1 and 'near chance' in warned[0], z.stderr
    assert not [l for l in c.stderr.splitlines() if 'warning:' in l], c.stderr
    zero, conv = (json.loads((world/n/'model'/'card.json').read_text())['trust'] for n in ('zero', 'converged'))
    assert zero['level'] == 'near_chance' and zero['r'] < zero['threshold']
    assert conv['level'] == 'ok' and conv['r'] > conv['threshold']
    silent = load_features(clip); silent.audio_mask[:] = False; silent.clip_id = 'silent'
    save_features(tmp_path/'silent.npz', silent)
    s = cli('predict', tmp_path/'silent.npz', '--model', world/'converged'/'model', '--out', tmp_path/'s')
    assert s.returncode == 0 and [l for l in s.stderr.splitlines() if 'warning:' in l and 'no sound' in l], s.stderr
    i = cli('inspect', world/'zero'/'model')
    assert i.returncode == 0 and 'near_chance' in i.stdout and 'license: apache-2.0' in i.stdout, i.stdout


def test_hub_id_through_a_local_cache(world, tmp_path):
    home = tmp_path/'hf'
    repo = home/'hub'/'models--tinytribe--sim-student'
    shutil.copytree(world/'converged'/'model', repo/'snapshots'/('0' * 40))
    (repo/'refs').mkdir(); (repo/'refs'/'main').write_text('0' * 40)
    env = {'HF_HOME': str(home)}
    ok = tt('predict', world/'features'/'c0.npz', '--model', 'tinytribe/sim-student', '--out', tmp_path/'p', env=env)
    assert ok.returncode == 0, ok.stderr

    assert (tmp_path/'p'/'c0.npz').is_file(), ok.stderr
    bad = tt('predict', world/'features'/'c0.npz', '--model', 'tinytribe/no-such-model', '--out', tmp_path/'q', env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert 'tinytribe/no-such-model' in bad.stderr and 'offline' in bad.stderr
    assert not (tmp_path/'q').exists()
    run = cli('predict', world/'features'/'c0.npz', '--model', world/'converged', '--out', tmp_path/'r')
    assert run.returncode == 2 and f"did you mean {world/'converged'/'model'}?" in run.stderr and not (tmp_path/'r').exists()


def test_push_fails_in_one_line_without_the_hub(world, tmp_path):
    r = tt('push', world/'converged'/'model', 'someone/tiny-sim', env={'HF_HOME': str(tmp_path/'hf')})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and 'upload failed' in r.stderr, r.stderr
    shutil.copytree(world/'converged'/'model', tmp_path/'nocard')
    (tmp_path/'nocard'/'README.md').unlink()
    r = cli('push', tmp_path/'nocard', 'someone/tiny-sim')
    assert r.returncode == 2 and 'no model card (README.md missing)' in r.stderr, r.stderr
