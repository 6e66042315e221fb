"""MkDocs hook: the PNG figures of the repository's ``report/`` folder are part of the site under
``report/``, so pages show the committed figures without a copy inside docs/."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent


def on_files(files, config):
    for path in sorted((ROOT / "report").rglob("*.png")):
        files.append(File(path.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"],
                          config["use_directory_urls"]))
    return files
