-- Health of a QlikAutomation (automations.qlik.dev), from the conditions that
-- qlik-automations-operator writes: Ready, and kstatus's abnormal-true pair
-- Reconciling (work in flight, retried by the operator) and Stalled (only a
-- person can fix it), checked against metadata.generation. Messages carry the
-- deciding condition's "reason: message". Uses no standard library beyond
-- Argo CD's defaults, so it also works in argocd-cm without useOpenLibs.
local hs = {}

local function describe(c)
  if c.reason == nil or c.reason == "" then
    return c.message or ""
  end
  if c.message == nil or c.message == "" then
    return c.reason
  end
  return c.reason .. ": " .. c.message
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local ready = nil
local reconciling = nil
local stalled = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Reconciling" then
    reconciling = c
  elseif c.type == "Stalled" then
    stalled = c
  end
end

-- A spec the operator has not handled yet: the conditions describe an older one.
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if observed == nil and ready ~= nil then
  observed = ready.observedGeneration
end
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation .. " (last observed: " .. observed .. ")"
  return hs
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready ~= nil and ready.status == "False" and ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = describe(ready)
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  if ready ~= nil and ready.status == "True" then
    -- Work in flight that leaves the object in sync, e.g. a run the operator
    -- follows (RunInProgress): the object itself is healthy.
    hs.status = "Healthy"
    hs.message = describe(ready) .. " (the " .. obj.kind .. " itself is healthy; " .. describe(reconciling) .. ")"
    return hs
  end
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the Ready condition"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

-- Ready is False or Unknown, and neither Reconciling nor Stalled is True.
-- Operator versions that write only Ready and Synced (no Reconciling or
-- Stalled): the reason tells whether the operator retries by itself.
if ready.status == "Unknown" or (reconciling == nil and stalled == nil and
    (ready.reason == "TransientError" or ready.reason == "RateLimited" or ready.reason == "KubernetesError")) then
  hs.status = "Progressing"
  hs.message = describe(ready)
  return hs
end

hs.status = "Degraded"
hs.message = describe(ready)
return hs
