"""Progress reporting for long jobs: tqdm when installed, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["progress"]


class _PlainProgress:
    """Minimal stand-in for ``tqdm`` that prints a line to stderr every few seconds."""

    def __init__(
        self,
        iterable: Iterable[Any] | None,
        total: int | None,
        desc: str,
        disable: bool,
        initial: int = 0,
    ) -> None:
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.disable = disable
        self.n = initial
        self._postfix = ""
        self._last = 0.0
        self._start = time.monotonic()

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self._postfix = s

    def set_postfix(self, **kwargs: Any) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if not self.disable and now - self._last >= 5.0:
            self._last = now
            self._print()

    def _print(self) -> None:
        total = f"/{self.total}" if self.total is not None else ""
        elapsed = time.monotonic() - self._start
        post = f" [{self._postfix}]" if self._postfix else ""
        print(f"{self.desc}: {self.n}{total} ({elapsed:.0f}s){post}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.disable and self.n:
            self._print()
        self.disable = True


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    disable: bool | None = None,
    initial: int = 0,
) -> Any:
    """Wrap an iterable (or make a manual counter) with a progress bar.

    Uses ``tqdm`` when it is installed (``pip install asna-metric[progress]``)
    and falls back to a plain line on stderr every few seconds.

    Args:
        iterable: What to iterate over; ``None`` gives a counter driven by
            ``update(n)``.
        total: Number of items, when the iterable has no ``len``.
        desc: Label shown before the counter.
        disable: ``True`` hides it; ``None`` hides it when stderr is not a
            terminal.
        initial: Count to start from (a resumed job).

    Returns:
        A tqdm-like object: iterable, context manager, with ``update``,
        ``set_postfix`` and ``close``.
    """
    if disable is None:
        disable = not sys.stderr.isatty()
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PlainProgress(iterable, total, desc, disable, initial)
    return tqdm(
        iterable, total=total, desc=desc, disable=disable, initial=initial, dynamic_ncols=True
    )
