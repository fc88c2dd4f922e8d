"""MeetingStream: Zoom's RTMS streams received (docs/rtms.md): the webhooks routed to one
MeetingStream each (notices), its status (status), and the service that writes it."""
