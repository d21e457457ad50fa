"""``SimWrapper``: the base of robots that change what ``reset``/``read`` return (noise, camera
frames) and pass everything else (``write``, ``step``, ``task_status``, ``spec``...) through."""

from __future__ import annotations


class SimWrapper:
    def __init__(self, sim):
        self.sim = sim

    def __getattr__(self, name):
        if name == "sim":  # not set yet (e.g. during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.sim, name)

    def __enter__(self):
        self.sim.connect()
        return self

    def __exit__(self, *exc):
        self.sim.disconnect()
