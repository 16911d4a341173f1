"""verbose=True: a tqdm bar when tqdm is installed, else one text line on
stderr when each phase or iteration ends (as the CLI writes to a pipe)."""

from __future__ import annotations

import math
import sys
from typing import Any


def _label(p: Any) -> str:
    if p.part == "coarse":
        prefix = "coarse: "
    elif p.part == "group":
        prefix = f"group {p.group + 1}/{p.n_groups}: "
    else:
        prefix = ""
    if p.phase == "iterate":
        what = f"iteration {p.iteration + 1}/{p.max_iter}"
    elif p.phase == "sample":
        what = "sampling"
    elif p.phase == "init":
        what = "initialising"
    elif p.phase == "assign":
        what = "labelling"
    elif p.phase == "route":
        what = "routing"
    else:
        what = f"refine pass {p.iteration + 1}"
    return prefix + what


class _TextDisplay:
    def __init__(self, what: str) -> None:
        self.what = what

    def __call__(self, p: Any) -> None:
        if p.total and p.done >= p.total:
            line = _label(p)
            if p.phase in ("iterate", "refine") and not math.isnan(p.objective):
                line += f": objective {p.objective:.8e}"
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class _TqdmDisplay:
    def __init__(self, tqdm: Any) -> None:
        self.tqdm = tqdm
        self.bar: Any = None
        self.key: Any = None

    def __call__(self, p: Any) -> None:
        key = (p.phase, p.part, p.level, p.group, p.run, p.iteration)
        if key != self.key:
            if self.bar is not None:
                self.bar.close()
            self.bar = self.tqdm(total=p.total, desc=_label(p), unit="rows", leave=False)
            self.key = key
        self.bar.n = p.done
        if not math.isnan(p.objective):
            self.bar.set_postfix(objective=f"{p.objective:.6e}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def make_display(what: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextDisplay(what)
    return _TqdmDisplay(tqdm)
