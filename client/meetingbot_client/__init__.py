"""A client for MeetingBots, for backends, and the kubectl meetingbot plugin."""
