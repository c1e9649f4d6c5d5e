"""Config reload (SIGHUP): read the file again and bring the running channels in line with it.

An invalid file is refused and nothing changes. Otherwise the new config is installed (the
``[redis]``, ``[server]``, ``[mqtt]`` and ``[metrics]`` sections in force stay: they take effect
at the next start) and each channel is compared with what runs: removed ones stop, new ones
start, ones with new connection settings are replaced, ones with a new policy re-sync. A channel
that cannot (re)start is reported by name and reason in the ``ReloadResult`` (and the log line
``reload_failed``); a channel it was to replace keeps running as it was, and the next reload
tries again.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import structlog

from ..core.config import Config, ConfigError
from . import systemd
from .channels import ChannelManager, ChannelNotStarted, channel_identity
from .config import load_config

__all__ = ["RESTART_ONLY", "ReloadResult", "apply_channels", "reload_config"]

log = structlog.get_logger("invsync.reload")

#: Sections a reload leaves as they are (their changes take effect at the next start).
RESTART_ONLY = ("redis", "server", "mqtt", "metrics", "logging")


class ReloadResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a reload did. ``ok`` is False when the file was refused (``refused`` says why) or a
    channel could not (re)start (``failed``: channel id -> reason)."""

    ok: bool
    channels: tuple[str, ...] = ()  # running after the reload
    resynced: tuple[str, ...] = ()  # re-pushed for a new policy
    failed: dict[str, str] = {}
    refused: str | None = None


async def reload_config(
    current: Config, channels: ChannelManager, *, install: Callable[[Config], None]
) -> ReloadResult:
    """Read ``current.source`` again; when valid, ``install`` the new config (restart-only
    sections kept) and apply its channels. Tells systemd it reloads, then how it went."""
    systemd.reloading()
    try:
        new = load_config(current.source)
    except ConfigError as exc:
        log.error("reload_refused", reason=str(exc))
        systemd.notify("READY=1", "STATUS=reload refused: invalid config")
        return ReloadResult(ok=False, refused=str(exc))
    for section in RESTART_ONLY:
        if getattr(current, section) != getattr(new, section):
            log.warning(
                "reload_needs_restart",
                section=section,
                reason=f"[{section}] changes take effect at the next start",
            )
    config = msgspec.structs.replace(
        new, **{section: getattr(current, section) for section in RESTART_ONLY}
    )
    install(config)
    result = await apply_channels(
        config, channels, resync_all=current.bundle_map() != config.bundle_map()
    )
    if result.ok:
        log.info("reloaded", channels=list(result.channels), resynced=list(result.resynced))
        systemd.notify("READY=1", f"STATUS=running, {len(result.channels)} channel(s)")
    else:
        log.error(
            "reload_failed",
            channels=list(result.channels),
            resynced=list(result.resynced),
            failed=result.failed,
        )
        systemd.notify(
            "READY=1", f"STATUS=reload failed for channel(s) {', '.join(sorted(result.failed))}"
        )
    return result


async def apply_channels(
    config: Config, channels: ChannelManager, *, resync_all: bool = False
) -> ReloadResult:
    """Make the running channels those ``config`` enables, with its settings and policies.

    Compared with what runs (not with the previous file), so a channel that failed to start
    is tried again. ``resync_all`` re-pushes every channel (the bundles changed); ``resynced``
    names those re-pushed for a new policy.
    """
    wanted = {ch.id: ch for ch in config.channels if ch.enabled}
    policies = config.policies()
    running = channels.running()
    # Held-back optional channels no longer wanted are forgotten too (stop() does both).
    for channel_id in (running.keys() | channels.not_started.keys()) - wanted.keys():
        await channels.stop(channel_id)
    failed: dict[str, str] = {}
    resync: list[str] = []
    channels.set_bundles(config.bundle_map())
    for channel_id, channel in wanted.items():
        before = running.get(channel_id)
        try:
            if before is None:
                channels.start(channel, policies[channel_id])  # new, or failed before
            elif channel_identity(before) != channel_identity(channel):
                await channels.replace(channel, policies[channel_id])
            elif channels.policy(channel_id) != policies[channel_id]:
                channels.set_policy(channel_id, policies[channel_id])
                resync.append(channel_id)
        except ChannelNotStarted as exc:
            kept = "; the running channel keeps its settings" if before is not None else ""
            log.error("channel_not_started", channel=channel_id, reason=exc.reason + kept)
            failed[channel_id] = exc.reason
            if before is None and channel.optional:
                channels.hold_back(channel_id, exc.reason)  # /readyz names it
    started = channels.running()
    for channel_id in sorted(started) if resync_all else resync:
        channels.full_sync(channel_id)
    return ReloadResult(
        ok=not failed,
        channels=tuple(sorted(started)),
        resynced=tuple(resync),
        failed=failed,
    )
