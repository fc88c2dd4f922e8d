"""The MeetingBot wing: the controller (one pass per input), what it observed (cache,
observed), the pure decisions, the children it builds (join Secret, bot Pod), the executor
that carries actions out, the work queue, and the endpoint bots report to."""
