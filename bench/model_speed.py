"""CPU forward speed of Tiny-TRIBE v3 (full preset, fsaverage5) against TRIBE v2's fusion model, same run.

Both models run in eval mode under `torch.inference_mode()`, batch 1, on a 100-s clip, with
`torch.set_num_threads(2)`:

- student: `TinyTribe(get_config('full')).predict(..., moe_dispatch=cpu_dispatch)` (the inference API: no
  router losses; the experts run through `tinytribe.moe_cpu`'s CPU kernel, `--moe-dispatch plain` measures
  the model's plain expert loop instead), 200 steps
  (2 Hz) of text (384), audio (384) and video (640) features, all present, pooled to a 1-s TR grid
  (100 rows x 20,484 vertices);
- teacher: `tribev2.model.FmriEncoder` at its released size (width 1152, 8 blocks, 8 heads, low-rank
  head 2048, 20,484 outputs, one average-subject output map as used at inference), random weights,
  fed 100 s of its own inputs at its own 2 Hz rate (text 3x3072, audio 3x1024, video 3x1408 layer
  groups, concatenated), pooled to 100 TRs.

The two models are timed alternately (warm-up, then `--runs` forwards each, student then teacher in
turn) so that load from other processes hits both alike; a round reports medians, minima and their
ratios, and the JSON headline is the quietest round, the one with the least student + teacher time
(all rounds are kept, with the load average, because the development machine is shared and its
timings drift with other jobs).
The headline timings use the OpenMP runtime's default wait policy (spin a while, then sleep: what a
user gets without tuning). The JSON also carries the same measurement under OMP_WAIT_POLICY=PASSIVE
(`passive_omp_policy`, threads sleep at every barrier), which is kinder to other jobs on a shared
machine but charges a thread wake-up to every parallel op, so it penalises the model with more,
shorter ops (the student) more than the one with fewer, longer ones.
Two figures explain the ratio. `gmac`: the multiply-accumulates each forward executes, counted by
`torch.utils.flop_counter` (the CPU flash-attention kernel counted as its two matmuls). `matmul_floor`:
every matmul-like call of one forward (linear, matmul, bmm, einsum, attention, convolution) is recorded
with its very tensors and replayed alone, so the floor is what a forward would cost if everything else
(norms, activations, routing, copies) took no time; it is timed in the same alternation, and its ratio
bounds what any implementation of these two architectures with these kernels can reach.
Peak memory is measured in a fresh child process per model: the largest RSS increase over the RSS
before the first forward, sampled every millisecond by a thread; weight bytes are listed apart.

    python bench/model_speed.py [--runs 15] [--out bench/results/model_speed.json]
    python bench/model_speed.py --student d_ffn=896 proj_hidden=512 --out bench/results/model_speed_variant.json
    python bench/model_speed.py --before bench/results/model_speed_before_refactor.json   # adds a `refactor` entry
    python bench/model_speed.py --ref 64daf69 --before ...   # also times the student of commit 64daf69, same run
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, sys, threading, time
from pathlib import Path
from types import SimpleNamespace

# OpenMP reads its wait policy when torch loads, so it is set before the import.
# `--omp-wait-policy default` (the default) leaves the runtime's own (spin, then sleep).
_POLICY = 'default'
if '--omp-wait-policy' in sys.argv: _POLICY = sys.argv[sys.argv.index('--omp-wait-policy') + 1].lower()
if _POLICY != 'default': os.environ.setdefault('OMP_WAIT_POLICY', _POLICY.upper())

import psutil
import torch

from tinytribe.core import TRGrid
from tinytribe.model import TinyTribe, get_config
from tinytribe.moe_cpu import cpu_dispatch
from tinytribe.store import write_json

CLIP_S, HZ = 100.0, 2
DISPATCH = {'cpu': cpu_dispatch, 'plain': None}   # --moe-dispatch: the experts' kernel at inference


class PeakRSS:
    "Context manager: peak RSS increase (bytes) over the RSS at entry, sampled by a thread."
    def __init__(self, every_s: float = 0.001):
        self.proc, self.every_s, self.peak = psutil.Process(), every_s, 0
    def __enter__(self):
        self.base = self.proc.memory_info().rss; self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True); self._t.start()
        return self
    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss); time.sleep(self.every_s)
    def __exit__(self, *exc):
        self._stop.set(); self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
    @property
    def delta(self) -> int: return self.peak - self.base


def build_student(overrides: dict | None = None, dispatch: str = 'cpu'):
    torch.manual_seed(0)
    model = TinyTribe(get_config('full', space='fsaverage5', **(overrides or {}))).eval()
    T = int(CLIP_S * HZ)
    cfg = model.config
    feats = {m: torch.randn(1, T, cfg.dims[m]) for m in ('text', 'audio', 'video')}
    masks = {m: torch.ones(1, T, dtype=torch.bool) for m in feats}
    grid = TRGrid(tr_s=1.0, n=int(CLIP_S), offset_s=0.0)
    run = lambda: model.predict(feats, masks, grid=grid, moe_dispatch=DISPATCH[dispatch])
    return model, run


def build_student_at(ref: str, overrides: dict | None = None):
    """The student as the code of git commit `ref` builds and runs it (its `predict`, its own expert dispatch),
    imported from a `git archive` of that commit as a second package (tinytribe's imports are relative)."""
    import importlib, io, subprocess, tarfile, tempfile
    root = Path(__file__).resolve().parents[1]
    tar = subprocess.run(['git', '-C', str(root), 'archive', ref, 'tinytribe'], capture_output=True, check=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix='model_speed_ref_'))
    tarfile.open(fileobj=io.BytesIO(tar)).extractall(tmp, filter='data')
    (tmp / 'tinytribe').rename(tmp / 'tinytribe_at_ref')
    sys.path.insert(0, str(tmp))
    mod = importlib.import_module('tinytribe_at_ref.model')
    torch.manual_seed(0)
    model = mod.TinyTribe(mod.get_config('full', space='fsaverage5', **(overrides or {}))).eval()
    T = int(CLIP_S * HZ)
    feats = {m: torch.randn(1, T, model.config.dims[m]) for m in ('text', 'audio', 'video')}
    masks = {m: torch.ones(1, T, dtype=torch.bool) for m in feats}
    grid = (1.0, 0.0, int(CLIP_S))      # (tr_s, offset_s, n): that package has its own TRGrid class
    return model, lambda: model.predict(feats, masks, grid=grid)


def build_teacher():
    import logging, warnings
    warnings.filterwarnings('ignore'); logging.disable(logging.WARNING)
    from tribev2.model import FmriEncoder
    from neuraltrain.models.common import SubjectLayers
    from neuraltrain.models.transformer import TransformerEncoder
    torch.manual_seed(0)
    # TRIBE v2's released brain_model_config (tribev2/grids/defaults.py) with the inference-time
    # average-subject output map (demo_utils sets average_subjects=True).
    cfg = FmriEncoder(hidden=1152, low_rank_head=2048, extractor_aggregation='cat', layer_aggregation='cat',
                      combiner=None, encoder=TransformerEncoder(depth=8),
                      subject_layers=SubjectLayers(n_subjects=0, subject_dropout=0.1, average_subjects=True))
    dims = {'text': (3, 3072), 'audio': (3, 1024), 'video': (3, 1408)}
    model = cfg.build(feature_dims=dims, n_outputs=20484, n_output_timesteps=int(CLIP_S)).eval()
    T = int(CLIP_S * HZ)
    data = {m: torch.randn(1, L, D, T) for m, (L, D) in dims.items()}
    data['subject_id'] = torch.zeros(1, dtype=torch.long)
    batch = SimpleNamespace(data=data)
    run = lambda: model(batch)
    return model, run


def probe_memory(which: str, threads: int, student: list | None = None, dispatch: str = 'cpu') -> dict:
    "In a fresh process: RSS increase during the first forward (the working memory a forward needs)."
    import subprocess
    r = subprocess.run([sys.executable, __file__, '--_probe', which, '--threads', str(threads),
                        '--omp-wait-policy', _POLICY, '--moe-dispatch', dispatch, '--student', *(student or [])],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0: raise RuntimeError(f"memory probe {which} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def _probe(which: str, overrides: dict | None = None, dispatch: str = 'cpu') -> int:
    model, run = build_student(overrides, dispatch) if which == 'student' else build_teacher()
    import gc; gc.collect()
    with torch.inference_mode(), PeakRSS() as m: run()
    print(json.dumps({'peak_rss_delta_mb': round(m.delta / 2**20, 1),
                      'rss_after_build_mb': round(m.base / 2**20, 1)}))
    return 0

def count_gmac(run) -> dict:
    "Multiply-accumulates (1e9) of one forward, by op, from torch's FLOP counter."
    from torch.utils.flop_counter import FlopCounterMode
    mapping = {}
    sdpa_cpu = getattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    if sdpa_cpu is not None:   # not in torch's table: QK^T and PV, 2 FLOPs per multiply-add
        mapping[sdpa_cpu] = lambda q, k, v, *a, out_shape=None, **kw: 2 * q[0] * q[1] * q[2] * k[2] * (q[3] + v[3])
    fc = FlopCounterMode(display=False, custom_mapping=mapping)
    with fc: run()
    by_op = {str(k): round(v / 2e9, 4) for k, v in fc.get_flop_counts().get('Global', {}).items()}
    return {'total': round(fc.get_total_flops() / 2e9, 4), 'by_op': by_op}


MATMUL_OPS = ('mm', 'addmm', 'bmm', 'baddbmm', 'matmul', 'linear', 'einsum', 'scaled_dot_product_attention',
              '_scaled_dot_product_flash_attention_for_cpu', 'convolution', 'conv1d')

def record_matmuls(run):
    """Run one forward and return a function that replays only its matmul-like calls, on the same tensors."""
    from torch.utils._python_dispatch import TorchDispatchMode
    heavy = {getattr(torch.ops.aten, n) for n in MATMUL_OPS if hasattr(torch.ops.aten, n)}
    calls = []
    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if func.overloadpacket in heavy: calls.append((func, args, kwargs))
            return out
    with Record(): run()
    def replay():
        for func, args, kwargs in calls: func(*args, **kwargs)
    replay.n_calls = len(calls)
    return replay


def n_params(m) -> int: return sum(p.numel() for p in m.parameters())
def weight_bytes(m) -> int: return sum(p.numel() * p.element_size() for p in m.parameters())


def compare(before: dict, after: dict, before_path: str) -> dict:
    "Headlines of two results side by side: speed and ratio to the teacher measured in the same run, and the floor."
    pick = lambda r: {'student_ms_per_s': r['student_ms_per_s'], 'teacher_fusion_ms_per_s': r['teacher_fusion_ms_per_s'],
                      'ratio': r['ratio'], 'matmul_floor_ratio': r['matmul_floor']['ratio'],
                      'ratio_over_floor': round(r['ratio'] / r['matmul_floor']['ratio'], 3),
                      'load_avg_1min': r['load_avg'][0], 'when_utc': r.get('when_utc'),
                      'moe_dispatch': r.get('moe_dispatch', 'cpu (MoEFFN._infer_cpu, before tinytribe.moe_cpu)')}
    b, f = pick(before), pick(after)
    out = {'before': {**b, 'file': before_path}, 'after': f,
           'ratio_after_over_before': round(f['ratio'] / b['ratio'], 3)}
    ab = [r['at_ref'] for r in after.get('rounds', []) if 'at_ref' in r]
    if ab:   # the code of --ref timed in the same alternation as this run: the fairest before/after on a busy machine
        out['same_run'] = {'ref': ab[0]['ref'], 'rounds': ab,
                           'student_over_ref_median': round(statistics.median(x['student_over_ref'] for x in ab), 3),
                           'ref_max_abs_diff': after.get('ref_max_abs_diff')}
    return {**out,
            'note': 'compare ratios to the teacher measured in the same run: the machine is shared and noisy'}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=15)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--rounds', type=int, default=3, help='whole measurements; the JSON headline is the quietest round')
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'model_speed.json'))
    ap.add_argument('--omp-wait-policy', default='default', choices=['passive', 'active', 'default'],
                    help='OpenMP wait policy (set before torch loads; an OMP_WAIT_POLICY in the environment wins)')
    ap.add_argument('--no-passive-run', action='store_true',
                    help='skip the second measurement under OMP_WAIT_POLICY=PASSIVE')
    ap.add_argument('--student', nargs='*', default=[], metavar='KEY=VALUE',
                    help="config overrides of the student (e.g. d_ffn=896 proj_hidden=512) to measure a variant of the "
                         "design; the default is the spec's full preset")
    ap.add_argument('--moe-dispatch', default='cpu', choices=sorted(DISPATCH),
                    help="the student's expert kernel: tinytribe.moe_cpu's CPU kernel, or the model's plain loop")
    ap.add_argument('--before', default=None, metavar='JSON',
                    help='an earlier result of this benchmark (e.g. before a change): the output gets a `refactor` '
                         'entry with its headline and this run\'s, each with its ratio to the teacher')
    ap.add_argument('--ref', default=None, metavar='GIT_REF',
                    help='also time the student as the code of this commit builds it, in the same alternation '
                         '(a before/after comparison that the load of a shared machine hits alike)')
    ap.add_argument('--_probe', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    overrides = {k: json.loads(v) for k, v in (kv.split('=', 1) for kv in a.student)}
    if a._probe: return _probe(a._probe, overrides, a.moe_dispatch)

    student, srun = build_student(overrides, a.moe_dispatch)
    teacher, trun = build_teacher()
    rrun = build_student_at(a.ref, overrides)[1] if a.ref else None
    rounds = []
    with torch.inference_mode():
        ps, pt = srun(), trun()
        assert ps.shape == (1, 100, 20484), ps.shape
        assert pt.shape == (1, 20484, 100), pt.shape
        ref_max_abs_diff = float((rrun() - ps).abs().max()) if rrun else None   # same seed: the same model
        gmac_s, gmac_t = count_gmac(srun), count_gmac(trun)
        sfloor, tfloor = record_matmuls(srun), record_matmuls(trun)
        for _ in range(a.warmup):
            for fn in (srun, trun, sfloor, tfloor, rrun):
                if fn is not None: fn()
        for r in range(a.rounds):
            ts, tt, fs, ft, tr = [], [], [], [], []
            for i in range(a.runs):
                for fn, acc in ((srun, ts), (trun, tt), (sfloor, fs), (tfloor, ft), (rrun, tr)):
                    if fn is None: continue
                    t0 = time.perf_counter(); fn(); acc.append(time.perf_counter() - t0)
            ms = lambda x: 1000 * x / CLIP_S
            s_med, t_med = ms(statistics.median(ts)), ms(statistics.median(tt))
            fs_med, ft_med = ms(statistics.median(fs)), ms(statistics.median(ft))
            rounds.append({'student_ms_per_s': round(s_med, 3), 'teacher_fusion_ms_per_s': round(t_med, 3),
                           'ratio': round(t_med / s_med, 3),
                           'matmul_floor': {'student_ms_per_s': round(fs_med, 3), 'teacher_fusion_ms_per_s': round(ft_med, 3),
                                            'ratio': round(ft_med / fs_med, 3)},
                           'student_ms_per_s_min': round(ms(min(ts)), 3), 'teacher_fusion_ms_per_s_min': round(ms(min(tt)), 3),
                           'ratio_min': round(min(tt) / min(ts), 3), 'load_avg': list(os.getloadavg()),
                           'student_runs_ms': [round(1000 * x, 2) for x in ts],
                           'teacher_runs_ms': [round(1000 * x, 2) for x in tt]})
            if rrun:   # the student at --ref, timed in the same alternation
                r_med = ms(statistics.median(tr))
                rounds[-1]['at_ref'] = {'ref': a.ref, 'student_ms_per_s': round(r_med, 3),
                                        'ratio': round(t_med / r_med, 3),
                                        'student_over_ref': round(s_med / r_med, 3)}
                print(f"  student at {a.ref}: {r_med:.3f} ms/s, ratio {t_med / r_med:.2f}; this/ref {s_med / r_med:.3f}",
                      file=sys.stderr)
            print(f"round {r}: student {s_med:.3f} ms/s, teacher {t_med:.3f} ms/s, ratio {t_med / s_med:.2f} "
                  f"(min-based {min(tt) / min(ts):.2f}; matmul floor {fs_med:.3f} vs {ft_med:.3f}, ratio {ft_med / fs_med:.2f}), "
                  f"load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    best = min(rounds, key=lambda r: r['student_ms_per_s'] + r['teacher_fusion_ms_per_s'])   # the quietest round
    s_med, t_med = best['student_ms_per_s'], best['teacher_fusion_ms_per_s']
    mem_s, mem_t = probe_memory('student', a.threads, a.student, a.moe_dispatch), probe_memory('teacher', a.threads)
    res = {
        **{k: v for k, v in best.items() if not k.endswith('_runs_ms')},
        'selection': f'quietest round (least student + teacher time) of {a.rounds}, each the median of {a.runs} alternating runs',
        'target': {'student_ms_per_s_max': 2.0, 'ratio_min': 3.0},
        'meets_target': bool(s_med <= 2.0 and t_med / s_med >= 3.0),
        'gmac': {'student': gmac_s['total'], 'teacher_fusion': gmac_t['total'],
                 'ratio': round(gmac_t['total'] / gmac_s['total'], 3),
                 'student_by_op': gmac_s['by_op'], 'teacher_fusion_by_op': gmac_t['by_op']},
        'ratio_over_gmac_ratio': round((t_med / s_med) / (gmac_t['total'] / gmac_s['total']), 3),
        'matmul_floor_calls': {'student': sfloor.n_calls, 'teacher_fusion': tfloor.n_calls},
        'student_config_overrides': overrides, 'moe_dispatch': a.moe_dispatch,
        **({'ref': a.ref, 'ref_max_abs_diff': ref_max_abs_diff} if a.ref else {}),
        'student_params': n_params(student), 'teacher_fusion_params': n_params(teacher),
        'student_active_params_per_token': student.count_parameters()['active_per_token'],
        'student_peak_rss_delta_mb': mem_s['peak_rss_delta_mb'], 'teacher_peak_rss_delta_mb': mem_t['peak_rss_delta_mb'],
        'student_weights_mb': round(weight_bytes(student) / 2**20, 1),
        'teacher_weights_mb': round(weight_bytes(teacher) / 2**20, 1),
        'clip_s': CLIP_S, 'steps': int(CLIP_S * HZ), 'batch': 1, 'runs': a.runs, 'warmup': a.warmup,
        'torch': torch.__version__, 'threads': torch.get_num_threads(), 'cpu_count': os.cpu_count(),
        'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY', 'default'),
        'machine': platform.machine(), 'processor': platform.processor(),
        'when_utc': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'rounds': rounds,
    }
    if _POLICY == 'default' and not a.no_passive_run:
        # the same measurement in a child process with OMP_WAIT_POLICY=PASSIVE
        import subprocess, tempfile
        with tempfile.TemporaryDirectory() as td:
            out = Path(td) / 'passive.json'
            r = subprocess.run([sys.executable, __file__, '--omp-wait-policy', 'passive', '--runs', str(a.runs),
                                '--rounds', str(a.rounds), '--warmup', str(a.warmup), '--threads', str(a.threads),
                                '--out', str(out), '--moe-dispatch', a.moe_dispatch, '--student', *a.student],
                               capture_output=True, text=True, timeout=3000)
            if r.returncode == 0:
                d = json.loads(out.read_text())
                res['passive_omp_policy'] = {k: d[k] for k in ('student_ms_per_s', 'teacher_fusion_ms_per_s', 'ratio',
                                                             'student_ms_per_s_min', 'teacher_fusion_ms_per_s_min',
                                                             'ratio_min', 'matmul_floor', 'load_avg', 'omp_wait_policy')}
            else:
                res['passive_omp_policy'] = {'error': r.stderr[-1000:]}
    if a.before: res['refactor'] = compare(json.loads(Path(a.before).read_text()), res, a.before)
    write_json(a.out, res)
    print(json.dumps({k: v for k, v in res.items() if k != 'rounds'}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
