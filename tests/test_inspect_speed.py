"""`tinytribe inspect PATH` answers without importing torch, for every artifact kind (issue 19: under 2 s each).

One small artifact of each kind is made as `bench/inspect_speed.py` makes them (feature file and folder, an fMRI
data set, a folder of runs, a model folder, a training run and its checkpoint, a prediction, an ONNX student); each
is described in a fresh Python process, which reports whether torch got imported, and `tinytribe inspect` is timed
on each with a generous bound (the 2 s target itself is measured by the benchmark: a loaded machine is slower).
"""
import importlib.util, json, os, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, '-c', 'import sys; from tinytribe.cli import main; sys.exit(main())']
BOUND_S = 12.0          # generous: importing torch alone takes ~2 s on a quiet machine and over 10 s on a loaded one


def _bench():
    spec = importlib.util.spec_from_file_location('inspect_speed', ROOT / 'bench' / 'inspect_speed.py')
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


@pytest.fixture(scope='module')
def artifacts(tmp_path_factory):
    return _bench().make_artifacts(tmp_path_factory.mktemp('artifacts'))


def test_every_kind_is_described_without_torch(artifacts):
    code = ("import json, sys; from tinytribe.inspect import describe; "
            "d = {p: describe(p).get('kind') for p in sys.argv[1:]}; "
            "print(json.dumps({'kinds': d, 'torch': 'torch' in sys.modules}))")
    for name, p in artifacts.items():                        # one fresh process per kind: torch is never imported
        r = subprocess.run([sys.executable, '-c', code, str(p)], capture_output=True, text=True, env={**os.environ})
        assert r.returncode == 0, f"{name}: {r.stderr[-2000:]}"
        out = json.loads(r.stdout)
        assert out['kinds'][str(p)], f"{name}: no kind in {out}"
        assert not out['torch'], f"describing a {name} ({p}) imported torch"
    ck = artifacts['checkpoint']
    assert ck.with_name(ck.name + '.json').is_file()          # the engine wrote the checkpoint's sidecar


def test_inspect_answers_quickly_for_every_kind(artifacts):
    for name, p in artifacts.items():
        t0 = time.perf_counter()
        r = subprocess.run([*CLI, 'inspect', str(p)], capture_output=True, text=True)
        dt = time.perf_counter() - t0
        assert r.returncode == 0, f"{name}: {r.stderr[-2000:]}"
        assert dt < BOUND_S, f"inspect {name} took {dt:.1f} s (load average {os.getloadavg()[0]:.1f})"


def test_stale_sidecar_falls_back_to_torch(artifacts):
    "A checkpoint rewritten after its sidecar (or copied with another time) is read with torch: the same answer."
    ck = artifacts['checkpoint']
    code = ("import json, sys; from tinytribe.inspect import describe; d = describe(sys.argv[1]); "
            "print(json.dumps({'step': d['step'], 'n_params': d['n_params'], 'torch': 'torch' in sys.modules}))")
    fresh = json.loads(subprocess.run([sys.executable, '-c', code, str(ck)], capture_output=True, text=True, check=True).stdout)
    st = ck.stat()
    os.utime(ck, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    try:
        stale = json.loads(subprocess.run([sys.executable, '-c', code, str(ck)], capture_output=True, text=True,
                                          check=True).stdout)
    finally: os.utime(ck, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not fresh['torch'] and stale['torch']
    assert (fresh['step'], fresh['n_params']) == (stale['step'], stale['n_params'])
