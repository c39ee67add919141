"""The profile and overrides a run folder was started with: ``<run>/settings.json``,
``{"profile": "cpu", "overrides": {"prompt.evidence": "stylometric", ...}}`` (values as given on the
command line). Every notebook's :func:`persrm_lib.run.notebook.start` applies them; a folder holds one
configuration, so other overrides or another profile for a folder that has outputs are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core import runfiles
from ..core.config import Profile, get_profile
from ..core.jsonl import JsonlFormatError, read_json, write_json_atomic
from ..core.runlock import LOCK_FILE


class RunSettingsError(ValueError):
    """Overrides that cannot apply to a run folder: unreadable, invalid, or not the folder's own."""


def read_settings(run_dir: str | Path) -> tuple[str | None, dict[str, Any]]:
    """The profile (None when unrecorded) and the overrides (``{}`` when the file is absent) stored in
    ``<run>/settings.json``; :class:`RunSettingsError` when it is not of that form."""
    path = runfiles.settings_path(Path(run_dir))
    if not path.is_file():
        return None, {}
    try:
        data = read_json(path)
    except JsonlFormatError as exc:
        raise RunSettingsError(f"{path}: not valid JSON ({exc}); delete it or fix it") from exc
    if not isinstance(data, dict) or not isinstance(data.get("overrides"), dict):
        raise RunSettingsError(f'{path}: expected {{"overrides": {{"setting.name": value, ...}}}}, got {data!r}')
    return (None if data.get("profile") is None else str(data["profile"])), dict(data["overrides"])


def read_overrides(run_dir: str | Path) -> dict[str, Any]:
    """The overrides of :func:`read_settings`."""
    return read_settings(run_dir)[1]


def check_overrides(profile: str, overrides: dict[str, Any]) -> Profile:
    """The profile with ``overrides``; :class:`RunSettingsError` for an unknown setting or a value of the
    wrong type or range."""
    if not overrides:  # nothing of --set to blame
        return get_profile(profile)
    try:
        return get_profile(profile, overrides)
    except (KeyError, ValueError) as exc:
        message = str(exc.args[0] if exc.args else exc).removeprefix(f"profile {profile!r}: ")
        raise RunSettingsError(f"--set for profile {profile!r}: {message}") from exc


def store_overrides(run_dir: str | Path, profile: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Validate ``overrides`` against ``profile`` and make them the run folder's; return what applies:
    a new (or empty) folder records them; with no overrides, the folder's stored ones apply; new
    overrides are accepted by a folder that stores the same settings once parsed (``0.30`` is ``0.3``).
    :class:`RunSettingsError`: a bad override, another profile, or overrides other than the folder's.
    """
    run = Path(run_dir)
    recorded, stored = read_settings(run)
    if recorded is not None and recorded != profile:
        raise RunSettingsError(
            f"{run} was started with profile {recorded!r}; it holds one configuration, so profile {profile!r} "
            "needs another --run-dir"
        )
    wanted = {str(k): v for k, v in overrides.items()}
    resolved = check_overrides(profile, wanted)
    if runfiles.settings_path(run).is_file():
        # compared as the settings they resolve to, so "0.30" and "0.3" are one configuration
        if wanted and get_profile(profile, stored) != resolved:
            raise RunSettingsError(
                f"{run} was started with {stored or 'no overrides'}; it holds one configuration, so {wanted} "
                "needs another --run-dir"
            )
        return stored
    outputs = [p.name for p in sorted(run.iterdir()) if p.name != LOCK_FILE] if run.is_dir() else []
    if outputs and wanted:
        raise RunSettingsError(
            f"{run} already holds outputs made without overrides ({', '.join(outputs)}); "
            f"run {wanted} in a new --run-dir"
        )
    if not outputs:  # a new folder records its configuration; an older one is left as it was
        write_json_atomic({"profile": profile, "overrides": wanted}, runfiles.settings_path(run), sort_keys=True)
    return wanted
