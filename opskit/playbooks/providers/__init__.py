"""The provider actions a playbook step may name."""

from __future__ import annotations

from opskit.playbooks.providers.base import Action
from opskit.playbooks.providers.compose import ComposeScale
from opskit.playbooks.providers.exec import Exec
from opskit.playbooks.providers.http import HttpRequest
from opskit.playbooks.providers.kubernetes import PatchHpa, RolloutStatus, Scale, SetResources
from opskit.playbooks.providers.local import LocalScale

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (Exec(), HttpRequest(), Scale(), PatchHpa(), SetResources(), RolloutStatus(), ComposeScale(),
              LocalScale())
}
ACTIONS["http"] = ACTIONS["http.request"]


def get_action(name: str) -> Action | None:
    return ACTIONS.get(name)
