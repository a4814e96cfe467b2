"""Column storage for metric records, and downsampling for charts.

A run with a million logging windows must not be kept as a million dicts:
records are flattened ("losses.mlm", "ranks.step_time.max") and appended to one
float array per key, NaN where a record lacks the key. Charts ask for at most a
few thousand points; `downsample` keeps each bucket's minimum and maximum so
that spikes (a straggler, a loss blow-up) survive the reduction.
"""

import math
import threading
from array import array

import numpy as np

NAN = float("nan")
MAX_COLUMNS = 96
MAX_DEPTH = 3


def flatten(record, out=None, prefix="", depth=0):
    """Numeric leaves of a (nested) record as {"a.b": float}; bools and strings are skipped."""
    out = {} if out is None else out
    for key, value in record.items():
        kind = type(value)
        if kind is float or kind is int:
            out[prefix + key] = value
        elif kind is dict and depth + 1 < MAX_DEPTH:
            flatten(value, out, prefix + key + ".", depth + 1)
    return out


def _floats(values):
    """values as array('d'), built whole before anyone appends it (so a bad value cannot
    leave columns of different lengths); non-numbers and out-of-range ints become NaN."""
    try:
        return array("d", values)
    except (TypeError, OverflowError):
        out = array("d")
        for v in values:
            try:
                out.append(v if type(v) in (int, float) else NAN)
            except OverflowError:
                out.append(NAN)
        return out


class Columns:
    """Append-only table of float columns, all of the same length.

    Readers get copies (`column`, `tail`), never views: a numpy view of an
    array('d') blocks the array from growing while the view lives (`extend`
    would raise BufferError and the rows it was given would be lost). The
    internal views live only under `self._lock`, which `extend` also takes, so
    one thread may append while others read, whatever locks the callers hold.
    """

    def __init__(self, max_columns=MAX_COLUMNS):
        self.n = 0
        self.cols = {}
        self.max_columns = max_columns
        self.dropped_keys = set()
        self._lock = threading.RLock()

    def __len__(self):
        return self.n

    def keys(self):
        with self._lock:
            return list(self.cols)

    def _new_column(self):
        return array("d", [NAN]) * self.n if self.n else array("d")

    def extend(self, rows):
        """Append flattened rows (dicts of key -> number)."""
        if not rows:
            return
        with self._lock:
            self._extend(rows)

    def _extend(self, rows):
        seen = set()
        for row in rows:
            seen.update(row)
        for key in seen:
            if key not in self.cols:
                if len(self.cols) >= self.max_columns:
                    self.dropped_keys.add(key)
                    continue
                self.cols[key] = self._new_column()
        chunks = {key: (_floats([row.get(key, NAN) for row in rows]) if key in seen
                        else array("d", [NAN]) * len(rows)) for key in self.cols}
        for key, chunk in chunks.items():
            self.cols[key].extend(chunk)
        self.n += len(rows)

    def extend_fields(self, records, keys):
        """Append raw records, taking only `keys`; anything not a number becomes NaN."""
        chunks = {key: _floats([rec.get(key, NAN) for rec in records]) for key in keys}
        with self._lock:
            self._append(chunks, len(records))

    def _append(self, chunks, rows):
        for key, chunk in chunks.items():
            if key not in self.cols:
                self.cols[key] = self._new_column()
            self.cols[key].extend(chunk)
        self.n += rows

    def _view(self, key, start=0):
        # internal only, under self._lock: callers drop the view before releasing it
        return np.frombuffer(self.cols[key], dtype=np.float64, count=self.n)[start:]

    def column(self, key):
        """A copy of one column (all NaN if the key is unknown)."""
        with self._lock:
            if key not in self.cols:
                return np.full(self.n, np.nan)
            return self._view(key).copy() if self.n else np.empty(0)

    def tail(self, key, k):
        """A copy of the last k values of a column."""
        with self._lock:
            if key not in self.cols or not self.n:
                return np.empty(0)
            return self._view(key, max(0, self.n - k)).copy()

    def last(self, key):
        """The last non-NaN value of a column, or None."""
        return self.last_in(key, max(0, self.n - 10000))

    def last_in(self, key, start):
        """The last finite value of a column at or after row `start`, or None."""
        with self._lock:
            if key not in self.cols or start >= self.n:
                return None
            tail = self._view(key, start)
            idx = np.flatnonzero(np.isfinite(tail))
            value = float(tail[idx[-1]]) if len(idx) else None
            del tail
            return value

    def changes(self, key, start, before=None):
        """[(row, old, new)] where a column's finite value changes at or after row `start`."""
        with self._lock:
            if key not in self.cols or start >= self.n:
                return []
            tail = self._view(key, start)
            idx = np.flatnonzero(np.isfinite(tail))
            values = tail[idx]  # fancy indexing: a copy
            del tail
        if not len(idx):
            return []
        previous = np.concatenate([[values[0] if before is None else before], values[:-1]])
        moved = np.flatnonzero(values != previous)
        return [(start + int(idx[i]), float(previous[i]), float(values[i])) for i in moved]


def to_json_list(values):
    """A float array as a JSON-safe list: NaN and inf become None."""
    return [v if math.isfinite(v) else None for v in values.tolist()]


def window(x, t0=None, t1=None):
    """Indices of the rows whose x is finite and lies in [t0, t1], or None for "all rows"."""
    if t0 is None and t1 is None:
        finite = np.isfinite(x)
        return None if finite.all() else np.flatnonzero(finite)
    mask = np.isfinite(x)
    if t0 is not None:
        mask &= x >= t0
    if t1 is not None:
        mask &= x <= t1
    return np.flatnonzero(mask)


def is_sorted(x):
    return len(x) < 2 or bool(np.all(x[1:] >= x[:-1]))


def downsample(x, ys, points=1500):
    """Reduce (x, {key: y}) to about `points` rows with per-bucket min and max.

    Each bucket of consecutive rows gives two output rows, placed at the bucket's
    first and last x. For each series the two values are its bucket minimum and
    maximum, in the order they occur, so the line keeps its extremes.
    Returns (x_out, {key: y_out}) as numpy arrays.
    """
    n = len(x)
    if n <= points or points < 4:
        return x, ys
    buckets = points // 2
    size = int(math.ceil(n / buckets))
    buckets = int(math.ceil(n / size))
    pad = buckets * size - n
    xb = np.concatenate([x, np.full(pad, x[-1])]).reshape(buckets, size) if pad else x.reshape(buckets, size)
    last_index = np.full(buckets, size - 1)
    if pad:
        last_index[-1] = size - 1 - pad
    x_out = np.empty(buckets * 2)
    x_out[0::2] = xb[:, 0]
    x_out[1::2] = xb[np.arange(buckets), last_index]
    out = {}
    rows = np.arange(buckets)
    for key, y in ys.items():
        yb = np.concatenate([y, np.full(pad, np.nan)]).reshape(buckets, size) if pad else y.reshape(buckets, size)
        finite = np.isfinite(yb)
        any_finite = finite.any(axis=1)
        if any_finite.all() and finite.all():  # dense column: no masking needed
            lo_i, hi_i = yb.argmin(axis=1), yb.argmax(axis=1)
        else:
            masked = np.where(finite, yb, np.inf)
            lo_i = masked.argmin(axis=1)
            np.negative(yb, out=masked, where=finite)  # -y where finite, still +inf elsewhere
            hi_i = masked.argmin(axis=1)
            del masked
        lo, hi = yb[rows, lo_i], yb[rows, hi_i]
        first = np.where(lo_i <= hi_i, lo, hi)
        second = np.where(lo_i <= hi_i, hi, lo)
        y_out = np.empty(buckets * 2)
        y_out[0::2] = np.where(any_finite, first, np.nan)
        y_out[1::2] = np.where(any_finite, second, np.nan)
        out[key] = y_out
    return x_out, out


def bucket_means(x, y, lo, hi, buckets):
    """Mean of y per equal-width bucket of x over [lo, hi]; NaN for empty buckets."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    width = (hi - lo) / buckets if hi > lo else 1.0
    idx = np.clip(((x - lo) / width).astype(np.int64), 0, buckets - 1)
    sums = np.bincount(idx, weights=y, minlength=buckets)
    counts = np.bincount(idx, minlength=buckets)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
