"""Canonical keys and digests: the rules that make a source row and a remote record equal.

Values follow one rule per field type (:mod:`sync.reference.rules.values`), a column at a time
in :mod:`sync.reference.rules.columns`; callers import each rule from the module that defines it.

Keys: :func:`record_key` joins the canonical key fields with ``KEY_SEP`` (custom field values:
``Field + KEY_SEP + Code``). :func:`collision_key` folds a key so that variants a person would
call "the same code" meet: NFKC, casefold, surrounding whitespace stripped, and leading zeros
removed from a key part made only of digits ("0042" meets "42"; "A01" does not meet "A1").

Digest: :func:`record_digest` is the hex SHA-256 of :func:`canonical_json` of the record's sent
fields with missing values omitted (so omitted and null are equal); see
:mod:`sync.reference.rules.values` for
the JSON form. The bytes depend only on the values, so the digest is the same on every version
and machine.

Whole key columns: :func:`collision_keys`, :func:`positions`, :func:`strictly_increasing` and
:func:`duplicate_groups` take printable-ASCII keys through Arrow or numpy in one pass and only
the rest through Python, so a million keys cost what their odd ones cost.
"""

from __future__ import annotations

import hashlib
import itertools
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from json.encoder import encode_basestring
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sync.foundation.entities import FieldSpec, Kind
from sync.reference.rules.columns import (
    as_arrow,
    as_objects,
    held_arrow,
    mask,
    none_mask,
    object_values,
)
from sync.reference.rules.values import (
    canonical_json,
    canonical_value,
    number_text,
)

KEY_SEP = "\x1f"


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of ``text`` as UTF-8 (lone surrogates passed through)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def record_digest(kind: Kind, record: Mapping[str, Any], *, trim: bool = True) -> str:
    """Stable digest of a record's sent fields (tolerant canonical values, None omitted)."""
    values = {name: canonical_value(kind.field(name), record.get(name), trim=trim, strict=False)
              for name in kind.sent_fields}
    return sha256_hex(canonical_json({k: v for k, v in values.items() if v is not None}))


def _value_json(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return str(encode_basestring(value))
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return number_text(value)
    return canonical_json(value)


def _fragment(spec: FieldSpec) -> Any:
    prefix = encode_basestring(spec.name) + ":"
    return lambda v: prefix + _value_json(v)


def _as_text_array(arrow: Any) -> Any:
    """``arrow`` as one string or large-string array (a chunked or other text type is cast;
    ArrowException when it is not text, and the general path decides)."""
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    if pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type):
        return arrow
    return arrow.cast(pa.large_string())


def _cell_bytes(arrow: Any) -> np.ndarray:
    """The bytes every cell of a string or large-string array spans in its data buffer (a
    null's span may hold anything, so a byte found here is only possibly in a value)."""
    width = np.int32 if pa.types.is_string(arrow.type) else np.int64
    _, offsets, data = arrow.buffers()
    if offsets is None or data is None or not len(arrow):
        return np.zeros(0, dtype=np.uint8)
    bounds = np.frombuffer(offsets, dtype=width)[arrow.offset:arrow.offset + len(arrow) + 1]
    return np.frombuffer(data, dtype=np.uint8)[int(bounds[0]):int(bounds[-1])]


def _text_fragments(prefix: str, arrow: Any) -> list[Any] | None:
    """The parts that join to ``,"Name":"value"`` for every cell of an Arrow text column
    ("" where missing), or None when a cell holds a character JSON would escape other than a
    quote or backslash. A column without a missing cell is left to the row's one join, as
    the quoted column between its two constant texts (a join per column is the costly step).

    The column's bytes are searched once each for a control character (in UTF-8 a byte
    below 0x20 is always that character), a backslash and a quote: a memory scan, where
    Arrow's per-cell substring search cost a tenth of a second per column at a million
    rows. Only a column that holds a quote or backslash (or whose null cells' bytes do) is
    escaped; escaping one that holds none changes nothing."""
    quoted = _as_text_array(arrow)
    if quoted.null_count == len(quoted):
        return []  # missing in every row (an ERP's unused column): nothing to write
    raw = _cell_bytes(quoted)
    if len(raw) and int(raw.min()) < 0x20:
        return None
    if (raw == 0x5C).any():  # each replace copies the column
        quoted = pc.replace_substring(quoted, "\\", "\\\\")
    if (raw == 0x22).any():
        quoted = pc.replace_substring(quoted, '"', '\\"')
    if not quoted.null_count:
        return ["," + prefix + '"', quoted, '"']
    return [pc.fill_null(pc.binary_join_element_wise("," + prefix + '"', quoted, '"', ""), "")]


def _value_fragments(spec: FieldSpec, values: np.ndarray) -> Any:
    """``,"Name":json`` for every cell of an object column ("" where missing), or None when
    every cell is missing; whole numbers are written by Arrow, other values' JSON once per
    distinct value (by identity for lists and objects)."""
    prefix = "," + encode_basestring(spec.name) + ":"
    if not len(values) or none_mask(values).all():
        return None
    if spec.type == "int" and pd.api.types.infer_dtype(values, skipna=True) in (
            "integer", "empty"):
        try:
            ints = pa.array(values, type=pa.int64(), from_pandas=False)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            ints = None  # past 64 bits: the general path writes it
        if ints is not None:
            return pc.fill_null(pc.binary_join_element_wise(prefix, ints.cast(pa.string()), ""),
                                "")
    cells = values.tolist()
    # One JSON text per distinct object (rows that share a value share the object: see
    # columns._json_column), found by identity (hashed, in one pass) rather than a dict per row.
    ids = np.fromiter(map(id, cells), dtype=np.uint64, count=len(cells))
    inverse, uniques = pd.factorize(ids)
    first = np.empty(len(uniques), dtype=np.intp)
    first[inverse[::-1]] = np.arange(len(cells) - 1, -1, -1)  # the first row of each
    texts = ["" if cells[i] is None else prefix + _value_json(cells[i]) for i in first.tolist()]
    return pa.array(texts, type=pa.string()).take(pa.array(inverse.astype(np.int64)))


def _sha256_rows(joined: Any) -> list[str]:
    """Hex SHA-256 of each cell of an Arrow large-string array, as its UTF-8 bytes."""
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64)[
        joined.offset:joined.offset + len(joined) + 1].tolist()
    data = memoryview(joined.buffers()[2] or b"")
    sha = hashlib.sha256
    return [sha(data[a:b]).hexdigest() for a, b in itertools.pairwise(offsets)]


def _arrow_digests(kind: Kind, columns: Mapping[str, np.ndarray],
                   arrow: Mapping[str, Any]) -> list[str] | None:
    """:func:`digests` of every row of ``columns`` built in Arrow (see :func:`_arrow_texts`);
    None when a value needs the general path."""
    texts = _arrow_texts(kind, columns, arrow)
    return None if texts is None else _sha256_rows(texts)


def _arrow_texts(kind: Kind, columns: Mapping[str, np.ndarray],
                 arrow: Mapping[str, Any]) -> Any:
    """The canonical JSON text of every row of ``columns`` as an Arrow large-string array,
    joined in Arrow from its fields' fragments; None when a value needs the general path.

    Each fragment carries its own leading comma and is empty where the value is missing, so
    one plain join (no null skipping, which Arrow does many times slower) gives
    ``,"A":1,"B":"x"``; its first character then becomes the opening brace. When the first
    field has a value in every row, it opens the row with the brace instead (no second copy
    of the text)."""
    parts = []
    for name in sorted(kind.sent_fields):
        spec = kind.field(name)
        if spec.type == "str":
            texts = arrow.get(name)
            if texts is None:
                texts = as_arrow(columns[name])
            if texts is None:
                return None
            fragments = _text_fragments(encode_basestring(spec.name) + ":", texts)
            if fragments is None:
                return None
            parts += fragments
        else:
            fragments = _value_fragments(spec, columns[name])
            if fragments is not None:
                parts.append(fragments)
    large = pa.large_string()
    if not parts:  # no row has any value
        some = next(iter(columns.values()), None) if columns else None
        n = len(some) if some is not None else len(next(iter(arrow.values()), []))
        return pa.array(["{}"] * n, type=large)
    # When the first field has a value in every row, the row opens with it: no comma before.
    opens = isinstance(parts[0], str)
    if opens:
        parts[0] = "{" + parts[0][1:]
    parts.append("}")
    # Constant texts side by side (a quote closing one field, the name opening the next) are
    # one argument: the join's cost grows with its arguments.
    merged: list[Any] = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    joined = pc.binary_join_element_wise(
        *[pa.scalar(p, large) if isinstance(p, str) else p.cast(large) for p in merged],
        pa.scalar("", large))
    del parts, merged
    if opens:
        return joined
    opened = pc.binary_replace_slice(joined, 0, 1, "{")
    if pc.any(pc.equal(joined, pa.scalar("}", large))).as_py():  # a row without any value
        opened = pc.if_else(pc.equal(joined, pa.scalar("}", large)),
                            pa.scalar("{}", large), opened)
    return opened


def _general_digests(kind: Kind, columns: Mapping[str, np.ndarray],
                     rows: np.ndarray) -> list[str]:
    """:func:`digests` value by value in Python (any value, lone surrogates included)."""
    parts = []
    for name in sorted(kind.sent_fields):
        encode = _fragment(kind.field(name))
        parts.append([None if v is None else encode(v) for v in columns[name][rows]])
    sha = hashlib.sha256
    return [sha(("{" + ",".join(filter(None, row)) + "}").encode("utf-8", "surrogatepass"))
            .hexdigest() for row in zip(*parts, strict=True)]


# Rows digested together: Arrow's intermediate text for a batch stays a few tens of MB, and
# the memory freed by one batch is reused by the next instead of being faulted in afresh.
DIGEST_BATCH = 65_536


# Hex SHA-256 of every cell of each batch of Arrow texts, a list per batch (None for None), in
# order: what :func:`_sha256_rows` gives, possibly computed elsewhere (another process).
Hasher = Callable[[Iterator[Any]], Iterable[list[str] | None]]


def _length(columns: Mapping[str, np.ndarray]) -> int:
    """The rows of ``columns`` (0 without any), a held column not made into objects."""
    for name in columns:
        held = held_arrow(columns, name)
        return len(held) if held is not None else len(columns[name])
    return 0


def digests(kind: Kind, columns: Mapping[str, np.ndarray], rows: Iterable[int], *,
            arrow: Mapping[str, Any] | None = None, hasher: Hasher | None = None) -> list[str]:
    """Digests of ``rows`` of canonical ``columns`` (field name -> object array).

    Equal to :func:`record_digest` of each row when the values are already canonical; it skips
    re-canonicalisation, which is what makes it fast. ``arrow`` (optional) holds text columns
    already as Arrow string arrays (every row, in ``columns``' order), used as they are.
    Rows are digested in batches of :data:`DIGEST_BATCH`. ``hasher`` (optional) hashes the
    batches' texts when there are several (the caller's helper process, say): the digests are
    the same.
    """
    rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.intp)
    sent = kind.sent_fields
    texts = {name: a for name, a in (arrow or {}).items() if name in sent}
    # Only the fields not given as Arrow text are read as values: a column held as Arrow
    # (``columns.Columns``) is not made into objects here.
    names = [name for name in columns if name in sent and name not in texts]
    n = (len(columns[names[0]]) if names else
         len(next(iter(texts.values()))) if texts else _length(columns))
    every = len(rows) == n and (n == 0 or bool((rows == np.arange(n)).all()))

    def batch_texts(start: int) -> Any:
        """The Arrow texts of the batch at ``start``; None when it needs the general path."""
        batch = rows[start:start + DIGEST_BATCH]
        if every:
            stop = start + len(batch)
            cols = {name: columns[name][start:stop] for name in names}
            some = {name: a.slice(start, len(batch)) for name, a in texts.items()}
        else:
            cols = {name: columns[name][batch] for name in names}
            some = {name: a.take(pa.array(batch)) for name, a in texts.items()}
        try:
            return _arrow_texts(kind, cols, some)
        except (pa.ArrowException, UnicodeError, TypeError, ValueError):
            return None  # lone surrogates and the like: the general path decides

    def digest(start: int, joined: Any) -> list[str]:
        if joined is None:
            return _general_digests(kind, columns, rows[start:start + DIGEST_BATCH])
        return _sha256_rows(joined)

    starts = range(0, len(rows), DIGEST_BATCH)
    if len(starts) < 2:
        return [d for start in starts for d in digest(start, batch_texts(start))]
    out: list[str] = []
    if hasher is not None:
        hashed = hasher(batch_texts(start) for start in starts)
        for start, found in zip(starts, hashed, strict=True):
            out += found if found is not None else digest(start, None)
        return out
    # Arrow builds the next batch's texts (releasing the GIL) while this thread hashes one.
    with ThreadPoolExecutor(1, thread_name_prefix="icsync-digest") as pool:
        ahead = pool.submit(batch_texts, starts[0])
        for i, start in enumerate(starts):
            joined = ahead.result()
            if i + 1 < len(starts):
                ahead = pool.submit(batch_texts, starts[i + 1])
            out += digest(start, joined)
            del joined
    return out


def field_of(key: str) -> str:
    """The custom field a value row's key (``Field + KEY_SEP + Code``) belongs to."""
    return key.split(KEY_SEP, 1)[0]


def record_key(kind: Kind, record: Mapping[str, Any]) -> str:
    """The key of ``record``: its canonical key fields joined by KEY_SEP; ValueError if missing."""
    parts = []
    for name in kind.key:
        part = canonical_value(kind.field(name), record.get(name), strict=False)
        if part is None:
            raise ValueError(f"{kind.name}: the record has no {name}; every record needs one")
        parts.append(str(part))
    return KEY_SEP.join(parts)


def _fold(part: str) -> str:
    part = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", part).casefold()).strip()
    if part.isascii() and part.isdigit():
        return part.lstrip("0") or "0"
    return part


def key_order(keys: list[str]) -> np.ndarray:
    """The positions of ``keys`` in ``sorted()`` order: in Arrow (the byte order of UTF-8 is
    code point order), through Python for keys Arrow cannot hold."""
    try:
        arrow = pa.array(keys, type=pa.string())
    except (pa.ArrowException, UnicodeError):
        return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.intp)
    return np.asarray(pc.array_sort_indices(arrow).to_numpy(zero_copy_only=False),
                      dtype=np.intp)


def collision_key(key: str) -> str:
    """``key`` folded so that case, whitespace, width and zero-padding variants are equal."""
    return KEY_SEP.join(_fold(part) for part in key.split(KEY_SEP))


# Whole key columns. Each gives what the scalar rule above gives key by key; the Arrow passes
# cover printable ASCII, where NFKC and casefold reduce to lower-casing.


def _strip_zeros(parts: Any) -> Any:
    """Leading zeros off the all-digit parts (the regex runs only where a part starts "0")."""
    zero = pc.fill_null(pc.starts_with(parts, "0"), False)
    if not pc.any(zero).as_py():
        return parts
    stripped = pc.replace_substring_regex(pc.filter(parts, zero), "^0+([0-9]+)$", r"\1")
    return pc.replace_with_mask(parts, zero, stripped)


def _folded(keys: np.ndarray, arrow: Any = None) -> Any:
    """The collision keys of ``keys`` as an Arrow string array (null for a missing key)."""
    arr = as_arrow(keys) if arrow is None else arrow
    if arr is None:
        return pa.array([None if k is None else collision_key(str(k)) for k in keys.tolist()],
                        type=pa.string())
    fast = pc.fill_null(pc.match_substring_regex(arr, "^[ -~\x1f]*$"), False)
    multipart = bool(pc.any(pc.match_substring(arr, KEY_SEP)).as_py())
    if multipart:
        parts = pc.split_pattern(pc.ascii_lower(pc.filter(arr, fast)), KEY_SEP)
        flat = _strip_zeros(pc.utf8_trim(pc.list_flatten(parts), " "))
        folded = pc.binary_join(pa.ListArray.from_arrays(parts.offsets, flat), KEY_SEP)
    else:
        folded = _strip_zeros(pc.utf8_trim(pc.ascii_lower(pc.filter(arr, fast)), " "))
    slow = np.flatnonzero(~mask(fast))
    if not len(slow):
        return folded
    rest = pa.array([None if keys[i] is None else collision_key(str(keys[i]))
                     for i in slow.tolist()], type=pa.string())
    order = np.concatenate([np.flatnonzero(mask(fast)), slow])
    return pa.concat_arrays([folded, rest]).take(pa.array(np.argsort(order, kind="stable")))


def collision_keys(keys: Any, arrow: Any = None) -> np.ndarray:
    """:func:`collision_key` of every key (printable-ASCII keys folded in one vector pass).

    ``arrow``, when given, is ``keys`` already as an Arrow string array.
    """
    values = object_values(keys) if arrow is None else as_objects(keys)
    if not len(values):
        return np.empty(0, dtype=object)
    return np.asarray(_folded(values, arrow).to_numpy(zero_copy_only=False), dtype=object)


def _fixed_width(arrow: Any) -> np.ndarray | None:
    """Plain-ASCII keys as a numpy fixed-width byte array (NUL padded), else None."""
    if arrow is None or arrow.null_count or not len(arrow):
        return None
    if not pc.all(pc.string_is_ascii(arrow)).as_py() or pc.any(
            pc.match_substring(arrow, "\x00")).as_py():
        return None
    width = max(1, pc.max(pc.binary_length(arrow)).as_py())
    padded = pc.utf8_rpad(arrow, width=width, padding="\x00")
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)
    return np.frombuffer(padded.buffers()[2], dtype=f"S{width}", count=len(arrow),
                         offset=int(offsets[padded.offset]))


def positions(values: np.ndarray, within: np.ndarray, *, values_arrow: Any = None,
              within_arrow: Any = None) -> np.ndarray:
    """For each of ``values``, its position in ``within`` (unique keys), or -1 if absent.

    The very same keys on both sides match in place; sorted plain-ASCII keys on both sides
    are matched by binary search over fixed-width bytes; other keys through Arrow's hash
    lookup, or a dict when they are not all text.
    """
    left = values_arrow if values_arrow is not None else as_arrow(values)
    right = within_arrow if within_arrow is not None else as_arrow(within)
    if left is not None and right is not None:
        if len(left) == len(right) and not left.null_count and not right.null_count and bool(
                pc.all(pc.equal(left, right)).as_py()):
            return np.arange(len(left), dtype=np.int64)  # the same keys (a run changing none)
        if strictly_increasing(within, right):
            found = _search(_fixed_width(left), _fixed_width(right))
            if found is not None:
                return found
        hits = pc.fill_null(pc.index_in(left, value_set=right), -1)
        return np.asarray(hits.to_numpy(zero_copy_only=False), dtype=np.int64)
    lookup = {k: i for i, k in enumerate(within.tolist())}
    return np.array([lookup.get(k, -1) for k in values.tolist()], dtype=np.int64)


def _search(left: np.ndarray | None, right: np.ndarray | None) -> np.ndarray | None:
    if left is None or right is None:
        return None
    width = max(left.dtype.itemsize, right.dtype.itemsize)
    left, right = left.astype(f"S{width}"), right.astype(f"S{width}")
    at = np.minimum(np.searchsorted(right, left), len(right) - 1)
    return np.where(right[at] == left, at, -1).astype(np.int64)


def strictly_increasing(values: np.ndarray, arrow: Any = None) -> bool:
    """True when the keys are sorted and unique (code point order)."""
    arr = arrow if arrow is not None else as_arrow(values)
    if len(values if arr is None else arr) < 2:
        return True
    if arr is None or arr.null_count:
        return bool(pd.Index(values, dtype=object).is_monotonic_increasing
                    and pd.Index(values, dtype=object).is_unique)
    return bool(pc.all(pc.greater(arr[1:], arr[:-1])).as_py())


def in_key_order(keys: Any, *others: Any) -> tuple[Any, ...]:
    """Arrow text arrays ``keys`` and ``others`` (alike in length) taken in the keys' order
    (the byte order of UTF-8 is code point order); as they are when the keys are already
    sorted and unique, as a key column read in primary-key order is."""
    if keys.null_count or not strictly_increasing(np.empty(0, dtype=object), keys):
        order = pc.array_sort_indices(keys)
        return tuple(a.take(order) for a in (keys, *others))
    return (keys, *others)


def duplicate_groups(keys: np.ndarray, arrow: Any = None) -> list[list[int]]:
    """Positions of ``keys`` grouped by collision key, for every group of two or more.

    Printable-ASCII keys are folded and counted in Arrow; only the rest, and the members of
    colliding groups, are touched in Python.
    """
    if not len(keys):
        return []
    folded = _folded(as_objects(keys), arrow)
    if not folded.null_count and strictly_increasing(np.empty(0, object), folded):
        return []  # folding kept every key distinct and in order: nothing collides
    encoded = pc.dictionary_encode(folded).indices
    codes = np.asarray(pc.fill_null(encoded, -1).to_numpy(zero_copy_only=False), np.int64)
    counts = np.bincount(codes[codes >= 0], minlength=1)
    groups: dict[int, list[int]] = {}
    for pos in np.flatnonzero((codes >= 0) & (counts[np.maximum(codes, 0)] > 1)).tolist():
        groups.setdefault(int(codes[pos]), []).append(pos)
    return [groups[c] for c in sorted(groups, key=lambda c: groups[c][0])]
