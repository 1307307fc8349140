"""Phase 1 training throughput and peak memory per preset, on the CPU and (when there is one) a GPU.

For each preset (tiny, sprint, full) a fresh child process builds the Phase 1 task (`TinyTribe` + its
pre-training heads) with the real backbone widths (text 384, audio 384, video 640), writes a small
cache of feature files (random features, 90 s each), and runs the real training loop
(`tinytribe.engine.Trainer` over `FeatureSegments`, 60-step segments = 30 s, every loss and monitor of
Phase 1, AdamW, grad clipping, the checkpoint at the end) for `--steps` steps. Throughput is measured
between the end of the warm-up steps and the last step, from the loop's own per-step log:

- `steps_per_s`: optimiser steps per second;
- `feature_steps_per_s`: 2 Hz feature steps consumed per second (batch x 60 x steps/s); an hour of
  media is 7,200 feature steps, so one epoch over N hours takes N·7200 / feature_steps_per_s seconds;
- `peak_rss_mb` (CPU): peak resident memory of the child process above its RSS before training
  (sampled every ms), and `peak_cuda_mb` (GPU): `torch.cuda.max_memory_allocated`.

The CPU runs use small batches (the spec's batch of 32 is meant for a GPU); the GPU runs use the spec's
batch 32 with bf16/fp16 autocast (`amp='auto'`).

    python bench/train_speed.py [--steps 8] [--threads 2] [--out bench/results/train_speed.json] [--presets tiny,sprint,full]
"""
from __future__ import annotations
import argparse, json, os, platform, subprocess, sys, tempfile, threading, time
from pathlib import Path

CPU_BATCH = {'tiny': 8, 'sprint': 4, 'full': 4}
GPU_BATCH = {'tiny': 32, 'sprint': 32, 'full': 32}
SEG = 60


def child(preset: str, device: str, batch: int, steps: int, warmup: int, threads: int) -> dict:
    import psutil, torch
    torch.set_num_threads(threads)
    from tinytribe.featfile import random_features, save_features
    from tinytribe.phase1 import build_phase1
    from tinytribe.engine import Trainer, TrainConfig, read_metrics
    tmp = Path(tempfile.mkdtemp())
    n_clips = max(2, (batch * (steps + 1)) // 5 + 1)           # 90-s clips give 5 segments each
    for i in range(n_clips): save_features(tmp/'f'/f'c{i}.npz', random_features(f'c{i}', 90.0, seed=i))
    task, ds, mcfg = build_phase1(tmp/'f', preset, seg_steps=SEG, stride=30)
    n_params = sum(p.numel() for p in task.model.parameters())
    n_heads = sum(p.numel() for p in task.heads.parameters())
    cfg = TrainConfig(steps=steps, batch_size=batch, log_every=1, ckpt_every=10**9, progress=False, device=device, amp='auto')
    proc = psutil.Process(); base = proc.memory_info().rss; peak = [base]; stop = threading.Event()
    def sample():
        while not stop.is_set(): peak[0] = max(peak[0], proc.memory_info().rss); time.sleep(0.001)
    th = threading.Thread(target=sample, daemon=True); th.start()
    if device.startswith('cuda'): torch.cuda.reset_peak_memory_stats()
    tr = Trainer(task, ds, cfg, tmp/'run')
    rep = tr.fit()
    stop.set(); th.join()
    rows = read_metrics(tmp/'run')
    t = {r['step']: r['elapsed_s'] for r in rows}
    dt = (t[steps] - t[warmup]) / (steps - warmup)
    out = {'preset': preset, 'device': device, 'batch': batch, 'seg_steps': SEG, 'steps_timed': steps - warmup,
           'model_params': n_params, 'head_params': n_heads, 'amp': str(tr.amp_dtype).replace('torch.', '') if tr.amp_dtype else 'off',
           's_per_step': round(dt, 4), 'steps_per_s': round(1 / dt, 3), 'feature_steps_per_s': round(batch * SEG / dt, 1),
           'hours_of_media_per_hour': round(batch * SEG / dt * 3600 / 7200, 2), 'final_loss': round(rows[-1]['loss'], 4),
           'peak_rss_mb': round((peak[0] - base) / 2**20, 1)}
    if device.startswith('cuda'): out['peak_cuda_mb'] = round(torch.cuda.max_memory_allocated() / 2**20, 1); out['gpu'] = torch.cuda.get_device_name()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=8)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--presets', default='tiny,sprint,full')
    ap.add_argument('--devices', default='auto', help="'auto' (cpu, and cuda when available), or e.g. 'cpu' or 'cuda'")
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'/'train_speed.json'))
    ap.add_argument('--child', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        preset, device, batch = a.child.split(':', 2)[0], a.child.split(':')[1], int(a.child.split(':')[-1])
        if device == 'cuda0': device = 'cuda'
        print('RESULT ' + json.dumps(child(preset, device, batch, a.steps, a.warmup, a.threads))); return 0
    import torch
    from tinytribe.store import write_json
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else []) if a.devices == 'auto' else a.devices.split(',')
    results = []
    for device in devices:
        for preset in a.presets.split(','):
            batch = (GPU_BATCH if device.startswith('cuda') else CPU_BATCH)[preset]
            env = {**os.environ, 'OMP_NUM_THREADS': str(a.threads)}
            tag = f"{preset}:{'cuda0' if device == 'cuda' else device}:{batch}"
            r = subprocess.run([sys.executable, __file__, '--child', tag, '--steps', str(a.steps), '--warmup', str(a.warmup),
                                '--threads', str(a.threads)], env=env, capture_output=True, text=True)
            line = [l for l in r.stdout.splitlines() if l.startswith('RESULT ')]
            if r.returncode or not line:
                res = {'preset': preset, 'device': device, 'batch': batch, 'error': (r.stderr or r.stdout)[-1500:]}
            else: res = json.loads(line[0][7:])
            print(json.dumps(res)); results.append(res)
    import tinytribe
    out = {'bench': 'train_speed', 'phase': 1, 'tinytribe': tinytribe.__version__, 'torch': torch.__version__,
           'python': platform.python_version(), 'machine': platform.machine(), 'cpu_count': os.cpu_count(),
           'threads': a.threads, 'load_avg_1m': round(os.getloadavg()[0], 2),
           'note': 'CPU numbers come from a shared development machine; other jobs slow them down (see load_avg_1m).',
           'at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'results': results}
    write_json(a.out, out)
    print(f"wrote {a.out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
