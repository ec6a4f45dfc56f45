"""Lua scripts and their contracts: each script's KEYS and ARGV by name, read from its header.

A script in `lua/` states its inputs in two header lines (an included file may state its own,
as _queue_common.lua does for a queue's keys; the order never matters to anyone, only names do):

    -- KEYS: request, due, inflight, ...requests
    -- ARGV: id, now_ms, channel, ...ids

Each entry is a name followed by an optional description (commas inside parentheses are part of
it), or only a parenthesized remark; a name written `...name` takes every remaining key or
argument, so it comes last. The script
reads its inputs by name, `KEY.request` and `ARG.now_ms`, from tables this module builds in a
prologue, and a variadic name is a Lua array (`ARG.ids[1]`). Its wrapper in `app/storage/` passes
them by name too (`keys={"request": ..., "requests": [...]}`), so nobody counts positions: adding
a key changes the header, the wrapper and the line that uses it, and a wrapper that passes a name
the script does not declare (or misses one) fails on its first call.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).with_name("lua")

_HEADER = re.compile(r"^-- (KEYS|ARGV): (.*)$")
_CONTINUATION = re.compile(r"^--\s{3,}(\S.*)$")
_ENTRY_NAME = re.compile(r"(\.\.\.)?([a-z_][a-z0-9_]*)")


class Inputs:
    """The names of a script's KEYS or ARGV, in order, the last one possibly variadic."""

    def __init__(self, names: Sequence[str], rest: str | None):
        self.names = tuple(names)
        self.rest = rest
        self.count = len(self.names) + (rest is not None)

    def ordered(self, given: Mapping[str, Any], verb: str, what: str) -> list:
        """The values of `given` in the script's order, the variadic ones at the end."""
        if len(given) != self.count:
            expected = [*self.names, *([f"...{self.rest}"] if self.rest else [])]
            raise TypeError(f"{verb}.lua takes {what} {expected}, got {sorted(given)}")
        values = [given[name] for name in self.names]
        if self.rest is not None:
            values.extend(given[self.rest])
        return values

    def lua_table(self, array: str, table: str) -> str:
        """`local KEY = {request = KEYS[1], ...}`, the variadic tail copied into an array."""
        fields = ", ".join(f"{name} = {array}[{index}]" for index, name in enumerate(self.names, 1))
        lines = [f"local {table} = {{{fields}}}"]
        if self.rest is not None:
            first = len(self.names) + 1
            lines.append(f"{table}.{self.rest} = {{}}")
            lines.append(f"for i = {first}, #{array} do {table}.{self.rest}[i - {first - 1}] = {array}[i] end")
        return "\n".join(lines)


class Script:
    """One script of `lua/`: its source (includes expanded, prologue added) and its inputs."""

    def __init__(self, verb: str, directory: Path = LUA_DIR):
        self.verb = verb
        declared: dict[str, list[str]] = {"KEYS": [], "ARGV": []}
        self.body = expand(directory / f"{verb}.lua", declared)  # includes expanded
        self.keys = _inputs(declared["KEYS"], verb)
        self.args = _inputs(declared["ARGV"], verb)
        self.source = "\n".join([self.keys.lua_table("KEYS", "KEY"), self.args.lua_table("ARGV", "ARG"), self.body])

    def inputs(self, keys: Mapping[str, Any], args: Mapping[str, Any]) -> tuple[list, list]:
        return self.keys.ordered(keys, self.verb, "KEYS"), self.args.ordered(args, self.verb, "ARGV")

    def __repr__(self) -> str:
        return f"Script({self.verb!r})"


class ManyScript(Script):
    """A script run for many items in one call: the names in `each_keys` and `each_args` take one
    value per item, the others one value for all; the reply is the list of the script's replies,
    one per item, in order. The script's text is unchanged: it runs once per item with KEY and
    ARG set to that item's values, as a function, so its `return` ends that item's turn only.

    One call instead of a pipeline of one call per item: each shared key and argument is sent
    and read once, not once per item."""

    def __init__(self, verb: str, each_keys: Sequence[str], each_args: Sequence[str], directory: Path = LUA_DIR):
        super().__init__(verb, directory)
        if self.keys.rest or self.args.rest or not set(each_keys) <= set(self.keys.names) \
                or not set(each_args) <= set(self.args.names) or not each_keys:
            raise ValueError(f"{verb}.lua: cannot run for many items with keys {each_keys} and args {each_args}")
        self.each_keys, self.each_args = tuple(each_keys), tuple(each_args)
        self.keys = Inputs([name for name in self.keys.names if name not in self.each_keys], None)
        self.args = Inputs([name for name in self.args.names if name not in self.each_args], None)
        key_slots = "; ".join(f"KEY.{name} = KEYS[k + {i}]" for i, name in enumerate(self.each_keys, 1))
        arg_slots = "; ".join(f"ARG.{name} = ARGV[a + {i}]" for i, name in enumerate(self.each_args, 1))
        self.source = "\n".join([
            self.keys.lua_table("KEYS", "KEY"), self.args.lua_table("ARGV", "ARG"),
            "local function run_one()", self.body, "end",
            "local replies = {}",
            f"for i = 0, (#KEYS - {self.keys.count}) / {len(self.each_keys)} - 1 do",
            f"  local k = {self.keys.count} + i * {len(self.each_keys)}",
            f"  local a = {self.args.count} + i * {len(self.each_args)}",
            f"  {key_slots}",
            f"  {arg_slots}" if arg_slots else "",
            "  replies[i + 1] = run_one()",
            "end",
            "return replies"])

    def inputs(self, keys: Mapping[str, Any], args: Mapping[str, Any]) -> tuple[list, list]:
        """`keys` and `args` by name; each per-item name maps to a list of one value per item."""
        shared_keys = {name: value for name, value in keys.items() if name not in self.each_keys}
        shared_args = {name: value for name, value in args.items() if name not in self.each_args}
        key_values = self.keys.ordered(shared_keys, self.verb, "KEYS")
        arg_values = self.args.ordered(shared_args, self.verb, "ARGV")
        item_keys = [keys[name] for name in self.each_keys]
        item_args = [args[name] for name in self.each_args]
        if len({len(values) for values in item_keys + item_args}) > 1:
            raise TypeError(f"{self.verb}.lua for many items: per-item keys and args of different lengths")
        for values in zip(*item_keys):
            key_values.extend(values)
        for values in zip(*item_args):
            arg_values.extend(values)
        return key_values, arg_values

    def __repr__(self) -> str:
        return f"ManyScript({self.verb!r})"


def expand(path: Path, declared: dict[str, list[str]]) -> str:
    """The file's text with each `--#include NAME` replaced by that file of its folder; the
    header entries of every file read are added to `declared`, in the order they are read."""
    lines = []
    field = None
    for line in path.read_text().splitlines():
        if line.startswith("--#include "):
            line = expand(path.with_name(line.split(None, 1)[1].strip()), declared)
        elif header := _HEADER.match(line):
            field = header.group(1)
            declared[field].append(header.group(2))
        elif field and (more := _CONTINUATION.match(line)):
            declared[field][-1] += " " + more.group(1)
        else:
            field = None
        lines.append(line)
    return "\n".join(lines)


def _inputs(headers: list[str], verb: str) -> Inputs:
    names: list[str] = []
    rest = None
    for entry in (entry for header in headers for entry in _split_entries(header)):
        if entry.startswith("("):
            continue
        match = _ENTRY_NAME.match(entry)
        if match is None or rest is not None:
            raise ValueError(f"{verb}.lua: bad or misplaced header entry {entry!r}")
        if match.group(1):
            rest = match.group(2)
        else:
            names.append(match.group(2))
    if len(set(names) | {rest} - {None}) != len(names) + (rest is not None):
        raise ValueError(f"{verb}.lua: a name appears twice in its header")
    return Inputs(names, rest)


def _split_entries(header: str) -> list[str]:
    """Comma-separated entries, commas inside parentheses kept."""
    entries, depth, current = [], 0, []
    for char in header:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            entries.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    entries.append("".join(current).strip())
    return [entry for entry in entries if entry]
