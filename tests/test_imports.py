"""The import graph of the `tinytribe` package follows ARCHITECTURE.md's rules.

Every module in `tinytribe/` is parsed (its AST: imports at the top *and* inside functions), every import of a
`tinytribe` module (absolute or relative) becomes an edge, and the graph must have no cycle. Each module is
mapped to the notebook it is exported from by its nbdev header (`File to edit: ../nbs/NN_name.ipynb`), and:

- a module from a lower notebook number never imports one from a higher number (dependencies point down);
- nothing imports `tinytribe.cli`;
- the model (notebooks 30-39) imports only torch, numpy, the standard library, and tinytribe's 00-09
  foundations (and the other model modules); safetensors too, the weights format of the model folder that
  `31_model` saves and loads (ARCHITECTURE.md puts save/load there), and fastcore, whose `patch` lets the
  notebooks tell a class method by method (a core dependency, no I/O or state).

New modules are picked up automatically: nothing here lists them.
"""
import ast, re, sys
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parents[1]/'tinytribe'
HEADER = re.compile(r'File to edit: \.\./nbs/(\d+)_[^/\s]*\.ipynb')
MODEL_EXTERNAL = {'torch', 'numpy', 'safetensors', 'fastcore'}   # safetensors: the model folder's weights; fastcore.patch


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix('')
    parts = list(rel.parts)
    if parts[-1] == '__init__': parts = parts[:-1]
    return '.'.join(parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    "Every module `path` imports, absolute names, with the line: `tinytribe.x` for internal ones."
    mod = module_name(path)
    package = mod if path.name == '__init__.py' else mod.rsplit('.', 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:                                    # relative: resolve against the package
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if target == 'tinytribe' or (node.level and not node.module):
                # `from tinytribe import x` / `from . import x`: x may be a submodule
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    out.append((sub if (PKG/f"{a.name}.py").exists() else target, node.lineno))
            else:
                out.append((target, node.lineno))
    return out


def internal(name: str) -> str | None:
    "The tinytribe module an imported name belongs to (`tinytribe.core` for `tinytribe.core.x`), or None."
    if name != 'tinytribe' and not name.startswith('tinytribe.'): return None
    parts = name.split('.')
    for k in range(len(parts), 0, -1):
        cand = '.'.join(parts[:k])
        p = PKG.parent.joinpath(*cand.split('.'))
        if p.with_suffix('.py').exists() or (p/'__init__.py').exists(): return cand
    return name


def notebook_number(path: Path) -> int | None:
    m = HEADER.search(path.read_text()[:600])
    return int(m.group(1)) if m else None


@pytest.fixture(scope='module')
def graph():
    files = sorted(PKG.rglob('*.py'))
    assert len(files) > 10, f"no modules found under {PKG}"
    mods = {module_name(f): f for f in files}
    edges, external = {}, {}
    for m, f in mods.items():
        edges[m], external[m] = {}, {}
        for name, line in imports_of(f):
            t = internal(name)
            if t is None: external[m].setdefault(name.split('.')[0], line)
            elif t != m: edges[m].setdefault(t, line)
    numbers = {m: notebook_number(f) for m, f in mods.items()}
    return mods, edges, external, numbers


def test_imports_resolve(graph):
    mods, edges, _, _ = graph
    missing = {(m, t) for m, ts in edges.items() for t in ts if t not in mods}
    assert not missing, f"imports of tinytribe modules that do not exist: {sorted(missing)}"


def test_no_cycle(graph):
    _, edges, _, _ = graph
    state, stack = {}, []

    def visit(m):
        state[m] = 'open'
        stack.append(m)
        for t in sorted(edges.get(m, {})):
            if state.get(t) == 'open':
                cycle = stack[stack.index(t):] + [t]
                pytest.fail('import cycle: ' + ' -> '.join(cycle))
            if t not in state: visit(t)
        stack.pop()
        state[m] = 'done'

    for m in sorted(edges):
        if m not in state: visit(m)


def test_dependencies_point_down(graph):
    mods, edges, _, numbers = graph
    exported = [m for m in mods if numbers[m] is not None]
    assert len(exported) >= 10, 'the nbdev headers were not found'
    bad = [f"{m} ({numbers[m]:02d}) imports {t} ({numbers[t]:02d}) at line {line}"
           for m, ts in edges.items() if numbers.get(m) is not None
           for t, line in ts.items() if numbers.get(t) is not None and numbers[t] > numbers[m]]
    assert not bad, 'a lower notebook imports a higher one:\n' + '\n'.join(bad)


def test_nothing_imports_the_cli(graph):
    _, edges, _, _ = graph
    bad = [f"{m} (line {ts['tinytribe.cli']})" for m, ts in edges.items() if 'tinytribe.cli' in ts]
    assert not bad, f"tinytribe.cli is imported by {bad}"


def test_model_imports_torch_and_foundations_only(graph):
    mods, edges, external, numbers = graph
    model = [m for m in mods if numbers[m] is not None and 30 <= numbers[m] <= 39]
    assert model, 'no model modules (notebooks 30-39) found'
    bad = []
    for m in model:
        for t, line in edges[m].items():
            n = numbers.get(t)
            if n is None or not (n <= 9 or 30 <= n <= 39): bad.append(f"{m} imports {t} (line {line})")
        for name, line in external[m].items():
            if name not in MODEL_EXTERNAL and name not in sys.stdlib_module_names and name != '__future__':
                bad.append(f"{m} imports {name} (line {line})")
    assert not bad, 'the model imports more than torch and 00-09:\n' + '\n'.join(bad)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    "The walk reads imports nested in functions and resolves relative ones (the rules above rely on it)."
    f = PKG/'engine.py'
    names = {internal(n) for n, _ in imports_of(f)}
    assert 'tinytribe.data' in names and 'tinytribe.store' in names
    src = "def f():\n    from .core import TRGrid\n    from tinytribe import spaces\n"
    p = PKG/'__probe_imports_test.py'
    try:
        p.write_text(src)
        assert {internal(n) for n, _ in imports_of(p)} == {'tinytribe.core', 'tinytribe.spaces'}
    finally:
        p.unlink()


MODULE_NAME = re.compile(r'tinytribe(\.\w+)+(:\w+)?')         # 'tinytribe.x' or 'tinytribe.x:function': a name to import
SUBPROCESS = {'run', 'call', 'check_call', 'check_output', 'Popen'}


def hidden_edges(path: Path) -> list[str]:
    """What in `path` reaches a module by a name the import graph cannot see: `importlib.import_module` or
    `__import__`, a string that is a tinytribe module's name (`'tinytribe.x'`, `'tinytribe.x:fn'`), a string that runs
    the package (`-m tinytribe`, `tinytribe.cli`), and a subprocess whose command names tinytribe (the CLI run as a
    process)."""
    bad, tree = [], ast.parse(path.read_text(), str(path))
    loggers = {id(a) for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'attr', '') == 'getLogger'
               for a in n.args}                                   # a logger's name is no import
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, 'id', '')
            if name in ('import_module', '__import__'): bad.append(f"line {node.lineno}: {name}(...)")
            if (name in SUBPROCESS and isinstance(f, ast.Attribute) and getattr(f.value, 'id', '') == 'subprocess'
                    and 'tinytribe' in ast.unparse(node)):
                bad.append(f"line {node.lineno}: a subprocess of tinytribe")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in loggers:
            s = node.value
            if MODULE_NAME.fullmatch(s.strip()) or '-m tinytribe' in s or 'tinytribe.cli' in s:
                bad.append(f"line {node.lineno}: the string {s[:60]!r}")
    return bad


def test_no_edges_hidden_in_strings():
    "No module of the library imports by name, runs itself in a subprocess, or names the CLI (only the CLI may)."
    bad = [f"{f.relative_to(PKG.parent)} {b}" for f in sorted(PKG.rglob('*.py'))
           if f.name not in ('cli.py', '_modidx.py') for b in hidden_edges(f)]
    assert not bad, 'edges hidden from the import graph:\n' + '\n'.join(bad)


def test_the_string_checker_sees_them(tmp_path):
    "The check above finds each kind of hidden edge (and leaves ordinary code alone)."
    src = ("import importlib, subprocess, sys\n"
           "m = importlib.import_module('tinytribe.model')\n"
           "f = __import__('os')\n"
           "R = {1: 'tinytribe.phase1:phase1_main'}\n"
           "subprocess.run([sys.executable, '-m', 'tinytribe', 'train'])\n"
           "E = 'from tinytribe.cli import main'\n"
           "ok = importlib.resources.files('tinytribe')\n"
           "log = logging.getLogger('tinytribe.fmri')\n")
    p = tmp_path/'probe.py'
    p.write_text(src)
    found = hidden_edges(p)
    for line in (2, 3, 4, 5, 6): assert any(b.startswith(f"line {line}:") for b in found), (line, found)
    assert not any(b.startswith(('line 7:', 'line 8:')) for b in found), found


def test_the_library_never_imports_its_fixtures(graph):
    "`tinytribe.testing` holds fixtures for tests and examples: no module of the library imports it."
    _, edges, _, _ = graph
    bad = [f"{m} (line {ts['tinytribe.testing']})" for m, ts in edges.items() if 'tinytribe.testing' in ts]
    assert not bad, f"tinytribe.testing is imported by {bad}"
