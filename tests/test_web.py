"""End to end in a browser: web/index.html served on 127.0.0.1, driven in headless Chromium (Debian's `chromium`,
through npm's `playwright-core` from web/node_modules), runs the INT8 student in onnxruntime-web on the bundled
clip's exported features; its numbers must equal ONNX Runtime's in Python, and a screenshot is saved.

Setup it needs (scripts/setup.sh does both): `apt-get install chromium` and `npm ci --prefix web`."""
import functools, http.server, json, shutil, subprocess, threading
from pathlib import Path
import numpy as np
import pytest

from test_export import CLI

WEB = Path(__file__).resolve().parents[1] / 'web'
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'


def _need():
    missing = []
    if not Path(CHROMIUM).exists(): missing.append("Debian's chromium (apt-get install chromium)")
    if not (WEB / 'node_modules' / 'playwright-core').is_dir() or not (WEB / 'node_modules' / 'onnxruntime-web').is_dir():
        missing.append('web/node_modules (npm ci --prefix web)')
    if shutil.which('node') is None: missing.append('node')
    assert not missing, f"the browser test needs {', '.join(missing)}; scripts/setup.sh installs them"


class _Handler(http.server.SimpleHTTPRequestHandler):
    "Serves web/ and maps /data/ to the test's export folder."
    data: Path = None
    def translate_path(self, path):
        p = path.split('?', 1)[0]
        if p.startswith('/data/'): return str(self.data / p[len('/data/'):])
        return super().translate_path(path)
    def log_message(self, *a): pass


@pytest.fixture(scope='module')
def site(full_model, demo_features, tmp_path_factory):
    _need()
    from tinytribe.media import demo_clip
    data = tmp_path_factory.mktemp('webdata')
    for name, extra in (('int8', ['--int8', '--features', str(demo_features), '--mesh']), ('fp32', [])):
        r = subprocess.run([*CLI, 'export', str(full_model), '--out', str(data / f'student_{name}.onnx'), *extra],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    shutil.copy(demo_clip(), data / 'demo.mp4')
    handler = type('H', (_Handler,), {'data': data})
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(handler, directory=str(WEB)))
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield {'url': f"http://127.0.0.1:{srv.server_address[1]}/index.html", 'data': data}
    srv.shutdown()


@pytest.mark.parametrize('kind', ['fp32', 'int8'])
def test_page_matches_onnxruntime(site, demo_features, tmp_path, kind):
    """fp32: the page's numbers equal ONNX Runtime's in Python (same graph, another build of the kernels). INT8: its
    activations are quantised at run time, and a one-level difference of a quantised value between the WebAssembly
    and x86 kernels can flip a near-tie top-2 expert choice, so the check is a correlation and a mean difference."""
    from tinytribe.export import onnx_session, run_onnx, onnx_inputs
    from tinytribe.featfile import load_features
    SHOT = tmp_path / f'web_page_{kind}.png'
    url = f"{site['url']}?model=data/student_{kind}.onnx"
    r = subprocess.run(['node', str(WEB / 'drive.mjs'), url, str(SHOT), '6'], capture_output=True, text=True,
                       timeout=600, env={'CHROMIUM': CHROMIUM, 'PATH': '/usr/bin:/bin'})
    assert r.returncode == 0, r.stderr[-3000:]
    st = json.loads(r.stdout.strip().splitlines()[-1])
    assert st['status'] == 'done', st
    head = json.loads((site['data'] / 'demo.features.json').read_text())
    inp = onnx_inputs(load_features(demo_features), tr_s=head['grid']['tr_s'])
    ref = run_onnx(onnx_session(site['data'] / f'student_{kind}.onnx'), inp)
    got = np.asarray(st['pred'], np.float32).reshape(st['nTr'], st['nOut'])
    assert got.shape == ref.shape == (head['grid']['n'], 20484)
    diff = np.abs(got - ref)
    r_all = np.corrcoef(got.ravel(), ref.ravel())[0, 1]
    download = {p.name: p.stat().st_size for p in site['data'].iterdir() if p.name != 'student_fp32.onnx' or kind == 'fp32'}
    if kind == 'fp32': download.pop('student_int8.onnx')
    wasm = WEB / 'node_modules' / 'onnxruntime-web' / 'dist'
    download['ort-wasm-simd-threaded.wasm + ort.wasm.min.mjs'] = ((wasm / 'ort-wasm-simd-threaded.wasm').stat().st_size
                                                                  + (wasm / 'ort.wasm.min.mjs').stat().st_size)
    download['three.module.js + three.core.js'] = sum((WEB / 'node_modules' / 'three' / 'build' / f).stat().st_size
                                                      for f in ('three.module.js', 'three.core.js'))
    print(f"\n{kind} page vs onnxruntime (Python): max |Δ| {diff.max():.2e}, mean |Δ| {diff.mean():.2e}, r {r_all:.6f}; "
          f"page: model load {st['loadMs']:.0f} ms, inference {st['runMs']:.0f} ms; "
          f"download {sum(download.values()) / 1e6:.1f} MB {json.dumps({k: round(v / 1e6, 2) for k, v in download.items()})}")
    (Path(str(SHOT)).with_suffix('.json')).write_text(json.dumps({'max_abs_diff': float(diff.max()), 'mean_abs_diff': float(diff.mean()),
                                                                  'r': float(r_all), 'loadMs': st['loadMs'], 'runMs': st['runMs'],
                                                                  'download': download}))
    if kind == 'fp32': assert diff.max() < 1e-4, diff.max()
    else: assert r_all > 0.999 and diff.mean() < 0.05 * ref.std(), (r_all, diff.mean(), ref.std())
    print('screenshot:', SHOT)
    assert SHOT.stat().st_size > 20_000
