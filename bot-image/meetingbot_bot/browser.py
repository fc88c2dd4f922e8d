"""Debian's Chromium, driven by Playwright through `executable_path` (Playwright's own browser
download is never used)."""

from __future__ import annotations

import os
import shutil

CHROMIUM_ENV = "MEETINGBOT_CHROMIUM"

# Headless flags for a bot: fake media devices and permission prompts (a bot has no camera
# and nobody to click "allow"), no first-run or background networking (only the meeting's
# traffic leaves the pod), audio muted locally.
FLAGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-gpu",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--metrics-recording-only",
    "--password-store=basic",
    # The pod runs as non-root without the user namespaces Chromium's sandbox needs; the
    # container (no capabilities, seccomp RuntimeDefault, read-only root) is the sandbox.
    "--no-sandbox",
]


def chromium_path() -> str:
    explicit = os.environ.get(CHROMIUM_ENV)
    if explicit:
        return explicit
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise FileNotFoundError(
            "Chromium not found: install Debian's chromium or set MEETINGBOT_CHROMIUM"
        )
    return found
