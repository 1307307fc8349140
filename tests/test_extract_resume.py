"""Process-level tests of `tinytribe extract`: a job killed with SIGKILL mid-way resumes without redoing or losing
clips, and two workers given the same list never process the same clip twice."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest

N_CLIPS = 8
CMD = [sys.executable, '-c', 'import sys; from tinytribe.cli import main; sys.exit(main())', 'extract']
OPTS = ['--video-backbone', 'efficientnet_lite0', '--no-asr', '--threads', '1', '--json']


def _ff(*args):
    subprocess.run(['ffmpeg', '-y', '-loglevel', 'error', *map(str, args)], check=True)


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp('media')
    for i in range(N_CLIPS):
        _ff('-f', 'lavfi', '-i', f'testsrc2=size=160x120:rate=10', '-f', 'lavfi',
            '-i', f'sine=frequency={200 + 50 * i}:sample_rate=16000', '-t', 6, '-pix_fmt', 'yuv420p',
            '-shortest', d / f'clip{i:02d}.mp4')
    return d


def _env():
    return {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}


def _done(out: Path) -> set:
    return {p.stem for p in (out / 'manifest' / 'done').glob('*.json')}


def _cmd():
    return CMD


def test_kill_and_resume(clips, tmp_path):
    out = tmp_path / 'feats'
    p = subprocess.Popen([*_cmd(), str(clips), '--out', str(out), *OPTS], env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while time.time() - t0 < 300 and p.poll() is None and len(_done(out)) < 2:
        time.sleep(0.05)
    assert p.poll() is None, f"job ended before it could be killed: {p.communicate()[1].decode()[-2000:]}"
    p.send_signal(signal.SIGKILL); p.wait()
    done1 = _done(out)
    assert 2 <= len(done1) < N_CLIPS, done1
    # every clip recorded done has its complete feature file; no feature file exists without being done or in flight
    from tinytribe.featfile import load_features
    for k in done1: load_features(out / f'{k}.npz')
    npz1 = {q.stem: q.stat().st_mtime_ns for q in out.glob('*.npz')}
    assert set(npz1) - done1 <= {f'clip{i:02d}' for i in range(N_CLIPS)} and len(set(npz1) - done1) <= 1
    # resume: finishes the rest, leaves finished clips alone
    r = subprocess.run([*_cmd(), str(clips), '--out', str(out), *OPTS], env=_env(), capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    res = json.loads(r.stdout.decode()[r.stdout.decode().index('{'):])
    assert res['done_now'] == N_CLIPS - len(done1)
    assert _done(out) == {f'clip{i:02d}' for i in range(N_CLIPS)}
    for k in done1: assert (out / f'{k}.npz').stat().st_mtime_ns == npz1[k], f'{k} was redone'
    assert len(list(out.glob('*.npz'))) == N_CLIPS
    for k in _done(out): assert load_features(out / f'{k}.npz').n_steps == 12
    assert not list((out / 'manifest' / 'claims').glob('*.claim'))
    assert not list((out / 'manifest' / 'failed').glob('*.json'))


def test_two_workers_never_share_a_clip(clips, tmp_path):
    out = tmp_path / 'feats'
    ps = [subprocess.Popen([*_cmd(), str(clips), '--out', str(out), *OPTS, '--worker-id', w], env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE) for w in ('w1', 'w2')]
    outs = [p.communicate(timeout=600) for p in ps]
    for p, (o, e) in zip(ps, outs): assert p.returncode == 0, e.decode()[-3000:]
    res = [json.loads(o.decode()[o.decode().index('{'):]) for o, _ in outs]
    # every clip done exactly once in all: the counts add up to the number of clips
    assert sum(r['done_now'] for r in res) == N_CLIPS, res
    assert _done(out) == {f'clip{i:02d}' for i in range(N_CLIPS)}
    workers = {json.loads(q.read_text())['worker'].split(':')[-1] for q in (out / 'manifest' / 'done').glob('*.json')}
    assert workers <= {'w1', 'w2'}
