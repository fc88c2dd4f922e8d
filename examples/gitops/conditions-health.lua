-- Argo CD health check for meetingbot.dev/ZoomAccount, ZoomUserGrant and MeetingBotSchedule:
-- Healthy when Ready; Degraded when Stalled (a person must act: credentials Zoom refused, a
-- scope missing, a grant revoked, a cron expression that cannot be read); Progressing otherwise
-- (being verified, a Secret not created yet, a grant awaiting its user's consent). Install it
-- under resource.customizations.health.meetingbot.dev_<Kind> in argocd-cm for each.
local hs = {status = "Progressing", message = "waiting for the operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "the operator has not seen the latest spec yet"
  return hs
end
local ready, stalled = nil, nil
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then ready = condition end
  if condition.type == "Stalled" then stalled = condition end
end
if ready == nil then
  return hs
end
hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
if ready.status == "True" then
  hs.status = "Healthy"
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
end
return hs
