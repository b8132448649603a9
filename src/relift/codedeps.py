"""The relift module files a job runs, derived from its imports (stdlib only).

A rule declares the files of the module it runs, and of every relift module that module imports
(transitively, including imports inside functions and the packages' ``__init__`` files), as
inputs; a change to any of them reruns the rule. ``python -m relift.codedeps relift.x.y`` lists
them.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent


def module_path(name: str, src: Path = SRC) -> Path | None:
    """The file of module ``name`` (a module file, or a package's ``__init__.py``)."""
    base = src.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _imports(path: Path, name: str) -> set[str]:
    """relift modules imported anywhere in one file (absolute and relative imports)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            out.add(mod)
            # `from relift.x import y`: y may be a module of package x
            out.update(f"{mod}.{a.name}" for a in node.names)
    return {m for m in out if m == "relift" or m.startswith("relift.")}


@cache
def module_files(name: str, src: Path = SRC) -> tuple[str, ...]:
    """Files (relative to ``src``'s ``relift`` folder) of module ``name`` and of every relift
    module it imports, transitively, with the ``__init__.py`` of each package on the way."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [name]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        parts = mod.split(".")
        for i in range(1, len(parts)):  # the packages a module's import runs
            todo.append(".".join(parts[:i]))
        path = module_path(mod, src)
        if path is None:
            continue  # a name imported from a module, not a module
        files.add(path)
        todo.extend(_imports(path, mod))
        main = path.parent / "__main__.py"
        if mod == name and path.name == "__init__.py" and main.is_file():
            # `python -m package` runs its __main__
            files.add(main)
            todo.extend(_imports(main, f"{mod}.__main__"))
    root = src / "relift"
    return tuple(sorted(str(p.relative_to(root)) for p in files))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    for name in args:
        print("\n".join(module_files(name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
