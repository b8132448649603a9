"""The documentation (README.md, docs/*.md) points at things that exist, and stays short.

Checked: every relative link (and its #anchor, for a Markdown target), every repository path
and every ``relift.*`` module named in backticks, and every entry of the README's layout tree.
Not checked: URLs, and paths under results/ (outputs of a run, not repository files).
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SRC = ROOT / "src"

# A backticked token is taken for a repository path when its first component is one of these.
TOP = {
    ".ci",
    "Makefile",
    "README.md",
    "Snakefile",
    "bench",
    "config",
    "config.yaml",
    "docs",
    "envs",
    "profiles",
    "pyproject.toml",
    "src",
    "tests",
    "tools",
    "workflow",
}
# Folders that a make target fills, not repository files.
GENERATED = ("bench/wheels",)

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MODULE = re.compile(r"relift(?:\.[A-Za-z_]\w*)+")
INTERNAL = re.compile(r"\b(?:issue|session)s? #?\d+", re.I)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def prose(path: Path) -> str:
    """The Markdown text outside fenced code blocks."""
    return FENCE.sub("", path.read_text())


def fenced_blocks(path: Path) -> list[str]:
    return [m.group(0) for m in FENCE.finditer(path.read_text())]


def expand_braces(text: str) -> list[str]:
    """``a/{b,c}.d`` -> ``a/b.d``, ``a/c.d`` (one level per group, any number of groups)."""
    m = re.search(r"\{([^{}]*)\}", text)
    if not m:
        return [text]
    return [
        out
        for alt in m.group(1).split(",")
        for out in expand_braces(text[: m.start()] + alt + text[m.end() :])
    ]


def resolves(path: str) -> bool:
    """A repository path (glob patterns and brace alternatives allowed) names something."""
    for p in expand_braces(path.rstrip("/")):
        if any(ch in p for ch in "*?["):
            if not list(ROOT.glob(p)):
                return False
        elif not (ROOT / p).exists():
            return False
    return True


def repo_path(token: str) -> str | None:
    """The repository path a backticked token names, or None when it names none."""
    token = token.strip()
    if not token or any(ch in token for ch in " \t<>$~"):
        return None
    if token.startswith(("./", "/")) or "://" in token:
        return None
    if token.split("/")[0] not in TOP:
        return None
    if token.startswith(GENERATED):
        return None
    return token


def module_resolves(name: str) -> bool:
    """``relift.a.b`` is a module or package of src/, or an attribute defined in one."""
    parts = name.split(".")
    for n in range(len(parts), 1, -1):
        base = SRC.joinpath(*parts[:n])
        for f in (base.with_suffix(".py"), base / "__init__.py"):
            if f.is_file():
                rest = parts[n:]
                if not rest:
                    return True
                if len(rest) > 1:
                    return False
                pattern = rf"^(?:def|class)\s+{rest[0]}\b|^{rest[0]}\s*[:=]"
                return re.search(pattern, f.read_text(), re.M) is not None
    return False


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading (without the -1, -2 of repeated headings)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", prose(path), re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_relative_links_resolve(doc):
    bad = []
    for target in LINK.findall(prose(doc)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor} in {rel(dest)}")
    assert not bad, f"{rel(doc)}:\n" + "\n".join(bad)


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_backticked_paths_and_modules_exist(doc):
    bad = []
    spans = CODE_SPAN.findall(prose(doc))
    for span in spans:
        path = repo_path(span)
        if path is not None and not resolves(path):
            bad.append(f"`{span}`: no such path in the repository")
        if MODULE.fullmatch(span) and not module_resolves(span):
            bad.append(f"`{span}`: no such module under src/")
    # modules run in commands, in code spans and in code blocks
    for text in [*spans, *fenced_blocks(doc)]:
        for name in re.findall(r"python -m (relift(?:\.\w+)+)", text):
            if not module_resolves(name):
                bad.append(f"python -m {name}: no such module under src/")
    assert not bad, f"{rel(doc)}:\n" + "\n".join(bad)


def layout_entries() -> list[str]:
    """The paths of the README's layout tree: one entry per line, two spaces per level."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    block = FENCE.search(section)
    assert block, "README.md: the Layout section has no code block"
    stack: list[str] = []
    out = []
    for line in block.group(0).splitlines()[1:-1]:
        if not line.strip():
            continue
        indent = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        stack[indent:] = [name.rstrip("/")]
        out.append("/".join(stack))
    return out


def test_readme_layout_entries_exist():
    entries = layout_entries()
    assert len(entries) > 20
    missing = [e for e in entries if not resolves(e)]
    assert not missing, "README.md, Layout: no such path: " + ", ".join(missing)


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= 250, f"README.md has {n} lines (at most 250; details go to docs/)"


@pytest.mark.parametrize(
    "path",
    [*DOCS, ROOT / "config.yaml", *sorted((ROOT / "config").glob("*.yaml"))],
    ids=rel,
)
def test_no_internal_references(path):
    hits = [
        f"line {i}: {line.strip()}"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if INTERNAL.search(line)
    ]
    assert not hits, f"{rel(path)} refers to work items a reader cannot follow:\n" + "\n".join(hits)


def test_the_checks_catch_what_they_should():
    assert repo_path("src/relift/nowhere.py") == "src/relift/nowhere.py"
    assert not resolves("src/relift/nowhere.py")
    assert resolves("workflow/rules/*.smk") and resolves("config/{zero2.json,cpu-science.yaml}")
    assert repo_path("results/report.html") is None and repo_path("my.yaml") is None
    assert repo_path("snakemake --profile slurm") is None
    assert module_resolves("relift.codedeps") and module_resolves("relift.train")
    assert module_resolves("relift.codedeps.module_files")
    assert not module_resolves("relift.nowhere") and not module_resolves("relift.codedeps.nothing")
    assert slug("Profile: where the time goes") == "profile-where-the-time-goes"
    assert INTERNAL.search("as reported in Issue 11") and INTERNAL.search("session 8")
    assert not INTERNAL.search("an issue with 2 seeds")
