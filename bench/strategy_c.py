"""The Strategy C ablation on the in-silico brain: does pre-training and distillation beat fine-tuning on fMRI alone?

A training world is generated: `--clips` clips of `--clip-s` seconds whose three feature streams share a smooth
latent (`tinytribe.phase1.correlated_features`: text present all along, i.e. speech), and the in-silico brain
(`tinytribe.simbrain.write_dataset`) writes for them the teacher's segments (TR 1 s, offset 5 s, with fusion
blocks and the low-rank output), fMRI of `--subjects` subjects on Schaefer-400 parcels (TR 1.49 s, 2 repeats)
and its analytic noise ceilings. A fifth of the clips (by a hash of the id) is held out for scoring.

Arms, each with the same budget of optimiser steps (`--steps`), split evenly over its phases:
  (a) Phase 3 only (from scratch, fMRI alone: no teacher),
  (b) Phase 2 -> 3,
  (c) Phase 1 -> 2 -> 3,
in two regimes: `full` (fMRI for every training clip) and `scarce` (fMRI for 20% of the training clips, teacher
targets for all). The last subject is kept out of Phase 3 for the new-subject test. Phase 1 and the Phase 2 runs do
not depend on the regime and are shared by both. All phases run on the tiny preset with their own learning-rate
ratios, scaled so that the largest group's rate is `--lr` (the spec's absolute rates are for 10 epochs over 270 h).

Scores on the held-out clips, per trained subject, averaged over subjects:
  - `r`: Pearson r per parcel with the noisy fMRI (repeat 1), whole clips predicted window by window
    (`tinytribe.phase3.predict_clip_rows`), and `frac_ceiling` = mean r / mean analytic ceiling over parcels whose
    ceiling is at least 0.1, also per region of the in-silico brain (visual, auditory, language, multimodal);
  - the same for a FIR ridge (delays 0..7 TRs, ridge penalty by 2-fold cross-validation over clips) on the same
    features and the same fMRI of each regime;
  - Phase 2's r with the teacher (average subject, teacher grid, Schaefer-400) on the held-out clips;
  - a learning curve of the ridge (and of arms a and b, with `--curve`) over the share of clips with fMRI;
  - new subject: FiLM row of the held-out subject fitted from 2 runs against from all its training runs (same
    base model: the best arm of the full regime), r on held-out clips.

    python bench/strategy_c.py [--clips 60 --clip-s 60 --steps 150 --batch 8] [--out bench/results/strategy_c.json]
"""
from __future__ import annotations
import argparse, json, math, os, platform, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np

REGIONS = ('visual', 'auditory', 'language', 'multimodal')


def make_world(root: Path, n_clips: int, clip_s: float, subjects: int, snr: float, dims: dict, seed: int) -> dict:
    from tinytribe.featfile import save_features
    from tinytribe.phase1 import correlated_features
    from tinytribe.simbrain import write_dataset, SimBrainConfig
    fd = root/'features'; fd.mkdir(parents=True, exist_ok=True)
    if (root/'sim'/'simbrain.json').exists():                          # --work of an earlier run: reuse its world
        s = json.loads((root/'sim'/'simbrain.json').read_text())
        if len(s['clips']) == n_clips: return {'features': fd, 'sim': root/'sim', 'simbrain_s': 0.0, 'summary': s}
    for i in range(n_clips):
        save_features(fd/f"clip{i:03d}.npz", correlated_features(f"clip{i:03d}", clip_s, dims, seed=seed * 1000 + i))
    t = time.time()
    s = write_dataset(sorted(fd.glob('*.npz')), root/'sim', cfg=SimBrainConfig(seed=seed, n_subjects=subjects, snr=snr),
                      n_repeats=2, figures=False, progress=False)
    return {'features': fd, 'sim': root/'sim', 'simbrain_s': round(time.time() - t, 1), 'summary': s}


def parcel_regions(sim: Path) -> np.ndarray:
    "Region code (1..5 as in simbrain.REGIONS) of each Schaefer-400 parcel: the most common code of its vertices."
    from tinytribe import spaces
    drv = np.load(sim/'simbrain_drivers_fsaverage5.npy')
    lab = spaces.load_atlas('schaefer_400')
    out = np.zeros(400, int)
    for p in range(400):
        c = drv[lab == p + 1]
        c = c[c > 0]
        out[p] = np.bincount(c).argmax() if len(c) else 0
    return out


def ceilings(sim: Path, subject: str) -> np.ndarray:
    return np.load(next((sim/'fmri'/subject/'func').glob('*analytic_noiseceiling_schaefer400.npy')))


def summarise(r: np.ndarray, ceil: np.ndarray, regions: np.ndarray) -> dict:
    ok = ceil >= 0.1
    out = {'r': float(r[ok].mean()), 'frac_ceiling': float(r[ok].mean() / ceil[ok].mean()), 'n_parcels': int(ok.sum())}
    for i, name in enumerate(('visual', 'auditory', 'language', 'multimodal')):
        m = ok & (regions == i + 1)
        if m.any(): out[f'frac_ceiling_{name}'] = float(r[m].mean() / ceil[m].mean())
    return out


def score(pred_fn, runs: list, clips: list, sim: Path, regions: np.ndarray) -> dict:
    "Scores of `pred_fn(subject, run) -> (n_tr, 400)` on repeat-1 runs of `clips`, per subject and averaged."
    from tinytribe.phase2 import pearson_cols
    per = {}
    for s in sorted({r.subject for r in runs}):
        P, Y = [], []
        for r in runs:
            if r.subject != s or r.clip_id not in clips or r.repeat != 1: continue
            p = pred_fn(s, r)
            P.append(p[r.valid]); Y.append(r.data[r.valid])
        if P: per[s] = summarise(pearson_cols(np.concatenate(P), np.concatenate(Y)), ceilings(sim, s), regions)
    avg = {k: float(np.mean([v[k] for v in per.values()])) for k in per[next(iter(per))] if k != 'n_parcels'} if per else {}
    return {**avg, 'per_subject': per}


def fir_design(clip, grid, delays: int = 8) -> np.ndarray:
    "Features pooled into the TR windows of `grid` (mean of the steps whose centre falls inside), with FIR delays."
    from tinytribe.core import bin_steps
    X = np.concatenate([np.asarray(clip.feature(m), np.float64) * np.asarray(clip.mask(m))[:, None]
                        for m in ('text', 'audio', 'video')], 1)
    k = bin_steps(np.asarray(clip.times), grid)
    Z = np.zeros((grid.n, X.shape[1])); c = np.zeros(grid.n)
    np.add.at(Z, k[k >= 0], X[k >= 0]); np.add.at(c, k[k >= 0], 1)
    Z /= np.maximum(c, 1)[:, None]
    return np.concatenate([np.vstack([np.zeros((d, Z.shape[1])), Z[:grid.n - d]]) for d in range(delays)], 1)


class FirRidge:
    "Ridge on FIR-delayed features, one penalty for all parcels chosen by 2-fold cross-validation over clips."
    def __init__(self, alphas=(1.0, 10.0, 100.0, 1e3, 1e4, 1e5)): self.alphas = alphas

    def fit(self, Xs: list, Ys: list, groups: list):
        "Runs `Xs`, `Ys`; `groups` (one int per run, e.g. the clip's index) keep repeats of a clip in one fold."
        from tinytribe.phase2 import pearson_cols
        X, Y = np.concatenate(Xs), np.concatenate(Ys)
        self.mu, self.sd = X.mean(0), X.std(0) + 1e-8
        fold = np.concatenate([np.full(len(x), g % 2) for g, x in zip(groups, Xs)])
        best, self.cv = None, {}
        for a in self.alphas:
            rs = []
            for f in (0, 1):
                tr, te = fold != f, fold == f
                if not tr.any() or not te.any(): continue
                W = self._solve((X[tr] - self.mu) / self.sd, Y[tr], a)
                rs.append(pearson_cols(((X[te] - self.mu) / self.sd) @ W, Y[te]).mean())
            self.cv[a] = float(np.mean(rs)) if rs else 0.0
            if best is None or self.cv[a] > self.cv[best]: best = a
        self.alpha = best
        self.W = self._solve((X - self.mu) / self.sd, Y, best)
        return self

    @staticmethod
    def _solve(X, Y, a):
        return np.linalg.solve(X.T @ X + a * np.eye(X.shape[1]), X.T @ (Y - Y.mean(0)))

    def predict(self, X): return ((X - self.mu) / self.sd) @ self.W


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--clips', type=int, default=60); ap.add_argument('--clip-s', type=float, default=60.0)
    ap.add_argument('--subjects', type=int, default=3); ap.add_argument('--snr', type=float, default=0.5)
    ap.add_argument('--steps', type=int, default=150, help='optimiser steps per arm (split over its phases)')
    ap.add_argument('--batch', type=int, default=8); ap.add_argument('--seg-trs', type=int, default=40)
    ap.add_argument('--lr', type=float, default=3e-3); ap.add_argument('--scarce', type=float, default=0.2)
    ap.add_argument('--curve', action='store_true', help='also train arms (a) and (b) at more fMRI shares (slow)')
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--only-curve', action='store_true',
                    help='train only the learning-curve runs (into --work, where a full run started at the same time '
                         'reuses them) and stop: a second process for a second core')
    ap.add_argument('--curve-fracs', default='0.1,0.2,0.5', help='with --only-curve: the shares of clips to train')
    ap.add_argument('--space', default='schaefer400',
                    help="the student's output space (default: the world's fMRI space; fsaverage5 costs ~3x per step on a CPU)")
    ap.add_argument('--work', default=None, help='working folder (default: a temporary one); runs already done there are reused')
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'/'strategy_c.json'))
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    warnings.simplefilter('ignore')
    from tinytribe.engine import Trainer, TrainConfig
    from tinytribe.phase1 import build_phase1
    from tinytribe.phase2 import Phase2Config, build_phase2, is_val_clip, pearson_cols, LR_SCRATCH
    from tinytribe.phase3 import (Phase3Config, build_phase3, predict_clip_rows, adapt_subject, LR_FINETUNE, clip_files)
    from tinytribe.fmri import load_fmri
    from tinytribe.featfile import load_features
    from tinytribe.model import TinyTribe
    from tinytribe.data import pair_teacher, load_teacher_target, merge_targets
    from tinytribe.teacher import teacher_grid
    from tinytribe import spaces
    from tinytribe.store import write_json

    t_start = time.time()
    root = Path(a.work or tempfile.mkdtemp(prefix='strategy_c_'))
    dims = {'text': 16, 'audio': 12, 'video': 20}                       # the tiny preset's widths
    world = make_world(root, a.clips, a.clip_s, a.subjects, a.snr, dims, a.seed)
    fd, sim = world['features'], world['sim']
    files = clip_files(fd)
    clips = sorted(files)
    import zlib
    n_test = max(2, int(round(0.2 * len(clips))))                       # the clips whose id hashes lowest
    test = sorted(sorted(clips, key=lambda c: zlib.crc32(c.encode()))[:n_test])
    train = [c for c in clips if c not in test]
    rng = np.random.default_rng(a.seed)
    scarce = sorted(rng.choice(train, size=max(2, int(round(a.scarce * len(train)))), replace=False).tolist())
    runs = load_fmri(sim, space='schaefer400')
    subs = sorted({r.subject for r in runs})
    new_sub, fit_subs = subs[-1], subs[:-1]
    regions = parcel_regions(sim)
    feats = {c: load_features(files[c]) for c in clips}
    log = lambda *x: print(f"[{time.time() - t_start:6.0f}s]", *x, flush=True)
    log(f"world: {len(clips)} clips x {a.clip_s:.0f}s, {len(test)} held out, {len(scarce)} with fMRI in the scarce regime; "
        f"subjects {fit_subs} + new {new_sub}; simbrain {world['simbrain_s']}s")

    def scale(groups):
        top = max(groups.values())
        return {k: v * a.lr / top for k, v in groups.items()}

    reused = []
    def fit(task, ds, out, steps, extra=None):
        groups = getattr(task, 'lr_groups', None) or {k: 3e-4 for k in task.param_groups()}   # Phase 1: one rate
        cfg = TrainConfig(steps=max(1, steps), batch_size=min(a.batch, len(ds)), lr=a.lr, lr_groups=scale(groups),
                          schedule='onecycle', warmup_frac=0.1, seed=a.seed, ckpt_every=10 ** 9, log_every=10,
                          amp='off', device='cpu', progress=False, margin_s=0)
        t = time.time()
        st = Path(out)/'status.json'
        if st.exists() and json.loads(st.read_text()).get('state') == 'done' and json.loads(st.read_text())['step'] == cfg.steps:
            log(f"{Path(out).name}: reused (done in an earlier run with --work)")   # same seed and data: same weights
            reused.append(Path(out).name)
            return json.loads(st.read_text())
        rep = Trainer(task, ds, cfg, out, extra_config=extra or {}).fit()
        log(f"{Path(out).name}: {rep['step']} steps in {time.time() - t:.0f}s, last loss {rep['last'].get('loss', float('nan')):.4f}")
        return rep

    s_arm = a.steps
    hp2 = lambda: Phase2Config(seg_trs=a.seg_trs, val_frac=0.0, cache_clips=len(clips))   # the world fits in memory
    def hp3():
        return Phase3Config(seg_trs=a.seg_trs, seg_trs_short=a.seg_trs // 2, val_frac=0.0, cache_clips=len(clips))
    train_files = [files[c] for c in train]
    tdir = root/'train_features'; tdir.mkdir(exist_ok=True)
    for c in train:
        dst = tdir/files[c].name
        if not dst.exists(): os.link(files[c], dst)
    teacher = sim/'teacher'
    runs_train = [r for r in runs if r.clip_id in train and r.subject in fit_subs]

    # ---- shared pre-training: Phase 1, Phase 2 from scratch, Phase 2 from Phase 1 ----
    sp = {} if a.space == 'fsaverage5' else {'space': a.space}             # a model built from scratch
    task1, ds1, m1 = build_phase1(tdir, 'tiny', seg_steps=min(120, 2 * a.seg_trs), stride=60, seed=a.seed, **sp)
    fit(task1, ds1, root/'p1', s_arm // 3, {'phase': 1})
    task2b, ds2b, _, _, _ = build_phase2(tdir, teacher, 'tiny', hp=hp2(), seed=a.seed, **sp)
    fit(task2b, ds2b, root/'p2_b', s_arm // 2, {'phase': 2})
    task2c, ds2c, _, _, _ = build_phase2(tdir, teacher, 'tiny', init=root/'p1', hp=hp2(), seed=a.seed)
    fit(task2c, ds2c, root/'p2_c', s_arm // 3, {'phase': 2})

    def teacher_r(model_dir) -> float:
        "Phase 2's r with the teacher on held-out clips (average subject, teacher grid, Schaefer-400)."
        m = TinyTribe.from_pretrained(model_dir).eval()
        P, T = [], []
        for fp, ps in pair_teacher(fd, teacher):
            c = Path(fp).stem
            if c not in test: continue
            g = teacher_grid(feats[c].duration_s)
            vals, ok, _ = merge_targets([load_teacher_target(p) for p in ps], g)
            p = predict_clip_rows(m, feats[c], g)
            to400 = lambda x: x if x.shape[1] == 400 else spaces.vertex_to_space(x, 'schaefer400')
            P.append(to400(p[ok])); T.append(to400(vals[ok]))
        r = pearson_cols(np.concatenate(P), np.concatenate(T))
        return float(r[np.concatenate(T).std(0) > 0].mean())

    arms = {'a': (None, s_arm, False), 'b': (root/'p2_b', s_arm - s_arm // 2, True),
            'c': (root/'p2_c', s_arm - 2 * (s_arm // 3), True)}
    def curve_clips(frac):
        "The training clips with fMRI at share `frac` of the learning curve (the same draw in every process)."
        n = max(2, int(round(frac * len(train))))
        return sorted(np.random.default_rng(a.seed + 1).choice(train, size=n, replace=False).tolist())

    def curve_run(arm, frac) -> Path:
        "Phase 3 of `arm` with fMRI for `curve_clips(frac)` only; its run folder (reused when done)."
        init, steps, with_teacher = arms[arm]
        rr = [r for r in runs_train if r.clip_id in curve_clips(frac)]
        task3, ds3, *_ = build_phase3(tdir, rr, teacher if with_teacher else None, 'tiny', init=init, hp=hp3(),
                                      seed=a.seed, **({} if init else sp))
        fit(task3, ds3, root/f"curve_{arm}_{frac}", steps, {'phase': 3})
        return root/f"curve_{arm}_{frac}"

    if a.only_curve:
        for frac in [float(f) for f in a.curve_fracs.split(',')]:
            for arm in ('a', 'b'): curve_run(arm, frac)
        return None

    results = {'phase2_r_teacher': {'b (from scratch)': teacher_r(root/'p2_b'/'model'),
                                    'c (from Phase 1)': teacher_r(root/'p2_c'/'model')}}
    log('phase 2 r with the teacher', results['phase2_r_teacher'])

    def model_scorer(model_dir):
        m = TinyTribe.from_pretrained(model_dir).eval()
        rows = m.meta.get('subjects', {})
        def fn(s, r):
            p = predict_clip_rows(m, feats[r.clip_id], r.grid, subject=rows.get(s, 0))
            return spaces.vertex_to_space(p, 'schaefer400') if p.shape[1] != 400 else p
        return fn

    # ---- Phase 3 per arm and regime ----
    table = {}
    for regime, fclips in (('full', train), ('scarce', scarce)):
        rr = [r for r in runs_train if r.clip_id in fclips]
        for arm, (init, steps, with_teacher) in arms.items():
            task3, ds3, _, _, _, info = build_phase3(tdir, rr, teacher if with_teacher else None, 'tiny', init=init, hp=hp3(),
                                                     seed=a.seed, **({} if init else sp))
            out = root/f"p3_{arm}_{regime}"
            fit(task3, ds3, out, steps, {'phase': 3})
            sc = score(model_scorer(out/'model'), [r for r in runs if r.subject in fit_subs], test, sim, regions)
            table[f"{arm}_{regime}"] = {**sc, 'steps': {'a': [steps], 'b': [s_arm // 2, steps], 'c': [s_arm // 3, s_arm // 3, steps]}[arm],
                                        'fmri_clips': len(fclips)}
            log(f"arm {arm} {regime}: r {sc['r']:.3f}, {100 * sc['frac_ceiling']:.0f}% of the ceiling")

    # ---- FIR ridge on the same features and fMRI, and its learning curve ----
    def ridge_score(fclips):
        models = {}
        for s in fit_subs:
            rs = [r for r in runs if r.subject == s and r.clip_id in fclips]       # both repeats, as the models see them
            models[s] = FirRidge().fit([fir_design(feats[r.clip_id], r.grid) for r in rs], [r.data for r in rs],
                                       [clips.index(r.clip_id) for r in rs])
        return score(lambda s, r: models[s].predict(fir_design(feats[r.clip_id], r.grid)),
                     [r for r in runs if r.subject in fit_subs], test, sim, regions), {s: m.alpha for s, m in models.items()}
    for regime, fclips in (('full', train), ('scarce', scarce)):
        sc, alphas = ridge_score(fclips)
        table[f"ridge_{regime}"] = {**sc, 'alpha': alphas, 'fmri_clips': len(fclips)}
        log(f"ridge {regime}: r {sc['r']:.3f}, {100 * sc['frac_ceiling']:.0f}% of the ceiling")
    curve = {'ridge': {}}
    for frac in (0.1, 0.2, 0.5, 1.0):
        fc = curve_clips(frac)
        curve['ridge'][str(frac)] = ridge_score(fc)[0]['frac_ceiling']
        for arm in (('a', 'b') if a.curve else ()):                       # arms (a) and (b) at this share of fMRI
            if len(fc) == len(train):                                       # all clips: the full regime's run
                curve.setdefault(arm, {})[str(frac)] = table[f'{arm}_full']['frac_ceiling']
                continue
            curve.setdefault(arm, {})[str(frac)] = score(model_scorer(curve_run(arm, frac)/'model'),
                                                         [r for r in runs if r.subject in fit_subs], test, sim,
                                                         regions)['frac_ceiling']
    log('learning curve (fraction of the ceiling by share of clips with fMRI)', curve)

    # ---- new subject: 2 runs against all its training runs, on the best full-regime arm ----
    best = max(('a', 'b', 'c'), key=lambda k: table[f"{k}_full"]['r'])
    base = root/f"p3_{best}_full"/'model'
    nruns = [r for r in runs if r.subject == new_sub and r.clip_id in train and r.repeat == 1]
    adapt = {}
    for name, rs in (('two_runs', nruns[:2]), ('all_runs', nruns)):
        m = TinyTribe.from_pretrained(base)
        rep = adapt_subject(m, rs, fd, new_sub, steps=300)
        m.save_pretrained(root/f"adapt_{name}")
        sc = score(model_scorer(root/f"adapt_{name}"), [r for r in runs if r.subject == new_sub], test, sim, regions)
        adapt[name] = {'runs': len(rs), 'r': sc['r'], 'frac_ceiling': sc['frac_ceiling'], 'row': rep['row'],
                       'shrink': rep.get('shrink'), 'cv_r': rep.get('cv_r')}
    sc0 = score(model_scorer(base), [r for r in runs if r.subject == new_sub], test, sim, regions)   # no row of its own:
    adapt['average_subject'] = {'r': sc0['r'], 'frac_ceiling': sc0['frac_ceiling']}                  # the average subject's
    adapt['recovered'] = adapt['two_runs']['r'] / adapt['all_runs']['r'] if adapt['all_runs']['r'] > 0 else None
    adapt['base_model'] = f"{best}_full"
    log('new subject', adapt)

    best_all = max((k for k in table if not k.startswith('ridge')), key=lambda k: table[k]['frac_ceiling'])
    targets = {
        'best_arm': best_all, 'best_frac_ceiling': table[best_all]['frac_ceiling'],
        'best_reaches_80pct_ceiling': table[best_all]['frac_ceiling'] >= 0.8,
        'best_beats_ridge_multimodal': table[best_all].get('frac_ceiling_multimodal', -1)
                                       > table[f"ridge_{best_all.split('_')[1]}"].get('frac_ceiling_multimodal', 9),
        'scarce_b_or_c_beats_a': max(table['b_scarce']['r'], table['c_scarce']['r']) > table['a_scarce']['r'],
        'new_subject_recovers_90pct': adapt['recovered'] is not None and adapt['recovered'] >= 0.9}
    out = {'benchmark': 'strategy_c', 'config': {k: v for k, v in vars(a).items() if k not in ('work', 'out')},
           'world': {'clips': len(clips), 'clip_s': a.clip_s, 'hours': len(clips) * a.clip_s / 3600, 'held_out': len(test),
                     'scarce_clips': len(scarce), 'subjects': subs, 'new_subject': new_sub, 'snr': a.snr,
                     'ceiling_mean_parcels_ge_0.1': float(np.mean([ceilings(sim, s)[ceilings(sim, s) >= 0.1].mean() for s in fit_subs]))},
           'table': table, 'learning_curve': curve, 'new_subject': adapt, 'targets': targets, **results,
           'elapsed_s': round(time.time() - t_start, 1), 'reused_runs': reused, 'machine': {'cpus': os.cpu_count(), 'threads': a.threads,
                                                                      'python': platform.python_version()}}
    write_json(a.out, out)
    log('targets', targets)
    print(json.dumps({k: {kk: (round(vv, 3) if isinstance(vv, float) else vv) for kk, vv in v.items() if kk != 'per_subject'}
                      for k, v in table.items()}, indent=1))
    return out


if __name__ == '__main__':
    main()
