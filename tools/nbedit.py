"""Authoring helper: replace exact text inside one notebook's cells (keeps cell ids and everything else).
    python tools/nbedit.py NB.ipynb OLD_FILE NEW_FILE     # OLD/NEW read from files; OLD must occur exactly once"""
import sys, json
nb_path, old, new = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read()
nb = json.load(open(nb_path))
hits = [(i, c) for i, c in enumerate(nb['cells']) if old in ''.join(c['source'])]
n = sum(''.join(c['source']).count(old) for _, c in hits)
if n != 1: sys.exit(f"{nb_path}: expected the text exactly once, found {n}")
i, c = hits[0]
src = ''.join(c['source']).replace(old, new)
c['source'] = src.splitlines(keepends=True)
with open(nb_path, 'w') as f: json.dump(nb, f, indent=1, ensure_ascii=False); f.write('\n')
print(f"{nb_path}: cell {i} edited")
