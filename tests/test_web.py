"""End to end in a browser: web/index.html served on 127.0.0.1, driven in headless Chromium (Debian's `chromium`,
through npm's `playwright-core` from web/node_modules). Features mode: the INT8 student in onnxruntime-web on the
bundled clip's exported features; its numbers must equal ONNX Runtime's in Python. Clip mode: the page computes the
features from the clip itself with the ONNX backbones (`tinytribe web`), and they and the prediction must match
Python's `extract_clip(clip, onnx_backbones(dir))` within the tolerances stated below. Screenshots are saved.

Setup it needs (scripts/setup.sh does both): `apt-get install chromium` and `npm ci --prefix web`."""
import base64, functools, http.server, json, os, shutil, subprocess, threading
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
    "Serves web/ and maps /data/ to the test's export folder; `sent` counts the bytes of each path served."
    data: Path = None
    sent: dict = None
    def translate_path(self, path):
        p = path.split('?', 1)[0]
        if p.startswith('/data/'): return str(self.data / p[len('/data/'):])
        return super().translate_path(path)
    def copyfile(self, source, outputfile):
        n = os.fstat(source.fileno()).st_size
        self.sent[self.path.split('?', 1)[0]] = n
        super().copyfile(source, outputfile)
    def log_message(self, *a): pass


def _serve(data: Path):
    "A local server of web/ with /data/ -> `data`: (server, its base URL, {path: bytes sent})."
    sent = {}
    handler = type('H', (_Handler,), {'data': data, 'sent': sent})
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(handler, directory=str(WEB)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/index.html", sent


def _drive(url: str, shot: Path, tr: int = 6, pick: list | None = None, status: str = 'done') -> dict:
    """Run the page in headless Chromium; its final state (drive.mjs), which must have `status`. `pick`: files to give
    its file input afterwards."""
    r = subprocess.run(['node', str(WEB / 'drive.mjs'), url, str(shot), str(tr), *([','.join(map(str, pick))] if pick else [])],
                       capture_output=True, text=True,
                       timeout=600, env={'CHROMIUM': CHROMIUM, 'PATH': '/usr/bin:/bin'})
    assert r.returncode == 0, r.stderr[-3000:]
    st = json.loads(r.stdout.strip().splitlines()[-1])
    assert st['status'] == status, {k: v for k, v in st.items() if k not in ('pred', 'features', 'frames')}
    return st


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
    srv, url, _ = _serve(data)
    yield {'url': url, 'data': data}
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
    st = _drive(url, SHOT)
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


# ---------------------------------------------------------------- clip mode: the page computes the features itself
@pytest.fixture(scope='module')
def clip_site(full_model, tmp_path_factory):
    """`tinytribe export-backbones` (MiniLM, Whisper-tiny, MobileViT-S as packaged; ~1 min) and `tinytribe web` with
    the bundled clip, served."""
    _need()
    from tinytribe.backbones_onnx import export_backbones
    from tinytribe.media import demo_clip
    tmp = tmp_path_factory.mktemp('webclip')
    export_backbones(tmp / 'bb', video='mobilevit_s')
    r = subprocess.run([*CLI, 'web', str(tmp / 'data'), '--student', str(full_model), '--backbones', str(tmp / 'bb'),
                        '--clip', str(demo_clip())], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if not json.loads((tmp / 'bb' / 'backbones_onnx.json').read_text())['backbones']['video']['source']['pretrained']:
        assert 'WARNING: RANDOM WEIGHTS: the video backbone mobilevit_s' in r.stderr, r.stderr   # announced when used
    srv, url, sent = _serve(tmp / 'data')
    yield {'url': url, 'data': tmp / 'data', 'bb': tmp / 'bb', 'sent': sent}
    srv.shutdown()


# Tolerances of the page's features against Python's (cosine of each 2 Hz step, where both have the modality).
# text: the same words, token ids (asserted equal) and batches; what differs is ONNX Runtime's INT8 kernels in
#   WebAssembly against x86 (dynamic INT8 rounds activations per batch): measured mean 0.9998, min 0.998.
# audio: WebAudio's decoder and resampler against PyAV's (FFmpeg's), the log-mel in float64 against float32: measured
#   mean 0.9994, min 0.9989.
# video: the frames (checked in levels below: median 1.7 of 255 from Chromium's colour conversion and canvas resize)
#   through the same INT8 graph: measured mean 0.99994, min 0.9999. MobileViT-S is at random init here (no weights
#   offline) and its features hardly tell frames apart (cosine ~0.99 between different frames: a page that drew the
#   first frame at every step scored mean 0.993), hence the frame check and the tight mean; the min leaves room for a
#   seek that lands on the neighbouring 25-fps frame.
# prediction: per-vertex Pearson r over TRs of the page's INT8 student on its features against ONNX Runtime's on
#   Python's, measured mean 0.996; the issue asks >= 0.95.
TOL = {'text': (0.9995, 0.995), 'audio': (0.998, 0.995), 'video': (0.999, 0.99)}


def test_clip_mode_matches_python(clip_site, tmp_path):
    from tinytribe.backbones_onnx import onnx_backbones, load_tokenizer, word_contexts, parity
    from tinytribe.export import onnx_inputs, onnx_session, run_onnx, vertex_r
    from tinytribe.extract import extract_clip
    from tinytribe.media import demo_clip, demo_dir, iter_frames
    SHOT = tmp_path / 'web_page_clip.png'
    data = clip_site['data']
    st = _drive(f"{clip_site['url']}?mode=clip&debug=frames", SHOT, pick=[data / 'demo.mp4', data / 'demo.words.json'])
    if json.loads((data / 'web.json').read_text())['warnings']:                  # random weights, shown above the brain
        assert 'RANDOM WEIGHTS' in (st['warningsText'] or ''), st['warningsText']
    # the same clip given through the file input (as a user picks it): the same features, except that Chromium's seek
    # may land on the neighbouring 25-fps frame at a step or two (step 17's centre is 10 ms before a frame)
    pk = st['picked']
    assert pk['status'] == 'done' and pk['T'] == st['clip']['T'], pk.get('error')
    for m in ('text', 'audio', 'video'):
        d = np.abs(np.asarray(pk['features'][m]) - np.asarray(st['features'][m])).reshape(pk['T'], -1).max(1)
        assert (d > 1e-6).sum() <= (2 if m == 'video' else 0), (m, np.nonzero(d > 1e-6))
    assert np.corrcoef(pk['pred'], st['pred'])[0, 1] > 0.999
    bb = onnx_backbones(clip_site['bb'], threads=1)                         # the files the manifest chose, as the page
    f = extract_clip(demo_clip(), bb, transcripts=demo_dir())
    T = f.n_steps
    assert st['clip']['T'] == T == 38 and abs(st['clip']['duration'] - f.duration_s) < 1e-6, st['clip']
    words = json.loads((clip_site['data'] / 'demo.words.json').read_text())['words']
    assert [w['text'] for w in words] == f.words
    tok = load_tokenizer(clip_site['bb'] / 'tokenizer.json')
    assert st['tokens'] == [tok.encode(c).ids for c in word_contexts(f.words)]   # the JS WordPiece == tokenizers
    # the frames themselves: Chromium's decoder, colour conversion and canvas resize against PyAV's (swscale)
    frames = np.stack([im for _, im in iter_frames(demo_clip(), fps=2.0, size=224)]).astype(np.float32)
    page = np.stack([np.frombuffer(base64.b64decode(b), np.uint8) for b in st['frames']]).astype(np.float32)
    page = page.reshape(frames.shape)
    err = np.abs(page - frames).mean((1, 2, 3))                              # mean |difference| in 0..255 levels
    nxt = np.abs(page[:-1] - frames[1:]).mean((1, 2, 3))                     # against the next step's frame
    res = {'frames': {'median_abs_diff_levels': float(np.median(err)), 'max_abs_diff_levels': float(err.max()),
                      'steps_over_4_levels': int((err > 4).sum()), 'next_step_mean_abs_diff_levels': float(nxt.mean())}}
    # a seek may land on the neighbouring 25-fps frame (40 ms away) at a step or two; every frame is its own step's
    assert (err > 4).sum() <= 2 and (err[:-1] < nxt).all(), res['frames']
    for m in ('text', 'audio', 'video'):
        got = np.asarray(st['features'][m], np.float32).reshape(T, -1)
        mask = np.asarray(st['clip']['masks'][m], bool)
        assert (mask == f.mask(m)).all(), (m, mask, f.mask(m))
        res[m] = p = parity(f.feature(m)[mask], got[mask])
        assert p['cos_mean'] >= TOL[m][0] and p['cos_min'] >= TOL[m][1], (m, p)
    assert sum(f.mask('text')) > 20 and all(f.mask('audio')) and all(f.mask('video'))
    ref = run_onnx(onnx_session(clip_site['data'] / 'student_int8.onnx', 1), onnx_inputs(f, tr_s=1.49))
    got = np.asarray(st['pred'], np.float32).reshape(st['nTr'], st['nOut'])
    assert got.shape == ref.shape == (12, 20484)
    r = vertex_r(got, ref)
    res['pred'] = {'mean_vertex_r': float(np.nanmean(r)), 'min_vertex_r': float(np.nanmin(r)),
                   'r_all': float(np.corrcoef(got.ravel(), ref.ravel())[0, 1]), 'pred_sd': float(ref.std())}
    assert res['pred']['mean_vertex_r'] >= 0.95, res['pred']
    wasm = WEB / 'node_modules' / 'onnxruntime-web' / 'dist'
    sent = dict(clip_site['sent'])
    download = {'total_bytes': sum(sent.values()), 'files': sent, 'ort_wasm_bytes': (wasm / 'ort-wasm-simd-threaded.wasm').stat().st_size}
    res |= {'timings_ms': st['clip']['timings'], 'extract_ms': st['extractMs'], 'student_ms': st['runMs'],
            'duration_s': st['clip']['duration'], 'download': download}
    print(f"\nclip mode, page vs Python: " + json.dumps({k: {a: round(b, 5) for a, b in v.items() if a in
          ('cos_mean', 'cos_min', 'max_abs_diff', 'mean_vertex_r', 'min_vertex_r', 'r_all', 'median_abs_diff_levels',
           'max_abs_diff_levels', 'steps_over_4_levels', 'next_step_mean_abs_diff_levels')} for k, v in res.items()
          if k in ('frames', 'text', 'audio', 'video', 'pred')}) + f"; features in {st['extractMs'] / 1000:.1f} s for "
          f"{st['clip']['duration']:.1f} s of clip; downloaded {download['total_bytes'] / 1e6:.1f} MB")
    SHOT.with_suffix('.json').write_text(json.dumps(res, indent=1))
    print('screenshot:', SHOT)
    assert SHOT.stat().st_size > 20_000


# ---------------------------------------------------------------- what the page and `tinytribe web` refuse
@pytest.fixture(scope='module')
def wide_student(tmp_path_factory):
    """A student trained on EfficientNet-Lite0 features (video width 1280; a small config, at random init), as a model
    folder and as the INT8 .onnx the page would load: the clip site's MobileViT-S backbones (640) are not its."""
    from tinytribe.model import TinyTribe, get_config
    import torch
    d = tmp_path_factory.mktemp('wide')
    torch.manual_seed(0)
    m = TinyTribe(get_config('tiny', video_dim=1280, text_dim=384, audio_dim=384)).save_pretrained(d / 'model')
    r = subprocess.run([*CLI, 'export', str(m), '--out', str(d / 'wide_int8.onnx'), '--int8'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return m, d / 'wide_int8.onnx'


def test_web_refuses_backbones_not_the_students(clip_site, wide_student, tmp_path):
    "`tinytribe web`: one line saying which backbones to export, exit 2, nothing written."
    model, _ = wide_student
    r = subprocess.run([*CLI, 'web', str(tmp_path / 'data'), '--student', str(model), '--backbones', str(clip_site['bb']),
                        '--clip', str(clip_site['data'] / 'demo.mp4')], capture_output=True, text=True)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'the video backbone mobilevit_s gives 640 features but the student takes 1280' in lines[0] \
        and f"tinytribe export-backbones {clip_site['bb']} --video efficientnet_lite0" in lines[0], r.stderr
    assert not (tmp_path / 'data').exists()


def test_page_refuses_backbones_not_the_students(clip_site, wide_student, tmp_path):
    """The page given a student whose widths differ from the bundle's backbones (`model=`) refuses before computing a
    feature, with the same kind of line, shown whole (not cut off in the header)."""
    _, onnx = wide_student
    shutil.copy(onnx, clip_site['data'] / 'wide_int8.onnx')
    st = _drive(f"{clip_site['url']}?mode=clip&model=data/wide_int8.onnx", tmp_path / 'refused.png', status='error')
    msg = st['statusText']
    assert 'the video backbone mobilevit_s gives 640 features but the student takes 1280' in msg, msg
    assert 'tinytribe export-backbones BB --video efficientnet_lite0' in msg, msg
    assert st.get('clip') is None and not st.get('extractMs')          # no feature was computed
    assert (tmp_path / 'refused.png').stat().st_size > 5_000


def test_bare_index_says_what_to_run(tmp_path):
    "index.html with no parameters and nothing in data/: a short page saying what to run, not a JSON error."
    _need()
    empty = tmp_path / 'empty'
    empty.mkdir()
    srv, url, _ = _serve(empty)
    try: st = _drive(url, tmp_path / 'help.png', status='help')
    finally: srv.shutdown()
    assert 'Nothing exported yet' in st['helpText'] and 'tinytribe web web/data --student MODEL' in st['helpText'], st
    assert 'tinytribe export MODEL' in st['helpText'] and not st['error'], st
    assert not any('JSON' in line for line in st['logs']), st['logs']
