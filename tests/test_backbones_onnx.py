"""The ONNX backbones take a clip to features in a process where PyTorch cannot be imported (issue 11)."""
import os, subprocess, sys, textwrap
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent('''
    import sys
    for m in ('torch', 'torchvision', 'torchaudio', 'timm', 'sentence_transformers'):
        sys.modules[m] = None                      # as if not installed: `import torch` fails
    import numpy as np
    from tinytribe.backbones_onnx import onnx_backbones
    from tinytribe.extract import extract_clip
    from tinytribe.media import demo_clip, demo_dir
    f = extract_clip(demo_clip(), onnx_backbones(sys.argv[1], threads=1), transcripts=demo_dir() / 'demo_words.tsv')
    np.savez(sys.argv[2], text=f.text, audio=f.audio, video=f.video, text_mask=f.text_mask)
    assert not any(getattr(sys.modules.get(m), '__file__', None) for m in ('torch', 'timm'))
    print('ok', f.n_steps)
''')


@pytest.fixture(scope='module')
def onnx_dir(tmp_path_factory):
    from tinytribe.backbones_onnx import export_backbones
    d = tmp_path_factory.mktemp('bb_onnx')
    export_backbones(d, video='mobilevit_s')
    return d


def test_extract_without_torch(onnx_dir, tmp_path):
    out = tmp_path / 'f.npz'
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, '-c', CHILD, str(onnx_dir), str(out)], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1].startswith('ok')
    # the same ONNX backbones in a process with torch give the same features (log-mel: numpy vs torch STFT)
    from tinytribe.backbones_onnx import onnx_backbones, parity
    from tinytribe.extract import extract_clip
    from tinytribe.media import demo_clip, demo_dir
    f = extract_clip(demo_clip(), onnx_backbones(onnx_dir, threads=1), transcripts=demo_dir() / 'demo_words.tsv')
    g = np.load(out)
    np.testing.assert_array_equal(g['text_mask'], f.text_mask)
    np.testing.assert_allclose(g['text'], f.text, atol=1e-5)
    np.testing.assert_allclose(g['video'], f.video, atol=1e-4)
    assert parity(f.audio, g['audio'])['cos_min'] > 0.999
