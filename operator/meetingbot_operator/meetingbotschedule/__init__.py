"""MeetingBotSchedule: MeetingBots made per occurrence (docs/schedules.md)."""
