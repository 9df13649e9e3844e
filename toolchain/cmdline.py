"""The kernel command line as the kernel checks it, so a task can refuse a bad `--append` before booting.

The table is the kernel's own: ``kernel/cmdline_keys.h`` (one ``KEY_<KIND>(...)`` per line),
read here at run time, so there is nothing to keep in step by hand.  ``rejections`` mirrors
``cmdline_validate`` / ``cmdline_explain`` in kernel/cmdline.c word for word: for each word the
kernel would reject it gives the exact line the kernel prints (``rejected hz=0: out of range
1..1000000; using hz=100``); tests/test_cmdline.py boots the kernel to prove that they agree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

from .errors import UsageError
from .paths import ROOT

KEYS_FILE = ROOT / "kernel" / "cmdline_keys.h"
HEADER = ROOT / "kernel" / "cmdline.h"

_ENTRY = re.compile(r"^KEY_(FLAG|WORD|TEXT|ULONG|ENUM)\((.*)\)\s*$")
_ARG = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[^,]+)\s*(?:,|$)')


@dataclass(frozen=True)
class Key:
    name: str
    kind: str                   # FLAG WORD TEXT ULONG ENUM
    help: str
    min: int = 0
    max: int = 0
    default: int = 0            # ULONG
    choices: Tuple[str, ...] = ()
    default_word: str = ""      # ENUM: "" means the key is absent by default

    def usage(self) -> str:
        """How the key is written: ``hz=1..1000000``, ``pti=on|off``, ``test[=GLOB]``."""
        return {
            "FLAG": self.name,
            "WORD": f"{self.name}[=VALUE]",
            "TEXT": f"{self.name}=VALUE",
            "ULONG": f"{self.name}={self.min}..{self.max}",
            "ENUM": f"{self.name}={'|'.join(self.choices)}",
        }[self.kind]


def _unquote(arg: str) -> str:
    arg = arg.strip()
    if arg.startswith('"') and arg.endswith('"'):
        return bytes(arg[1:-1], "utf-8").decode("unicode_escape")
    return arg


def parse_table(text: str) -> Dict[str, Key]:
    """The entries of a cmdline_keys.h text, by name."""
    keys: Dict[str, Key] = {}
    for number, line in enumerate(text.splitlines(), 1):
        m = _ENTRY.match(line.strip())
        if not m:
            continue
        kind = m.group(1)
        args = [_unquote(a) for a in _ARG.findall(m.group(2))]
        want = {"FLAG": 2, "WORD": 2, "TEXT": 2, "ULONG": 5, "ENUM": 4}[kind]
        if len(args) != want:
            raise ValueError(f"{KEYS_FILE.name}:{number}: KEY_{kind} takes {want} arguments, not {len(args)}")
        name, help_text = args[0], args[-1]
        if kind == "ULONG":
            keys[name] = Key(name, kind, help_text, int(args[1]), int(args[2]), int(args[3]))
        elif kind == "ENUM":
            keys[name] = Key(name, kind, help_text, choices=tuple(args[1].split("|")), default_word=args[2])
        else:
            keys[name] = Key(name, kind, help_text)
    return keys


@lru_cache(maxsize=None)
def keys() -> Dict[str, Key]:
    """The kernel's table (kernel/cmdline_keys.h)."""
    return parse_table(KEYS_FILE.read_text())


@lru_cache(maxsize=None)
def limits() -> Tuple[int, int]:
    """(CMDLINE_MAX, CMDLINE_MAXARG) from kernel/cmdline.h."""
    text = HEADER.read_text()
    size = int(re.search(r"#define\s+CMDLINE_MAX\s+(\d+)", text).group(1))
    words = int(re.search(r"#define\s+CMDLINE_MAXARG\s+(\d+)", text).group(1))
    return size, words


def split(text: str) -> Tuple[List[Tuple[str, Optional[str]]], bool]:
    """``cmdline_parse``: (key, value or None for a bare word) per word, and whether it was cut."""
    size, max_words = limits()
    data = text.encode()
    truncated = len(data) >= size
    text = data[:size - 1].decode(errors="replace")
    words: List[Tuple[str, Optional[str]]] = []
    for word in re.split(r"[ \t\n]+", text):
        if not word:
            continue
        if len(words) == max_words:
            truncated = True
            break
        key, eq, value = word.partition("=")
        words.append((key, value if eq else None))
    return words, truncated


def _problem(key: Optional[Key], value: Optional[str]) -> Optional[str]:
    if key is None:
        return "unknown key"
    if key.kind == "FLAG":
        return "takes no value" if value is not None else None
    if key.kind == "WORD":
        return None
    if key.kind == "TEXT":
        return None if value else "needs a value"
    if key.kind == "ULONG":
        if value is None:
            return None
        if not re.fullmatch(r"[0-9]+", value) or int(value) >= 1 << 64:
            return "not a decimal number"
        if not key.min <= int(value) <= key.max:
            return f"out of range {key.min}..{key.max}"
        return None
    if value is not None and value in key.choices:
        return None
    return f"{'not one of' if value is not None else 'needs a value:'} {'|'.join(key.choices)}"


def _rejected(text: str) -> Tuple[List[Tuple[str, str, str]], bool]:
    """(word as written, why, what is used instead) per word the kernel rejects; cut or not."""
    table = keys()
    words, truncated = split(text)
    rejected = [_problem(table.get(k), v) is not None for k, v in words]

    def lookup(name: str) -> Optional[str]:
        for (k, v), bad in zip(reversed(words), reversed(rejected)):
            if k == name and not bad:
                return v if v is not None else ""
        return None

    out = []
    for (k, v), bad in zip(words, rejected):
        if not bad:
            continue
        key = table.get(k)
        used = lookup(k)
        if key is None:
            tail = "ignored"
        elif key.kind == "ULONG":
            tail = f"using {k}={int(used) if used else key.default}"
        elif used is None:
            tail = f"using {k}={key.default_word}" if key.kind == "ENUM" and key.default_word else "ignored"
        else:
            tail = f"using {k}{'=' if used or key.kind == 'TEXT' else ''}{used}"
        out.append((f"{k}{'=' + v if v is not None else ''}", str(_problem(key, v)), tail))
    return out, truncated


def rejections(text: str) -> List[str]:
    """The lines the kernel prints after ``cmdline: `` for this command line, in its order."""
    words, truncated = _rejected(text)
    lines = [f"rejected {word}: {why}; {tail}" for word, why, tail in words]
    if truncated:
        size, max_words = limits()
        lines.append(f"rejected everything after word {max_words} or byte {size - 1}: too long; ignored")
    return lines


def check(text: str, option: str = "--append") -> None:
    """``UsageError`` (one line) if the kernel would reject any word of ``text``."""
    words, truncated = _rejected(text or "")
    problems = [f"{word} ({why})" for word, why, _tail in words]
    if truncated:
        size, max_words = limits()
        problems.append(f"everything after word {max_words} or byte {size - 1} (too long)")
    if not problems:
        return
    known = ""
    if any(why == "unknown key" for _w, why, _t in words):
        known = f"; the kernel knows {', '.join(k.usage() for k in keys().values())}"
    raise UsageError(f"{option}: the kernel would reject {', '.join(problems)}{known} "
                     f"(kernel/cmdline_keys.h)")


def effective(text: str) -> Dict[str, Optional[str]]:
    """What the kernel uses for each key of ``text`` (valid words only, last one wins)."""
    table = keys()
    words, _ = split(text)
    out: Dict[str, Optional[str]] = {}
    for k, v in words:
        if _problem(table.get(k), v) is None:
            out[k] = v
    return out


__all__ = ["Key", "keys", "parse_table", "limits", "split", "rejections", "check", "effective",
           "KEYS_FILE"]
