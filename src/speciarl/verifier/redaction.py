"""Keep secrets out of messages and saved configs.

Log messages show URLs without their ``user:password`` part (``redact_url``). Saved configs are a
harder case: Hydra writes the composed config and the command-line overrides to ``.hydra/*.yaml``
before any of our code runs, the loggers copy the config to ``hparams.yaml`` and W&B, and Hydra's
error line repeats the overrides. Redacting each of those copies would be a race we could lose,
so credentials are not accepted in the config at all: ``reject_url_credentials`` refuses any URL
with a userinfo part, at composition time (``CredentialCheck``, a Hydra callback that runs before
Hydra saves anything) and again at the start of ``train``/``evaluate``/``verify`` for callers
that compose configs themselves. Secrets come from the environment instead: the judge's API key
from the variable named by ``api_key_env``, a Redis password from ``cache.password_env``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# scheme://anything-without-slash-or-space@  : a URL carrying credentials.
_URL_WITH_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/\s@]+@")


class CredentialsInConfig(ValueError):
    """A URL in the config or the overrides carries a user:password part."""


def redact_url(url: str) -> str:
    """``scheme://user:secret@host/path`` -> ``scheme://***@host/path``; other URLs unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Every ``scheme://user:secret@`` in ``text`` as ``scheme://***@``."""
    return _URL_WITH_USERINFO.sub(lambda m: m.group(0).split("://", 1)[0] + "://***@", text)


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")


def reject_url_credentials(config: Any, overrides: Iterable[str] = ()) -> None:
    """Raise ``CredentialsInConfig`` (naming where, never the secret) if a URL carries credentials.

    ``config``: a plain container or an OmegaConf config (read without resolving interpolations,
    so ``${oc.env:...}`` is not expanded into the check, nor into any message).
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(config, DictConfig | ListConfig):
        config = OmegaConf.to_container(config, resolve=False)
    found = [(where, text) for where, text in _strings(config, "") if _URL_WITH_USERINFO.search(text)]
    found += [(f"override {i}", text) for i, text in enumerate(overrides) if _URL_WITH_USERINFO.search(text)]
    if found:
        places = "; ".join(f"{where}: {redact_text(text)}" for where, text in found)
        raise CredentialsInConfig(
            f"credentials in a URL ({places}): the config is saved in plain text (.hydra/, "
            "hparams.yaml, W&B), so it may not hold secrets. Give the URL without user:password@ "
            "and put the secret in an environment variable: the judge's API key in the one named by "
            "verifier.llm.api_key_env, a redis password in the one named by "
            "verifier.cache.password_env"
        )


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a dependency; this keeps the module importable
    _HydraCallback = object


class CredentialCheck(_HydraCallback):
    """Hydra callback: refuse a run whose config or overrides hold URL credentials, before Hydra
    writes ``.hydra/*.yaml`` (``on_run_start`` / ``on_multirun_start`` come before any job)."""

    def _check(self, config: Any) -> None:
        from omegaconf import OmegaConf

        overrides = OmegaConf.select(config, "hydra.overrides.task", default=None) or []
        task = {k: v for k, v in OmegaConf.to_container(config, resolve=False).items() if k != "hydra"}
        try:
            reject_url_credentials(task, list(overrides))
        except CredentialsInConfig as err:
            # Hydra turns a callback's exceptions into warnings and carries on (saving the config,
            # then echoing the overrides on error); SystemExit is not caught: the run ends here.
            raise SystemExit(f"{type(err).__name__}: {err}") from None

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config)
