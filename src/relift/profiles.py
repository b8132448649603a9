"""Make ``snakemake --profile slurm`` find relift's SLURM profile (``make install`` runs this).

    python -m relift.profiles install   [--checkout DIR] [--name slurm]
    python -m relift.profiles uninstall [--checkout DIR] [--name slurm]
    python -m relift.profiles status    [--checkout DIR] [--name slurm]

Snakemake looks a bare profile name up in the current directory, then in the user's Snakemake
profile folder (``~/.config/snakemake`` on Linux, ``$XDG_CONFIG_HOME/snakemake`` when that is
set), then in the system's (``/etc/xdg/snakemake``). ``install`` puts a symbolic link
``<user folder>/slurm -> <checkout>/profiles/slurm`` there, so the profile stays the checkout's
file: an edit to it (the site's partitions and account) applies at once, and so does a
``git pull``. It never replaces what is already there under that name: a profile of your own
(a folder, a file, or a link to somewhere else) is left alone and named in the message, and
Snakemake keeps using it. ``uninstall`` removes the link only if it is relift's. Both say what
they did and exit 0 unless the checkout has no profile to link.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# the checkout this module was installed from (pip install -e); --checkout overrides it
PACKAGE_CHECKOUT = Path(__file__).resolve().parents[2]


def user_profile_dir() -> Path:
    """The user's Snakemake profile folder, found the way Snakemake finds it."""
    from platformdirs import AppDirs

    return Path(AppDirs("snakemake", "snakemake").user_config_dir)


def source_profile(checkout: Path, name: str) -> Path:
    src = (checkout / "profiles" / name).resolve()
    if not (src / "config.yaml").is_file():
        raise SystemExit(
            f"relift.profiles: no profile at {src} (expected {src / 'config.yaml'}); "
            "give the checkout with --checkout DIR"
        )
    return src


def is_ours(dest: Path, src: Path) -> bool:
    """Whether ``dest`` is a symbolic link to ``src`` (also when ``src`` has gone since)."""
    if not dest.is_symlink():
        return False
    target = Path(os.readlink(dest))
    if not target.is_absolute():
        target = dest.parent / target
    return os.path.normpath(target) == os.path.normpath(src) or target.resolve() == src


def describe(path: Path) -> str:
    if path.is_symlink():
        return f"a link to {os.readlink(path)}"
    if path.is_dir():
        return "a folder"
    return "a file"


def install(checkout: Path, name: str = "slurm") -> str:
    src = source_profile(checkout, name)
    dest = user_profile_dir() / name
    if is_ours(dest, src):
        return f"already linked: {dest} -> {src} (`snakemake --profile {name}` uses it)"
    if dest.is_symlink() or dest.exists():
        return (
            f"kept your own profile {dest} ({describe(dest)}): nothing changed, and "
            f"`snakemake --profile {name}` keeps using it. For relift's, give its path "
            f"(`snakemake --profile {src}`), or move yours away and run `make install` again."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.symlink_to(src, target_is_directory=True)
    return (
        f"linked {dest} -> {src}: `snakemake --profile {name}` now uses relift's SLURM profile "
        "(undo: make uninstall-profile)"
    )


def uninstall(checkout: Path, name: str = "slurm") -> str:
    src = (checkout / "profiles" / name).resolve()
    dest = user_profile_dir() / name
    if is_ours(dest, src):
        dest.unlink()
        return f"removed the link {dest} -> {src}"
    if dest.is_symlink() or dest.exists():
        return f"left {dest} alone ({describe(dest)}): it is not relift's link to {src}"
    return f"nothing to remove: {dest} does not exist"


def status(checkout: Path, name: str = "slurm") -> str:
    src = (checkout / "profiles" / name).resolve()
    dest = user_profile_dir() / name
    if is_ours(dest, src):
        return f"installed: {dest} -> {src}"
    if dest.is_symlink() or dest.exists():
        return f"not installed: {dest} is your own profile ({describe(dest)})"
    return f"not installed: {dest} does not exist (run `make install`)"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m relift.profiles",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("action", choices=("install", "uninstall", "status"))
    ap.add_argument(
        "--checkout",
        type=Path,
        default=PACKAGE_CHECKOUT,
        help="the relift checkout whose profiles/ to link (default: %(default)s)",
    )
    ap.add_argument("--name", default="slurm", help="the profile (default: %(default)s)")
    args = ap.parse_args(argv)
    action = {"install": install, "uninstall": uninstall, "status": status}[args.action]
    print(f"relift.profiles: {action(args.checkout, args.name)}")


if __name__ == "__main__":
    main()
