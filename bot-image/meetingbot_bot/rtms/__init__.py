"""The RTMS stream worker: receives one of Zoom's Realtime Media Streams (protocol, session)
and keeps what it carries as a bot keeps its capture (recorder), for the same uploads."""
