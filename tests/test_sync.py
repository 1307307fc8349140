"""Sync against real remotes on this machine: an rclone-served WebDAV server on 127.0.0.1 with a user and a
password, and rclone's local backend; two shards pushing at once; a planted secret that must appear nowhere.

The WebDAV credentials reach the jobs the way they reach a Kaggle notebook: the whole rclone config (base64) in
the `TINYTRIBE_RCLONE_CONF` secret (an environment variable here). Every file written (local job folders, the
server's folder, the jobs' stdout/stderr logs) is then searched for the password, its obscured form and the
config text. PyDrive2 needs Google's servers: only its refusal without credentials runs here.
"""
import base64, json, os, socket, subprocess, sys, time
from pathlib import Path
import pytest

SECRET = 'pl4nted-S3cret-Pa55word'
ENTRY = "import sys; from tinytribe.cli import main; raise SystemExit(main(sys.argv[1:]))"


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture
def webdav(tmp_path):
    served = tmp_path/'served'; served.mkdir()
    port = free_port()
    srv = subprocess.Popen(['rclone', 'serve', 'webdav', str(served), '--addr', f'127.0.0.1:{port}', '--user', 'tt',
                            '--pass', SECRET], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0: break
        time.sleep(0.1)
    obscured = subprocess.run(['rclone', 'obscure', '-'], input=SECRET, capture_output=True, text=True, check=True).stdout.strip()
    conf = f"[dav]\ntype = webdav\nurl = http://127.0.0.1:{port}/\nvendor = other\nuser = tt\npass = {obscured}\n"
    env = {**os.environ, 'TINYTRIBE_RCLONE_CONF': base64.b64encode(conf.encode()).decode(), 'OMP_NUM_THREADS': '1'}
    yield {'served': served, 'env': env, 'needles': [SECRET, obscured, env['TINYTRIBE_RCLONE_CONF']], 'srv': srv}
    srv.kill(); srv.wait()


def session(local, remote, env, log, n=12, shard=None, sleep_s=0.0):
    code = (f"from tinytribe.session import run_session\nfrom tinytribe.testing import demo_batch_job\n"
            f"r = run_session(demo_batch_job({str(local)!r}, n={n}, sleep_s={sleep_s}, shard={shard!r}), {str(local)!r}, "
            f"remote={remote!r}, shard={shard!r}, push_every_min=0.2/60, budget_hours=None)\n"
            f"print(r.state, r.next)\n")
    with open(log, 'w') as f:
        return subprocess.Popen([sys.executable, '-c', code], env=env, stdout=f, stderr=subprocess.STDOUT)


def written_files(*roots):
    for r in roots:
        for p in Path(r).rglob('*'):
            if p.is_file(): yield p


def test_webdav_sessions_shards_and_no_secret_anywhere(webdav, tmp_path):
    env, logs = webdav['env'], tmp_path/'logs'
    logs.mkdir()
    # two shards of one job at once, on the password-protected WebDAV remote
    ps = [session(tmp_path/f"s{i}", 'dav:jobs/demo', env, logs/f"s{i}.log", n=30, shard=f"{i}/2", sleep_s=0.01) for i in (1, 2)]
    for p in ps: assert p.wait(timeout=300) == 0, [l.read_text()[-2000:] for l in logs.iterdir()]
    # a fresh folder pulls the whole job (both shards' manifests merged): every item exactly once
    r = subprocess.run([sys.executable, '-c', ENTRY, 'sync', 'pull', str(tmp_path/'all'), 'dav:jobs/demo'],
                       env=env, capture_output=True, text=True)
    (logs/'pull.log').write_text(r.stdout + r.stderr)
    assert r.returncode == 0, r.stderr
    items = sorted(p.stem for p in (tmp_path/'all'/'items').glob('*.json'))
    assert items == sorted(f"k{i}" for i in range(30))
    assert sorted(p.stem for p in (tmp_path/'all'/'manifest'/'done').glob('*.json')) == items
    for p in (tmp_path/'all'/'items').glob('*.json'):
        d = json.loads(p.read_text()); assert d['square'] == int(d['key'][1:]) ** 2
    r = subprocess.run([sys.executable, '-c', ENTRY, 'sync', 'verify', str(tmp_path/'all'), 'dav:jobs/demo'],
                       env=env, capture_output=True, text=True)
    (logs/'verify.log').write_text(r.stdout + r.stderr)
    v = json.loads(r.stdout)
    assert r.returncode == 0 and v['bad'] == {} and v['listed'] >= 60 and v['unlisted'] == [], v
    # a session that cannot reach its remote fails with a message that names the remote, not the password
    webdav['srv'].kill(); webdav['srv'].wait()
    r = subprocess.run([sys.executable, '-c', ENTRY, 'sync', 'push', str(tmp_path/'s1'), 'dav:jobs/demo'],
                       env=env, capture_output=True, text=True, timeout=300)
    (logs/'down.log').write_text(r.stdout + r.stderr)
    assert r.returncode == 2 and 'dav:jobs/demo' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    # the planted secret is nowhere: job folders, the server's files, logs
    hits = [(str(p), n[:6]) for p in written_files(tmp_path) for n in webdav['needles'] if n.encode() in p.read_bytes()]
    assert hits == []


def test_rclone_local_backend_and_a_mounted_folder_agree(tmp_path):
    from tinytribe.sync import JobSync
    from tinytribe.session import run_session
    from tinytribe.testing import demo_batch_job
    for spec in (f"rclone:{tmp_path/'r1'}", str(tmp_path/'r2')):
        run_session(demo_batch_job(tmp_path/'a', n=5), tmp_path/'a', remote=spec, credentials={}, quiet=True)
        b = JobSync(tmp_path/('b' + spec[-1]), spec, credentials={})
        b.pull()
        assert sorted(p.name for p in (b.local/'items').iterdir()) == [f"k{i}.json" for i in range(5)]
        v = b.verify(); assert v['bad'] == {} and v['unlisted'] == []


def test_pydrive2_without_credentials_says_so():
    from tinytribe.sync import open_remote, SyncError
    with pytest.raises(SyncError, match='service account'):
        open_remote('pydrive2:1AbCdEfG', {'env': {}, 'service_account': None})
