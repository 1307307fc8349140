"""`tinytribe adapt-subject` and `tinytribe pseudo-label` end to end through the command line (`tinytribe.cli.main`):
a model folder in, a model folder or pseudo-label segments out, the summary as one JSON line on stdout, exit code 0.
The jobs themselves (`adapt_subject_folder`, `pseudo_label`) are tested in nbs/44_phase3.ipynb."""
import contextlib, io, json, warnings
from pathlib import Path
import pytest
import torch


@pytest.fixture(scope='module')
def world(synthetic_features, tmp_path_factory):
    "Two subjects' fMRI and teacher segments of the synthetic clips (an in-silico brain), and a tiny model of their widths."
    from tinytribe.simbrain import write_dataset, SimBrainConfig
    from tinytribe.model import TinyTribe, get_config
    root = tmp_path_factory.mktemp('subject_world')
    write_dataset(sorted(Path(synthetic_features).glob('*.npz')), root/'sim', cfg=SimBrainConfig(n_subjects=2),
                  n_repeats=1, figures=False, progress=False)
    torch.manual_seed(0)
    m = TinyTribe(get_config('tiny', text_dim=16, audio_dim=12, video_dim=20, n_subjects=1))
    m.meta = {'phases': [3], 'subjects': {'sub-01': 1}}         # a Phase 3 model of sub-01 (its weights: the init)
    return {'features': synthetic_features, 'fmri': root/'sim', 'model': m.save_pretrained(root/'model'), 'root': root}


def cli(*argv) -> tuple[int, str]:
    from tinytribe.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        rc = main(list(map(str, argv)))
    return rc, out.getvalue()


def test_adapt_subject(world):
    out = world['root']/'adapted'
    rc, stdout = cli('adapt-subject', world['model'], '--fmri', world['fmri'], '--subject', '2', '--features',
                     world['features'], '--out', out, '--runs', '2', '--fmri-space', 'schaefer400', '--steps', '20')
    assert rc == 0
    rep = json.loads(stdout.strip().splitlines()[-1])
    assert (rep['subject'], rep['row'], rep['runs']) == ('sub-02', 2, 2), rep
    assert json.loads((out/'adapt_report.json').read_text()) == rep
    from tinytribe.model import TinyTribe
    assert TinyTribe.from_pretrained(out).meta['subjects'] == {'sub-01': 1, 'sub-02': 2}


def test_pseudo_label(world):
    rc, stdout = cli('pseudo-label', world['model'], '--features', world['features'], '--out', world['root']/'pseudo')
    assert rc == 0
    counts = json.loads(stdout.strip().splitlines()[-1])
    assert counts['written'] == 4 and counts['skipped'] == 0 and counts['files'] >= 4, counts
    rc, stdout = cli('pseudo-label', world['model'], '--features', world['features'], '--out', world['root']/'pseudo_t',
                     '--teacher', world['fmri']/'teacher')
    assert rc == 0 and json.loads(stdout.strip().splitlines()[-1])['skipped'] == 4
