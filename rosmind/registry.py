"""One decorator registry per kind (robots, tasks, policies, devices).

Entries register themselves when their module is imported; each registry knows which
modules to import lazily on the first lookup, so ``import rosmind`` stays cheap. Where the
registry is given ``{name: module}``, ``get(name)`` imports only that entry's module: a node
hosting the scripted expert never imports torch (policy_node started 5-15 s slower before).

    @POLICIES.register("diffusion", config=DiffusionConfig)
    class DiffusionPolicy: ...

    POLICIES.get("diffusion").factory(cfg)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rosmind.errors import UnknownNameError


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    config: type | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Name -> (factory, config class). Lookups of unknown names raise ``UnknownNameError``."""

    def __init__(self, kind: str, modules: tuple[str, ...] | dict[str, str] = ()):
        self.kind = kind
        self._by_name = dict(modules) if isinstance(modules, dict) else {}
        self._modules = tuple(dict.fromkeys(self._by_name.values())) if self._by_name else tuple(modules)
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def register(self, name: str, config: type | None = None, **meta: Any):
        def deco(obj):
            if name in self._entries and self._entries[name].factory is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = Entry(name, obj, config, dict(meta))
            return obj

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for mod in self._modules:
            importlib.import_module(mod)

    def get(self, name: str) -> Entry:
        if name not in self._entries and name in self._by_name:
            importlib.import_module(self._by_name[name])
        if name not in self._entries:
            self._load()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


ROBOTS = Registry("robot", ("rosmind.sim.robots",))
TASKS = Registry("task", ("rosmind.sim.tasks", "rosmind.sim.tasks_bimodal", "rosmind.sim.tasks_contact",
                             "rosmind.sim.tasks_peg"))
POLICIES = Registry("policy", {"expert": "rosmind.policies.expert", "wipe_expert": "rosmind.policies.expert",
                               "peg_expert": "rosmind.policies.expert", "instant": "rosmind.policies.instant",
                               "diffusion": "rosmind.policies.diffusion", "carp": "rosmind.policies.carp", "rdp": "rosmind.policies.rdp",
                               "ppo_locomotion": "rosmind.policies.locomotion", "resip": "rosmind.policies.resip"})
DEVICES = Registry("teleop device", ("rosmind.hardware.teleop.devices",))
