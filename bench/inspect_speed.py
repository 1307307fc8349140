#!/usr/bin/env python
"""How long `tinytribe inspect PATH` takes, per artifact kind, in a fresh process (what a user waits for).

    python bench/inspect_speed.py [--repeats 3] [--out bench/results/inspect_speed.json]

Makes one small artifact of each kind in a temporary folder (feature file and folder, an fMRI data set in the
Algonauts layout, a folder of runs, a model folder, a training run and its checkpoint, a prediction, an exported
ONNX student), then times `tinytribe inspect` on each (median wall time of `--repeats` runs), beside the time of a
bare Python start and of `import torch` in the same conditions, and whether the call imported torch. The target is
2 s per call: no kind imports torch (the describing halves of the owners are torch-free modules: modelfolder,
runfolder with the checkpoint's JSON sidecar, predfile, onnxfile). The 1-minute load average before and after is
recorded: on a loaded machine every number grows.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, '-c', 'import sys; from tinytribe.cli import main; sys.exit(main())']


def timed(cmd, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        ts.append(time.perf_counter() - t0)
        if r.returncode != 0: raise SystemExit(f"{cmd}: exit {r.returncode}: {r.stderr[-500:]}")
    return round(statistics.median(ts), 3)


def imports_torch(path) -> bool:
    code = (f"import sys; from tinytribe.inspect import describe; describe({str(path)!r}); "
            "print('torch' in sys.modules)")
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip() == 'True'


def make_artifacts(d: Path) -> dict:
    import torch
    from tinytribe.featfile import random_features, save_features
    from tinytribe.testing import write_algonauts_fixture
    from tinytribe.model import TinyTribe, get_config
    from tinytribe.engine import Trainer, TrainConfig
    from tinytribe.testing import FeatureRegression
    from tinytribe.data import FeatureSegments
    from tinytribe.predict import predict_clip, save_prediction
    from tinytribe.export import export_onnx
    torch.manual_seed(0)
    cfg = get_config('tiny')
    dims = cfg.dims
    for i in range(3): save_features(d / 'feat' / f'c{i}.npz', random_features(f'c{i}', 20.0, dims=dims, seed=i))
    m = TinyTribe(cfg).eval()
    m.save_pretrained(d / 'model')
    run = d / 'runs' / 'run'
    Trainer(FeatureRegression(dims), FeatureSegments(d / 'feat', 8, 4),
            TrainConfig(steps=2, batch_size=2, log_every=1, progress=False), run).fit()
    from tinytribe.featfile import load_features
    save_prediction(d / 'pred.npz', predict_clip(m, load_features(d / 'feat' / 'c0.npz')))
    export_onnx(m, d / 'student.onnx')
    return {'feature file': d / 'feat' / 'c0.npz', 'feature folder': d / 'feat',
            'fMRI data set': write_algonauts_fixture(d / 'algonauts'), 'folder of runs (like runs/demo)': d / 'runs',
            'model folder': d / 'model', 'training run': run, 'checkpoint': run / 'ckpt' / 'last.pt',
            'prediction': d / 'pred.npz', 'ONNX student': d / 'student.onnx'}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--out', type=Path, default=ROOT / 'bench' / 'results' / 'inspect_speed.json')
    a = ap.parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    with tempfile.TemporaryDirectory() as t:
        arts = make_artifacts(Path(t))
        res = {'python_start_s': timed([sys.executable, '-c', 'pass'], a.repeats),
               'import_torch_s': timed([sys.executable, '-c', 'import torch'], a.repeats),
               'load_average_1min': os.getloadavg()[0], 'kinds': {}}
        for kind, p in arts.items():
            res['kinds'][kind] = {'inspect_s': timed([*CLI, 'inspect', str(p)], a.repeats), 'imports_torch': imports_torch(p)}
            print(f"{kind:34s} {res['kinds'][kind]['inspect_s']:6.2f} s  torch: {res['kinds'][kind]['imports_torch']}")
    res['load_average_1min_after'] = os.getloadavg()[0]
    print(f"python start {res['python_start_s']:.2f} s, import torch {res['import_torch_s']:.2f} s, "
          f"load average {res['load_average_1min']:.1f}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(a.out.name + '.tmp')
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(a.out)
    print(f"wrote {a.out}")


if __name__ == '__main__':
    main()
