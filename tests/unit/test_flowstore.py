"""The flows file: what is saved reads back, a bad file is set aside, a failed save
changes nothing."""

from __future__ import annotations

import json
import logging
import stat
from typing import TYPE_CHECKING

import pytest

from pyvswitch.ofproto.flow_cmd import ADD, apply_commands, parse_flow_command
from pyvswitch.ofproto.flow_dump import flow_text
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.vswitchd.flowstore import FlowStore, FlowStoreError

if TYPE_CHECKING:
    from pathlib import Path

    from pyvswitch.ofproto.bridge import Bridge

FLOWS = ["priority=10,ip,nw_dst=192.0.2.1,actions=mod_nw_src:192.0.2.9,output:2", "actions=drop"]


def add(bridge: Bridge, *flows: str) -> None:
    apply_commands(bridge, [parse_flow_command(f, ADD) for f in flows], 0.0)


def texts(bridge: Bridge) -> list[str]:
    return [flow_text(rule) for rule in bridge.rules()]


def test_saved_rules_come_back_in_place_of_the_defaults(tmp_path: Path) -> None:
    ofp = Ofproto()
    bridge = ofp.add_bridge("br0")
    add(bridge, *FLOWS)
    bridge.tables[0].remove(next(r for r in bridge.rules() if r.priority == 0))  # the NORMAL flow
    store = FlowStore(tmp_path / "flows.json")
    store.update(bridge)
    assert stat.S_IMODE((tmp_path / "flows.json").stat().st_mode) == 0o600
    document = json.loads((tmp_path / "flows.json").read_text())
    assert document["bridges"] == {"br0": texts(bridge)}

    again = Ofproto().add_bridge("br0")
    assert FlowStore(tmp_path / "flows.json").restore(again, 50.0)
    assert texts(again) == texts(bridge)
    assert {(r.created, r.used, r.n_packets) for r in again.rules()} == {(50.0, 50.0, 0)}


def test_a_bridge_not_in_the_file_keeps_its_defaults_dated_now(tmp_path: Path) -> None:
    bridge = Ofproto().add_bridge("br1")
    assert not FlowStore(tmp_path / "flows.json").restore(bridge, 7.0)
    assert texts(bridge) == ["priority=0,actions=NORMAL"]
    assert bridge.rules()[0].created == 7.0


def test_a_bridge_stored_with_no_rules_gets_none(tmp_path: Path) -> None:
    ofp = Ofproto()
    bridge = ofp.add_bridge("br0")
    bridge.tables[0].remove(bridge.rules()[0])
    FlowStore(tmp_path / "flows.json").update(bridge)
    again = Ofproto().add_bridge("br0")
    assert FlowStore(tmp_path / "flows.json").restore(again, 1.0)
    assert texts(again) == []


def test_a_corrupt_file_is_set_aside_and_named_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "flows.json"
    for content in (
        b"{not json",
        b'{"format": "something else"}',
        json.dumps(
            {"format": "pyvswitch-flows", "version": 1, "bridges": {"br0": ["actions=bogus"]}}
        ).encode(),
    ):
        path.write_bytes(content)
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            store = FlowStore(path)
        assert store.bridges == {}
        assert not path.exists()
        assert (tmp_path / "flows.json.bad").read_bytes() == content
        assert str(path) in caplog.text
        assert "default flows" in caplog.text
    assert "unknown action bogus" in caplog.text


def test_a_failed_save_changes_nothing(tmp_path: Path) -> None:
    ofp = Ofproto()
    bridge = ofp.add_bridge("br0")
    path = tmp_path / "flows.json"
    store = FlowStore(path)
    store.update(bridge)
    before = path.read_bytes()
    add(bridge, "priority=5,arp,actions=drop")
    store.path = tmp_path / "missing" / "flows.json"
    with pytest.raises(FlowStoreError, match=f"{store.path}: cannot save the flows"):
        store.update(bridge)
    assert store.bridges["br0"] == ["priority=0,actions=NORMAL"]
    assert path.read_bytes() == before


def test_a_temporary_file_left_by_a_crash_is_ignored(tmp_path: Path) -> None:
    bridge = Ofproto().add_bridge("br0")
    FlowStore(tmp_path / "flows.json").update(bridge)
    (tmp_path / "flows.json.tmp").write_text('{"half": ')
    store = FlowStore(tmp_path / "flows.json")
    assert store.bridges == {"br0": ["priority=0,actions=NORMAL"]}
    assert not (tmp_path / "flows.json.tmp").exists()


def test_forgotten_bridges_leave_the_file(tmp_path: Path) -> None:
    ofp = Ofproto()
    store = FlowStore(tmp_path / "flows.json")
    for name in ("br0", "br1"):
        store.update(ofp.add_bridge(name))
    store.forget(["br0", "br9"])
    assert list(json.loads((tmp_path / "flows.json").read_text())["bridges"]) == ["br1"]


def test_expired_rules_are_reported_so_that_they_can_be_saved(tmp_path: Path) -> None:
    ofp = Ofproto()
    bridge = ofp.add_bridge("br0")
    add(bridge, "hard_timeout=5,priority=9,arp,actions=drop")
    store = FlowStore(tmp_path / "flows.json")
    store.update(bridge)
    ofp.on_rules_expired = lambda name: store.update(ofp.bridges[name])
    ofp.run(4.0)
    assert len(FlowStore(tmp_path / "flows.json").bridges["br0"]) == 2
    ofp.run(5.0)
    assert FlowStore(tmp_path / "flows.json").bridges["br0"] == ["priority=0,actions=NORMAL"]
