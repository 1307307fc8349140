"""Authoring helper: convert between nbdev notebooks and jupytext-style "percent" scripts.

    python tools/nbpct.py to-nb  nbs/30_layers.pct.py   # writes nbs/30_layers.ipynb
    python tools/nbpct.py to-pct nbs/30_layers.ipynb    # writes nbs/30_layers.pct.py

The notebook is the source of truth; a `.pct.py` file is a scratch copy for editing in a text
editor and is git-ignored. Cells start with `# %%`; markdown cells with `# %% [markdown]` and
each of their lines prefixed by `# `.
"""
import sys, json
from pathlib import Path
import nbformat


def pct_to_nb(src: Path) -> Path:
    text = src.read_text()
    cells, kind, buf = [], None, []

    def flush():
        if kind is None: return
        lines = buf[:]
        while lines and not lines[-1].strip(): lines.pop()
        while lines and not lines[0].strip(): lines.pop(0)
        if kind == 'markdown':
            lines = [l[2:] if l.startswith('# ') else l[1:] if l.startswith('#') else l for l in lines]
            cells.append(nbformat.v4.new_markdown_cell('\n'.join(lines)))
        else:
            cells.append(nbformat.v4.new_code_cell('\n'.join(lines)))

    for line in text.splitlines():
        if line.startswith('# %%'):
            flush(); buf = []
            kind = 'markdown' if '[markdown]' in line else 'code'
        else:
            if kind is None: kind = 'code'
            buf.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}}
    dst = src.with_name(src.name.replace('.pct.py', '.ipynb'))
    if dst.exists(): _keep_ids(nbformat.read(str(dst), as_version=4), nb)
    nbformat.write(nb, str(dst))
    return dst


def _keep_ids(old, new) -> None:
    "Give new cells the ids of the old notebook's cells: same source first, then same position (small diffs)."
    by_src = {}
    for c in old.cells: by_src.setdefault(c.source, c.get('id'))
    used = set()
    for c in new.cells:
        i = by_src.get(c.source)
        if i and i not in used: c['id'] = i; used.add(i)
    for i, c in enumerate(new.cells):
        if c['id'] in used: continue
        j = old.cells[i].get('id') if i < len(old.cells) else None
        if j and j not in used: c['id'] = j; used.add(j)


def nb_to_pct(src: Path) -> Path:
    nb = nbformat.read(str(src), as_version=4)
    out = []
    for c in nb.cells:
        if c.cell_type == 'markdown':
            out.append('# %% [markdown]')
            out += [('# ' + l) if l else '#' for l in c.source.splitlines()]
        else:
            out.append('# %%')
            out += c.source.splitlines()
        out.append('')
    dst = src.with_name(src.stem + '.pct.py')
    dst.write_text('\n'.join(out))
    return dst


if __name__ == '__main__':
    cmd, *paths = sys.argv[1:]
    for p in paths:
        print((pct_to_nb if cmd == 'to-nb' else nb_to_pct)(Path(p)))
