"""Debian's Chromium and the flags a bot starts it with (driven over CDP by `cdp.py`)."""

from __future__ import annotations

import os
import shutil

CHROMIUM_ENV = "MEETINGBOT_CHROMIUM"

# Headless flags for a bot: fake media devices and permission prompts (a bot has no camera
# and nobody to click "allow"), no first-run or background networking (only the meeting's
# traffic leaves the pod), audio muted locally. The page must never be throttled as a
# background tab (the meeting's timers and media run in it), and /dev/shm in a container is
# small (64 MB), so shared memory goes to /tmp. These are the flags Playwright used to add
# that matter to a bot; its test-only ones (hover emulation, popups, tagged PDFs) are gone.
FLAGS = [
    "--headless",
    "--no-startup-window",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-service-autorun",
    "--disable-background-networking",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-breakpad",
    "--disable-client-side-phishing-detection",
    "--disable-component-extensions-with-background-pages",
    "--disable-component-update",
    "--disable-dev-shm-usage",
    "--disable-field-trial-config",
    "--disable-hang-monitor",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-gpu",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--hide-scrollbars",
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
