#!/usr/bin/env python
"""Write the invented transcripts of testdata/transcripts/ (deterministic: the same bytes on every run).

    python scripts/make_testdata.py [--out testdata/transcripts] [--check]

- `friends_s01e02a_aligned-text.tsv`: the layout of the Algonauts 2025 (CNeuroMod Friends) transcript files,
  one row per TR of 1.49 s (480 rows), columns `episode`, `text_per_tr`, `words_per_tr`, `onsets_per_tr`,
  `durations_per_tr`, the last three Python list literals (words with an apostrophe in double quotes, the
  field then quoted as a TSV field, as in the release), empty TRs as `[]`. The words are invented (drawn from
  a small word list with a fixed seed): the release's dialogue is not ours to copy, only its format.
- `invented.srt`: a short SubRip file (cues with a comma before the milliseconds, a first cue at 85.21 s).

`--check` compares the files already there with what would be written (exit 1 when they differ).
"""
import argparse, csv, io, random, sys
from pathlib import Path

TR_S, N_TR, EPISODE = 1.49, 480, 's01e02a'
WORDS = ("the a and to of in it is you that we on for with was at he she they but so not what there here "
         "lantern harbour river morning window garden kettle bicycle letter ticket station market bridge "
         "yellow quiet early later always never maybe really right okay yeah well "
         "don't it's i'm you're that's we'll can't isn't "
         "walk carry open close bring find keep paint fold count listen wait laugh").split()

SRT = """1
00:01:25,210 --> 00:01:28,004
I carried the lantern down to the harbour.

2
00:01:28,422 --> 00:01:30,298
The boats were still asleep.

3
00:01:30,674 --> 00:01:33,718
A gull counted the ropes,

4
00:01:33,802 --> 00:01:36,429
one by one, and gave up.

5
00:01:36,889 --> 00:01:39,515
Then the morning ferry sounded twice.
"""


def friends_like_tsv(seed: int = 0) -> str:
    "The invented transcript in the Algonauts 2025 layout, as text."
    rng = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out, delimiter='\t', lineterminator='\n')
    w.writerow(['episode', 'text_per_tr', 'words_per_tr', 'onsets_per_tr', 'durations_per_tr'])
    for k in range(N_TR):
        t0 = k * TR_S
        if k == 0 or rng.random() < 0.2:                  # silence: an empty TR
            w.writerow([EPISODE, '', '[]', '[]', '[]'])
            continue
        n = rng.randint(2, 8)
        t = t0 + rng.uniform(0.0, 0.3)
        words, onsets, durs = [], [], []
        for _ in range(n):
            d = round(rng.choice([0.08, 0.16, 0.24, 0.32, 0.4, 0.48, 0.5]), 2)
            if t + d >= t0 + TR_S: break
            words.append(rng.choice(WORDS))
            onsets.append(round(t, 4))
            durs.append(d)
            t += d + rng.choice([0.0, 0.0, 0.08, 0.16])
        if not words:
            w.writerow([EPISODE, '', '[]', '[]', '[]'])
            continue
        text = ' ' + ' '.join(words) + rng.choice(['', '.', ',', '?'])
        w.writerow([EPISODE, text, str(words), str(onsets), str(durs)])
    return out.getvalue()


def files() -> dict:
    return {'friends_s01e02a_aligned-text.tsv': friends_like_tsv(), 'invented.srt': SRT}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', type=Path, default=Path(__file__).resolve().parents[1] / 'testdata' / 'transcripts')
    ap.add_argument('--check', action='store_true', help='compare with the files there; write nothing')
    a = ap.parse_args(argv)
    bad = []
    for name, text in files().items():
        p = a.out / name
        if a.check:
            if not p.is_file() or p.read_text() != text: bad.append(str(p))
            continue
        a.out.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + '.tmp')
        tmp.write_text(text)
        tmp.replace(p)
        print(f"wrote {p} ({len(text)} bytes)")
    if bad: sys.exit(f"out of date (run python scripts/make_testdata.py): {', '.join(bad)}")


if __name__ == '__main__':
    main()
