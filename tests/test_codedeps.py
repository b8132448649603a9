"""Code inputs of the rules are derived from the job modules' imports (relift.codedeps)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from relift.codedeps import module_files

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "workflow" / "rules"


def _declared(text):
    out = set()
    for call in re.findall(r"code_of\(([^)]*)\)", text):
        out |= set(re.findall(r'"(relift[\w.]+)"', call))
    return out


def job_modules():
    """(rule file, rule name, modules its shell runs, modules its code_of() declares, directly
    or through a helper function of the rule files)."""
    helpers = {}
    for f in RULES.glob("*.smk"):
        for name, body in re.findall(r"^def (\w+)\(.*?\n((?:    .*\n|\n)*)", f.read_text(), re.M):
            helpers[name] = _declared(body)
    out = []
    for f in sorted(RULES.glob("*.smk")):
        text = f.read_text()
        starts = [m.start() for m in re.finditer(r"^(?:use )?rule ", text, re.M)] + [len(text)]
        for a, b in zip(starts, starts[1:], strict=False):
            block = text[a:b]
            name = block.split()[1] if block.startswith("rule") else block.split()[4]
            runs = set(re.findall(r"python -m (relift[\w.]+)", block))
            runs |= set(re.findall(r"-- (relift[\w.]+)", block))
            declared = _declared(block)
            for called in re.findall(r"(\w+)\(", block):
                declared |= helpers.get(called, set())
            if runs:
                out.append((f.name, name, runs, declared))
    return out


def test_every_job_declares_the_modules_it_runs():
    jobs = job_modules()
    assert len(jobs) >= 25
    missing = [
        f"{f}: rule {name} runs {sorted(runs - declared)} but code_of() does not name it"
        for f, name, runs, declared in jobs
        if runs - declared
    ]
    assert not missing, "\n".join(missing)


def test_generator_training_depends_on_every_module_it_imports():
    files = set(module_files("relift.selfmem.generator.train"))
    # imported by the trainer but once missing from its hand-kept list
    for f in ("selfmem/generator/tokenizer.py", "hardware.py", "io.py", "train/loop.py"):
        assert f in files
    assert "selfmem/generator/__init__.py" in files and "__init__.py" in files
    # nothing the trainer does not import
    assert not any(f.startswith(("regpt/", "selfmem/selector/", "selfmem/loop/")) for f in files)


@pytest.mark.parametrize(
    "module",
    [
        "relift.selfmem.generator.train",
        "relift.selfmem.loop.run",
        "relift.selfmem.selector.cli",
        "relift.regpt.train",
        "relift.selfmem.evaluation.compare",
    ],
)
def test_derived_files_cover_what_python_actually_imports(module):
    """The relift modules Python loads when the job module is imported are all declared."""
    code = (
        f"import sys, {module}; "
        "print('\\n'.join(m.__file__ for m in list(sys.modules.values()) "
        "if m.__name__.startswith('relift') and getattr(m, '__file__', None)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    src = ROOT / "src" / "relift"
    loaded = {str(Path(p).resolve().relative_to(src)) for p in r.stdout.split()}
    assert loaded - set(module_files(module)) == set()


def test_relative_and_function_level_imports(tmp_path):
    pkg = tmp_path / "relift" / "p"
    pkg.mkdir(parents=True)
    (tmp_path / "relift" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n    from relift.p.c import g\n")
    (pkg / "b.py").write_text("")
    (pkg / "c.py").write_text("g = 1\n")
    (pkg / "d.py").write_text("")  # not imported
    assert module_files("relift.p.a", tmp_path) == (
        "__init__.py",
        "p/__init__.py",
        "p/a.py",
        "p/b.py",
        "p/c.py",
    )


def test_a_package_run_with_python_m_includes_its_main():
    files = set(module_files("relift.selfmem.memory"))
    assert {"selfmem/memory/__main__.py", "selfmem/memory/cli.py"} <= files
