"""Operator names become file names (``signal_<slug>.tif``): ASCII, readable where the name
has Latin letters (Vietnamese diacritics folded), and distinct for names without any."""

from __future__ import annotations

import hashlib
import re

import pytest

from telcoplan.outputs import signal_file, slug


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Viettel", "viettel"),
        ("Đà Nẵng Telecom", "da-nang-telecom"),
        ("VNPT / VinaPhone", "vnpt-vinaphone"),
        ("中国移动", "op-" + hashlib.sha256("中国移动".encode()).hexdigest()[:8]),
    ],
)
def test_operator_file_names(name, expected):
    assert slug(name) == expected
    assert signal_file(name) == f"signal_{expected}.tif"


def test_names_without_latin_letters_get_files_of_their_own():
    names = ["中国移动", "中国联通", "МТС", "Билайн", "", "!!!"]
    files = [slug(n) for n in names]
    assert len(set(files)) == len(names)
    assert all(re.fullmatch(r"op-[0-9a-f]{8}", f) for f in files)
    # what ASCII they keep, and the hash: 中国移动4 and 中国联通4 would both give "4"
    mixed = [slug("中国移动4"), slug("中国联通4")]
    assert mixed[0] != mixed[1]
    assert all(re.fullmatch(r"4-[0-9a-f]{8}", f) for f in mixed)
