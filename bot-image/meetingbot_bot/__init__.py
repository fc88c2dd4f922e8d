"""The reference bot: headless Chromium with the Zoom Meeting SDK, speaking the runtime
contract of meetingbot_contract."""

__version__ = "0.1.0"
