"""Feature-extraction speed and memory (issue 3 / spec Part 3b, step B).

CPU seconds per second of media for each stage (decode, ASR, text, audio, video) and in total, with 2 threads,
on a few minutes of speech + video made by looping the bundled demo clip with ffmpeg; and peak resident memory
of a whole extraction (backbones, ASR, features) on a long low-resolution input with audio (one hour by default),
run in a fresh process. Writes JSON (default bench/results/features_speed.json) with `total_s_per_s`.

    python bench/features_speed.py                       # 3-min speed input, 1-hour memory input
    python bench/features_speed.py --seconds 60 --long-seconds 600   # quicker

CPU time is process time (all threads), so with 2 threads it can exceed wall time. Stages: `decode` = probe +
frame decoding/resizing + audio decoding/resampling for the audio encoder; `asr` = faster-whisper (its own
audio decode included); `text` = MiniLM on each word with context; `audio` = log-mel + Whisper-tiny encoder;
`video` = the image backbone; `other` = hashing the source file.
"""
from __future__ import annotations
import argparse, json, os, resource, shutil, subprocess, sys, tempfile, time, platform
from pathlib import Path

TARGET_S_PER_S = 0.2
TARGET_PEAK_GB = 2.0


def ff(*args):
    subprocess.run(['ffmpeg', '-y', '-loglevel', 'error', *map(str, args)], check=True)


def make_loop(src: Path, seconds: float, out: Path, size: str | None = None, fps: int | None = None) -> Path:
    "Loop `src` (video + speech) to `seconds`, optionally re-scaled to `size` at `fps` (low-res long input)."
    vf = ['-vf', f'scale={size},fps={fps}'] if size else []
    ff('-stream_loop', -1, '-i', src, '-t', seconds, *vf, '-c:v', 'libx264', '-preset', 'ultrafast',
       '-pix_fmt', 'yuv420p',
       '-c:a', 'aac', '-b:a', '48k', '-ac', 1, out)
    return out


def stage_summary(timing: dict, duration_s: float) -> dict:
    "Group per-stage CPU/wall seconds into the benchmark's stages, per second of media."
    groups = {'decode': ('probe', 'audio_decode', 'video_decode'), 'asr': ('asr',), 'text': ('text',),
              'audio': ('audio',), 'video': ('video',), 'other': ('hash',)}
    res = {}
    for kind in ('cpu_s', 'wall_s'):
        t = timing[kind]
        per = {g: round(sum(t.get(s, 0.0) for s in ss) / duration_s, 5) for g, ss in groups.items()}
        per['total'] = round(sum(t.values()) / duration_s, 5)
        res[kind.replace('_s', '_s_per_s')] = per
    return res


def run_child(path: str, video: str, threads: int, asr: bool) -> dict:
    "In a fresh process: load everything, extract `path`, report timings and peak RSS."
    import torch
    torch.set_num_threads(threads)
    import warnings
    warnings.simplefilter('ignore')
    from tinytribe.backbones import load_backbones
    from tinytribe.media import load_asr
    from tinytribe.extract import extract_clip, ExtractConfig
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    bb = load_backbones(video, threads=threads)
    asr_m = load_asr(threads=threads) if asr else None
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t = time.perf_counter()
    f = extract_clip(path, bb, asr=asr, asr_model=asr_m, cfg=ExtractConfig(video=video, threads=threads, asr=asr))
    wall = time.perf_counter() - t
    return {'duration_s': f.duration_s, 'n_steps': f.n_steps, 'n_words': len(f.words), 'wall_s': wall,
            'timing': f.meta['timing'], 'rss_start_gb': rss0, 'rss_after_load_gb': rss_loaded,
            'peak_rss_gb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def child(path, video, threads, asr=True) -> dict:
    cmd = [sys.executable, __file__, '--_child', str(path), '--video', video, '--threads', str(threads),
           *([] if asr else ['--no-asr'])]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    if r.returncode != 0: raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seconds', type=float, default=180.0, help='length of the speed input (looped demo clip)')
    ap.add_argument('--long-seconds', type=float, default=3600.0, help='length of the memory input (0: skip)')
    ap.add_argument('--videos', default='mobilevit_s,efficientnet_lite0')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'features_speed.json'))
    ap.add_argument('--_child')
    ap.add_argument('--video', default='mobilevit_s')
    ap.add_argument('--no-asr', action='store_true')
    a = ap.parse_args(argv)
    if a._child:
        print(json.dumps(run_child(a._child, a.video, a.threads, not a.no_asr)))
        return 0

    from tinytribe.media import demo_clip, probe
    tmp = Path(tempfile.mkdtemp(prefix='tt_bench_'))
    res = {'bench': 'features_speed', 'threads': a.threads, 'cpu': platform.processor() or platform.machine(),
           'n_cpus': os.cpu_count(),
           'targets': {'total_s_per_s': TARGET_S_PER_S, 'peak_rss_gb_1h': TARGET_PEAK_GB},
           'input': {}, 'per_backbone': {}}
    t0 = time.time()
    speed_in = make_loop(demo_clip(), a.seconds, tmp / 'speed.mp4')
    res['input']['speed'] = {'what': f'bundled demo clip (espeak-ng speech + video) looped to {a.seconds:.0f} s, '
                                     '640x360 re-encoded', 'duration_s': probe(speed_in).duration_s}
    print(f"speed input ready ({time.time() - t0:.1f} s)", flush=True)
    for v in a.videos.split(','):
        r = child(speed_in, v, a.threads)
        s = stage_summary(r['timing'], r['duration_s'])
        res['per_backbone'][v] = {**s, 'wall_s': round(r['wall_s'], 2), 'n_words': r['n_words'],
                                  'peak_rss_gb': round(r['peak_rss_gb'], 3),
                                  'rss_after_load_gb': round(r['rss_after_load_gb'], 3)}
        print(v, json.dumps(s['cpu_s_per_s']), flush=True)
    first = a.videos.split(',')[0]
    res['cpu_s_per_s'] = res['per_backbone'][first]['cpu_s_per_s']
    res['total_s_per_s'] = res['cpu_s_per_s']['total']
    res['total_s_per_s_by_backbone'] = {v: r['cpu_s_per_s']['total'] for v, r in res['per_backbone'].items()}
    res['meets_speed_target'] = res['total_s_per_s'] <= TARGET_S_PER_S
    if a.long_seconds > 0:
        t0 = time.time()
        long_in = make_loop(demo_clip(), a.long_seconds, tmp / 'long.mp4', size='160:90', fps=10)
        res['input']['long'] = {'what': f'demo clip looped to {a.long_seconds:.0f} s at 160x90, 10 fps, with its '
                                        'speech', 'duration_s': probe(long_in).duration_s,
                                'bytes': long_in.stat().st_size}
        print(f"long input ready ({time.time() - t0:.1f} s)", flush=True)
        r = child(long_in, first, a.threads)
        res['long'] = {'video': first, 'duration_s': r['duration_s'], 'wall_s': round(r['wall_s'], 1),
                       'peak_rss_gb_after_stage': r['timing'].get('peak_rss_gb_after'),
                       'peak_rss_gb': round(r['peak_rss_gb'], 3),
                       'rss_after_load_gb': round(r['rss_after_load_gb'], 3),
                       'n_words': r['n_words'], **stage_summary(r['timing'], r['duration_s'])}
        res['peak_rss_gb'] = res['long']['peak_rss_gb']
        res['peak_rss_measured_on_s'] = r['duration_s']
        res['meets_memory_target'] = res['peak_rss_gb'] <= TARGET_PEAK_GB
        print('long', json.dumps(res['long']), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    keys = ('total_s_per_s', 'total_s_per_s_by_backbone', 'peak_rss_gb', 'meets_speed_target', 'meets_memory_target')
    print(json.dumps({k: res.get(k) for k in keys}, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
