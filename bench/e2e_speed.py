"""End-to-end speed: a video file to a brain map on the CPU, every stage (issue 11).

Decode, ASR (faster-whisper, as extraction runs it), each backbone, and the student (PyTorch `predict_clip`, the full
Tiny-TRIBE v3 at fsaverage5, random weights: its speed does not depend on them), in CPU seconds per second of media,
with 2 threads. Backbone sets side by side, each in a fresh process on the same input:

- `torch`: `load_backbones(video)` as extraction uses it today (MiniLM and Whisper in PyTorch; the video model in
  onnxruntime fp32, exported in memory at load);
- `onnx-fp32`: `onnx_backbones(dir, 'fp32')` from `tinytribe.backbones_onnx` (all three in onnxruntime, fp32);
- `onnx`: `onnx_backbones(dir)` (each backbone at the precision its export chose: INT8 where INT8 keeps the
  features, else fp32; see `backbones_onnx.json`).

The input is the bundled demo clip (speech + video) looped with ffmpeg. Writes bench/results/e2e_speed.json.

    python bench/e2e_speed.py                      # 90-s input, mobilevit_s and efficientnet_lite0
    python bench/e2e_speed.py --seconds 60 --videos mobilevit_s

CPU time is process time (all threads). Loading (models, sessions) is timed apart and not in the per-second numbers.
The target (<= 0.1 s per second of media) is judged on wall time with `--threads` threads (`meets_target`); the CPU
reading is kept beside it (`meets_target_on_cpu_time`: what one core alone would need).
The machine may be shared: compare the sets within one run (the `ratio_*` fields) rather than across runs.
"""
from __future__ import annotations
import argparse, json, os, platform, resource, subprocess, sys, tempfile, time
from pathlib import Path

TARGET_S_PER_S = 0.1
GROUPS = {'decode': ('probe', 'audio_decode', 'video_decode'), 'asr': ('asr',), 'text': ('text',),
          'audio': ('audio',), 'video': ('video',), 'other': ('hash',)}


def ff(*args):
    subprocess.run(['ffmpeg', '-y', '-loglevel', 'error', *map(str, args)], check=True)


def make_loop(src: Path, seconds: float, out: Path) -> Path:
    "Loop `src` (video + speech) to `seconds` seconds, re-encoded (H.264 + AAC)."
    ff('-stream_loop', -1, '-i', src, '-t', seconds, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
       '-c:a', 'aac', '-b:a', '48k', '-ac', 1, out)
    return out


def per_second(timing: dict, student: dict, duration_s: float) -> dict:
    "CPU and wall seconds per second of media for each stage and in total (student included)."
    res = {}
    for kind in ('cpu_s', 'wall_s'):
        t = timing[kind]
        per = {g: sum(t.get(s, 0.0) for s in ss) / duration_s for g, ss in GROUPS.items()}
        per['student'] = student[kind] / duration_s
        per['total'] = sum(t.values()) / duration_s + per['student']
        res[kind.replace('_s', '_s_per_s')] = {k: round(v, 5) for k, v in per.items()}
    return res


def _clock():
    return time.process_time(), time.perf_counter()


def run_child(path: str, video: str, threads: int, backbones: str, onnx_dir: str | None) -> dict:
    "In a fresh process: load the backbones, ASR and the student; video file -> features -> brain map, timed."
    import numpy as np, torch
    torch.set_num_threads(threads)
    import warnings; warnings.simplefilter('ignore')
    from tinytribe.media import load_asr
    from tinytribe.extract import extract_clip, ExtractConfig
    from tinytribe.model import TinyTribe, get_config
    from tinytribe.predict import predict_clip
    c0, w0 = _clock()
    if backbones == 'torch':
        from tinytribe.backbones import load_backbones
        bb = load_backbones(video, threads=threads)
    else:
        from tinytribe.backbones_onnx import onnx_backbones
        bb = onnx_backbones(onnx_dir, 'fp32' if backbones == 'onnx-fp32' else 'auto', threads=threads)
    asr = load_asr(threads=threads)
    torch.manual_seed(0)
    model = TinyTribe(get_config('full', video_dim=bb.video.dim)).eval()
    c1, w1 = _clock()
    f = extract_clip(path, bb, asr_model=asr, cfg=ExtractConfig(video=video, threads=threads))
    c2, w2 = _clock()
    p = predict_clip(model, f)
    c3, w3 = _clock()
    return {'duration_s': f.duration_s, 'n_steps': f.n_steps, 'n_words': len(f.words), 'timing': f.meta['timing'],
            'student': {'cpu_s': c3 - c2, 'wall_s': w3 - w2}, 'load': {'cpu_s': c1 - c0, 'wall_s': w1 - w0},
            'extract_wall_s': w2 - w1, 'pred_shape': list(p.pred.shape), 'pred_finite': bool(np.isfinite(p.pred).all()),
            'precision': {m: getattr(getattr(bb, m), 'precision', None) or getattr(getattr(bb, m), 'runtime', 'torch')
                          for m in ('text', 'audio', 'video')},
            'peak_rss_gb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def child(path, video, threads, backbones, onnx_dir) -> dict:
    cmd = [sys.executable, __file__, '--_child', str(path), '--video', video, '--threads', str(threads),
           '--backbones', backbones] + (['--onnx-dir', str(onnx_dir)] if onnx_dir else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    if r.returncode != 0: raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def export_dir(base: Path, video: str, given: str | None) -> tuple[Path, dict]:
    "An exported ONNX backbone folder for `video`: `given/<video>` if it holds one, else exported now (timed)."
    from tinytribe.backbones_onnx import export_backbones, read_backbones_manifest
    d = Path(given) / video if given else base / f'onnx-{video}'
    try:
        return d, {'reused': True, **read_backbones_manifest(d)}
    except FileNotFoundError:
        t = time.perf_counter()
        man = export_backbones(d, video=video)
        return d, {'reused': False, 'export_wall_s': round(time.perf_counter() - t, 1), **man}


def judge(res: dict, sets: list) -> dict:
    """The target, read two ways: wall seconds per second of media with the benchmark's threads (what a user waits:
    the issue's "at 2 threads"), and CPU seconds per second (all threads summed: the cost on one core)."""
    for v, runs in res['runs'].items():
        runs['meets_target'] = {k: runs[k]['wall_s_per_s']['total'] <= TARGET_S_PER_S for k in sets}
        runs['meets_target_on_cpu_time'] = {k: runs[k]['cpu_s_per_s']['total'] <= TARGET_S_PER_S for k in sets}
    res['total_wall_s_per_s'] = {f'{v}/{k}': r[k]['wall_s_per_s']['total'] for v, r in res['runs'].items() for k in sets}
    res['total_cpu_s_per_s'] = {f'{v}/{k}': r[k]['cpu_s_per_s']['total'] for v, r in res['runs'].items() for k in sets}
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seconds', type=float, default=90.0, help='length of the input (looped demo clip)')
    ap.add_argument('--videos', default='mobilevit_s,efficientnet_lite0')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--sets', default='torch,onnx-fp32,onnx', help='backbone sets to compare (torch, onnx-fp32, onnx)')
    ap.add_argument('--onnx-dir', help='folder of exported backbones (one sub-folder per video model); else exported now')
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'e2e_speed.json'))
    ap.add_argument('--_child')
    ap.add_argument('--video', default='mobilevit_s')
    ap.add_argument('--backbones', default='torch')
    a = ap.parse_args(argv)
    if a._child:
        print(json.dumps(run_child(a._child, a.video, a.threads, a.backbones, a.onnx_dir))); return 0

    from tinytribe.media import demo_clip, probe
    from tinytribe.store import write_json
    tmp = Path(tempfile.mkdtemp(prefix='tt_e2e_'))
    res = {'bench': 'e2e_speed', 'threads': a.threads, 'cpu': platform.processor() or platform.machine(),
           'n_cpus': os.cpu_count(), 'load_avg_start': os.getloadavg(), 'target_total_s_per_s': TARGET_S_PER_S,
           'student': 'TinyTribe full (fsaverage5, 20484 outputs), PyTorch predict_clip, random weights',
           'input': {}, 'runs': {}, 'exports': {}}
    src = make_loop(demo_clip(), a.seconds, tmp / 'e2e.mp4')
    res['input'] = {'what': f'bundled demo clip (espeak-ng speech + 480x270 video) looped to {a.seconds:.0f} s, re-encoded',
                    'duration_s': probe(src).duration_s}
    for v in a.videos.split(','):
        d, man = export_dir(tmp, v, a.onnx_dir)
        res['exports'][v] = {'reused': man['reused'], 'export_wall_s': man.get('export_wall_s'),
                             **{m: {'use': e['use'], 'why': e['why'],
                                    'int8_cos_mean': e['parity'].get('int8', {}).get('cos_mean'),
                                    'fp32_max_abs_diff': e['parity']['fp32']['max_abs_diff'],
                                    'bytes': {k: f['bytes'] for k, f in e['files'].items()}}
                                for m, e in man['backbones'].items()}}
        runs = {}
        for kind in a.sets.split(','):
            load = os.getloadavg()
            r = child(src, v, a.threads, kind, d)
            runs[kind] = {**per_second(r['timing'], r['student'], r['duration_s']), 'precision': r['precision'],
                          'load_s': {k: round(x, 2) for k, x in r['load'].items()}, 'n_words': r['n_words'],
                          'pred_shape': r['pred_shape'], 'pred_finite': r['pred_finite'],
                          'peak_rss_gb': round(r['peak_rss_gb'], 3), 'extract_wall_s': round(r['extract_wall_s'], 2),
                          'load_avg_before': [round(x, 2) for x in load]}
            print(v, kind, json.dumps(runs[kind]['cpu_s_per_s']), flush=True)
        sets = a.sets.split(',')
        if 'torch' in runs:
            t = runs['torch']['cpu_s_per_s']
            for k in sets[1:]:
                o = runs[k]['cpu_s_per_s']
                runs[f'ratio_{k}_over_torch_cpu'] = {g: round(o[g] / t[g], 3) for g in t if t[g] > 0}
        res['runs'][v] = runs
    res['load_avg_end'] = os.getloadavg()
    write_json(a.out, judge(res, a.sets.split(',')))
    print(json.dumps({'wall': res['total_wall_s_per_s'], 'cpu': res['total_cpu_s_per_s']}, indent=1))
    import shutil; shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
