"""ONNX export of the full-size student (fsaverage5) on real features of the bundled clip: fp32 parity with PyTorch,
INT8 mean per-vertex r >= 0.99 and size <= 60 MB, through `tinytribe export` as a user runs it."""
import json, subprocess, sys
import numpy as np
import pytest

CLI = [sys.executable, '-c', 'import sys; from tinytribe.cli import main; sys.exit(main())']


@pytest.fixture(scope='session')
def exported(full_model, demo_features, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp('onnx')
    for name, extra in (('fp32', []), ('int8', ['--int8'])):
        r = subprocess.run([*CLI, 'export', str(full_model), '--out', str(out / f'student_{name}.onnx'), *extra,
                            '--features', str(demo_features), '--mesh', '--features-out', str(out / 'web')],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    return {'dir': out, 'fp32': out / 'student_fp32.onnx', 'int8': out / 'student_int8.onnx', 'web': out / 'web'}


def test_parity_on_the_bundled_clip(exported, full_model, demo_features):
    from tinytribe.model import TinyTribe
    from tinytribe.featfile import load_features
    from tinytribe.export import parity, onnx_info
    model = TinyTribe.from_pretrained(full_model).eval()
    clip = load_features(demo_features)
    p32 = parity(model, exported['fp32'], clip)
    p8 = parity(model, exported['int8'], clip)
    mb = exported['int8'].stat().st_size / 1e6
    print('\nfp32:', json.dumps(p32), '\nint8:', json.dumps(p8), f'\nINT8 size {mb:.1f} MB')
    assert p32['pred_sd_over_time'] > 0.01, p32          # the output varies in time: r is meaningful
    assert p32['max_abs_diff'] < 1e-4, p32
    assert p8['mean_vertex_r'] >= 0.99, p8
    assert mb <= 60, f"INT8 student is {mb:.1f} MB"
    info = onnx_info(exported['int8'])
    assert info['int8'] and info['n_out'] == 20484 and info['space'] == 'fsaverage5'


def test_web_files(exported, demo_features):
    from tinytribe.featfile import load_features
    from tinytribe.export import onnx_inputs
    head = json.loads((exported['web'] / 'demo.features.json').read_text())
    raw = np.fromfile(exported['web'] / head['bin'], '<f4')
    assert raw.nbytes == head['bytes']
    inp = onnx_inputs(load_features(demo_features), tr_s=head['grid']['tr_s'])
    for k in ('text', 'audio', 'video', 'pool'):
        a = head['arrays'][k]
        got = raw[a['offset'] // 4:a['offset'] // 4 + int(np.prod(a['shape']))].reshape(a['shape'])
        np.testing.assert_array_equal(got, inp[k][0])
    mesh = json.loads((exported['web'] / 'fsaverage5_inflated.json').read_text())
    assert mesh['n_vertices'] == 20484 and mesh['arrays']['faces']['shape'] == [40960, 3]
