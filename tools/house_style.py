"""The house style of the code cells (compact, fastcore/nanoGPT-like, 120 columns): one blank line between
definitions, a single-statement `if` body on the `if` line, a call or literal on one line where it fits.
    python tools/house_style.py NB.ipynb ...          # rewrite in place (every cell's AST is checked unchanged)
    python tools/house_style.py --check NB.ipynb ...  # exit 1 if a notebook would change"""
import ast, json, re, sys

WIDTH = 120

def _join_if(lines: list[str]) -> list[str]:
    "`if c:` + one `return/raise/continue/break/pass` line (nothing more in the body) -> `if c: stmt` where it fits."
    out, i = [], 0
    while i < len(lines):
        m = re.match(r'^(\s*)(if|elif|else|for|while)\b(.*):\s*$', lines[i])
        if m and i + 1 < len(lines):
            ind = m.group(1)
            body = lines[i + 1]
            nxt = lines[i + 2] if i + 2 < len(lines) else ''
            bm = re.match(r'^' + re.escape(ind) + r'    (return|raise|continue|break|pass)\b(.*)$', body)
            deeper = nxt.startswith(ind + '    ') or (nxt.strip() == '' and False)
            if bm and not deeper and '#' not in lines[i] and not body.rstrip().endswith(('(', '[', '{', ',', '\\')):
                joined = lines[i].rstrip() + ' ' + body.strip()
                if len(joined) <= WIDTH:
                    out.append(joined); i += 2; continue
        out.append(lines[i]); i += 1
    return out

def _join_brackets(lines: list[str]) -> list[str]:
    "A line ending in an open bracket, element lines, and the closing bracket alone -> one line where it fits."
    out, i = [], 0
    while i < len(lines):
        l = lines[i]
        if l.rstrip().endswith(('(', '[', '{')) and '#' not in l:
            j, parts = i + 1, []
            while j < len(lines) and not re.match(r'^\s*[\)\]\}]', lines[j]) and '#' not in lines[j] and lines[j].strip():
                parts.append(lines[j].strip()); j += 1
            if j < len(lines) and parts and re.match(r'^\s*[\)\]\}]', lines[j]) and len(parts) <= 12:
                inner = ' '.join(parts)
                if inner.endswith(','): inner = inner[:-1]
                joined = l.rstrip() + inner + lines[j].strip()
                if len(joined) <= WIDTH and not any(p.endswith(('(', '[', '{')) for p in parts):
                    out.append(joined); i = j + 1; continue
        out.append(l); i += 1
    return out

def restyle(src: str) -> str:
    s = re.sub(r'\n\n\n+', '\n\n', src)
    lines = s.split('\n')
    for _ in range(3): lines = _join_brackets(lines)
    lines = _join_if(lines)
    return '\n'.join(lines)

def same_ast(a: str, b: str) -> bool:
    try: return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except SyntaxError: return a == b

def main(argv):
    check = '--check' in argv
    bad = 0
    for p in [a for a in argv if a != '--check']:
        nb = json.load(open(p))
        changed = False
        for c in nb['cells']:
            if c['cell_type'] != 'code': continue
            src = ''.join(c['source'])
            new = restyle(src)
            if new != src and same_ast(src, new):
                changed = True
                c['source'] = new.splitlines(keepends=True)
        if changed:
            bad += 1
            if check: print(f"{p}: not in the house style (python tools/house_style.py {p})")
            else:
                with open(p, 'w') as f: json.dump(nb, f, indent=1, ensure_ascii=False); f.write('\n')
                print(f"{p}: restyled")
    return 1 if check and bad else 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
