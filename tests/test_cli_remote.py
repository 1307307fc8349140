"""`--remote` and `--shard` on the job commands (the session around a command, `tinytribe.session.session_command`),
with real processes and rclone's local backend on a folder:

- `tinytribe train --remote`: killed with SIGKILL once the remote holds a checkpoint, then run again in a fresh, empty
  folder: it pulls the checkpoint from the remote and finishes from there (not from step 0);
- `tinytribe teacher-cache --shard 1/2` and `2/2` in two folders, one remote: every clip is cached once, by its shard.
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path

ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}


def tt(*args, **kw):
    return subprocess.run([sys.executable, '-c', ENTRY, *map(str, args)], env=ENV, capture_output=True, text=True, **kw)


def features(fd, n=3, dur=20.0):
    from tinytribe.featfile import save_features
    from tinytribe.phase1 import correlated_features
    for i in range(n):
        save_features(fd/f"c{i}.npz", correlated_features(f"c{i}", dur, {'text': 16, 'audio': 12, 'video': 20}, seed=i))
    return fd


def test_train_killed_resumes_from_the_remote_in_a_fresh_folder(tmp_path):
    from tinytribe.sync import JobSync
    fd, remote = features(tmp_path/'feat'), f"rclone:{tmp_path/'drive'}/phase1"
    args = ['train', '--phase', '1', '--preset', 'tiny', '--features', fd, '--steps', '60', '--batch-size', '4',
            '--seg-steps', '16', '--stride', '8', '--log-every', '5', '--ckpt-every', '5', '--no-progress',
            '--remote', remote, '--push-every-min', '0.03']
    p = subprocess.Popen([sys.executable, '-c', ENTRY, *map(str, args), '--out', str(tmp_path/'a')], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    look, t0 = JobSync(tmp_path/'look', remote, credentials={}), time.time()
    while 'ckpt/last.pt' not in look.listed() and p.poll() is None and time.time() - t0 < 240: time.sleep(0.5)
    assert p.poll() is None, p.communicate()          # still training when the checkpoint is on the remote
    p.send_signal(signal.SIGKILL)
    p.communicate()
    r = tt(*args, '--out', tmp_path/'b')               # a fresh, empty folder: everything comes from the remote
    assert r.returncode == 0, r.stderr[-3000:]
    st = json.loads((tmp_path/'b'/'status.json').read_text())
    assert st['state'] == 'done' and st['step'] == 60 and st['resumed_from'] >= 5, st
    ses = json.loads((tmp_path/'b'/'session.json').read_text())
    assert ses['state'] == 'done' and ses['pulled'] > 0 and ses['job']['exit_code'] == 0, ses
    assert 'status.json' in look.listed() and 'model/model.safetensors' in look.listed()


def test_teacher_cache_shards_share_one_remote(tmp_path):
    from tinytribe.sync import JobSync
    fd, remote = features(tmp_path/'feat', n=4), f"rclone:{tmp_path/'drive'}/teacher"
    for i in (1, 2):
        r = tt('teacher-cache', fd, '--teacher', 'simbrain', '--out', tmp_path/f"w{i}", '--spaces', 'fsaverage5',
               '--remote', remote, '--shard', f"{i}/2", '--quiet')
        assert r.returncode == 0, r.stderr[-3000:]
    clips = ('c0', 'c1', 'c2', 'c3')
    def cached(folder): return {c for c in clips for f in Path(folder).rglob('*.npz') if '.sync' not in f.parts and c in f.name}
    w1, w2 = cached(tmp_path/'w1'), cached(tmp_path/'w2')
    assert w1 and w2 and not (w1 & w2) and w1 | w2 == set(clips), (w1, w2)
    JobSync(tmp_path/'all', remote, credentials={}).pull(tags='all')     # the remote holds both shards' work
    assert cached(tmp_path/'all') == set(clips)
    r = tt('teacher-cache', fd, '--teacher', 'simbrain', '--out', tmp_path/'w3', '--remote', remote, '--shard', '3/2')
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = tt('train', '--phase', '1', '--features', fd, '--out', tmp_path/'w4', '--remote', remote, '--shard', '1/2')
    assert r.returncode == 2 and 'takes no --shard' in r.stderr, r.stderr


def test_predict_shards_and_evaluate_with_a_remote(tmp_path):
    from tinytribe.featfile import save_features, random_features
    from tinytribe.model import TinyTribe, get_config
    from tinytribe.sync import JobSync
    fd = tmp_path/'feat'
    for i in range(4): save_features(fd/f"life0{i + 1}.npz", random_features(f"life0{i + 1}", 30.0, seed=i))
    TinyTribe(get_config('tiny', text_dim=384, audio_dim=384, video_dim=640)).save_pretrained(tmp_path/'tiny')
    remote = f"rclone:{tmp_path/'drive'}"
    for i in (1, 2):
        r = tt('predict', fd, '--model', tmp_path/'tiny', '--out', tmp_path/f"p{i}", '--remote', f"{remote}/predict",
               '--shard', f"{i}/2")
        assert r.returncode == 0, r.stderr[-3000:]
    mine = [{p.stem for p in (tmp_path/f"p{i}").glob('life*.npz')} for i in (1, 2)]
    assert mine[0] and mine[1] and not (mine[0] & mine[1]) and len(mine[0] | mine[1]) == 4, mine
    JobSync(tmp_path/'all', f"{remote}/predict", credentials={}).pull(tags='all')
    assert len(list((tmp_path/'all').glob('life*.npz'))) == 4
    r = tt('simbrain', fd, '--out', tmp_path/'sim', '--subjects', '1', '--repeats', '1', '--no-figures')
    assert r.returncode == 0, r.stderr[-2000:]
    r = tt('evaluate', tmp_path/'all', '--features', fd, '--fmri', tmp_path/'sim', '--split', 'all', '--out',
           tmp_path/'eval', '--remote', f"{remote}/evaluate")
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'report.json' in JobSync(tmp_path/'x', f"{remote}/evaluate", credentials={}).listed()
