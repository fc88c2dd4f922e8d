-- Argo CD health check for meetingbot.dev/MeetingBot: Healthy when Scheduled, InMeeting or
-- Succeeded, Degraded when Failed, Progressing in between. Scheduled is Healthy so that a sync
-- wave is not held until joinAt (days, perhaps): nothing is in progress before. Install it under
-- resource.customizations.health.meetingbot.dev_MeetingBot in argocd-cm (see argocd-cm.yaml).
local hs = {status = "Progressing", message = "waiting for the operator"}
if obj.status ~= nil and obj.status.phase ~= nil then
  local phase = obj.status.phase
  local detail = phase
  if obj.status.reason ~= nil then
    detail = phase .. " (" .. obj.status.reason .. ")"
  end
  if obj.status.message ~= nil and obj.status.message ~= "" then
    detail = detail .. ": " .. obj.status.message
  end
  if phase == "Scheduled" or phase == "InMeeting" or phase == "Succeeded" then
    hs.status = "Healthy"
  elseif phase == "Failed" then
    hs.status = "Degraded"
  else
    hs.status = "Progressing"
  end
  hs.message = detail
end
return hs
