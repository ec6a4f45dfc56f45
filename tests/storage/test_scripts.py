"""Script contracts: every script's header names its inputs, and a wrapper passes them by name."""
from __future__ import annotations

import pytest

from app.storage.scripts import LUA_DIR, ManyScript, Script

SCRIPTS = sorted(path.stem for path in LUA_DIR.glob("[a-z]*.lua"))


@pytest.mark.parametrize("verb", SCRIPTS)
def test_every_script_names_its_inputs(verb):
    script = Script(verb)  # a name given twice, or an unnamed entry, is refused here
    assert script.keys.names


def test_scripts_read_their_inputs_only_by_name():
    for path in LUA_DIR.glob("*.lua"):
        text = path.read_text()
        assert "KEYS[" not in text and "ARGV[" not in text, path.name


def test_only_the_declared_names_are_accepted():
    script = Script("request_cancel")
    keys = {name: f"k:{name}" for name in script.keys.names}
    args = {"notice": "", "id": "A", "grace_ms": 2, "now_ms": 1, "channel": "c", "gates": "p:", "lease_margin_ms": 3}
    # The included files' names come where they are included (_gates.lua's before the script's own).
    assert script.inputs(keys, args)[1] == ["p:", 2, 3, "A", 1, "c", ""]
    with pytest.raises(TypeError, match=r"request_cancel.lua takes ARGV \['gates', 'grace_ms', 'lease_margin_ms', "
                                        r"'id', 'now_ms', 'channel', 'notice'\]"):
        script.inputs(keys, {"id": "A", "now_ms": 1, "channel": "c", "grace_ms": 2})
    with pytest.raises(TypeError, match="takes KEYS"):
        script.inputs({**keys, "extra": "x"}, args)


@pytest.fixture
def lua_dir(tmp_path):
    (tmp_path / "_shared.lua").write_text(
        "-- KEYS: shared (a key every includer names)\n"
        "local function shared_key() return KEY.shared end\n")
    (tmp_path / "echo.lua").write_text(
        "-- Echo the inputs back by name.\n"
        "--#include _shared.lua\n"
        "-- KEYS: first (a description, with a comma), (a remark only), ...rest\n"
        "-- ARGV: when_ms, label,\n"
        "--       ...items\n"
        "return {shared_key(), KEY.first, #KEY.rest, KEY.rest[2] or '', ARG.when_ms, ARG.label,\n"
        "        table.concat(ARG.items, ',')}\n")
    return tmp_path


def test_names_reach_the_script_and_tails_arrive_as_arrays(store, lua_dir):
    script = Script("echo", lua_dir)
    assert (script.keys.names, script.keys.rest, script.args.names, script.args.rest) == (
        ("shared", "first"), "rest", ("when_ms", "label"), "items")
    reply = store.run(script, keys={"first": "k1", "shared": "k0", "rest": ["r1", "r2", "r3"]},
                      args={"label": "x", "when_ms": 5, "items": ["a", "b"]})
    assert reply == ["k0", "k1", 3, "r2", "5", "x", "a,b"]
    assert store.run(script, keys={"first": "k1", "shared": "k0", "rest": []},
                     args={"label": "y", "when_ms": 6, "items": []}) == ["k0", "k1", 0, "", "6", "y", ""]


def test_a_header_that_names_an_input_twice_is_refused(tmp_path):
    (tmp_path / "twice.lua").write_text("-- KEYS: a, b, a\nreturn 1\n")
    with pytest.raises(ValueError, match="twice"):
        Script("twice", tmp_path)


def test_a_script_runs_for_many_items_in_one_call(store, tmp_path):
    (tmp_path / "pair.lua").write_text(
        "-- KEYS: shared, item\n"
        "-- ARGV: label, n\n"
        "redis.call('RPUSH', KEY.shared, ARG.n)\n"
        "if ARG.n == '2' then return {'early', KEY.item} end\n"
        "return {ARG.label, KEY.item, ARG.n, redis.call('LLEN', KEY.shared)}\n")
    script = ManyScript("pair", each_keys=("item",), each_args=("n",), directory=tmp_path)
    assert (script.keys.names, script.args.names) == (("shared",), ("label",))
    assert store.run(script, keys={"shared": "list", "item": []}, args={"label": "x", "n": []}) == []  # loads it
    calls = store.redis.info("commandstats")["cmdstat_evalsha"]["calls"]
    reply = store.run(script, keys={"shared": "list", "item": ["a", "b", "c"]}, args={"label": "x", "n": [1, 2, 3]})
    # Each item sees what the items before it wrote; a `return` ends its own turn only.
    assert reply == [["x", "a", "1", 1], ["early", "b"], ["x", "c", "3", 3]]
    assert store.redis.info("commandstats")["cmdstat_evalsha"]["calls"] - calls == 1
    with pytest.raises(TypeError, match="different lengths"):
        script.inputs({"shared": "list", "item": ["a"]}, {"label": "x", "n": [1, 2]})
