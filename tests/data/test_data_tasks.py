"""Task and domain parsing: canonical text, inheritance of the dataset, one-line errors."""

from __future__ import annotations

import pytest

from slimda_nas.data import DomainSpec, Task, parse_task
from slimda_nas.errors import DataError


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("usps->mnist", "usps->mnist"),
        ("  mnist  ->  mnist_m ", "mnist->mnist_m"),
        ("MNIST-M->usps", "mnist_m->usps"),
        ("digits:usps->digits:mnist", "usps->mnist"),
        ("office31:amazon->webcam", "office31:amazon->webcam"),
        ("office31:amazon -> office31:dslr", "office31:amazon->dslr"),
        ("office_home:Art->office31:webcam", "office_home:Art->office31:webcam"),
        ("folder:/p/A->folder:/p/B", "folder:/p/A->folder:/p/B"),
        ("list:/p/a.txt->list:/p/b.txt", "list:/p/a.txt->list:/p/b.txt"),
        ("folder:/p/A->list:/q/w.txt", "folder:/p/A->list:/q/w.txt"),
    ],
)
def test_parse_and_canonical_text(text: str, canonical: str) -> None:
    task = parse_task(text)
    assert str(task) == canonical
    assert parse_task(canonical) == task


def test_fields() -> None:
    task = parse_task("office31:amazon->webcam")
    assert task.source == DomainSpec("folder", "amazon", "office31", None)
    assert task.target == DomainSpec("folder", "webcam", "office31", None)
    assert parse_task("usps->mnist") == Task(
        DomainSpec("digits", "usps", "digits", None), DomainSpec("digits", "mnist", "digits", None)
    )
    lst = parse_task("list:/p/a.txt->list:/p/b.txt").source
    assert (lst.kind, lst.name, lst.path) == ("list", "a", "/p/a.txt")
    assert str(lst) == "list:/p/a.txt"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("amazon->webcam", "'amazon'"),
        ("usps->svhn", "'svhn'"),
        ("digits:svhn->mnist", "'digits:svhn'"),
        ("usps", "expected '<source>-><target>'"),
        ("usps->mnist->usps", "expected '<source>-><target>'"),
        ("usps->office31:amazon", "cannot mix digits and image domains"),
        ("folder:->mnist", "expected a path"),
        ("office31:ama zon->webcam", "'office31:ama zon'"),
    ],
)
def test_bad_tasks_are_one_line_data_errors(text: str, needle: str) -> None:
    with pytest.raises(DataError) as info:
        parse_task(text)
    message = str(info.value)
    assert needle in message and "\n" not in message
