"""Fixtures and helpers shared by the tests: one extraction of the bundled clip per run (tests/test_export.py,
tests/test_web.py), a small synthetic feature cache, `stop_when`, which stops a spawned process once a condition
holds, and `assert_same_weights`, which compares two training runs' weights bit for bit (the kill-and-resume tests)."""
import contextlib, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch

CLI = [sys.executable, '-c', 'import sys; from tinytribe.cli import main; sys.exit(main())']


@pytest.fixture(scope='session')
def demo_features(tmp_path_factory) -> Path:
    "Features of the bundled clip, extracted once per test session (MiniLM, Whisper-tiny, MobileViT-S as packaged)."
    from tinytribe.media import demo_clip, demo_dir
    out = tmp_path_factory.mktemp('demo_features')
    subprocess.run([*CLI, 'extract', str(demo_clip()), '--out', str(out), '--transcripts', str(demo_dir()),
                    '--threads', '2'], check=True)
    f = out / 'demo.npz'
    assert f.is_file(), f"extraction wrote no {f}"
    return f


@pytest.fixture(scope='session')
def full_model(tmp_path_factory) -> Path:
    "The full design (fsaverage5) at a fixed random init, saved as a user's model folder."
    from tinytribe.model import TinyTribe, get_config
    torch.manual_seed(0)
    return TinyTribe(get_config('full')).save_pretrained(tmp_path_factory.mktemp('model') / 'full')


def save_synthetic_features(fd: Path, n: int = 4, seconds: float = 20.0,
                            dims: dict | None = None) -> Path:
    "`n` feature files `c0.npz`... of `seconds` each in `fd`, with cross-modal structure (`correlated_features`)."
    from tinytribe.featfile import save_features
    from tinytribe.phase1 import correlated_features
    dims = dims or {'text': 16, 'audio': 12, 'video': 20}
    for i in range(n):
        save_features(fd / f"c{i}.npz", correlated_features(f"c{i}", seconds, dims, seed=i))
    return fd


@pytest.fixture(scope='session')
def synthetic_features(tmp_path_factory) -> Path:
    "A cache of 4 synthetic 20-s clips (text 16, audio 12, video 20 dims) that the training tests read."
    return save_synthetic_features(tmp_path_factory.mktemp('feat'))


def _output_tail(proc: subprocess.Popen, log: Path | None, n: int = 3000) -> str:
    "The end of what `proc` wrote: its `log` file, else its piped stderr (the process has ended)."
    if log is not None: return Path(log).read_text()[-n:]
    if proc.stderr is not None: return str(proc.communicate()[1])[-n:]
    return ''


def stop_when(proc: subprocess.Popen, cond=None, sig=signal.SIGKILL, group: bool = False, timeout: float = 180.0,
              poll: float = 0.02, delay: float = 0.0, log: Path | None = None, what: str = 'the process'):
    """Wait until `cond()` holds (none: at once), then `delay` s more; check that `proc` still runs, then send it
    `sig` (to its whole process group when `group`: start it with `start_new_session=True`). Fails, with the end of
    its output (`log`, else its stderr pipe), if it ends first or `cond` does not hold within `timeout` s. A
    SIGKILLed process is reaped before returning; after another signal the caller collects it."""
    t0 = time.time()
    while cond is not None and not cond():
        assert proc.poll() is None, f"{what} ended before it could be stopped: {_output_tail(proc, log)}"
        assert time.time() - t0 < timeout, f"{what} made no progress in {timeout:.0f} s"
        time.sleep(poll)
    time.sleep(delay)
    assert proc.poll() is None, f"{what} ended before it could be stopped: {_output_tail(proc, log)}"
    with contextlib.suppress(ProcessLookupError):
        if group: os.killpg(proc.pid, sig)
        else: os.kill(proc.pid, sig)
    if sig == signal.SIGKILL: proc.wait()
    return proc


def logged_steps(run: Path) -> int:
    "Training steps a run's `metrics.jsonl` holds complete lines of (a line cut by a kill does not count)."
    p = Path(run)/'metrics.jsonl'
    if not p.exists(): return 0
    return sum(1 for l in p.read_text().splitlines() if l.strip().endswith('}') and '"loss"' in l)


def run_weights(run: Path) -> tuple[dict, dict]:
    "The model's and the heads' tensors of a finished training run folder."
    from safetensors.torch import load_file
    return load_file(run / 'model' / 'model.safetensors'), load_file(run / 'heads' / 'heads.safetensors')


def assert_same_weights(run: Path, ref: Path, why: str = 'after kill + resume'):
    "The model and heads of training run `run` equal those of `ref`, bit for bit."
    (mk, hk), (mr, hr) = run_weights(run), run_weights(ref)
    assert mk.keys() == mr.keys() and hk.keys() == hr.keys()
    for part, got, want in (('model', mk, mr), ('head', hk, hr)):
        for k in want: assert (got[k] == want[k]).all(), f"{part} weight {k} differs {why}"
