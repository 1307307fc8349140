"""The ONNX backbones turn pixels, samples and words into features in a process where PyTorch cannot be imported
(issue 11), and `extract_clip` takes them in place of the torch backbones."""
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
    from tinytribe.backbones_onnx import onnx_backbones, demo_frames
    from tinytribe.media import demo_clip, demo_words, iter_audio
    bb = onnx_backbones(sys.argv[1], threads=1)
    text = bb.text.encode([w.text for w in demo_words()])
    audio, mask = bb.audio.features(iter_audio(demo_clip(), sr=16000, chunk_s=30.0), 37)
    video = bb.video.encode(demo_frames(6))
    np.savez(sys.argv[2], text=text, audio=audio, mask=mask, video=video)
    assert not any(getattr(sys.modules.get(m), '__file__', None) for m in ('torch', 'timm'))
    print('ok')
''')


@pytest.fixture(scope='module')
def onnx_dir(tmp_path_factory):
    from tinytribe.backbones_onnx import export_backbones
    d = tmp_path_factory.mktemp('bb_onnx')
    export_backbones(d, video='mobilevit_s')
    return d


def test_backbones_without_torch(onnx_dir, tmp_path):
    out = tmp_path / 'f.npz'
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, '-c', CHILD, str(onnx_dir), str(out)], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == 'ok'
    # the same backbones in a process with torch (log-mel by torch's STFT there, numpy's without torch)
    from tinytribe.backbones_onnx import onnx_backbones, parity, demo_frames
    from tinytribe.media import demo_clip, demo_words, iter_audio
    bb = onnx_backbones(onnx_dir, threads=1)
    g = np.load(out)
    np.testing.assert_allclose(g['text'], bb.text.encode([w.text for w in demo_words()]), atol=1e-5)
    np.testing.assert_allclose(g['video'], bb.video.encode(demo_frames(6)), atol=1e-4)
    audio, mask = bb.audio.features(iter_audio(demo_clip(), sr=16000, chunk_s=30.0), 37)
    np.testing.assert_array_equal(g['mask'], mask)
    assert mask.sum() >= 36 and parity(audio[mask], g['audio'][mask])['cos_min'] > 0.999


def test_extract_clip_takes_them(onnx_dir):
    from tinytribe.backbones_onnx import onnx_backbones
    from tinytribe.extract import extract_clip
    from tinytribe.media import demo_clip, demo_dir
    f = extract_clip(demo_clip(), onnx_backbones(onnx_dir, threads=1), transcripts=demo_dir() / 'demo_words.tsv')
    f.validate()
    assert f.modalities == ['text', 'audio', 'video'] and f.dims == {'text': 384, 'audio': 384, 'video': 640}
    assert f.meta['backbones']['video']['runtime'] == 'onnxruntime'
