// Tiny-TRIBE v3 in the browser: the INT8 student (tinytribe export --int8) in onnxruntime-web (WebAssembly),
// run on a clip's exported features (tinytribe export --features CLIP), shown on the fsaverage5 inflated surface
// (tinytribe export --mesh) with three.js, a time slider and the clip playing beside it.
// Clip mode (mode=clip, or a video picked with the file input): the features are computed here from the clip itself
// (clip.js) with the ONNX backbones of a folder written by `tinytribe web` (its manifest web.json).
// URL parameters (all optional): model, features, mesh (paths relative to this page), threads; clip mode: mode=clip,
// bundle (web.json, default data/web.json), clip (a video URL), words (a .words.json URL, or 'none').
// With no parameters and no data/ files, the page says what to run (#help) instead of failing.
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import * as ort from 'onnxruntime-web';
import { extractClip, poolMatrix } from './clip.js';

const q = new URLSearchParams(location.search);
const MODEL = q.get('model') || 'data/student_int8.onnx';
const FEATURES = q.get('features') || 'data/demo.features.json';
const MESH = q.get('mesh') || 'data/fsaverage5_inflated.json';
const BUNDLE = q.get('bundle') || 'data/web.json';
let MODE = q.get('mode') || (q.has('bundle') || q.has('clip') ? 'clip' : 'features');
const state = { status: 'loading', error: null, mode: MODE, warnings: [] };
window.tinytribe = state;                       // read by tests/test_web.py
const $ = (id) => document.getElementById(id);
const say = (s) => { $('status').textContent = s; };

async function fetchOk(url) {                  // a response, or one line naming the file that is not there
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${r.statusText || 'not found'} (see web/README.md for what writes it)`);
  return r;
}
async function fetchJSON(url) {
  const r = await fetchOk(url);
  const text = await r.text();
  try { return JSON.parse(text); } catch (e) { throw new Error(`${url}: not a JSON file (${e.message})`); }
}
const exists = async (url) => { try { return (await fetch(url, { method: 'HEAD' })).ok; } catch (e) { return false; } };

function showHelp() {                            // a bare index.html with nothing exported yet: what to run
  state.status = 'help';
  say('nothing to show yet: export a model first (below)');
  $('help').hidden = false;
  document.querySelector('main').hidden = true;
}

function warn(lines) {                           // loud, above the brain: e.g. backbones at random weights
  if (!lines || !lines.length) return;
  state.warnings.push(...lines);
  const el = $('warnings');
  el.textContent = state.warnings.join('\n');
  el.hidden = false;
}

// The student's feature widths (the last axis of its text/audio/video inputs), where onnxruntime-web reports them.
function studentWidths(session) {
  const out = {};
  for (const m of session.inputMetadata || []) {
    const sh = m && m.shape;
    if (['text', 'audio', 'video'].includes(m.name) && sh && typeof sh[sh.length - 1] === 'number') out[m.name] = sh[sh.length - 1];
  }
  return out;
}
const VIDEO_BY_WIDTH = { 640: 'mobilevit_s', 1280: 'efficientnet_lite0' };
// One line when the bundle's backbones are not the student's (width, or name where the student records it); else null.
export function backboneMismatch(bundle, widths, names, bundleUrl) {
  for (const m of ['text', 'audio', 'video']) {
    const b = bundle.backbones[m], want = widths[m], wname = names && names[m];
    if (!b || ((want === undefined || b.dim === want) && (!wname || wname === b.name))) continue;
    const hint = wname || (m === 'video' ? VIDEO_BY_WIDTH[want] : null);
    const what = want !== undefined && b.dim !== want ? `gives ${b.dim} features but the student takes ${want}` : `is not the student's (${wname})`;
    const fix = m === 'video' && hint ? `tinytribe export-backbones BB --video ${hint}` : `tinytribe export-backbones BB with the student's ${m} model`;
    return `${bundleUrl}: the ${m} backbone ${b.name} ${what}: export the student's (${fix}), then tinytribe web again`;
  }
  return null;
}

async function loadBin(url) {
  // a JSON header + one little-endian binary file (tinytribe.export._write_bin)
  const head = await fetchJSON(url);
  const base = url.slice(0, url.lastIndexOf('/') + 1);
  const buf = await (await fetchOk(base + head.bin)).arrayBuffer();
  if (buf.byteLength !== head.bytes) throw new Error(`${head.bin}: ${buf.byteLength} bytes, header says ${head.bytes}`);
  const arrays = {};
  for (const [k, a] of Object.entries(head.arrays)) {
    const n = a.shape.reduce((x, y) => x * y, 1);
    arrays[k] = a.dtype === 'uint32' ? new Uint32Array(buf, a.offset, n) : new Float32Array(buf, a.offset, n);
  }
  return { head, arrays, base, bytes: buf.byteLength };
}

ort.env.wasm.wasmPaths = new URL('node_modules/onnxruntime-web/dist/', location.href).href;
ort.env.wasm.numThreads = Number(q.get('threads') || 1);   // >1 needs a cross-origin isolated page

async function openStudent(modelUrl) {
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(modelUrl, { executionProviders: ['wasm'] });
  return { session, loadMs: performance.now() - t0 };
}

async function predict(feat, modelUrl, opened) {
  const { session, loadMs } = opened || await openStudent(modelUrl);
  const t1 = performance.now();
  const { head, arrays } = feat;
  const T = head.n_steps, nTr = head.grid.n;
  const present = new Uint8Array(T * 3);
  arrays.present.forEach((v, i) => { present[i] = v > 0.5 ? 1 : 0; });
  const feeds = {
    text: new ort.Tensor('float32', arrays.text, [1, T, head.dims.text]),
    audio: new ort.Tensor('float32', arrays.audio, [1, T, head.dims.audio]),
    video: new ort.Tensor('float32', arrays.video, [1, T, head.dims.video]),
    present: new ort.Tensor('bool', present, [1, T, 3]),
    pool: new ort.Tensor('float32', arrays.pool, [1, nTr, T]),
    subject: new ort.Tensor('int64', BigInt64Array.from([BigInt(head.subject)]), [1]),
  };
  const out = await session.run(feeds);
  const t2 = performance.now();
  const pred = out.pred;
  return { pred: pred.data, nTr: pred.dims[1], nOut: pred.dims[2], loadMs, runMs: t2 - t1 };
}

function rdbu(v) {                               // v in [-1, 1] -> RdBu (blue - white - red)
  const c0 = [0.129, 0.4, 0.675], c1 = [0.969, 0.969, 0.969], c2 = [0.698, 0.094, 0.169];
  const t = Math.max(-1, Math.min(1, v));
  const [a, b, s] = t < 0 ? [c1, c0, -t] : [c1, c2, t];
  return [a[0] + (b[0] - a[0]) * s, a[1] + (b[1] - a[1]) * s, a[2] + (b[2] - a[2]) * s];
}

function makeBrain(mesh) {
  const el = $('brain');
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setSize(el.clientWidth, el.clientHeight);
  renderer.setClearColor(0xffffff);
  el.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(30, el.clientWidth / el.clientHeight, 1, 2000);
  camera.up.set(0, 0, 1);
  const controls = new OrbitControls(camera, renderer.domElement);
  const geom = new THREE.BufferGeometry();
  geom.setAttribute('position', new THREE.BufferAttribute(mesh.arrays.coords, 3));
  geom.setIndex(new THREE.BufferAttribute(mesh.arrays.faces, 1));
  const n = mesh.head.n_vertices;
  const colors = new Float32Array(n * 3);
  geom.setAttribute('color', new THREE.BufferAttribute(colors, 3));
  geom.computeVertexNormals();
  geom.computeBoundingSphere();
  const mat = new THREE.MeshLambertMaterial({ vertexColors: true, side: THREE.DoubleSide });
  scene.add(new THREE.Mesh(geom, mat));
  scene.add(new THREE.AmbientLight(0xffffff, 1.6));
  const light = new THREE.DirectionalLight(0xffffff, 1.6);
  scene.add(light);
  const c = geom.boundingSphere.center, r = geom.boundingSphere.radius;
  controls.target.copy(c);
  const views = { left: [-1, 0, 0.15], right: [1, 0, 0.15], top: [0, -0.2, 1], back: [0, -1, 0.3] };
  const setView = (name) => {
    const d = new THREE.Vector3(...views[name]).normalize();
    camera.position.copy(c).addScaledVector(d, r * 4.2);
    controls.update();
  };
  setView('top');
  document.querySelectorAll('[data-view]').forEach((b) => b.addEventListener('click', () => setView(b.dataset.view)));
  const render = () => { light.position.copy(camera.position); renderer.render(scene, camera); };
  controls.addEventListener('change', render);
  const sulc = mesh.arrays.sulc, wall = mesh.arrays.medial_wall;
  return {
    paint(values, vmax) {                        // values: Float32Array (n) of one TR
      for (let i = 0; i < n; i++) {
        let rgb;
        if (wall[i] > 0.5 || !Number.isFinite(values[i])) { const g = sulc[i] > 0 ? 0.55 : 0.72; rgb = [g, g, g]; }
        else rgb = rdbu(values[i] / vmax);
        colors[3 * i] = rgb[0]; colors[3 * i + 1] = rgb[1]; colors[3 * i + 2] = rgb[2];
      }
      geom.attributes.color.needsUpdate = true;
      render();
    },
    render,
  };
}

const progress = (msg, frac) => {
  say(msg);
  const p = $('progress');
  if (frac === null) p.hidden = true; else { p.hidden = false; p.value = frac; }
};

async function clipFeatures(bundleUrl, pick) {
  // the clip's features computed here (clip.js) -> the same {head, arrays} as an exported .features.json
  const bundle = await fetchJSON(bundleUrl);
  if (bundle.kind !== 'tinytribe-web') throw new Error(`${bundleUrl}: not a tinytribe web folder (kind ${bundle.kind})`);
  const base = new URL(bundleUrl, location.href).href.replace(/[^/]*$/, '');
  // backbones at random weights are announced; backbones that are not the student's are refused before any feature
  warn(bundle.warnings || Object.entries(bundle.backbones).filter(([, b]) => b.pretrained === false)
    .map(([m, b]) => `WARNING: RANDOM WEIGHTS: the ${m} backbone ${b.name} has no pretrained weights: its features mean nothing`));
  const modelUrl = q.get('model') || base + bundle.files.student;
  progress('loading the student…', null);
  const student = await openStudent(modelUrl);
  const bad = backboneMismatch(bundle, { ...(bundle.student && bundle.student.dims), ...studentWidths(student.session) },
    bundle.student && bundle.student.backbones, bundleUrl);
  if (bad) throw new Error(bad);
  let video = pick ? pick.video : (q.get('clip') ? new URL(q.get('clip'), location.href).href
    : bundle.files.clip ? base + bundle.files.clip : null);
  if (!video) throw new Error(`${bundleUrl} names no clip: pick a video file, or pass clip=`);
  let words = null;
  const wurl = pick ? null : q.get('words') || (q.get('clip') ? null : bundle.files.words && base + bundle.files.words);
  if (pick && pick.words) words = pick.words;
  else if (wurl && wurl !== 'none') words = await fetchJSON(wurl);
  if (words && words.kind !== 'tinytribe-web-words') throw new Error(`${wurl || 'words file'}: not a .words.json`);
  const name = pick ? pick.name : decodeURIComponent(video.split('/').pop());
  const sameClip = words && (!pick || words.video === pick.name);   // its duration is PyAV's: the same steps as Python
  const clip = { video, words: words ? words.words : null, duration_s: sameClip ? words.duration_s : null };
  const keep = q.get('debug') === 'frames' ? (state.frames = []) : null;   // the RGB frames (base64), for checks
  const ex = await extractClip(ort, bundle, base, clip, loadBin, progress, keep);
  const { T, step } = ex;
  const dims = { text: bundle.backbones.text.dim, audio: bundle.backbones.audio.dim, video: bundle.backbones.video.dim };
  const present = new Float32Array(T * 3), any = new Uint8Array(T);
  ['text', 'audio', 'video'].forEach((m, j) => { for (let k = 0; k < T; k++) if (ex[m].mask[k]) { present[k * 3 + j] = 1; any[k] = 1; } });
  const grid = { tr_s: bundle.grid.tr_s, offset_s: bundle.grid.offset_s, duration_s: ex.duration };
  const pool = poolMatrix(T, step, any, grid);
  if (pool.nTr < 1) throw new Error(`${name}: ${ex.duration.toFixed(1)} s holds no whole TR of ${grid.tr_s} s`);
  const head = { clip_id: name.replace(/\.[^.]*$/, ''), n_steps: T, step_s: step, duration_s: ex.duration, dims,
    grid: { tr_s: grid.tr_s, offset_s: grid.offset_s, n: pool.nTr }, subject: bundle.subject, tr_valid: pool.trValid };
  state.clip = { T, duration: ex.duration, nSamples: ex.nSamples, timings: ex.timings, nWords: (clip.words || []).length,
    masks: { text: Array.from(ex.text.mask), audio: Array.from(ex.audio.mask), video: Array.from(ex.video.mask) } };
  state.features = () => ({ text: Array.from(ex.text.x), audio: Array.from(ex.audio.x), video: Array.from(ex.video.x) });
  state.tokens = ex.tokens;
  return { feat: { head, arrays: { text: ex.text.x, audio: ex.audio.x, video: ex.video.x, present, pool: pool.W } },
    modelUrl, student, studentMeta: bundle.student, meshUrl: base + bundle.files.mesh, video: ex.url };
}

async function featuresMode() {
  const feat = await loadBin(FEATURES);
  const vname = q.get('video') || (feat.head.video ? feat.head.video.split('/').pop() : null);
  let video = null;
  if (vname) {                // played from a blob: a server without range requests leaves a video URL unseekable
    const r = await fetch(feat.base + vname);
    if (r.ok) video = URL.createObjectURL(await r.blob()); else console.warn(`${feat.base + vname}: ${r.status}, no video`);
  }
  return { feat, modelUrl: MODEL, meshUrl: MESH, video };
}

let brain = null, brainMesh = null;
async function run(pick) {
  try {
    state.status = 'loading';
    $('status').classList.remove('error');
    const clipMode = pick || MODE === 'clip';
    say(clipMode ? 'loading the backbones…' : 'loading mesh and features…');
    const t0 = performance.now();
    const src = clipMode ? await clipFeatures(BUNDLE, pick) : await featuresMode();
    const extractMs = performance.now() - t0;
    const { feat } = src;
    if (!brain) { brainMesh = await loadBin(src.meshUrl); brain = makeBrain(brainMesh); }
    const mesh = brainMesh;
    progress('running the model (onnxruntime-web, WebAssembly)…', null);
    const res = await predict(feat, src.modelUrl, src.student);
    const { pred, nTr, nOut } = res;
    if (nOut !== mesh.head.n_vertices) throw new Error(`model gives ${nOut} outputs, the mesh has ${mesh.head.n_vertices} vertices`);
    // colour scale: the 98th percentile of |value - vertex mean| over valid TRs
    const valid = feat.head.tr_valid, mean = new Float32Array(nOut);
    let nv = 0;
    for (let k = 0; k < nTr; k++) if (valid[k]) { nv++; for (let i = 0; i < nOut; i++) mean[i] += pred[k * nOut + i]; }
    for (let i = 0; i < nOut; i++) mean[i] /= Math.max(nv, 1);
    const dev = [];
    for (let k = 0; k < nTr; k++) if (valid[k]) for (let i = 0; i < nOut; i += 7) dev.push(Math.abs(pred[k * nOut + i] - mean[i]));
    dev.sort((a, b) => a - b);
    const vmax = dev.length ? dev[Math.floor(0.98 * (dev.length - 1))] || 1 : 1;
    const grid = feat.head.grid;
    const slider = $('slider');
    slider.max = String(nTr - 1);
    const show = (k) => {
      const row = pred.subarray(k * nOut, (k + 1) * nOut);
      const centred = new Float32Array(nOut);
      for (let i = 0; i < nOut; i++) centred[i] = row[i] - mean[i];
      brain.paint(centred, vmax);
      const t = k * grid.tr_s + grid.offset_s;
      $('tlabel').textContent = `TR ${k + 1}/${nTr}: BOLD at ${t.toFixed(1)} s (stimulus ${t.toFixed(1)}–${(t + grid.tr_s).toFixed(1)} s)` +
        (valid[k] ? '' : ' [no input]');
      state.tr = k;
    };
    const video = $('video');
    slider.oninput = () => {
      const k = Number(slider.value);
      show(k);
      if (video.src && Math.abs(video.currentTime - (k * grid.tr_s + grid.offset_s)) > grid.tr_s) video.currentTime = Math.max(0, k * grid.tr_s + grid.offset_s);
    };
    if (src.video) video.src = src.video;
    if (video.src) {
      video.currentTime = 0;
      video.ontimeupdate = () => {
        const k = Math.min(nTr - 1, Math.max(0, Math.floor((video.currentTime - grid.offset_s) / grid.tr_s)));
        if (k !== Number(slider.value)) { slider.value = String(k); show(k); }
      };
    }
    $('vmin').textContent = (-vmax).toFixed(3);
    $('vmax').textContent = vmax.toFixed(3);
    slider.value = '0';
    show(0);
    const facts = [['clip', feat.head.clip_id], ['TRs', `${nTr} × ${grid.tr_s} s`], ['outputs', `${nOut} vertices (fsaverage5)`]];
    if (clipMode) {
      const tms = state.clip.timings, d = feat.head.duration_s;
      facts.push(['features', `computed here in ${(extractMs / 1000).toFixed(1)} s (${(extractMs / 1000 / d).toFixed(2)} s per s of clip)`]);
      facts.push(['stages', Object.entries(tms).sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s`).join(', ')]);
      facts.push(['modalities', ['text', 'audio', 'video'].map((m) => `${m} ${state.clip.masks[m].reduce((a, b) => a + b, 0)}/${feat.head.n_steps}`).join(', ')]);
    }
    facts.push(['model load', `${res.loadMs.toFixed(0)} ms`], ['inference', `${res.runMs.toFixed(0)} ms for ${feat.head.duration_s.toFixed(1)} s of video`]);
    // how far to trust the output: the one-line warnings `tinytribe export` (or the bundle's student) recorded
    const trust = feat.head.warnings || (src.studentMeta && src.studentMeta.warnings) || [];
    if (trust.length) facts.unshift(['warning', trust.join(' | ')]);
    state.trust = trust;
    $('facts').innerHTML = facts.map(([a, b]) => `<tr><td>${a}</td><td>${b}</td></tr>`).join('');
    Object.assign(state, { status: 'done', runs: (state.runs || 0) + 1, nTr, nOut, loadMs: res.loadMs, runMs: res.runMs, extractMs, vmax, trValid: valid,
      pred: () => Array.from(pred), show: (k) => { slider.value = String(k); slider.oninput(); } });
    progress(`done: ${nTr} TRs predicted in ${res.runMs.toFixed(0)} ms` + (clipMode ? `, features computed in ${(extractMs / 1000).toFixed(1)} s` : ''), null);
  } catch (e) {
    state.status = 'error'; state.error = String(e && e.stack || e); state.runs = (state.runs || 0) + 1;
    state.message = String(e && e.message || e);
    progress('error: ' + state.message, null);
    $('status').classList.add('error');
    console.error(e);
  }
}

$('pick').addEventListener('change', async (ev) => {
  const files = Array.from(ev.target.files || []);
  const v = files.find((f) => !f.name.endsWith('.json'));
  if (!v) { say('pick a video file (and, for the text modality, its .words.json from tinytribe web)'); return; }
  const w = files.find((f) => f.name.endsWith('.json'));
  const words = w ? JSON.parse(await w.text()) : null;
  run({ video: URL.createObjectURL(v), name: v.name, words });
});

async function start() {
  if ([...q.keys()].length === 0) {             // a bare index.html: use what data/ holds, else say what to run
    if (await exists(FEATURES)) MODE = 'features';
    else if (await exists(BUNDLE)) MODE = 'clip';
    else { showHelp(); return; }
    state.mode = MODE;
  }
  run();
}
start();
