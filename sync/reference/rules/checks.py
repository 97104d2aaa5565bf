"""The validation rules of normalisation: per-field checks and the rules across rows.

Field checks (:data:`CHECKS`, chosen by ``FieldSpec.check``): ISO 3166 country and ISO 4217
currency codes (upper-cased, then looked up in pycountry), non-negative rates, email shape
(a warning only), VAT numbers with python-stdnum, IBANs with schwifty, and UK sort codes or
BICs; the VAT and bank outcomes follow ``[validation]`` (reject, warn or off). Across rows:
keys that collide once folded (:func:`collisions`) and the one base currency
(:func:`base_currency`). Every rule only adds findings to the
:class:`~sync.reference.rules.findings.Work`;
turning them into rejected rows is :mod:`sync.reference.rules.normalise`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pycountry
from schwifty import BIC, IBAN
from stdnum import get_cc_module, vatin
from stdnum.exceptions import ValidationError

from sync.foundation.config import ValidationConfig
from sync.foundation.entities import FieldSpec
from sync.reference.rules.columns import as_arrow, mask, none_mask, repeats
from sync.reference.rules.findings import Severity, Work
from sync.reference.rules.keys import duplicate_groups


def collisions(work: Work, keys: np.ndarray) -> None:
    """Reject every member of each group of keys that fold to the same collision key."""
    arrow = work.arrow.get(work.kind.key[0]) if len(work.kind.key) == 1 else None
    label = " / ".join(work.kind.key)
    for members in duplicate_groups(keys, arrow):
        listed = [f"{_raw_key(work, r)!r} (row {work.number(r)})" for r in members[:10]]
        more = f" and {len(members) - 10} more" if len(members) > 10 else ""
        detail = (f"collides with other rows once case, spacing and leading zeros are ignored: "
                  f"{', '.join(listed)}{more}; all are held back until the {label} values are "
                  "made unique in the source")
        work.add(members, work.kind.field(work.kind.key[-1]), "duplicate_key", detail)


def _raw_key(work: Work, row: int) -> str:
    parts = [work.raw[n].iat[row] if n in work.raw else None for n in work.kind.key]
    return " / ".join("" if p is None or p is pd.NA else str(p) for p in parts)

def base_currency(work: Work, rejected: set[int]) -> None:
    """Exactly one IsBase currency with Rate 1, else every currency row is rejected."""
    live = [r for r in range(work.n) if r not in rejected]
    base = [r for r in live if work.cols["IsBase"][r] is True]
    codes = [str(work.cols["Code"][r]) for r in base]
    if not live or (len(base) == 1 and work.cols["Rate"][base[0]] == 1):
        return
    if not base:
        detail = "no currency has IsBase = true; mark exactly one base currency in the source"
    elif len(base) > 1:
        detail = (f"{len(base)} currencies have IsBase = true ({', '.join(codes[:10])}); "
                  "exactly one base currency is allowed, fix IsBase in the source")
    else:
        detail = (f"the base currency {codes[0]} has Rate {work.cols['Rate'][base[0]]}; a base "
                  "currency's Rate must be 1, fix it in the source")
    detail += " (every currency row is held back until then)"
    work.add(live, work.kind.field("IsBase"), "base_currency", detail)


# Field checks. Each looks at a column once: regular expressions run over the whole column in
# one vector pass, and the library checks (pycountry, stdnum, schwifty) run once per distinct
# value, cached across runs, so a million suppliers cost what their distinct values cost.

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_SORT_CODE = r"^[0-9]{2}-?[0-9]{2}-?[0-9]{2}$"
_BIC_SHAPE = r"^[A-Za-z]{6}[A-Za-z0-9]{2}([A-Za-z0-9]{3})?$"
_IBAN_SHAPE = r"^[A-Za-z]{2}[0-9]{2}[A-Za-z0-9 ]{11,}$"


def _rows_matching(work: Work, name: str, pattern: str, match: bool = True) -> np.ndarray:
    """Rows whose (non-missing) value of field ``name`` does or does not match ``pattern``."""
    texts = work.arrow.get(name)
    if texts is None:
        texts = pa.array([None if v is None else str(v) for v in work.cols[name]],
                         type=pa.string())
    if repeats(texts):  # sort codes, say: each distinct value is matched once
        distinct = pc.dictionary_encode(texts)
        hits = pc.take(pc.match_substring_regex(distinct.dictionary, pattern), distinct.indices)
    else:
        hits = pc.match_substring_regex(texts, pattern)
    wanted = hits if match else pc.invert(hits)
    return np.flatnonzero(mask(pc.fill_null(wanted, False)))


def _rows_failing(work: Work, name: str, rows: np.ndarray,
                  problem: Callable[[str], str | None]) -> dict[int, str]:
    """Row -> problem text, calling ``problem`` once per distinct value of field ``name``
    among ``rows`` (as text; found in Arrow when the column is Arrow text); only the rows of
    failing values are visited one by one."""
    texts = work.arrow.get(name)
    if texts is not None:
        encoded = pc.dictionary_encode(texts.take(pa.array(rows, type=pa.int64())))
        codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.intp)
        distinct: list[Any] = encoded.dictionary.to_pylist()
    else:
        codes, uniques = pd.factorize(work.cols[name][rows].astype(str).astype(object))
        distinct = uniques.tolist()
    found = [problem(str(v)) for v in distinct]
    failing = [i for i, p in enumerate(found) if p is not None]
    if not failing:
        return {}
    hit = np.flatnonzero(np.isin(codes, failing))
    return {int(rows[j]): str(found[codes[j]]) for j in hit.tolist()}


def _severity(setting: str) -> Severity:
    return "reject" if setting == "reject" else "warn"


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.currencies)


def _upper_code(work: Work, spec: FieldSpec, known: frozenset[str], reason: str,
                what: str) -> None:
    arrow = work.arrow.get(spec.name)
    if arrow is not None:
        uniques = [u for u in pc.unique(arrow).to_pylist() if u is not None]
    else:
        values = work.cols[spec.name]
        uniques = [str(u) for u in pd.unique(values[~none_mask(values)])]
    if any(u != u.upper() for u in uniques):
        values = work.cols[spec.name]
        present = np.flatnonzero(~none_mask(values))
        values = values.copy()
        values[present] = np.array([str(v).upper() for v in values[present]], dtype=object)
        work.cols[spec.name], arrow = values, None
        work.arrow.pop(spec.name, None)
    bad = sorted({u.upper() for u in uniques} - known)
    if not bad:
        return
    hits = pc.is_in(arrow, value_set=pa.array(bad)) if arrow is not None else None
    rows = (np.flatnonzero(mask(pc.fill_null(hits, False))) if hits is not None else
            np.flatnonzero(pd.Series(values, dtype=object).isin(bad).to_numpy()))
    values = work.cols[spec.name]
    for row in rows.tolist():
        work.add([row], spec, reason, f"{values[row]!r} is not {what}; correct it in the source")


def _check_country(work: Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    _upper_code(work, spec, _countries(), "bad_iso_country",
                "an ISO 3166 two-letter country code (GB, IE, US...)")


def _check_currency(work: Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    _upper_code(work, spec, _currencies(), "bad_currency",
                "an ISO 4217 currency code (GBP, EUR, USD...)")


def _check_rate(work: Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    values = work.cols[spec.name]
    rows = [r for r, v in enumerate(values.tolist()) if isinstance(v, float) and v < 0]
    work.add(rows, spec, "negative_rate", "is negative; a rate must be 0 or more")


def _check_email(work: Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    rows = _rows_matching(work, spec.name, EMAIL_PATTERN, match=False)
    work.add(rows.tolist(), spec, "bad_email",
             "does not look like one email address (name@example.com); it is sent as it is",
             "warn")


@lru_cache(maxsize=1 << 16)
def _vat_problem(number: str, country: str | None) -> str | None:
    compact = re.sub(r"[\s.\-]", "", number).upper()
    if not compact[:2].isalpha():
        if not country:
            return None  # no country to check it against
        compact = {"GR": "EL"}.get(country, country) + compact
    prefix = compact[:2]
    if prefix not in ("EL", "XI") and get_cc_module(prefix.lower(), "vat") is None:
        return None  # a country python-stdnum cannot check
    try:
        vatin.validate(compact)
    except ValidationError as exc:
        return f"{number!r} is not a valid VAT number ({exc})"
    return None


def _check_vat(work: Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    if validation.vat == "off":
        return
    for row, problem in _vat_failing(work, spec.name).items():
        work.add([row], spec, "bad_vat", f"{problem}; correct it or set "
                 "[validation] vat", _severity(validation.vat))


def _vat_failing(work: Work, name: str) -> dict[int, str]:
    """Row -> problem of each VAT number that fails (in row order), checking each distinct
    (number, IsoCode) pair once: in Arrow when both columns are Arrow text, no value made
    into an object."""
    numbers, countries = work.arrow.get(name), None
    if "IsoCode" in work.cols:
        countries = work.arrow.get("IsoCode")
        if countries is None:
            countries = as_arrow(work.cols["IsoCode"])
        if countries is None:
            return _vat_failing_objects(work, name)
    if numbers is None:
        return _vat_failing_objects(work, name)
    present = np.flatnonzero(mask(numbers.is_valid()))
    if not len(present):
        return {}
    at = pa.array(present, type=pa.int64())
    number_codes = pc.dictionary_encode(numbers.take(at))
    pair = np.asarray(number_codes.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    country_values: list[Any] = [None]
    if countries is not None:
        country_codes = pc.dictionary_encode(countries.take(at))
        country_values = [None, *country_codes.dictionary.to_pylist()]
        # -1 for a missing country, shifted to 0: the pair's code is number * width + country
        country = np.asarray(pc.fill_null(country_codes.indices, -1).to_numpy(
            zero_copy_only=False), dtype=np.int64) + 1
        pair = pair * len(country_values) + country
    distinct, inverse = np.unique(pair, return_inverse=True)
    texts = number_codes.dictionary.to_pylist()
    width = len(country_values)
    found = [_vat_problem(str(texts[int(code) // width]), country_values[int(code) % width])
             for code in distinct.tolist()]
    failing = [i for i, p in enumerate(found) if p is not None]
    if not failing:
        return {}
    hit = np.flatnonzero(np.isin(inverse, failing))
    return {int(present[j]): str(found[int(inverse[j])]) for j in hit.tolist()}


def _vat_failing_objects(work: Work, name: str) -> dict[int, str]:
    """:func:`_vat_failing` value by value (a column that is not Arrow text)."""
    values = work.cols[name]
    countries = work.cols.get("IsoCode", np.full(work.n, None, dtype=object))
    rows = np.flatnonzero(~none_mask(values)).tolist()
    pairs = {(str(values[r]), countries[r]) for r in rows}
    found = {pair: _vat_problem(*pair) for pair in pairs}
    return {row: problem for row in rows
            if (problem := found[(str(values[row]), countries[row])]) is not None}


@lru_cache(maxsize=1 << 16)
def _iban_problem(value: str) -> str | None:
    try:
        IBAN(value)
    except ValueError as exc:
        return f"{value!r} looks like an IBAN but is not a valid one ({exc})"
    return None


@lru_cache(maxsize=1 << 16)
def _bic_problem(value: str) -> str | None:
    try:
        BIC(value)
    except ValueError as exc:
        return f"{value!r} is not a valid BIC ({exc})"
    return None


def _check_iban(work: Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    if validation.bank == "off":
        return
    for row, problem in _rows_failing(work, spec.name,
                                      _rows_matching(work, spec.name, _IBAN_SHAPE),
                                      _iban_problem).items():
        work.add([row], spec, "bad_iban", f"{problem}; correct it or set [validation] bank",
                 _severity(validation.bank))


def _check_sort_code(work: Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    if validation.bank == "off":
        return
    other = _rows_matching(work, spec.name, _SORT_CODE, match=False)
    shaped = np.intersect1d(other, _rows_matching(work, spec.name, _BIC_SHAPE))
    failing = _rows_failing(work, spec.name, shaped, _bic_problem)
    neither = np.setdiff1d(other, shaped).tolist()
    if neither:  # only then are the column's values made (it may be held as Arrow)
        values = work.cols[spec.name]
        for row in neither:
            failing[row] = f"{values[row]!r} is neither a UK sort code (12-34-56) nor a BIC"
    for row, problem in sorted(failing.items()):
        work.add([row], spec, "bad_bank", f"{problem}; correct it or set [validation] bank",
                 _severity(validation.bank))


# The checks that change values (they upper-case codes): run before any digest is made. The
# others only add findings.
TRANSFORMING = frozenset({"iso_country", "currency"})

CHECKS: dict[str, Callable[[Work, FieldSpec, ValidationConfig], None]] = {
    "iso_country": _check_country, "currency": _check_currency, "rate": _check_rate,
    "email": _check_email, "vat": _check_vat, "iban": _check_iban,
    "sort_code_or_bic": _check_sort_code,
}
