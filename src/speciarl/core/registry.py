"""Named implementations a config selects by name (advantage estimators, policy losses, ...).

A config holds plain names; the name is checked where the registry is looked up, so a user's
own entry only has to be registered before the run looks it up, not before the config is built.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """A dict of name -> implementation whose lookups name the setting and list what is registered.

    Args:
        setting: the config key that selects an entry (``algorithm.policy_loss``), for errors.
        kind: what an entry is (``policy loss``), for errors.
    """

    def __init__(self, setting: str, kind: str) -> None:
        super().__init__()
        self.setting, self.kind = setting, kind

    def add(self, name: str, value: T) -> T:
        """Register ``value`` under ``name``; a name registered twice is an error."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self[name] = value
        return value

    def lookup(self, name: str) -> T:
        """The entry called ``name``, or a ValueError listing every registered name."""
        try:
            return self[name]
        except KeyError:
            raise ValueError(
                f"{self.setting}={name!r} is not a registered {self.kind}: expected one of {sorted(self)} "
                "(register your own before the run starts; see docs/extending.md)"
            ) from None
