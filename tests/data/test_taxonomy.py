"""The inclusion taxonomy as data: defaults, closure, user files, archive round trip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from optcmp_data import ConfigError, Inclusion, Taxonomy, default_taxonomy, taxonomy_labels
from optcmp_data.testing import synthetic_archive


def test_default_relations_are_the_papers() -> None:
    direct = set(default_taxonomy().pairs(transitive=False))
    assert direct == {
        ("sgd", "momentum"),
        ("sgd", "nesterov"),
        ("momentum", "rmsprop"),
        ("momentum", "adam"),
        ("nesterov", "nadam"),
        ("adam", "adamw"),
        ("nadam", "nadamw"),
    }


def test_closure_and_non_inclusions() -> None:
    tax = default_taxonomy()
    assert tax.includes("adam", "sgd")
    assert tax.includes("nadam", "sgd")
    assert not tax.includes("momentum", "nesterov")
    assert not tax.includes("nesterov", "momentum")
    assert not tax.includes("sgd", "adam")
    assert tax.includes("adamw", "momentum")
    assert not tax.includes("adamw", "nadam")
    # The paper's 8 pairs of the closure, plus adam/momentum/sgd in adamw and
    # nadam/nesterov/sgd in nadamw.
    assert len(tax.pairs()) == 14


def test_restriction_keeps_chains() -> None:
    sub = default_taxonomy().restricted_to(["sgd", "adam"])
    assert sub.pairs() == (("sgd", "adam"),)


@pytest.mark.parametrize(
    ("relations", "fragment"),
    [
        ((Inclusion("a", "a"),), "reflexive"),
        ((Inclusion("a", "b"), Inclusion("a", "b")), "twice"),
        ((Inclusion("a", "b"), Inclusion("b", "c"), Inclusion("c", "a")), "cycle"),
    ],
)
def test_invalid_taxonomies(relations: tuple[Inclusion, ...], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Taxonomy(relations)


def test_user_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "tax.toml"
    toml.write_text('[[inclusion]]\nspecial = "sgd"\ngeneral = "lion"\nlimit = "made up"\n')
    assert Taxonomy.from_file(toml).pairs() == (("sgd", "lion"),)
    js = tmp_path / "tax.json"
    js.write_text('{"inclusion": [{"special": "adam", "general": "adamw"}]}')
    assert Taxonomy.from_file(js).includes("adamw", "adam")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("inclusion = 3", "expected a list"),
        ('[[inclusion]]\nspecial = "sgd"\n', "non-empty strings"),
        ("[[inclusion", "not valid"),
    ],
)
def test_bad_user_files(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "tax.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment) as info:
        Taxonomy.from_file(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Taxonomy.from_file(tmp_path / "absent.toml")


def test_unreadable_files_are_one_config_error(tmp_path: Path) -> None:
    """As a study file: a non-UTF-8 file or a FIFO (which would block the read) is one
    ConfigError naming the file, not a traceback or a hang."""
    binary = tmp_path / "tax.json"
    binary.write_bytes(b'{"inclusion": "\xff"}')
    with pytest.raises(
        ConfigError,
        match=r"tax\.json: not UTF-8 text \(byte 0xff at offset 15\); a taxonomy file is",
    ):
        Taxonomy.from_file(binary)
    fifo = tmp_path / "tax.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a FIFO"):
        Taxonomy.from_file(fifo)


def test_archive_round_trip() -> None:
    custom = Taxonomy((Inclusion("sgd", "adam"),))
    ds = synthetic_archive(taxonomy=custom)
    assert Taxonomy.from_archive(ds).pairs() == (("sgd", "adam"),)
    assert Taxonomy.from_archive(synthetic_archive()).pairs() == default_taxonomy().pairs()


def test_optimizers_without_family_match_by_name() -> None:
    ds = synthetic_archive(optimizers=["sgd", "subm_a", "subm_b"], n_trials=2)
    assert taxonomy_labels(ds) == ("sgd", "subm_a", "subm_b")
    custom = Taxonomy((Inclusion("subm_a", "subm_b"), Inclusion("sgd", "subm_a")))
    assert custom.optimizer_pairs(ds) == (
        ("sgd", "subm_a", "sgd", "subm_a"),
        ("sgd", "subm_b", "sgd", "subm_b"),
        ("subm_a", "subm_b", "subm_a", "subm_b"),
    )
    # A family, where there is one, wins over the name.
    renamed = synthetic_archive(
        optimizers=["my_sgd", "adam"], families={"my_sgd": "sgd", "adam": "adam"}
    )
    assert default_taxonomy().optimizer_pairs(renamed) == (("my_sgd", "adam", "sgd", "adam"),)
