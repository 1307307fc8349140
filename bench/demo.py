"""The demo on 2 cores: `tinytribe demo`'s wall time and what its student learned, on the held-out clips of its
in-silico brain, beside the ridge baseline and the teacher.

    python bench/demo.py [--out bench/results/demo.json] [--work DIR] [--variant NAME] [--steps2 N --lr3 X ...]

Runs `tinytribe.demo.run_demo` with the command's defaults (or the steps given) into a fresh folder, pinned to two
cores (OMP/MKL threads 2, the process's CPU affinity cut to two cores where the OS allows), and writes the stage
times, the total wall time and CPU time, the load average (on a shared machine the wall time grows with it), and
the held-out scores from the demo's own summary: r and fraction of the noise ceiling of the Phase 3 student, the
ridge and the teacher. Any number of `DemoConfig` can be set (`--n-synthetic 40`): a variant, named by `--variant`;
the results of earlier runs are kept in the file's `history` list. The target: the whole demo within 10 minutes on 2 cores, the student above the ridge."""
import os, sys
os.environ.setdefault('OMP_NUM_THREADS', '2')
os.environ.setdefault('MKL_NUM_THREADS', '2')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '2')
os.environ.setdefault('MPLBACKEND', 'Agg')
import argparse, json, platform, resource, tempfile, time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_speed import cores2          # the same pinning to two cores


def cpu_s() -> float:
    "CPU seconds (user + system) of this process and its finished children."
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv=None):
    from tinytribe.demo import DemoConfig, run_demo
    d = DemoConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='bench/results/demo.json')
    ap.add_argument('--work', default=None, help='demo folder (default: a fresh temporary one)')
    for k, v in asdict(d).items():                # every number of DemoConfig: a variant to measure
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            ap.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=v)
    ap.add_argument('--variant', default='defaults', help='a name for this variant in the results')
    a = ap.parse_args(argv)
    cores = cores2()
    import torch
    torch.set_num_threads(2)
    cfg = DemoConfig(**{k: getattr(a, k) for k, v in asdict(d).items() if hasattr(a, k) and k != 'progress'}, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work or Path(tmp) / 'demo')
        load0, c0, t0 = os.getloadavg(), cpu_s(), time.perf_counter()
        s = run_demo(work, cfg)
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    res = {'bench': 'demo', 'variant': a.variant, 'cores': cores, 'torch_threads': torch.get_num_threads(), 'platform': platform.platform(),
           'python': platform.python_version(), 'config': asdict(cfg), 'wall_s': round(wall, 1), 'cpu_s': round(cpu, 1),
           'stage_s': s['seconds'], 'load_avg_start': load0, 'load_avg_end': os.getloadavg(),
           'held_out': s['held_out'], 'target': 'the demo within 10 minutes on 2 cores, its student above the ridge '
                                               'on held-out clips',
           'meets_target': wall < 600 and bool(s['held_out'].get('student_beats_ridge'))}
    from tinytribe.store import write_json
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    prev = json.loads(out.read_text()) if out.exists() else None     # earlier runs are kept, newest last, in `history`
    if prev: res['history'] = prev.pop('history', []) + [prev]
    write_json(out, res)
    h = s['held_out']
    print(f"wrote {out}: demo {wall:.0f} s wall ({cpu:.0f} s CPU, load {load0[0]:.1f}); held out: student "
          f"{h['student']['fraction_of_ceiling']:.3f} of the ceiling, ridge {h['ridge']['fraction_of_ceiling']:.3f}")


if __name__ == '__main__':
    main()
