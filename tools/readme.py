"""Render README.md from nbs/index.ipynb (its markdown cells; the title line and description kept).
nbdev-readme needs Quarto, which is not available offline, so this small renderer stands in for it.
    python tools/readme.py          # write README.md
    python tools/readme.py --check  # exit 1 when README.md is out of date"""
import sys, nbformat
from pathlib import Path
root = Path(__file__).resolve().parent.parent
nb = nbformat.read(str(root/'nbs'/'index.ipynb'), as_version=4)
parts = []
for c in nb.cells:
    if c.cell_type == 'markdown': parts.append(c.source.strip())
    elif c.source.strip() and not c.source.lstrip().startswith('#| hide'):
        parts.append('```python\n' + c.source.strip() + '\n```')
text = '\n\n'.join(parts).strip() + '\n'
text = '<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook -->\n\n' + text
readme = root/'README.md'
if '--check' in sys.argv:
    ok = readme.exists() and readme.read_text() == text
    if not ok: print('README.md is out of date: run python tools/readme.py', file=sys.stderr)
    sys.exit(0 if ok else 1)
readme.write_text(text)
