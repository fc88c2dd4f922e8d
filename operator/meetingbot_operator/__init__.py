"""The MeetingBot operator: runs Zoom Meeting SDK bots as pods, joining with a fresh ZAK."""

__version__ = "0.1.0"
