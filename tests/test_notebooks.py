"""The Kaggle and Colab notebooks: rendered from one source, and run end to end by papermill on the CPU.

Every job's notebook runs against a real remote (rclone's local backend on a folder) from a fresh, empty work
folder, as a new Kaggle session would: features of the bundled demo clip are extracted and pushed; the teacher
cache (the in-silico brain as teacher) pulls them from the remote; Phase 1 (tiny preset) pulls them, trains and
pushes its checkpoints; the Colab copy of Phase 1, in another empty folder, resumes from the pushed checkpoint
and finishes; `full.ipynb` runs with `phases=[1]`, `sprint.ipynb` with its own phases (2 and 3) on the in-silico
brain's fMRI of the demo clip. Phase 2 (Kaggle), Phase 3 (Colab, from Phase 2's model pulled from the remote) and
the evaluation (Kaggle, of Phase 3's run pulled from the remote) run on random feature clips with the in-silico
brain's teacher segments and fMRI (`tinytribe simbrain`).
"""
import json, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {'preset': 'tiny', 'batch_size': 6, 'lr': 3e-3, 'log_every': 10, 'ckpt_every': 10, 'num_workers': 0}


def test_notebooks_are_rendered_from_one_source():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'render_notebooks.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    import nbformat
    for k in sorted((ROOT/'kaggle').glob('*/*.ipynb')):
        c = ROOT/'colab'/k.name
        a, b = nbformat.read(k, as_version=4), nbformat.read(c, as_version=4)
        nbformat.validate(a); nbformat.validate(b)
        assert len(a.cells) == len(b.cells)
        differ = [i for i, (x, y) in enumerate(zip(a.cells, b.cells)) if x.source != y.source]
        assert differ == [0, 3], (k.name, differ)          # the title (Kaggle/Colab) and the platform cell only
        assert 'platform_setup' in a.cells[3].source and a.cells[1].metadata['tags'] == ['parameters']
        meta = json.loads((k.parent/'kernel-metadata.json').read_text())
        assert meta['code_file'] == k.name and meta['enable_internet'] and meta['dataset_sources']
        for cell in a.cells:                                # typed calls, no argv assembly
            assert "'--" not in cell.source and 'argv' not in cell.source, (k.name, cell.source)
    assert {p.stem for p in (ROOT/'colab').glob('*.ipynb')} >= {'sprint', 'full', 'features', 'phase1'}


def run_nb(path, tmp_path, **params):
    papermill = pytest.importorskip('papermill')
    nb = ROOT/path
    names = set(papermill.inspect_notebook(str(nb)))
    assert {'remote', 'budget_hours', 'install_spec', 'push_every_min'} <= names and set(params) <= names, set(params) - names
    out = tmp_path/f"{path.replace('/', '_')}.out.ipynb"
    papermill.execute_notebook(str(nb), str(out), kernel_name='python3', progress_bar=False, parameters=params,
                               cwd=str(tmp_path))
    return out


def test_jobs_run_from_the_remote_alone(tmp_path):
    from tinytribe.sync import JobSync
    from tinytribe.engine import read_metrics
    remote = f"rclone:{tmp_path/'drive'}"
    w1, w2, w3, w4 = (tmp_path/f"session{i}" for i in range(1, 5))
    # Kaggle: features of the demo clip, pushed
    run_nb('kaggle/features/features.ipynb', tmp_path, media='demo', features_dir=str(w1/'features'), remote=remote,
           video_backbone='efficientnet_lite0')
    assert (w1/'features'/'demo.npz').exists()
    assert 'demo.npz' in JobSync(tmp_path/'x', f"{remote}/features", credentials={}).listed()
    # Colab: the teacher cache in an empty folder pulls the features from the remote
    run_nb('colab/teacher_cache.ipynb', tmp_path, features_dir=str(w2/'features'), out_dir=str(w2/'teacher'),
           remote=remote, teacher='simbrain', spaces=['fsaverage5'], dataset='demo')
    assert (w2/'features'/'demo.npz').exists() and list((w2/'teacher').glob('*.npz'))
    # Kaggle: Phase 1 in an empty folder, 20 steps, pushed
    run_nb('kaggle/phase1/phase1.ipynb', tmp_path, features_dir=str(w3/'features'), run_dir=str(w3/'run'), remote=remote,
           steps=20, **TINY)
    st = json.loads((w3/'run'/'status.json').read_text())
    assert st['state'] == 'done' and st['step'] == 20
    # Colab: Phase 1 continued to 30 steps in another empty folder, from the pushed checkpoint
    run_nb('colab/phase1.ipynb', tmp_path, features_dir=str(w4/'features'), run_dir=str(w4/'run'), remote=remote,
           steps=30, **TINY)
    st = json.loads((w4/'run'/'status.json').read_text())
    assert st['state'] == 'done' and st['step'] == 30 and st['resumed_from'] == 20, st
    assert [r['step'] for r in read_metrics(w4/'run')] == [10, 20, 30]
    ses = json.loads((w4/'run'/'session.json').read_text())
    assert ses['state'] == 'done' and ses['pulled'] > 0 and ses['pushes'] >= 1
    # the multi-job Colab notebooks: every step resumes from the remote (features done, Phase 1 done; the teacher
    # cache done: the sprint's Phases 2 and 3 pull its segments, Phase 3 trains on the in-silico brain's fMRI)
    from tinytribe.simbrain import write_dataset, SimBrainConfig
    write_dataset([w1/'features'/'demo.npz'], tmp_path/'sim', cfg=SimBrainConfig(n_subjects=1), n_repeats=1, figures=False,
                  progress=False)
    small = {k: v for k, v in TINY.items() if k != 'lr'}
    run_nb('colab/full.ipynb', tmp_path, work=str(tmp_path/'w_full'), remote=remote, phases=[1], steps=30,
           video_backbone='efficientnet_lite0', **small)
    st = json.loads((tmp_path/'w_full'/'phase1'/'status.json').read_text())
    assert st['state'] == 'done' and st['step'] == 30
    run_nb('colab/sprint.ipynb', tmp_path, work=str(tmp_path/'w_sprint'), remote=remote, teacher='simbrain', steps=6,
           fmri_dir=str(tmp_path/'sim'), fmri_space='schaefer400', seg_trs=6, **dict(small, batch_size=2, log_every=3, ckpt_every=3))
    for ph in (2, 3):
        st = json.loads((tmp_path/'w_sprint'/f"phase{ph}"/'status.json').read_text())
        assert st['state'] == 'done' and st['step'] == 6, (ph, st)
    assert json.loads((tmp_path/'w_sprint'/'phase3'/'train_config.json').read_text())['init'].endswith('phase2')

def test_phase2_phase3_evaluate_notebooks(tmp_path):
    "Phase 2 -> Phase 3 -> evaluate, each in an empty folder, chained through the remote alone."
    from tinytribe.featfile import save_features
    from tinytribe.phase1 import correlated_features
    from tinytribe.simbrain import write_dataset, SimBrainConfig
    fd, sim = tmp_path/'data'/'features', tmp_path/'data'/'sim'
    fd.mkdir(parents=True)
    dims = {'text': 16, 'audio': 12, 'video': 20}
    for i in range(4): save_features(fd/f"c{i}.npz", correlated_features(f"c{i}", 45.0, dims, seed=i))
    write_dataset(sorted(fd.glob('*.npz')), sim, cfg=SimBrainConfig(n_subjects=2), n_repeats=1, figures=False,
                  progress=False)
    remote = f"rclone:{tmp_path/'drive'}"
    small = dict(TINY, batch_size=4, lr=2e-3, log_every=4, ckpt_every=4, seg_trs=12, val_frac=0.25)
    w1, w2, w3 = (tmp_path/f"session{i}" for i in range(1, 4))
    run_nb('kaggle/phase2/phase2.ipynb', tmp_path, features_dir=str(fd), run_dir=str(w1/'p2'), teacher_dir=str(sim/'teacher'),
           init_dir='', remote=remote, steps=8, **small)
    st = json.loads((w1/'p2'/'status.json').read_text())
    assert st['state'] == 'done' and st['step'] == 8, st
    run_nb('colab/phase3.ipynb', tmp_path, features_dir=str(fd), run_dir=str(w2/'p3'), fmri_dir=str(sim),
           fmri_space='schaefer400', teacher_dir=str(sim/'teacher'), init_dir=str(w2/'p2'), remote=remote, steps=8, **small)
    assert (w2/'p2'/'model'/'model.safetensors').exists()          # Phase 2's model, pulled from the remote
    st = json.loads((w2/'p3'/'status.json').read_text())
    assert st['state'] == 'done' and st['step'] == 8, st
    cfg = json.loads((w2/'p3'/'train_config.json').read_text())
    assert cfg['init'] == str(w2/'p2') and cfg['info']['init_phases'], cfg.get('info')
    run_nb('kaggle/evaluate/evaluate.ipynb', tmp_path, run_dir=str(w3/'p3'), features_dir=str(fd), fmri_dir=str(sim),
           space='schaefer400', out_dir=str(w3/'eval'), baseline='none', remote=remote)
    rep = json.loads((w3/'eval'/'report.json').read_text())
    assert 'model' in json.dumps(rep) and (w3/'eval'/'report.html').exists()
    ses = json.loads((w3/'eval'/'session.json').read_text())
    assert ses['state'] == 'done' and ses['pushes'] >= 1
