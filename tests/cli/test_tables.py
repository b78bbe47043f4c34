"""Fitted tables: shortened labels stay distinct, values are never cut, what does not fit
is named."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from optcmp_cli.render.numbers import num_column, num_distinct, rule_text, same_digits
from optcmp_cli.render.tables import LABEL, TEXT, VALUE, fit_table, shorten

names = st.text(alphabet="abcdefghij_0123456789", min_size=1, max_size=30)


@given(st.lists(names, min_size=1, max_size=12, unique=True), st.integers(3, 30))
def test_shortened_labels_stay_distinct_or_are_refused(labels: list[str], width: int) -> None:
    cut = shorten(labels, width)
    if cut is None:
        return
    assert set(cut) == set(labels)
    assert len(set(cut.values())) == len(labels)
    for label, short in cut.items():
        assert len(short) <= max(width, 0) or short == label
        if short != label:  # a kept prefix and suffix around one ellipsis
            head, tail = short.split("…")
            assert label.startswith(head)
            assert label.endswith(tail)


def test_known_collisions_are_told_apart() -> None:
    # Each pair read the same with an ellipsis at the end (issue: "cifar10…" twice).
    for pair, width in (
        (["cifar100_allcnnc", "cifar10_3c3d"], 8),
        (["schedule_free_adamw", "schedule_free_prodigy"], 11),
        (["decay_factor", "decay_steps_fraction"], 7),
    ):
        cut = shorten(pair, width)
        assert cut is not None
        assert len(set(cut.values())) == 2, cut


def _render(table: object, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO())
    console.print(table)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue().splitlines()


def test_fit_table_keeps_values_whole_and_names_left_out_columns() -> None:
    rows = [
        ["schedule_free_adamw", "2.512e-05", "a phrase that may wrap between words", "x" * 30],
        ["schedule_free_prodigy", "0.0003981", "short", "y" * 30],
    ]
    columns = [("optimizer", LABEL), ("lr", VALUE), ("note", TEXT), ("extra", VALUE)]
    table, left_out = fit_table("t", columns, rows, ("extra",), width=40)
    assert left_out == ["extra"]
    lines = _render(table, 40)
    assert max(len(line) for line in lines) <= 40
    words = {w for line in lines for w in line.replace("│", " ").split()}
    assert {"2.512e-05", "0.0003981"} <= words
    labels = [line.split("│")[0].strip() for line in lines if "│" in line]
    labels = [label for label in labels if label]
    assert len(labels) == len(set(labels)) == 2


def test_fit_table_drops_trailing_columns_rather_than_squeeze() -> None:
    rows = [["a", "1" * 30, "2" * 30, "3" * 30]]
    columns = [("x", LABEL), ("p", VALUE), ("q", VALUE), ("r", VALUE)]
    table, left_out = fit_table(None, columns, rows, width=70)
    assert left_out == ["r"]
    assert all(len(line) <= 70 for line in _render(table, 70))


def test_num_column_one_format_per_column() -> None:
    # Trailing zeros kept, so 0.1260 and 0.1274 read with the same number of digits.
    assert num_column([0.126, 0.1274, None, float("inf")], inf="inf") == [
        "0.1260",
        "0.1274",
        "-",
        "inf",
    ]
    # One value needing scientific notation puts the whole column in it.
    assert num_column([1e-05, 0.1585]) == ["1.000e-05", "1.585e-01"]
    assert num_column([3, 10]) == ["3", "10"]


def test_num_distinct_never_rounds_onto_an_edge() -> None:
    assert num_distinct(0.9999) == "0.9999"  # NAdam's beta2 space ends at 0.9999
    assert num_distinct(0.99999) == "0.99999"
    assert num_distinct(1.0) == "1"
    assert num_distinct(0.00398107) == "0.00398"


def test_rule_text_names_the_split_used() -> None:
    assert rule_text("final-valid", {"a": "valid"}) == "final-valid"
    assert rule_text("final-valid", {"a": "test", "b": "test"}) == (
        "final-valid, selected on the test split"
    )
    assert rule_text("final-valid", {"a": "test", "b": "valid"}) == (
        "final-valid, selected on the test split for a"
    )
    assert rule_text("final-train-loss", {"a": "test"}) == "final-train-loss"


def test_same_digits_pads_a_column_to_one_number_of_digits() -> None:
    assert same_digits(["0.42", "0.3805", "-", "never"]) == ["0.4200", "0.3805", "-", "never"]
    assert same_digits(["1", "0.833", "0"]) == ["1.00", "0.833", "0.00"]
    # Left alone: ids and counts, scientific notation, composite cells.
    assert same_digits(["2", "17"]) == ["2", "17"]
    assert same_digits(["0.669", "2.73e-05"]) == ["0.669", "2.73e-05"]
    assert same_digits(["0.1 [0.05, 0.2]", "24/24"]) == ["0.1 [0.05, 0.2]", "24/24"]


def test_counted_is_singular_for_one() -> None:
    from optcmp_cli.render.numbers import counted

    assert [counted(n, "workload") for n in (0, 1, 2)] == [
        "0 workloads",
        "1 workload",
        "2 workloads",
    ]
