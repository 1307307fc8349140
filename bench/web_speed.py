"""The browser page's clip mode, timed: seconds per second of clip of each stage in headless Chromium (Debian's
`chromium` through playwright-core, onnxruntime-web WebAssembly on 1 thread), and the bytes the page downloads.

    python bench/web_speed.py [--backbones DIR] [--student MODEL] [--clip MEDIA] [--runs 2] [--out bench/results/web_clip.json]

Without --backbones it exports them (`export_backbones`, ~1 min); without --student it uses the full design
(fsaverage5) at a fixed random init (the speed does not depend on the weights). Each run is a fresh page load
(the browser caches nothing between runs: a new browser each time); per stage the fastest run is reported beside
the first, since the machine is shared."""
import argparse, functools, http.server, json, os, platform, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / 'web'


class _Handler(http.server.SimpleHTTPRequestHandler):
    data: Path = None
    sent: dict = None
    def translate_path(self, path):
        p = path.split('?', 1)[0]
        if p.startswith('/data/'): return str(self.data / p[len('/data/'):])
        return super().translate_path(path)
    def copyfile(self, source, outputfile):
        self.sent[self.path.split('?', 1)[0]] = os.fstat(source.fileno()).st_size
        super().copyfile(source, outputfile)
    def log_message(self, *a): pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--backbones', help='a tinytribe export-backbones folder (default: exported here)')
    ap.add_argument('--student', help='a saved model folder or exported .onnx (default: full design, random init)')
    ap.add_argument('--clip', help='the clip (default: the bundled demo clip, with its transcript)')
    ap.add_argument('--runs', type=int, default=2)
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'web_clip.json'))
    a = ap.parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    from tinytribe.web import export_web
    from tinytribe.media import demo_clip
    chromium = shutil.which('chromium') or '/usr/bin/chromium'
    with tempfile.TemporaryDirectory(prefix='tt_web_speed_') as tmp:
        tmp = Path(tmp)
        bb = Path(a.backbones) if a.backbones else None
        if bb is None:
            from tinytribe.backbones_onnx import export_backbones
            bb = tmp / 'bb'
            export_backbones(bb)
        student = a.student
        if student is None:
            import torch
            from tinytribe.model import TinyTribe, get_config
            torch.manual_seed(0)
            student = TinyTribe(get_config('full')).save_pretrained(tmp / 'model')
        data = tmp / 'data'
        man = json.loads(export_web(data, student, bb, clip=a.clip or demo_clip()).read_text())
        sent = {}
        handler = type('H', (_Handler,), {'data': data, 'sent': sent})
        srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(handler, directory=str(WEB)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{srv.server_address[1]}/index.html?mode=clip&threads=1"
        runs = []
        for i in range(a.runs):
            sent.clear()
            t0 = time.time()
            r = subprocess.run(['node', str(WEB / 'drive.mjs'), url, str(tmp / f'shot{i}.png')], capture_output=True,
                               text=True, timeout=900, env={'CHROMIUM': chromium, 'PATH': '/usr/bin:/bin'})
            if r.returncode != 0: sys.exit(f"drive.mjs failed: {r.stderr[-2000:]}")
            st = json.loads(r.stdout.strip().splitlines()[-1])
            if st['status'] != 'done': sys.exit(f"the page ended with {st['status']}: {st.get('error')}")
            runs.append({'wall_s': time.time() - t0, 'timings_ms': st['clip']['timings'], 'extract_ms': st['extractMs'],
                         'student_load_ms': st['loadMs'], 'student_run_ms': st['runMs'],
                         'duration_s': st['clip']['duration'], 'download_bytes': sum(sent.values()),
                         'files': dict(sent)})
        srv.shutdown()
    dur = runs[0]['duration_s']
    stages = list(runs[0]['timings_ms']) + ['student_load', 'student']
    def ms(run, k):
        return run['student_load_ms'] if k == 'student_load' else run['student_run_ms'] if k == 'student' \
            else run['timings_ms'].get(k, 0.0)
    per_s = {k: {'first': round(ms(runs[0], k) / 1000 / dur, 4), 'best': round(min(ms(r, k) for r in runs) / 1000 / dur, 4)}
             for k in stages}
    compute = [k for k in stages if not k.startswith('load') and k != 'student_load']
    res = {'what': 'tinytribe web clip mode in headless Chromium, onnxruntime-web (WebAssembly, 1 thread): seconds per '
                   'second of clip per stage; load_* and student_load are one-off loads (not per second of clip, '
                   'given per second only for comparison)',
           'clip_s': dur, 'runs': len(runs), 's_per_s': per_s,
           'compute_s_per_s': {'first': round(sum(per_s[k]['first'] for k in compute), 4),
                               'best_of_stage_sums': round(sum(per_s[k]['best'] for k in compute), 4)},
           'extract_s_per_s_first_run': round(runs[0]['extract_ms'] / 1000 / dur, 4),
           'download_mb': round(runs[0]['download_bytes'] / 1e6, 1),
           'download_files_mb': {k: round(v / 1e6, 2) for k, v in sorted(runs[0]['files'].items(), key=lambda x: -x[1])},
           'backbones': {m: {k: b[k] for k in ('name', 'precision', 'bytes')} for m, b in man['backbones'].items()},
           'chromium': subprocess.run([chromium, '--version'], capture_output=True, text=True).stdout.strip(),
           'onnxruntime_web': json.loads((WEB / 'node_modules' / 'onnxruntime-web' / 'package.json').read_text())['version'],
           'machine': {'cpus': os.cpu_count(), 'platform': platform.platform(), 'loadavg_after': os.getloadavg()},
           'raw_runs': [{k: v for k, v in r.items() if k != 'files'} for r in runs]}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps({k: res[k] for k in ('s_per_s', 'compute_s_per_s', 'download_mb')}, indent=1))
    print('wrote', out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
