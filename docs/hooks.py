"""MkDocs hooks.

* The PNG figures of the repository's ``report/`` folder are part of the site under ``report/``, so
  pages show the committed figures without a copy inside docs/. Pages link them by their path in the
  repository (``../report/x.png`` from docs/index.md), which also works where the Markdown is read
  in place (a repository browser); the hook points those links at the site's copy.
* Underscores never mean emphasis: the pages and docstrings write subscripts as ``x_t``, ``ᾱ_{t−1}``,
  ``∇_{x_t}``, which Markdown would otherwise turn into italics; emphasis is ``*…*`` / ``**…**``.
* The docstrings' reStructuredText that Markdown does not read becomes Markdown: the roles
  ``:class:`~a.B``` etc. become code spans, simple tables (``====  ====`` borders) pipe tables, and a
  paragraph's closing ``::`` before a literal block a colon.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent


ROLE = re.compile(r":(?:mod|class|func|data|meth|attr|exc|obj):`~?\.?([^`]+)`")
BORDER = re.compile(r"^\s*=+(?: +=+)+\s*$")


def rst_table(lines: list[str]) -> list[str]:
    """A reStructuredText simple table (its lines, borders included) as a Markdown pipe table."""
    starts = [m.start() for m in re.finditer(r"=+", lines[0])]
    cut = lambda line: [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]  # noqa: E731
    rows: list[list[str]] = []
    for line in lines:
        if BORDER.match(line) or not line.strip():
            continue
        cells = cut(line)
        if rows and not cells[0]:  # an empty first cell continues the row above
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
        else:
            rows.append(cells)
    return [
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(starts),
        *("| " + " | ".join(row) + " |" for row in rows[1:]),
        "",
    ]


class RestToMarkdown(Preprocessor):
    def run(self, lines):
        out, i = [], 0
        while i < len(lines):
            if BORDER.match(lines[i]):
                borders = [j for j in range(i, len(lines)) if BORDER.match(lines[j])][:3]
                if len(borders) == 3:
                    out += rst_table(lines[i : borders[2] + 1])
                    i = borders[2] + 1
                    continue
            line = ROLE.sub(lambda m: f"`{m.group(1)}`", lines[i])
            out.append(line[:-1] if line.endswith("::") and not line.strip() == "::" else line)
            i += 1
        return out


class DocstringMarkdown(Extension):
    def extendMarkdown(self, md):  # noqa: N802 (Python-Markdown's name)
        if hasattr(md, "delimiters"):  # Python-Markdown >= 3.11
            md.delimiters.remove("_")
        else:
            md.inlinePatterns.deregister("em_strong2", strict=False)
        md.preprocessors.register(RestToMarkdown(md), "rest_to_markdown", 35)


@event_priority(100)  # before mkdocstrings copies the extensions for the docstrings
def on_config(config):
    config.markdown_extensions.append(DocstringMarkdown())
    return config


LINK = re.compile(r"(\]\(|src=\")([^)\"#\s]+)")


def on_page_markdown(markdown, page, config, files):
    """Links into the repository's report/ folder become links to the site's report/ folder."""
    docs = Path(config["docs_dir"]).resolve()
    here = (docs / page.file.src_uri).parent

    def relink(match):
        target = (here / match.group(2)).resolve()
        if "://" in match.group(2) or ROOT / "report" not in target.parents:
            return match.group(0)
        site_path = docs / target.relative_to(ROOT)
        return match.group(1) + Path(os.path.relpath(site_path, here)).as_posix()

    return LINK.sub(relink, markdown)


def on_files(files, config):
    for path in sorted((ROOT / "report").rglob("*.png")):
        files.append(
            File(path.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"], config["use_directory_urls"])
        )
    return files


CELL = re.compile(r"(<t[dh]\b[^>]*>)(.*?)(</t[dh]>)", re.S)
CODE = re.compile(r"<code>([^<]*)</code>")


def keep_words(match: re.Match) -> str:
    """One code span of a table cell: each space-separated word in a span that does not break."""
    words = re.sub(r"\S+", lambda w: f'<span class="sd-word">{w.group(0)}</span>', match.group(1))
    return f"<code>{words}</code>"


def on_page_content(html, page, config, files):
    """Code in table cells breaks only between its words, never inside an identifier or a flag.

    A narrow column broke ``through_unet`` as ``through_une|t`` and ``--cfg-scale`` after a hyphen; each
    word of a cell's code span goes in a ``sd-word`` span that extra.css keeps on one line (the table
    scrolls where that makes it wider than the column). The copied text is unchanged."""
    return CELL.sub(lambda m: m.group(1) + CODE.sub(keep_words, m.group(2)) + m.group(3), html)
