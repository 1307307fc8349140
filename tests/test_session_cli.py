"""The command line never loses work and never answers with a traceback (real processes):

- Ctrl-C (SIGINT) during `tinytribe train` ends with one line on stderr and exit code 130;
- a missing input path is one line and exit code 2;
- a batch whose input holds no media, or whose every item failed before, says so (naming --retry-failed) and
  exits 2 instead of 0 with "0 done".
"""
import os, signal, subprocess, sys, time
from pathlib import Path

ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}


def tt(*args, **kw):
    return subprocess.run([sys.executable, '-c', ENTRY, *map(str, args)], env=ENV, capture_output=True, text=True, **kw)


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    from tinytribe.featfile import save_features
    from tinytribe.phase1 import correlated_features
    fd = tmp_path/'feat'
    for i in range(2):
        save_features(fd/f"c{i}.npz", correlated_features(f"c{i}", 20.0, {'text': 16, 'audio': 12, 'video': 20}, seed=i))
    run = tmp_path/'run'
    p = subprocess.Popen([sys.executable, '-c', ENTRY, 'train', '--phase', '1', '--preset', 'tiny', '--features', str(fd),
                          '--out', str(run), '--steps', '100000', '--batch-size', '4', '--seg-steps', '16', '--stride', '8',
                          '--log-every', '1', '--ckpt-every', '5', '--no-progress'],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (run/'metrics.jsonl').exists():
        assert p.poll() is None and time.time() - t0 < 180, p.communicate()
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (p.returncode, err[-2000:])
    last = err.strip().splitlines()[-1]
    assert 'Traceback' not in err and last.startswith('tinytribe train: ') and 'Ctrl-C' in last, err[-2000:]


def test_a_missing_path_is_one_line_and_exit_2(tmp_path):
    r = tt('sync', 'push', tmp_path/'nope', tmp_path/'remote')
    assert r.returncode == 2 and r.stderr.strip() == f"tinytribe sync: {tmp_path/'nope'}: no such file or folder (job folder)"
    r = tt('train', '--phase', '1', '--features', tmp_path/'nope', '--out', tmp_path/'run', '--preset', 'tiny')
    assert r.returncode == 2 and 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_nothing_to_do_says_so(tmp_path):
    (tmp_path/'empty').mkdir()
    r = tt('extract', tmp_path/'empty', '--out', tmp_path/'out', '--no-asr')
    assert r.returncode == 2 and 'the input holds no items' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    # every item failed in an earlier run (its failure recorded in the manifest): say so, name --retry-failed
    from tinytribe.store import Manifest
    (tmp_path/'media').mkdir()
    (tmp_path/'media'/'broken.mp4').write_text('not a video\n')
    Manifest(tmp_path/'out'/'manifest').failed('broken', 'ArtifactError: not a media file')
    r = tt('extract', tmp_path/'media', '--out', tmp_path/'out', '--no-asr')
    assert r.returncode == 2 and '--retry-failed' in r.stderr and 'all 1 item(s) failed' in r.stderr, r.stderr
