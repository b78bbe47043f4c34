"""Folder names become labels without hidden characters: importers make control and
format characters visible (optcmp_data._labels), whatever the tree holds."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from optcmp_data._labels import import_label, visible
from optcmp_data.importers import import_algoperf, import_deepobs
from tests.data.archive_trees import write_algoperf, write_deepobs

HOSTILE = "My\x1b[31mOpt\u202e[red]\u200b"
SHOWN = "My\\x1b[31mOpt\\u202e[red]\\u200b"


def _rename_all(root: Path, old: str, new: str) -> None:
    for path in sorted(root.rglob(old), key=lambda p: len(p.parts), reverse=True):
        path.rename(path.with_name(new))


def test_deepobs_folder_names_with_control_characters(tmp_path: Path) -> None:
    write_deepobs(tmp_path)
    _rename_all(tmp_path, "MyOptimizer", HOSTILE)
    ds = import_deepobs(tmp_path).dataset
    names = [str(o) for o in ds["optimizer"].values]
    assert any(SHOWN in n for n in names), names
    assert all(n.isprintable() for n in names)


def test_algoperf_submission_names_with_control_characters(tmp_path: Path) -> None:
    write_algoperf(tmp_path)
    _rename_all(tmp_path / "logs", "sub_a", HOSTILE)
    ds = import_algoperf(tmp_path).dataset
    names = [str(o) for o in ds["optimizer"].values]
    assert SHOWN in names, names
    assert all(n.isprintable() for n in names)


@given(st.text())
def test_import_label_is_printable_and_idempotent(raw: str) -> None:
    label = import_label(raw)
    assert label.isprintable()
    assert import_label(label) == label
    if raw.isprintable():
        assert label == unicodedata.normalize("NFC", raw)


def test_visible_keeps_what_it_is_told() -> None:
    assert visible("a\nb\x07", keep="\n") == "a\nb\\x07"
