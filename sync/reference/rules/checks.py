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
import schwifty
import stdnum
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


def _matching(work: Work, name: str, *patterns: str) -> list[np.ndarray]:
    """Per pattern, the mask of rows whose (non-missing) value of field ``name`` matches it,
    and last the mask of rows with a value: one pass over the column, or over its distinct
    values (encoded once) when they repeat."""
    texts = work.arrow.get(name)
    if texts is None:
        texts = as_arrow(work.cols[name])  # text and None (all missing, say), in one call
    if texts is None:
        texts = pa.array([None if v is None else str(v) for v in work.cols[name]],
                         type=pa.string())
    masks = []
    if repeats(texts):  # sort codes, say: each distinct value is matched once
        distinct = pc.dictionary_encode(texts)
        for pattern in patterns:
            hits = pc.match_substring_regex(distinct.dictionary, pattern)
            masks.append(mask(pc.fill_null(pc.take(hits, distinct.indices), False)))
    else:
        masks += [mask(pc.fill_null(pc.match_substring_regex(texts, pattern), False))
                  for pattern in patterns]
    return [*masks, mask(pc.is_valid(texts))]


def _rows_matching(work: Work, name: str, pattern: str, match: bool = True) -> np.ndarray:
    """Rows whose (non-missing) value of field ``name`` does or does not match ``pattern``."""
    hits, present = _matching(work, name, pattern)
    return np.flatnonzero(hits if match else present & ~hits)


# The per-value checks (a library call per distinct value: IBAN, BIC, VAT with its country)
# judge a value by the value alone and by these libraries: the values they find good are kept
# from run to run under these rules (Work.known, Work.good), and only the others are judged
# again. A real ERP's suppliers each have their own bank details and VAT number, tens of
# microseconds a value: a minute a run at a million suppliers without it. Change the last
# number when a check's own logic changes.
CHECKED_RULES = f"python-stdnum {stdnum.__version__}; schwifty {schwifty.__version__}; 1"


def _failing_values(work: Work, name: str, values: Any,
                    problem: Callable[[str], str | None]) -> dict[int, str]:
    """Position -> problem of each failing value among ``values`` (distinct, Arrow text),
    judged by ``problem``; a value check ``name`` found good in an earlier run
    (``work.known``) is not judged again. The good values are added to ``work.good``."""
    n, values = len(values), values.cast(pa.string())  # the type the known values have
    known = work.known.get(name)
    old = (mask(pc.fill_null(pc.is_in(values, value_set=known), False))
           if n and known is not None and len(known) else np.zeros(n, dtype=bool))
    todo = np.flatnonzero(~old)
    failing: dict[int, str] = {}
    judged = values.take(pa.array(todo, type=pa.int64())).to_pylist() if len(todo) else []
    for i, value in zip(todo.tolist(), judged, strict=True):
        if (found := problem(str(value))) is not None:
            failing[i] = found
    good = np.ones(n, dtype=bool)
    good[list(failing)] = False
    # With the number of them that were known: all of them, as many as were known, and a
    # single part (distinct values) mean the same set as before.
    work.good.setdefault(name, []).append((values.filter(pa.array(good)),
                                           int(np.count_nonzero(old))))
    return failing


def settled_checks(work: Work) -> dict[str, Any]:
    """By check name, the values found good in this run (Arrow text, distinct) where they
    differ from those known before (``work.known``): what to keep for the next run."""
    out: dict[str, Any] = {}
    for name, parts in work.good.items():
        known = work.known.get(name)
        if len(parts) == 1:
            good, were_known = parts[0]
            if known is not None and were_known == len(good) == len(known):
                continue  # the same set: nothing to keep
            out[name] = good.cast(pa.string())
            continue
        good = pa.concat_arrays([p.cast(pa.string()) for p, _ in parts]).unique()
        if (known is not None and len(known) == len(good)
                and (not len(good) or bool(pc.all(pc.is_in(good, value_set=known)).as_py()))):
            continue
        out[name] = good
    return out


def _rows_failing(work: Work, name: str, rows: np.ndarray,
                  problem: Callable[[str], str | None], check: str) -> dict[int, str]:
    """Row -> problem text, judging each distinct value of field ``name`` among ``rows`` (as
    text; found in Arrow) once, and only when check ``check`` did not find it good before
    (:func:`_failing_values`); only the rows of failing values are visited one by one."""
    texts = work.arrow.get(name)
    if texts is not None:
        taken = texts.take(pa.array(rows, type=pa.int64()))
    else:
        taken = pa.array([str(v) for v in work.cols[name][rows].tolist()], type=pa.string())
    encoded = pc.dictionary_encode(taken)
    codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False),
                       dtype=np.intp)
    return _rows_of(_failing_values(work, check, encoded.dictionary, problem), codes, rows)


def _rows_of(failing: dict[int, str], codes: np.ndarray, rows: np.ndarray) -> dict[int, str]:
    """Row -> problem, from the problems of failing distinct values (by position) and each
    cell's value position ``codes[j]`` at row ``rows[j]``; only failing cells are visited."""
    if not failing:
        return {}
    hit = np.flatnonzero(np.isin(codes, list(failing)))
    return {int(rows[j]): failing[int(codes[j])] for j in hit.tolist()}


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
    values = work.cols[spec.name]  # made here only when a code is bad (they are named)
    rows = (np.flatnonzero(mask(pc.fill_null(pc.is_in(arrow, value_set=pa.array(bad)), False)))
            if arrow is not None else
            np.flatnonzero(pd.Series(values, dtype=object).isin(bad).to_numpy()))
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
    """Row -> problem of each VAT number that fails (in row order), judging each distinct
    (number, IsoCode) pair once (:func:`_failing_values`, check ``vat``): the pairs are found
    in Arrow when both columns are Arrow text, no value made into an object."""
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
    country_texts = pa.array([""], type=pa.string())
    if countries is not None:
        country_codes = pc.dictionary_encode(countries.take(at))
        country_texts = pa.concat_arrays([country_texts,
                                          country_codes.dictionary.cast(pa.string())])
        # -1 for a missing country, shifted to 0: the pair's code is number * width + country
        country = np.asarray(pc.fill_null(country_codes.indices, -1).to_numpy(
            zero_copy_only=False), dtype=np.int64) + 1
        pair = pair * len(country_texts) + country
    if countries is None:  # the number's code is the pair's: already distinct and dense
        distinct, inverse = np.arange(len(number_codes.dictionary)), pair
    else:
        distinct, inverse = np.unique(pair, return_inverse=True)
    width = len(country_texts)
    keys = pc.binary_join_element_wise(
        country_texts.take(pa.array(distinct % width)),
        number_codes.dictionary.cast(pa.string()).take(pa.array(distinct // width)), _PAIR)
    return _rows_of(_failing_values(work, "vat", keys, _vat_pair_problem), inverse, present)


_PAIR = "\t"  # between a VAT pair's country ("" when missing) and number: neither holds one


def _vat_pair_problem(pair: str) -> str | None:
    country, number = pair.split(_PAIR, 1)
    return _vat_problem(number, country or None)


def _vat_failing_objects(work: Work, name: str) -> dict[int, str]:
    """:func:`_vat_failing` from the values (a column that is not Arrow text)."""
    values = work.cols[name]
    countries = work.cols.get("IsoCode", np.full(work.n, None, dtype=object))
    rows = np.flatnonzero(~none_mask(values))
    if not len(rows):
        return {}
    texts = [f"{countries[r] or ''}{_PAIR}{values[r]}" for r in rows.tolist()]
    try:
        pairs = pa.array(texts, type=pa.string())
    except (pa.ArrowException, UnicodeError):  # lone surrogates: judged here, every time
        found = {text: _vat_pair_problem(text) for text in set(texts)}
        return {int(r): p for r, text in zip(rows.tolist(), texts, strict=True)
                if (p := found[text]) is not None}
    encoded = pc.dictionary_encode(pairs)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.intp)
    return _rows_of(_failing_values(work, "vat", encoded.dictionary, _vat_pair_problem), codes,
                    rows)


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
                                      _iban_problem, "iban").items():
        work.add([row], spec, "bad_iban", f"{problem}; correct it or set [validation] bank",
                 _severity(validation.bank))


def _check_sort_code(work: Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    if validation.bank == "off":
        return
    sort_code, bic_shaped, present = _matching(work, spec.name, _SORT_CODE, _BIC_SHAPE)
    other = present & ~sort_code
    failing = _rows_failing(work, spec.name, np.flatnonzero(other & bic_shaped), _bic_problem,
                            "bic")
    neither = np.flatnonzero(other & ~bic_shaped).tolist()
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
