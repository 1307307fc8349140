"""Session fixtures shared by tests/test_export.py and tests/test_web.py (one extraction of the bundled clip per run)."""
import subprocess, sys
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
