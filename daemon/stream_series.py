"""Per-stream metric families kept as plain numbers and written straight to the text format.

prometheus-client renders each series of a scrape with a child lookup under a
lock, a ``Sample`` tuple, label escaping and checks, all of it holding the
interpreter lock.  At 10,000 streams (160,000 per-stream series: five counters
and gauges, and eleven smoothed scores per stream) that stopped collection and
scoring for over a second every scrape.  The families here keep a stream's
value in a dict and write a series with one f-string, with the stream's label
escaped once: about a tenth of the time per scrape (``benchmarks/scrape_cost.py``;
figures in ``benchmarks/RESULTS.md``).
They serve the families updated for every window; the rare per-stream
counters (drops, errors, reconnects) stay prometheus-client's.

Output follows the Prometheus text format 0.0.4 (``promtool check metrics``
is the judge, as for the rest of the exposition).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal


def escape_label(value: str) -> str:
    """A label value as the text format writes it between quotes."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _header(name: str, kind: str, documentation: str) -> str:
    text = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {text}\n# TYPE {name} {kind}\n"


class StreamLabels:
    """Each stream's ``stream="..."`` label, escaped once and shared by the families."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}

    def __call__(self, stream: str) -> str:
        label = self._labels.get(stream)
        if label is None:
            label = self._labels[stream] = f'stream="{escape_label(stream)}"'
        return label

    def forget(self, stream: str) -> None:
        self._labels.pop(stream, None)


class StreamFamily:
    """A counter or gauge with one series per stream (``name{stream="..."}``).

    No lock: each stream's series has one writer (the stream's source thread,
    the ingest collector, or the inference thread), and a dict store or
    ``list(dict.items())`` is atomic under the interpreter lock, so a scrape
    never sees a torn value.  An update is then a dict lookup and store.
    """

    def __init__(
        self, name: str, kind: Literal["counter", "gauge"], documentation: str, labels: StreamLabels
    ) -> None:
        self.name = f"{name}_total" if kind == "counter" else name
        self._header = _header(self.name, kind, documentation)
        self._labels = labels
        self._values: dict[str, float] = {}

    def inc(self, stream: str, amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0) to the stream's series; call from the stream's one writer thread."""
        if amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up (got {amount})")
        values = self._values
        values[stream] = values.get(stream, 0.0) + amount

    def set(self, stream: str, value: float) -> None:
        self._values[stream] = float(value)

    def touch(self, stream: str) -> None:
        """Show the stream's series (at 0) before its first update."""
        self._values.setdefault(stream, 0.0)

    def remove(self, stream: str) -> None:
        self._values.pop(stream, None)

    def render(self) -> str:
        name, label = self.name, self._labels
        items = list(self._values.items())
        return self._header + "".join([f"{name}{{{label(stream)}}} {value!r}\n" for stream, value in items])


class StreamScores:
    """``<name>{<label>, stream}``: each stream's latest scores over a label set, one list per window.

    The smoothed genre scores (``genretag_smoothed_score{genre, stream}``), and as
    many series as the model's heads give (moods, tags).  A window stores its list
    (one dict store, no lock: the inference thread is the only writer); a scrape
    writes the series, with six significant digits (a probability needs no more,
    and ``repr`` would cost 2.4 times as much).
    """

    def __init__(self, name: str, documentation: str, label_name: str, labels: StreamLabels) -> None:
        self.name = name
        self.label_name = label_name
        self._labels = labels
        self._header = _header(name, "gauge", documentation)
        self._names: tuple[str, ...] = ()
        self.latest: dict[str, list[float]] = {}  # stream -> scores in label order

    def start(self, names: Sequence[str]) -> None:
        """A model with these labels now serves: no stream has scores for it yet."""
        self.latest = {}
        self._names = tuple(f'{self.label_name}="{escape_label(name)}"' for name in names)

    def render(self) -> str:
        if not self._names:
            return ""
        name, label, names = self.name, self._labels, self._names
        lines = []
        for stream, values in list(self.latest.items()):
            suffix = f",{label(stream)}}} "  # labels in name order, as prometheus-client writes them
            lines += [
                f"{name}{{{n}{suffix}{value:.6g}\n"  # 6 digits: 2.4x faster than repr
                for n, value in zip(names, values, strict=False)
            ]
        return self._header + "".join(lines)


class StreamChoice:
    """``<name>{<label>, stream}``: one series per stream whose label says which of a few values holds.

    The stream's state (``genretag_stream_state{state, stream}``: 1 for the state it
    is in, 0 for the others, so ``sum by (state)`` counts streams per state) and its
    key (only the current key's series, valued by its confidence).  One writer per
    stream, as :class:`StreamFamily`.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        label_name: str,
        labels: StreamLabels,
        choices: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.label_name = label_name
        self.choices = tuple(choices)  # every one rendered (0 or 1); empty: only the current one, its value
        self._labels = labels
        self._header = _header(name, "gauge", documentation)
        self._current: dict[str, tuple[str, float]] = {}

    def set(self, stream: str, choice: str, value: float = 1.0) -> None:
        self._current[stream] = (choice, float(value))

    def get(self, stream: str) -> str | None:
        current = self._current.get(stream)
        return None if current is None else current[0]

    def remove(self, stream: str) -> None:
        self._current.pop(stream, None)

    def render(self) -> str:
        name, label, key = self.name, self._labels, self.label_name
        lines = []
        for stream, (choice, value) in list(self._current.items()):
            suffix = f",{label(stream)}}} "
            if self.choices:
                lines += [f'{name}{{{key}="{c}"{suffix}{1 if c == choice else 0}\n' for c in self.choices]
            else:
                lines.append(f'{name}{{{key}="{escape_label(choice)}"{suffix}{value:.6g}\n')
        return self._header + "".join(lines)
