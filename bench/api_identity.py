"""Outputs before and after a change of the code's seams (issue 20): the same command lines run with the code of
git commit `--ref` and with this tree, on the same tiny data, must give byte-identical results.

Each side runs in its own Python process whose `tinytribe` is that side's package (the commit's is `git archive`d
into a temporary folder): Phase 1, 2 and 3 training on the tiny preset for a few steps with a fixed seed (the
weights of `RUN/model` and `RUN/ckpt/last.pt`'s task), `predict` on the Phase 3 model (the predicted responses) and
`export` to ONNX (the graph's bytes) and its browser clip features. Writes bench/results/api_identity.json.

    python bench/api_identity.py --ref main
"""
from __future__ import annotations
import argparse, hashlib, json, os, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"


def package_at(ref: str) -> Path:
    "A folder whose `tinytribe` is the package of git commit `ref`."
    tar = subprocess.run(['git', '-C', str(ROOT), 'archive', ref, 'tinytribe'], capture_output=True, check=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix='api_identity_ref_'))
    subprocess.run(['tar', '-x', '-C', str(tmp)], input=tar, check=True)
    return tmp


def world(root: Path) -> Path:
    "Feature files and an in-silico brain data set (teacher segments + fMRI) for the runs."
    from tinytribe.featfile import save_features
    from tinytribe.simbrain import write_dataset, SimBrainConfig
    try: from tinytribe.testing import correlated_features
    except ImportError: from tinytribe.phase1 import correlated_features
    fd = root/'features'
    dims = {'text': 16, 'audio': 12, 'video': 20}
    for i in range(5): save_features(fd/f"c{i}.npz", correlated_features(f"c{i}", 45.0, dims, seed=i))
    write_dataset(sorted(fd.glob('*.npz')), root/'sim', cfg=SimBrainConfig(n_subjects=2), n_repeats=1, figures=False,
                  progress=False)
    return root


def commands(w: Path, out: Path) -> list[list[str]]:
    common = ['--preset', 'tiny', '--features', str(w/'features'), '--batch-size', '4', '--log-every', '1',
              '--ckpt-every', '5', '--no-progress', '--seed', '3', '--amp', 'off', '--device', 'cpu']
    p23 = ['--teacher', str(w/'sim'/'teacher'), '--seg-trs', '12', '--lr', '2e-3', '--val-frac', '0.2']
    return [
        ['train', '--phase', '1', *common, '--out', str(out/'p1'), '--steps', '6', '--seg-steps', '16', '--stride', '8'],
        ['train', '--phase', '2', *common, *p23, '--out', str(out/'p2'), '--steps', '6', '--init', str(out/'p1')],
        ['train', '--phase', '3', *common, *p23, '--out', str(out/'p3'), '--steps', '6', '--init', str(out/'p2'),
         '--fmri', str(w/'sim'), '--fmri-space', 'schaefer400'],
        ['predict', str(w/'features'), '--model', str(out/'p3'/'model'), '--out', str(out/'pred')],
        ['export', str(out/'p3'/'model'), '--out', str(out/'onnx'/'student.onnx'), '--features', str(w/'features'/'c0.npz')],
    ]


def _norm_text(s: str, out: Path) -> str:
    "Text with this side's folder and any creation time taken out (they differ by design)."
    import re
    s = s.replace(str(out), 'OUT')
    return re.sub(r'"created": "[^"]*"', '"created": ""', s)


def digests(out: Path) -> dict:
    """sha256 of every result that must not change: weights (model folders, checkpoints' task), predictions (every
    array; the metadata with paths and times normalised), the ONNX graph and its metadata, clip features."""
    import numpy as np, torch
    res = {}
    for f in sorted(out.rglob('*')):
        rel, h = str(f.relative_to(out)), hashlib.sha256()
        if 'manifest' in rel or not f.is_file(): continue
        if f.suffix == '.npz':
            with np.load(f, allow_pickle=False) as z:
                for k in sorted(z.files):
                    v = z[k]
                    h.update(k.encode())
                    if v.dtype.kind == 'U': h.update(_norm_text(str(v), out).encode())
                    elif k == '__meta__': h.update(_norm_text(v.tobytes().decode(), out).encode())
                    else: h.update(np.ascontiguousarray(v).tobytes())
        elif f.suffix == '.onnx':
            import onnx
            m = onnx.load(f)
            meta = [(p.key, _norm_text(p.value, out)) for p in m.metadata_props]
            m.ClearField('metadata_props')
            h.update(m.SerializeToString()); h.update(json.dumps(meta).encode())
        elif f.suffix in ('.safetensors', '.bin'): h.update(f.read_bytes())
        elif f.name == 'last.pt':
            ck = torch.load(f, map_location='cpu', weights_only=False)
            for k, v in sorted(ck['task'].items()): h.update(k.encode()); h.update(v.cpu().numpy().tobytes())
        else: continue
        res[rel] = h.hexdigest()
    return res


def run_side(pkg: Path, w: Path, out: Path) -> dict:
    env = {**os.environ, 'PYTHONPATH': str(pkg), 'OMP_NUM_THREADS': '1', 'PYTHONHASHSEED': '0',
           'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'PYTHONWARNINGS': 'ignore'}
    t0, rcs = time.time(), []
    out.mkdir(parents=True, exist_ok=True)
    for cmd in commands(w, out):
        r = subprocess.run([sys.executable, '-c', ENTRY, *cmd], env=env, capture_output=True, text=True, cwd=str(out.parent))
        rcs.append(r.returncode)
        if r.returncode != 0: print(f"{pkg}: {' '.join(cmd[:3])} exited {r.returncode}\n{r.stderr[-2000:]}", file=sys.stderr)
    return {'exit_codes': rcs, 'seconds': round(time.time() - t0, 1), 'digests': digests(out)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--ref', default='main', help='the git commit to compare with (default: main)')
    ap.add_argument('--out', default=str(ROOT/'bench'/'results'/'api_identity.json'))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='api_identity_'))
    w = world(tmp/'world')
    sides = {'ref': run_side(package_at(a.ref), w, tmp/'ref'/'out'), 'tree': run_side(ROOT, w, tmp/'tree'/'out')}
    d0, d1 = sides['ref']['digests'], sides['tree']['digests']
    same = sorted(k for k in d0 if d1.get(k) == d0[k])
    differ = sorted(k for k in set(d0) | set(d1) if d0.get(k) != d1.get(k))
    sha = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', a.ref], capture_output=True, text=True).stdout.strip()
    res = {'ref': a.ref, 'ref_sha': sha, 'identical': not differ and bool(same) and sides['ref']['exit_codes'] == sides['tree']['exit_codes'],
           'files_compared': len(same) + len(differ), 'files_identical': same, 'files_differ': differ,
           'exit_codes': {k: v['exit_codes'] for k, v in sides.items()}, 'seconds': {k: v['seconds'] for k, v in sides.items()}}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1) + '\n')
    print(json.dumps({k: res[k] for k in ('ref', 'identical', 'files_compared', 'files_differ', 'exit_codes', 'seconds')}))
    return 0 if res['identical'] else 1


if __name__ == '__main__':
    raise SystemExit(main())
