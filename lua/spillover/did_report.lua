-- spillover.did_report: what a scenario's DID model reports, for every
-- method alike (the registry entries "did" and "event_study" attach it to
-- their fits): the ATT and its event-time effects, the pre-trend test, and,
-- when the model asked for them, the placebo distribution and the Bacon
-- decomposition of the static TWFE.
--
--   results.json   models.<m>.did = {method, overall, att_gt, event_study, pretrend, placebo, bacon}
--   did_<m>.md     the tables;  did_<m>.csv  the event-time rows
--   event_<m>.png  the event-study figure;  placebo_<m>.png;  bacon_<m>.png
local util = require "spillover.util"

local M = {}

-- The event-time rows of a fit: its own (event study, sa, imputation) or
-- Callaway-Sant'Anna's dynamic aggregation.
local function event_rows(fit)
  if fit.event_study then return fit.event_study end
  if fit.aggregate and fit.att_gt then return fit:aggregate("dynamic").rows end
  return nil
end

local function placebo_summary(p)
  return p and { estimate = p.estimate, p_value = p.p_value, reps = p.reps, failed = p.failed, assign = p.assign,
    seed = p.seed, mean = p.mean, sd = p.sd } or nil
end

local function bacon_summary(b)
  if not b then return nil end
  return { by_type = b.by_type, two_by_twos = b.two_by_twos }
end

local function json(fit)
  return { method = fit.method, overall = fit.overall, att_gt = fit.att_gt, event_study = event_rows(fit),
    pretrend = fit.pretrend or fit.pretest, placebo = placebo_summary(fit.placebo), bacon = bacon_summary(fit.bacon) }
end

local function files(fit, out)
  local num = out.number
  local md = { "# " .. (fit.label or "DID") .. ": " .. out.name, "" }
  local o = fit.overall
  if o then
    md[#md + 1] = string.format("ATT %s (se %s), %g%% interval [%s, %s]", num(o.att), num(o.se),
      100 * (fit.level or 0.95), num(o.lo), num(o.hi))
    md[#md + 1] = ""
  end
  local rows = event_rows(fit)
  if rows then
    md[#md + 1] = "| event time | estimate | se | interval | uniform band |"
    md[#md + 1] = "|---:|---:|---:|---|---|"
    for _, r in ipairs(rows) do
      md[#md + 1] = string.format("| %s | %s | %s | [%s, %s] | %s |", num(r.e), num(r.att), num(r.se), num(r.lo),
        num(r.hi), r.ulo and string.format("[%s, %s]", num(r.ulo), num(r.uhi)) or "")
    end
    md[#md + 1] = ""
    out:write("did_" .. out.name .. ".csv", out.csv(rows, { "e", "att", "se", "lo", "hi", "ulo", "uhi" }))
  end
  local pt = fit.pretrend or fit.pretest
  if pt then
    md[#md + 1] = string.format("Pre-trend test (every pre-treatment effect = 0): statistic %s, p = %s",
      num(pt.statistic), num(pt.pvalue)) .. (pt.note and (" (" .. pt.note .. ")") or "")
    md[#md + 1] = ""
  end
  local p = fit.placebo
  if p then
    md[#md + 1] = string.format("Placebo (%s reassigned, %d draws, seed %d): two-sided p = %s " ..
      "(%d of %d at least as extreme); placebo mean %s, sd %s", p.assign, #p.draws, p.seed, num(p.p_value), p.extreme,
      #p.draws, num(p.mean), num(p.sd))
    md[#md + 1] = ""
  end
  local b = fit.bacon
  if b and b.by_type then
    md[#md + 1] = "| Bacon decomposition: comparison | weight | average estimate |"
    md[#md + 1] = "|---|---:|---:|"
    for _, t in ipairs(b.by_type) do
      md[#md + 1] = string.format("| %s | %s | %s |", tostring(t.type), num(t.weight), num(t.avg_est))
    end
    md[#md + 1] = ""
  end
  for _, n in ipairs(fit.notes or {}) do md[#md + 1] = "Note: " .. n .. "\n" end
  out:write("did_" .. out.name .. ".md", table.concat(md, "\n") .. "\n")
  for _, ext in ipairs({ "png", "svg" }) do
    if out.formats[ext] then
      if rows and fit.plot then fit:plot(out:path("event_" .. out.name .. "." .. ext)) end
      if p then p:plot(out:path("placebo_" .. out.name .. "." .. ext)) end
      if b and b.plot then b:plot(out:path("bacon_" .. out.name .. "." .. ext)) end
    end
  end
  out:log("DID tables and figures of %s written", out.name)
end

M.section = { name = "did", json = json, files = files }

--- The fit of a scenario's DID model: fit(d, formula, options) by the
--- method, then, as the model's options ask, the placebo distribution
--- (options.placebo = {reps =, assign =, seed =}, re-estimating with the same
--- call) and the Bacon decomposition (options.bacon = true).
function M.scenario_fit(fit_fn, d, formula, options)
  local o = {}
  for k, v in pairs(options or {}) do o[k] = v end
  local placebo, bacon = o.placebo, o.bacon
  o.placebo, o.bacon = nil, nil
  local fit = fit_fn(d, formula, o)
  if placebo then
    local cohort = o.cohort
    local spec = { data = d, cohort = cohort, estimate = function(frame, c)
      local po = {}
      for k, v in pairs(o) do po[k] = v end
      po.cohort = c
      local f = fit_fn(frame, formula, po)
      return f.overall and f.overall.att or util.raise("placebo: the fit has no overall ATT")
    end }
    fit.placebo = require("spillover.placebo").placebo(spec, placebo)
  end
  if bacon then fit.bacon = require("spillover.did_event").bacon(d, formula, { cohort = o.cohort }) end
  fit.report_sections = { M.section }
  return fit
end

--- The option schema shared by the DID entries (scenario_check's nodes).
M.placebo_schema = { type = "map", fields = {
  reps = { type = "integer", min = 1, max = 100000 }, assign = { type = "string", enum = { "units", "timing", "both" } },
  seed = { type = "integer" }, min_ok = { type = "number", min = 0, max = 1 }, workers = { type = "integer", min = 1, max = 64 },
} }

return M
