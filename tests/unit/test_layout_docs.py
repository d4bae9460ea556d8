"""The README's layout section and the package docstring name every room of src/ktools, and
only rooms that exist: a move or a new package that forgets them fails here."""

from __future__ import annotations

import re
from pathlib import Path

import ktools

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "ktools"


def _rooms() -> set[str]:
    rooms = {p.name + "/" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    rooms |= {p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    return rooms


def _layout_block() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Layout\n"):]
    return section.split("```")[1]


def _named(text: str, room: str) -> bool:
    name = room.rstrip("/")
    return re.search(rf"(?<![\w/.]){re.escape(name)}\b", text) is not None


def test_readme_layout_names_every_room_and_no_missing_one():
    block = _layout_block()
    assert [r for r in sorted(_rooms()) if not _named(block, r)] == []
    rooms_part = block[block.index("src/ktools/"):block.index("assets/")].split("\n", 1)[1]
    listed = set(re.findall(r"(?<![\w/.])([a-z_]+(?:/[a-z_]+)*)/", rooms_part))
    missing = [d for d in sorted(listed) if not (PACKAGE / d).is_dir()]
    assert missing == [], f"the README's layout lists {missing}, which src/ktools does not have"


def test_package_docstring_names_every_room():
    assert [r for r in sorted(_rooms()) if not _named(ktools.__doc__, r)] == []
