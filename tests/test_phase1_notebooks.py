"""The Kaggle and Colab Phase 1 notebooks run end to end under papermill on the real demo clip.

The Kaggle notebook extracts the bundled demo clip's features with the real extractor (MiniLM text,
whisper-tiny audio, MobileViT-S video) and pre-trains the tiny preset on them for a few CPU seconds:
the losses fall and within-batch cross-modal R@1 rises well above chance. The Colab notebook then
trains on that cache (Drive is not mounted outside Colab: its run folder is a local path): a session with no
time left stops at once with a checkpoint, and the next session resumes it to the end.
"""
import json
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {'preset': 'tiny', 'steps': 50, 'batch_size': 6, 'seg_steps': 6, 'stride': 6, 'lr': 3e-3, 'log_every': 10,
        'ckpt_every': 40, 'num_workers': 0, 'budget_hours': 1.0, 'margin_min': 0.5}


def run_nb(platform, tmp_path, **params):
    papermill = pytest.importorskip('papermill')
    import nbformat
    nb_path = ROOT/platform/'01_phase1.ipynb'
    nbformat.validate(nbformat.read(nb_path, as_version=4))
    assert {'features_dir', 'media_dir', 'run_dir', 'preset', 'budget_hours', 'resume'} <= set(papermill.inspect_notebook(str(nb_path)))
    papermill.execute_notebook(str(nb_path), str(tmp_path/f'{platform}_executed.ipynb'), kernel_name='python3',
                               progress_bar=False, parameters={**TINY, **params}, cwd=str(tmp_path))


def test_kaggle_and_colab_phase1_on_the_demo_clip(tmp_path):
    from tinytribe.engine import read_metrics
    from tinytribe.model import TinyTribe
    feats, run = tmp_path/'features', tmp_path/'kaggle_run'
    run_nb('kaggle', tmp_path, media_dir='demo', features_dir=str(feats), run_dir=str(run))
    assert (feats/'demo.npz').exists()
    st = json.loads((run/'status.json').read_text())
    assert st['state'] == 'done' and st['step'] == TINY['steps']
    rows = read_metrics(run)
    avg = lambda rs, k: sum(r[k] for r in rs) / len(rs)
    first, last = rows[:2], rows[-3:]
    for k in ('loss', 'l_mmr', 'l_cmc', 'l_ntp'): assert avg(last, k) < avg(first, k), (k, avg(first, k), avg(last, k))
    assert avg(last, 'cmc_r1') > 3 * avg(last, 'cmc_chance'), (avg(last, 'cmc_r1'), avg(last, 'cmc_chance'))
    assert avg(last, 'mmr_cos') > avg(first, 'mmr_cos')
    TinyTribe.from_pretrained(run/'model')
    assert (run/'metrics.png').read_bytes()[:4] == b'\x89PNG'

    # Colab: a first session with no time left stops at once, cleanly; the next one resumes and finishes
    crun = tmp_path/'colab_run'
    run_nb('colab', tmp_path, features_dir=str(feats), run_dir=str(crun), steps=20, budget_hours=0.0, margin_min=0.0)
    st0 = json.loads((crun/'status.json').read_text())
    assert st0['state'] == 'stopped_budget' and st0['step'] == 0
    run_nb('colab', tmp_path, features_dir=str(feats), run_dir=str(crun), steps=20, ckpt_every=10)
    st1 = json.loads((crun/'status.json').read_text())
    assert st1['state'] == 'done' and st1['step'] == 20 and st1['resumed_from'] == 0
