// Clip mode: a clip's 2 Hz features computed in the browser, as tinytribe's extract_clip(path, onnx_backbones(dir))
// computes them in Python (tinytribe.web documents each step and checks the Python copies of the mel spectrogram and
// the tokenizer against transformers and tokenizers):
//   video: the frame shown at each 0.5-s step centre, short side to 224, centre crop, uint8 RGB -> video backbone ONNX
//   audio: WebAudio decode + resample to 16 kHz mono, 30-s chunks, Whisper log-mel (filterbank and window from
//          whisper_mel.json), Whisper encoder ONNX, 50 Hz frames averaged into the steps holding their centres
//   text:  the clip's words (<clip>.words.json), each with its 32 preceding words, BERT uncased WordPiece (vocab.json),
//          MiniLM ONNX in the batches OnnxTextBackbone uses (sorted by length, 16 a batch), averaged per step by onset
// All timings are in ms per stage (state.timings), for bench/web_speed.py.

export function nSteps(duration, step) { return Math.ceil(Math.round(duration / step * 1e6) / 1e6); }

// ---------------------------------------------------------------- text: BERT's uncased WordPiece (tokenizers' rules)
const CONTROL = /[\p{Cc}\p{Cf}\p{Cn}\p{Co}]/u, ZS = /\p{Zs}/u, MN = /\p{Mn}/gu, PUNCT = /\p{P}/u;
const ASCII_PUNCT = /[!-\/:-@\[-`{-~]/;
const CJK = [[0x4E00, 0x9FFF], [0x3400, 0x4DBF], [0x20000, 0x2A6DF], [0x2A700, 0x2B73F], [0x2B740, 0x2B81F],
  [0x2B820, 0x2CEAF], [0xF900, 0xFAFF], [0x2F800, 0x2FA1F]];

export class WordPiece {
  constructor(v) {                               // v: vocab.json (tinytribe.web.write_vocab)
    this.v = v;
    this.ids = new Map(v.tokens.map((t, i) => [t, i]));
    this.unk = this.ids.get(v.unk);
  }
  normalize(text) {
    let out = '';
    for (let c of text) {
      if (this.v.clean_text) {
        if ((c === '\0' || c === '\uFFFD' || CONTROL.test(c)) && !'\t\n\r'.includes(c)) continue;
        if (' \t\n\r'.includes(c) || ZS.test(c)) c = ' ';
      }
      const o = c.codePointAt(0);
      out += this.v.handle_chinese_chars && CJK.some(([a, b]) => o >= a && o <= b) ? ` ${c} ` : c;
    }
    if (this.v.strip_accents) out = out.normalize('NFD').replace(MN, '');
    return this.v.lowercase ? out.toLowerCase() : out;
  }
  preTokenize(text) {
    const words = [];
    let cur = '';
    for (const c of text) {
      if (/\s/u.test(c)) { if (cur) { words.push(cur); cur = ''; } }
      else if (ASCII_PUNCT.test(c) || PUNCT.test(c)) { if (cur) { words.push(cur); cur = ''; } words.push(c); }
      else cur += c;
    }
    if (cur) words.push(cur);
    return words;
  }
  encode(text) {                                 // [CLS] ... [SEP], at most max_tokens ids
    const out = [];
    for (const w of this.preTokenize(this.normalize(text))) {
      const ch = Array.from(w);
      if (ch.length > this.v.max_input_chars_per_word) { out.push(this.unk); continue; }
      const pieces = [];
      let start = 0, bad = false;
      while (start < ch.length) {
        let end = ch.length, cur = undefined;
        while (start < end) {
          const sub = (start > 0 ? this.v.prefix : '') + ch.slice(start, end).join('');
          if (this.ids.has(sub)) { cur = this.ids.get(sub); break; }
          end--;
        }
        if (cur === undefined) { bad = true; break; }
        pieces.push(cur);
        start = end;
      }
      if (bad) out.push(this.unk); else out.push(...pieces);
    }
    return [this.v.cls, ...out.slice(0, this.v.max_tokens - 2), this.v.sep];
  }
}

export function wordContexts(words, n = 32) {
  const ws = words.map((w) => String(w).trim());
  return ws.map((_, i) => ws.slice(Math.max(0, i - n), i + 1).join(' '));
}

async function textFeatures(ort, session, tok, words, T, step, batch, ctxWords, dim, tm) {
  const x = new Float32Array(T * dim), mask = new Uint8Array(T);
  if (!words.length) return { x, mask, tokens: [] };
  let t0 = performance.now();
  const ctx = wordContexts(words.map((w) => w.text), ctxWords);
  const ids = ctx.map((c) => tok.encode(c));
  const order = ctx.map((c, i) => [Array.from(c).length, i]).sort((a, b) => b[0] - a[0]).map((p) => p[1]);  // stable
  tm.add('tokenize', performance.now() - t0);
  t0 = performance.now();
  const emb = new Float32Array(words.length * dim);
  for (let i = 0; i < order.length; i += batch) {
    const idx = order.slice(i, i + batch), L = Math.max(...idx.map((j) => ids[j].length)), B = idx.length;
    const a = new BigInt64Array(B * L), m = new BigInt64Array(B * L);
    idx.forEach((j, r) => ids[j].forEach((v, c) => { a[r * L + c] = BigInt(v); m[r * L + c] = 1n; }));
    const out = await session.run({ input_ids: new ort.Tensor('int64', a, [B, L]),
      attention_mask: new ort.Tensor('int64', m, [B, L]),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(B * L), [B, L]) });
    const e = out[session.outputNames[0]].data;
    idx.forEach((j, r) => emb.set(e.subarray(r * dim, (r + 1) * dim), j * dim));
  }
  const cnt = new Float64Array(T), acc = new Float64Array(T * dim);
  words.forEach((w, i) => {
    const k = Math.floor(w.onset_s / step + 1e-9);
    if (k < 0 || k >= T) return;
    cnt[k]++;
    for (let d = 0; d < dim; d++) acc[k * dim + d] += emb[i * dim + d];
  });
  for (let k = 0; k < T; k++) if (cnt[k] > 0) { mask[k] = 1; for (let d = 0; d < dim; d++) x[k * dim + d] = acc[k * dim + d] / cnt[k]; }
  tm.add('text', performance.now() - t0);
  return { x, mask, tokens: ids };
}

// ---------------------------------------------------------------- audio: Whisper's log-mel, as tinytribe.web.log_mel
export class LogMel {
  constructor(head, filters, window) {           // whisper_mel.json: filters (n_mels, n_fft/2+1), window (n_fft)
    Object.assign(this, { h: head, filters, window });
    const n = head.n_fft, nb = n / 2 + 1;
    this.nb = nb;
    this.cos = new Float64Array(nb * n); this.sin = new Float64Array(nb * n);
    for (let b = 0; b < nb; b++) for (let i = 0; i < n; i++) {
      const a = 2 * Math.PI * ((b * i) % n) / n;
      this.cos[b * n + i] = Math.cos(a); this.sin[b * n + i] = Math.sin(a);
    }
  }
  compute(chunk) {                               // Float32Array (<= 30 s at 16 kHz) -> Float32Array (n_mels * n_frames)
    const { n_fft: n, hop, n_samples: N, n_frames: F, n_mels: M, floor, dynamic_range: dr } = this.h;
    const half = n / 2, nb = this.nb, xp = new Float64Array(N + n);
    xp.set(chunk.subarray(0, N), half);
    for (let i = 0; i < half; i++) { xp[half - 1 - i] = xp[half + 1 + i]; xp[half + N + i] = xp[half + N - 2 - i]; }  // reflect
    const out = new Float32Array(M * F), power = new Float64Array(nb), fr = new Float64Array(n);
    const silent = Math.min(F, Math.ceil((chunk.length + half) / hop));   // later frames hold only padding zeros
    let mx = -Infinity;
    for (let f = 0; f < F; f++) {
      if (f < silent) {
        for (let i = 0; i < n; i++) fr[i] = xp[f * hop + i] * this.window[i];
        for (let b = 0; b < nb; b++) {
          let re = 0, im = 0;
          const o = b * n;
          for (let i = 0; i < n; i++) { re += fr[i] * this.cos[o + i]; im += fr[i] * this.sin[o + i]; }
          power[b] = re * re + im * im;
        }
      } else power.fill(0);
      for (let m = 0; m < M; m++) {
        let s = 0;
        const o = m * nb;
        for (let b = 0; b < nb; b++) s += this.filters[o + b] * power[b];
        const v = Math.log10(Math.max(s, floor));
        out[m * F + f] = v;
        if (v > mx) mx = v;
      }
    }
    for (let i = 0; i < out.length; i++) out[i] = (Math.max(out[i], mx - dr) + 4) / 4;
    return out;
  }
}

async function decodeAudio(buf, sr) {
  let ab;
  try { ab = await new OfflineAudioContext(1, sr, sr).decodeAudioData(buf); }
  catch (e) { return null; }                     // no audio track (or one the browser cannot decode)
  const x = new Float32Array(ab.length);
  for (let c = 0; c < ab.numberOfChannels; c++) { const d = ab.getChannelData(c); for (let i = 0; i < x.length; i++) x[i] += d[i] / ab.numberOfChannels; }
  return x;
}

async function audioFeatures(ort, session, mel, samples, T, step, sr, chunkS, frameHz, dim, tm, progress) {
  const acc = new Float64Array(T * dim), cnt = new Float64Array(T), x = new Float32Array(T * dim), mask = new Uint8Array(T);
  const C = Math.round(chunkS * sr), nChunks = Math.ceil(samples.length / C);
  for (let c = 0; c < nChunks; c++) {
    progress(`audio: Whisper encoder, chunk ${c + 1}/${nChunks}`, c / nChunks);
    const piece = samples.subarray(c * C, Math.min(samples.length, (c + 1) * C));
    let t0 = performance.now();
    const m = mel.compute(piece);
    tm.add('mel', performance.now() - t0);
    t0 = performance.now();
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', m, [1, mel.h.n_mels, mel.h.n_frames]) });
    const h = out[session.outputNames[0]].data;
    const nf = Math.ceil(piece.length * frameHz / sr), t0s = c * chunkS;
    for (let i = 0; i < nf; i++) {
      const k = Math.floor((t0s + (i + 0.5) / frameHz) / step);
      if (k < 0 || k >= T) continue;
      cnt[k]++;
      for (let d = 0; d < dim; d++) acc[k * dim + d] += h[i * dim + d];
    }
    tm.add('audio', performance.now() - t0);
  }
  for (let k = 0; k < T; k++) if (cnt[k] > 0) { mask[k] = 1; for (let d = 0; d < dim; d++) x[k * dim + d] = acc[k * dim + d] / cnt[k]; }
  return { x, mask };
}

// ---------------------------------------------------------------- video: frames at the step centres
const once = (el, ev) => new Promise((res, rej) => {
  const ok = () => { el.removeEventListener('error', bad); res(); };
  const bad = () => { el.removeEventListener(ev, ok); rej(new Error(`video: ${el.error ? el.error.message || el.error.code : 'error'}`)); };
  el.addEventListener(ev, ok, { once: true }); el.addEventListener('error', bad, { once: true });
});

async function videoFeatures(ort, session, video, T, step, size, dim, tm, progress) {
  const x = new Float32Array(T * dim), mask = new Uint8Array(T);
  if (!video.videoWidth) return { x, mask };
  const W = video.videoWidth, H = video.videoHeight, s = size / Math.min(W, H);
  const nw = Math.max(size, Math.round(W * s)), nh = Math.max(size, Math.round(H * s));
  const x0 = Math.floor((nw - size) / 2), y0 = Math.floor((nh - size) / 2);
  const canvas = document.createElement('canvas');
  canvas.width = nw; canvas.height = nh;
  const g = canvas.getContext('2d', { willReadFrequently: true });
  g.imageSmoothingEnabled = true; g.imageSmoothingQuality = 'high';
  const rgb = new Uint8Array(size * size * 3);
  const targets = [];
  for (let k = 0; k < T; k++) {
    const t = (k + 0.5) * step;
    if (t > video.duration + 1.0) break;          // as iter_frames: a frame stands in for at most 1 s past the end
    targets.push(Math.min(t, video.duration));
  }
  const seek = (t) => {
    if (video.currentTime === t) return Promise.resolve();
    const p = once(video, 'seeked');
    video.currentTime = t;
    return p;
  };
  // the browser decodes the next step's frame (its own threads) while the backbone runs on this one
  let pending = targets.length ? seek(targets[0]) : null;
  for (let k = 0; k < targets.length; k++) {
    progress(`video: frame ${k + 1}/${T}`, k / T);
    let t0 = performance.now();
    await pending;
    g.drawImage(video, 0, 0, nw, nh);
    const d = g.getImageData(x0, y0, size, size).data;
    pending = k + 1 < targets.length ? seek(targets[k + 1]) : null;
    for (let i = 0, j = 0; i < d.length; i += 4, j += 3) { rgb[j] = d[i]; rgb[j + 1] = d[i + 1]; rgb[j + 2] = d[i + 2]; }
    tm.add('video_decode', performance.now() - t0);
    if (video.keepFrames) { let b = ''; for (let i = 0; i < rgb.length; i++) b += String.fromCharCode(rgb[i]); video.keepFrames.push(btoa(b)); }
    t0 = performance.now();
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('uint8', rgb.slice(), [1, size, size, 3]) });
    x.set(out[session.outputNames[0]].data, k * dim);
    mask[k] = 1;
    tm.add('video', performance.now() - t0);
  }
  return { x, mask };
}

// ---------------------------------------------------------------- the grid pooling (tr_pool_weights) and the whole clip
export function poolMatrix(T, step, present, grid) {
  const nTr = Math.max(0, Math.floor((grid.duration_s - grid.offset_s) / grid.tr_s + 1e-9));
  const W = new Float32Array(nTr * T), cnt = new Float64Array(nTr);
  const ks = new Int32Array(T).fill(-1);
  for (let i = 0; i < T; i++) {
    const k = Math.floor(((i + 0.5) * step - grid.offset_s) / grid.tr_s + 1e-9);
    if (present[i] && k >= 0 && k < nTr) { ks[i] = k; cnt[k]++; }
  }
  for (let i = 0; i < T; i++) if (ks[i] >= 0) W[ks[i] * T + i] = 1 / cnt[ks[i]];
  return { W, nTr, trValid: Array.from(cnt, (c) => (c > 0 ? 1 : 0)) };
}

export class Timer {
  constructor() { this.ms = {}; }
  add(k, v) { this.ms[k] = (this.ms[k] || 0) + v; }
  async time(k, f) { const t = performance.now(); try { return await f(); } finally { this.add(k, performance.now() - t); } }
}

// bundle: web.json (tinytribe.web.export_web), base: its folder URL; clip: { video: URL, words: [{text, onset_s}] or
// null, duration_s: the clip's duration (from the words file, else the video element's) }; keepFrames: an array that
// receives each frame (base64 RGB) or null. Returns the features, timings, and `url`: the clip as a blob URL.
export async function extractClip(ort, bundle, base, clip, loadBin, progress, keepFrames = null) {
  const tm = new Timer(), bb = bundle.backbones, step = bundle.step_s;
  const sessions = await tm.time('load_backbones', async () => {
    const mk = (m) => ort.InferenceSession.create(base + bb[m].file, { executionProviders: ['wasm'] });
    progress('loading the backbones (text, audio, video ONNX)…', 0);
    return { text: await mk('text'), audio: await mk('audio'), video: await mk('video') };
  });
  const [melBin, vocab] = await tm.time('load_tables', () => Promise.all([
    loadBin(base + bundle.files.mel), fetch(base + bundle.files.vocab).then((r) => r.json())]));
  // the whole file first: a server without range requests (python -m http.server) leaves a video unseekable, and
  // the audio needs the bytes anyway
  progress('loading the clip…', 0);
  const bytes = await tm.time('load_clip', async () => (await fetch(clip.video)).arrayBuffer());
  const video = document.createElement('video');   // its own element: the page's player is left to the viewer
  Object.assign(video, { muted: true, playsInline: true, preload: 'auto', keepFrames });
  const vready = once(video, 'loadeddata');
  video.src = URL.createObjectURL(new Blob([bytes]));
  await tm.time('video_decode', () => vready);
  const duration = clip.duration_s || video.duration;
  const T = nSteps(duration, step);
  const vid = await videoFeatures(ort, sessions.video, video, T, step, bb.video.size, bb.video.dim, tm, progress);
  progress('audio: decoding and resampling to 16 kHz (WebAudio)…', 0);
  const samples = await tm.time('audio_decode', () => decodeAudio(bytes, bb.audio.sr));
  const mel = new LogMel(melBin.head, melBin.arrays.filters, melBin.arrays.window);
  const aud = samples ? await audioFeatures(ort, sessions.audio, mel, samples, T, step, bb.audio.sr, bb.audio.chunk_s,
    bb.audio.frame_hz, bb.audio.dim, tm, progress) : { x: new Float32Array(T * bb.audio.dim), mask: new Uint8Array(T) };
  progress(`text: MiniLM on ${(clip.words || []).length} words…`, 0);
  const txt = await textFeatures(ort, sessions.text, new WordPiece(vocab), clip.words || [], T, step, bb.text.batch,
    bb.text.context_words, bb.text.dim, tm);
  const url = video.src;
  video.removeAttribute('src');
  video.load();
  return { T, duration, step, text: txt, audio: aud, video: vid, tokens: txt.tokens, timings: tm.ms,
    nSamples: samples ? samples.length : 0, url };
}
