"""Render the Kaggle and Colab notebooks (and Kaggle's kernel-metadata.json files) from ONE source: this file.

    python tools/render_notebooks.py          # (re)write kaggle/*/ and colab/*.ipynb
    python tools/render_notebooks.py --check  # exit 1 if a rendered file differs from what is on disk (CI, tests)

Each job is a list of cells shared by both platforms; only the platform cell differs. The notebooks hold
parameters, that platform cell and calls to typed library functions (`tinytribe.session`): no argv assembly.
Edit the jobs here, never the notebooks.
"""
import sys, json, argparse
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
REPO_PLACEHOLDER = 'git+https://github.com/YOUR-ACCOUNT/tinytribe.git'

# ---- shared cells ---------------------------------------------------------------------------------
COMMON_PARAMS = """
remote = ""                 # ONE base folder for all jobs between sessions, e.g. "gdrive:tinytribe" (rclone), an S3 or
                            # WebDAV remote, a mounted folder, or "pydrive2:FOLDER_ID"; each job syncs into remote/JOB.
                            # "": none (Colab: MyDrive/tinytribe/jobs on the mounted Drive). See kaggle/README.md
budget_hours = None         # None: the platform's (Kaggle 8.5 h of a 9-h session, Colab 3.5 h)
push_every_min = 5.0        # minutes between pushes to the remote
install_spec = ""           # "": tinytribe is installed already, or a wheel attached as a Kaggle dataset is used;
                            # else a pip spec: "{repo}", a wheel path or a folder
""".format(repo=REPO_PLACEHOLDER)

INSTALL = """# Install tinytribe with the extras this job needs (skipped when it is importable already).
import glob, importlib.util, json, os, subprocess, sys, time
t_start = time.time()
if install_spec or importlib.util.find_spec('tinytribe') is None:
    spec = install_spec or next(iter(sorted(glob.glob('/kaggle/input/*/tinytribe-*.whl'))), '')
    assert spec, "tinytribe is not installed: set install_spec (see kaggle/README.md: a git URL or a wheel)"
    if os.path.exists(spec): spec = 'file://' + os.path.abspath(spec)
    subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q', f"REQ @ {spec}"])"""

PLATFORM = {
    'kaggle': """# Platform: Kaggle. Credentials for the remote come from Add-ons > Secrets (TINYTRIBE_RCLONE_CONF or
# TINYTRIBE_GDRIVE_SA, see kaggle/README.md) and are never printed. /kaggle/working starts empty each session:
# everything the job resumes from is pulled from the remote.
from tinytribe.session import platform_setup
plat = platform_setup('auto', started_at=t_start, remote=remote)
print(plat.name, '| budget', plat.budget(budget_hours), 'h | remote', plat.remote(remote, 'JOB'))""",
    'colab': """# Platform: Colab. Drive is mounted at /content/drive (data root MyDrive/tinytribe; without a remote the jobs sync
# to MyDrive/tinytribe/jobs); an rclone remote's credentials come from Colab's secrets (key icon:
# TINYTRIBE_RCLONE_CONF) and are never printed.
from tinytribe.session import platform_setup
plat = platform_setup('auto', mount_drive=True, started_at=t_start, remote=remote)
print(plat.name, '| budget', plat.budget(budget_hours), 'h | remote', plat.remote(remote, 'JOB'))""",
}

SHOW_SESSION = """print(json.dumps({k: report.to_dict()[k] for k in ('name', 'state', 'pulled', 'pushes', 'elapsed_s', 'next')}, indent=1))"""

SHOW_TRAIN = SHOW_SESSION + """
from tinytribe.engine import read_metrics, plot_metrics
rows = read_metrics(run)
if rows:
    print({k: round(v, 4) for k, v in rows[-1].items() if isinstance(v, float)})
    from IPython.display import Image, display
    display(Image(filename=str(plot_metrics(run))))"""


def train_job(phase, title, what, extra_params, inputs_code, options_code, extras='sync'):
    return {
        'title': f"Phase {phase}: {title}",
        'about': what + """

Runs as a session (`tinytribe.session.train_session`): it pulls the run folder from `remote/phase{phase}` (the
latest checkpoint, metrics, status) and its inputs from their jobs' folders, trains with `resume`, pushes
checkpoints as they are written and once more at the end, and stops cleanly before the budget. Run it again
(or schedule it) until `state` is `done`: each session continues from the last pushed checkpoint, to the same
weights as one uninterrupted run.""".format(phase=phase),
        'extras': extras,
        'params': """
features_dir = "features"   # feature files (relative paths: under the work folder); pulled from remote/features
run_dir = "runs/phase{phase}"
preset = "sprint"           # tiny | sprint | full
steps = None                # None: the phase's default
batch_size = None
lr = None
ckpt_every = 200
log_every = 10
num_workers = 2
gpus = None                 # None: every visible GPU (one process per GPU, DDP, when > 1)
""".format(phase=phase) + extra_params,
        'cells': [f"""from tinytribe.session import train_session
run = plat.path(run_dir)
{inputs_code}
report = train_session({phase}, plat.path(features_dir), run, remote=plat.remote(remote, 'phase{phase}'),
                       features_remote=plat.remote(remote, 'features'), inputs=inputs, budget_hours=plat.budget(budget_hours),
                       push_every_min=push_every_min, started_at=plat.started_at, gpus=gpus, preset=preset, steps=steps,
                       batch_size=batch_size, lr=lr, ckpt_every=ckpt_every, log_every=log_every,
                       num_workers=num_workers{options_code})""", SHOW_TRAIN],
    }


JOBS = {
    'features': {
        'title': 'Features: media -> cached 2 Hz backbone features',
        'about': """Extracts text (MiniLM over words from transcripts or Whisper ASR), audio (Whisper-tiny encoder) and
video (MobileViT-S or EfficientNet-Lite0) features of every media file into one `.npz` per clip, as a session
(`tinytribe.session.features_session`): finished clips are pushed to `remote/features` every few minutes and
the job stops before the budget; the next session pulls the manifest and does only what is left. Several
accounts share one job with `shard = "I/N"` (each does its part; the next step pulls them all).""",
        'extras': 'features,sync',
        'params': """
media = "demo"              # media files or folders ("demo": the bundled clip; relative: under the data root)
features_dir = "features"   # output (relative paths: under the work folder)
shard = ""                  # "I/N": this worker's part of the clips
video_backbone = "mobilevit_s"   # or "efficientnet_lite0"
asr = True                  # Whisper ASR for clips without a transcript
retry_failed = False
""",
        'cells': ["""from tinytribe.session import features_session
report = features_session(plat.path(media, 'data'), plat.path(features_dir), remote=plat.remote(remote, 'features'),
                          shard=shard or None, budget_hours=plat.budget(budget_hours), video_backbone=video_backbone,
                          asr=asr, retry_failed=retry_failed, push_every_min=push_every_min, started_at=plat.started_at)""",
                  SHOW_SESSION + """
print(report.job.get('failed') or 'no failures')"""],
    },
    'teacher_cache': {
        'title': 'Phase 0: cache the teacher (TRIBE v2)',
        'about': """Runs the teacher over the feature files (and their media) and writes 100-TR teacher segments
(fsaverage5 predictions, fusion blocks "layer 4" and "layer 6", the 2048-d low-rank output), as a session
(`tinytribe.session.teacher_session`) synced to `remote/teacher`. `teacher = "simbrain"` uses the in-silico brain
instead of TRIBE v2 (a CPU check of the plumbing). TRIBE v2's text backbone (Llama 3.2) is gated: give an
`HF_TOKEN` secret.""",
        'extras': 'teacher,sync',
        'params': """
features_dir = "features"   # pulled from remote/features
out_dir = "teacher"
teacher = "tribev2"         # or "simbrain" (a CPU stand-in)
weights = "facebook/tribev2"
dataset = "friends"
spaces = ["fsaverage5", "fsaverage4"]
select = None               # K: only K diverse windows (design option 5b)
media_dir = ""              # the clips' media, if not at the feature files' source paths (relative: data root)
shard = ""
tribev2_spec = "git+https://github.com/facebookresearch/tribev2.git"
""",
        'cells': ["""if teacher == 'tribev2':
    if importlib.util.find_spec('tribev2') is None:
        subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q', tribev2_spec])
    from tinytribe.sync import get_secret
    if get_secret('HF_TOKEN'):
        from huggingface_hub import login
        login(token=get_secret('HF_TOKEN'))""",
                  """from tinytribe.session import teacher_session
opts = {'weights': weights, 'cache_folder': plat.path('tribev2_cache')} if teacher == 'tribev2' else {}
report = teacher_session(plat.path(features_dir), plat.path(out_dir), remote=plat.remote(remote, 'teacher'),
                         features_remote=plat.remote(remote, 'features'), teacher=teacher, teacher_options=opts,
                         dataset=dataset, spaces=spaces, select=select, media_dir=plat.path(media_dir, 'data'),
                         shard=shard or None, budget_hours=plat.budget(budget_hours), push_every_min=push_every_min,
                         started_at=plat.started_at)""",
                  SHOW_SESSION],
    },
    'phase1': train_job(1, 'self-supervised pre-training', """Pre-trains Tiny-TRIBE v3's projectors and fusion transformer on
cached features with the four self-supervised tasks of the spec and the MoE router loss (`tinytribe train --phase 1`).""",
                        '', 'inputs = {}', ''),
    'phase2': train_job(2, 'distillation from the teacher cache', """Distils the teacher's cached predictions and hidden states
into the student, starting from Phase 1's model (`tinytribe train --phase 2`).""",
                        """teacher_dir = "teacher"     # the teacher cache, pulled from remote/teacher
init_dir = "runs/phase1"    # Phase 1's run (its model/ is the starting point), pulled from remote/phase1; "": from scratch
seg_trs = None              # TRs per training segment (None: the spec's 100)
val_frac = None             # share of clips held out for validation r (None: the phase's default)
""", """inputs = {plat.path(teacher_dir): plat.remote(remote, 'teacher')}
if init_dir: inputs[plat.path(init_dir)] = (plat.remote(remote, 'phase1'), ['model/*', 'distill_heads/*', '*.json'])""",
                        """, teacher=plat.path(teacher_dir),
                       init=plat.path(init_dir) or None, seg_trs=seg_trs, val_frac=val_frac"""),
    'phase3': train_job(3, 'fine-tuning on fMRI', """Fine-tunes the distilled student on real fMRI (the Algonauts 2025 /
CNeuroMod release or any fMRIPrep fsaverage5 derivatives), starting from Phase 2's model (`tinytribe train --phase 3`).""",
                        """fmri_dir = "fmri"           # fMRI root (relative: under the data root)
fmri_space = None           # the space to load when the data hold several (e.g. "schaefer400"); None: the data set's
subjects = None             # e.g. "sub-01,sub-02"; None: all
teacher_dir = "teacher"     # the teacher cache (a regulariser), pulled from remote/teacher; "": none
init_dir = "runs/phase2"    # Phase 2's run, pulled from remote/phase2; "": from scratch
seg_trs = None              # TRs per training segment (None: the spec's 100)
val_frac = None
""", """inputs = {}
if teacher_dir: inputs[plat.path(teacher_dir)] = plat.remote(remote, 'teacher')
if init_dir: inputs[plat.path(init_dir)] = (plat.remote(remote, 'phase2'), ['model/*', 'distill_heads/*', '*.json'])""",
                        """, fmri=plat.path(fmri_dir, 'data'),
                       fmri_space=fmri_space, subjects=subjects, teacher=plat.path(teacher_dir) or None,
                       init=plat.path(init_dir) or None, seg_trs=seg_trs, val_frac=val_frac""", extras='brain,sync'),
    'evaluate': {
        'title': 'Evaluation: the report with brain maps',
        'about': """Scores a trained model on held-out fMRI (Pearson r per vertex and ROI, noise ceiling, student-teacher
agreement) and writes the report with brain maps (`tinytribe evaluate`), as a session synced to `remote/evaluate`.""",
        'extras': 'brain,export,sync',
        'params': """
run_dir = "runs/phase3"     # the trained run (its model/ is scored; metrics.jsonl gives the learning curve), from remote/phase3
features_dir = "features"   # pulled from remote/features
fmri_dir = "fmri"           # relative: under the data root
teacher_dir = ""            # the teacher cache to score and compare (pulled from remote/teacher); "": none
out_dir = "eval"
split = None                # 'algonauts', 'all', comma-separated clips or a JSON file; None: the command's default
baseline = "ridge"          # or "none"
ridge_iter = None           # None: the command's default
space = None                # fMRI space to load; None: the data set's
subjects = None             # e.g. "sub-01,sub-02"; None: all
""",
        'cells': ["""from tinytribe.session import evaluate_session
inputs = {plat.path(run_dir): (plat.remote(remote, 'phase3'), ['model/*', 'metrics.jsonl', '*.json']),
          plat.path(features_dir): plat.remote(remote, 'features')}
if teacher_dir: inputs[plat.path(teacher_dir)] = plat.remote(remote, 'teacher')
report = evaluate_session(plat.path(out_dir), [plat.path(run_dir) + '/model'], remote=plat.remote(remote, 'evaluate'),
                          inputs=inputs, budget_hours=plat.budget(budget_hours), push_every_min=push_every_min,
                          started_at=plat.started_at, features=plat.path(features_dir), fmri=plat.path(fmri_dir, 'data'),
                          teacher=plat.path(teacher_dir) or None, split=split, baseline=baseline, ridge_iter=ridge_iter,
                          space=space, subjects=subjects, run_dir=[plat.path(run_dir)])""",
                  SHOW_SESSION + """
from tinytribe.report import describe_report
print(json.dumps(describe_report(plat.path(out_dir)), indent=1)[:3000])"""],
    },
}

# Colab's multi-job notebooks: the same calls, one after the other, on a chosen data root
PIPE_PARAMS = """
media = "demo"              # media (relative: under the data root, MyDrive/tinytribe on Colab; "demo": the bundled clip)
fmri_dir = "fmri"           # relative: under the data root
work = "tinytribe_runs"     # outputs on the session's disk (relative: under the work folder); synced to the remote
phases = {phases}           # the training phases to run
preset = "{preset}"
steps = None                # per phase; None: the phase's default
batch_size = None
ckpt_every = 200
log_every = 10
num_workers = 2
video_backbone = "{video}"
asr = True
teacher = "tribev2"         # or "simbrain": the in-silico brain as teacher (a CPU check of the plumbing)
fmri_space = None           # Phase 3: the fMRI space to load when the data hold several; None: the data set's
seg_trs = None              # Phases 2 and 3: TRs per training segment (None: the spec's 100)
"""

PIPE_CELLS = ["""from tinytribe.session import features_session, teacher_session, train_session
w, budget = plat.path(work), plat.budget(budget_hours)
report = features_session(plat.path(media, 'data'), f"{w}/features", remote=plat.remote(remote, 'features'), budget_hours=budget,
                          video_backbone=video_backbone, asr=asr, push_every_min=push_every_min, started_at=plat.started_at)
print(report.state, report.next)""",
              """if 2 in phases:
    if teacher == 'tribev2' and importlib.util.find_spec('tribev2') is None:
        subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q', 'git+https://github.com/facebookresearch/tribev2.git'])
    report = teacher_session(f"{w}/features", f"{w}/teacher", remote=plat.remote(remote, 'teacher'), teacher=teacher,
                             features_remote=plat.remote(remote, 'features'),
                             budget_hours=budget, push_every_min=push_every_min, started_at=plat.started_at)
    print(report.state, report.next)""",
              """train = dict(preset=preset, steps=steps, batch_size=batch_size, ckpt_every=ckpt_every, log_every=log_every,
             num_workers=num_workers)
teach = {'teacher': f"{w}/teacher"} if 2 in phases else {}     # Phase 3 keeps the teacher as a regulariser
extra = {1: {}, 2: {**teach, 'seg_trs': seg_trs},
         3: {**teach, 'fmri': plat.path(fmri_dir, 'data'), 'fmri_space': fmri_space, 'seg_trs': seg_trs}}
prev = None
for ph in phases:
    if prev: extra[ph]['init'] = f"{w}/phase{prev}"
    ins = {f"{w}/teacher": plat.remote(remote, 'teacher')} if 'teacher' in extra[ph] else {}   # the segments themselves
    report = train_session(ph, f"{w}/features", f"{w}/phase{ph}", remote=plat.remote(remote, f"phase{ph}"),
                           features_remote=plat.remote(remote, 'features'), inputs=ins, budget_hours=budget,
                           push_every_min=push_every_min, started_at=plat.started_at, **train, **extra[ph])
    print(f"phase {ph}:", report.state, report.next)
    if report.state != 'done': break      # out of budget: run the notebook again, it resumes
    prev = ph""",
              """from tinytribe.engine import read_metrics, plot_metrics
from IPython.display import Image, display
for ph in phases:
    if read_metrics(f"{w}/phase{ph}"): display(Image(filename=str(plot_metrics(f"{w}/phase{ph}"))))"""]

PIPELINES = {
    'sprint': {
        'title': "The 2-day sprint: tiny features -> Phase 2 -> Phase 3",
        'about': """The spec's sprint (Part 3d) on a chosen data root: features of the media, the teacher cache, Phase 2
distillation and Phase 3 fMRI fine-tuning, each as a session budgeted per Colab session and synced to the remote
(by default the mounted Drive). Run all; when a session ends early, run all again: every step resumes where it
stopped.""",
        'extras': 'features,teacher,brain,sync',
        'params': PIPE_PARAMS.format(phases='[2, 3]', preset='tiny', video='efficientnet_lite0'),
    },
    'full': {
        'title': "The whole pipeline: features, teacher cache, Phases 1, 2 and 3",
        'about': """All of Strategy C, each step as a session synced to the remote: features, the teacher cache, Phase 1
pre-training, Phase 2 distillation, Phase 3 fMRI fine-tuning. Run all; when a session ends early, run all again:
every step resumes.""",
        'extras': 'features,teacher,brain,sync',
        'params': PIPE_PARAMS.format(phases='[1, 2, 3]', preset='sprint', video='mobilevit_s'),
    },
}

KAGGLE_META = {
    'features': dict(gpu=True, datasets=['tinytribe-media', 'tinytribe-wheel']),
    'teacher_cache': dict(gpu=True, datasets=['tinytribe-wheel']),
    'phase1': dict(gpu=True, datasets=['tinytribe-wheel']),
    'phase2': dict(gpu=True, datasets=['tinytribe-wheel']),
    'phase3': dict(gpu=True, datasets=['tinytribe-fmri', 'tinytribe-wheel']),
    'evaluate': dict(gpu=False, datasets=['tinytribe-fmri', 'tinytribe-wheel']),
}


def _cell(kind, src, tags=None):
    c = nbformat.v4.new_markdown_cell(src) if kind == 'md' else nbformat.v4.new_code_cell(src)
    c.metadata = {'tags': tags} if tags else {}
    return c


def notebook(job: dict, platform: str, name: str) -> nbformat.NotebookNode:
    where = {'kaggle': 'Kaggle', 'colab': 'Colab'}[platform]
    md = (f"# {job['title']} ({where})\n\n{job['about']}\n\nRendered by `tools/render_notebooks.py` from one source "
          f"with its {'Colab' if platform == 'kaggle' else 'Kaggle'} twin (only the platform cell differs): edit that file, "
          f"not this notebook. Run with papermill, e.g. `papermill {name}.ipynb out.ipynb -p remote gdrive:tinytribe` (the base "
          f"folder of all jobs: this one syncs into `gdrive:tinytribe/{job.get('job', name)}`).")
    params = '# parameters' + job['params'].rstrip() + '\n' + COMMON_PARAMS.rstrip()
    cells = [_cell('md', md), _cell('code', params.strip(), ['parameters']),
             _cell('code', INSTALL.replace('REQ', f"tinytribe[{job['extras']}]")),
             _cell('code', PLATFORM[platform].replace("'JOB'", repr(job.get('job', name))))]
    cells += [_cell('code', c) for c in job.get('cells', [])]
    for i, c in enumerate(cells): c['id'] = f"{name.replace('_', '-')}-{i:02d}"    # stable ids: renders are reproducible
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'},
                   'language_info': {'name': 'python'}}
    return nb


def kernel_metadata(name: str, meta: dict) -> dict:
    return {'id': f"YOUR-KAGGLE-USERNAME/tinytribe-{name.replace('_', '-')}", 'title': f"tinytribe {name.replace('_', ' ')}",
            'code_file': f"{name}.ipynb", 'language': 'python', 'kernel_type': 'notebook', 'is_private': True,
            'enable_gpu': meta['gpu'], 'enable_tpu': False, 'enable_internet': True,
            'dataset_sources': [f"YOUR-KAGGLE-USERNAME/{d}" for d in meta['datasets']],
            'competition_sources': [], 'kernel_sources': [], 'model_sources': []}


def render() -> dict:
    "{path: text} of every rendered file."
    out = {}
    JOBS['teacher_cache']['job'] = 'teacher'
    for name, job in JOBS.items():
        for platform in ('kaggle', 'colab'):
            nb = notebook(job, platform, name)
            path = f"kaggle/{name}/{name}.ipynb" if platform == 'kaggle' else f"colab/{name}.ipynb"
            out[path] = nbformat.writes(nb) + '\n'
        out[f"kaggle/{name}/kernel-metadata.json"] = json.dumps(kernel_metadata(name, KAGGLE_META[name]), indent=2) + '\n'
    for name, job in PIPELINES.items():
        j = {**job, 'cells': PIPE_CELLS, 'job': 'features'}
        out[f"colab/{name}.ipynb"] = nbformat.writes(notebook(j, 'colab', name)) + '\n'
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--check', action='store_true', help='only check that the files on disk are up to date')
    a = ap.parse_args(argv)
    stale = []
    for rel, text in render().items():
        p = ROOT/rel
        if p.exists() and p.read_text() == text: continue
        stale.append(rel)
        if not a.check:
            p.parent.mkdir(parents=True, exist_ok=True); p.write_text(text)
    if a.check and stale:
        print('out of date (run python tools/render_notebooks.py):\n  ' + '\n  '.join(stale), file=sys.stderr); return 1
    print(('up to date' if a.check else f"rendered {len(stale)} file(s)") if stale or a.check else 'nothing to do')
    return 0


if __name__ == '__main__':
    sys.exit(main())
