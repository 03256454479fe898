-- test_wild_vcov: vcov = {wild = "g", ...} reports the wild cluster
-- bootstrap in the fit's inference: each coefficient's p-value and confidence
-- set are fit:wildboot's (same settings), the standard errors the
-- cluster-robust ones, and summaries, tidy and sp.etable say so.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"

local P = sp.read_csv("tests/reference/data/Produc.csv")
P:panel { entity = "state", time = "year" }
local f = "log_gsp ~ log_pcap + unemp | state"
local set = { reps = 999, weights = "webb", seed = 7 }
local fw = sp.ols(P, f, { vcov = { wild = "region", reps = 999, weights = "webb", seed = 7 } })
local fc = sp.ols(P, f, { vcov = { cluster = "region" } })

-- ---- the numbers: fit:wildboot's, coefficient by coefficient ---------------------------
local p, ci, se = fw:pvalue(), fw:confint(), fw:se()
for _, x in ipairs { "log_pcap", "unemp" } do
  local w = fc:wildboot { param = x, reps = set.reps, weights = set.weights, seed = set.seed }
  T.check(p[x] == w.pvalue, x .. ": p-value = fit:wildboot's", string.format("%g vs %g", p[x], w.pvalue))
  T.check(ci[x][1] == w.confint[1] and ci[x][2] == w.confint[2], x .. ": confidence set = fit:wildboot's")
  T.check(se[x] == fc:se()[x], x .. ": the standard error is the cluster-robust one (CRV1)")
  T.check(p[x] ~= fc:pvalue()[x], x .. ": the p-value is not the t test's")
end
-- another level inverts the same replications
local w90 = fc:wildboot { param = "unemp", reps = 999, weights = "webb", seed = 7, level = 0.9 }
local c90 = fw:confint(0.9).unemp
T.near(c90[1], w90.confint[1], 1e-9, "confint(0.9): the bootstrap's 90% set (lower)")
T.near(c90[2], w90.confint[2], 1e-9, "confint(0.9): the bootstrap's 90% set (upper)")
local tidy = fw:tidy()
T.check(tidy.p_value:get(2, 1) == p.unemp, "tidy: the bootstrap p-value")

-- ---- reporting ---------------------------------------------------------------------------
local text = tostring(fw)
T.check(text:find("wild cluster bootstrap (WCR, Webb, 999 reps) clustered by region (9 clusters)", 1, true),
  "summary: the note names the method", text)
local md = sp.etable { fw, fc }:markdown()
T.check(md:find("(1): stars from wild cluster bootstrap (WCR, Webb, 999 reps) p-values", 1, true),
  "etable: the note says which model's stars are bootstrap p-values", md)
T.check(md:find(string.format("[%.3f, %.3f]", ci.unemp[1], ci.unemp[2]), 1, true), "etable: the confidence set row")
T.check(md:find("clustered by region (9), wild bootstrap", 1, true), "etable: the SE row")
T.check(not sp.etable { fc }:markdown():find("[", 1, true), "etable: no bracket row without a bootstrap")
T.check(not text:find("only 9 clusters", 1, true), "no few-clusters note: the bootstrap is the remedy")

-- Rademacher with 2^G <= reps enumerates: no seed dependence.
local fr1 = sp.ols(P, f, { vcov = { wild = "region", reps = 999, seed = 1 } })
local fr2 = sp.ols(P, f, { vcov = { wild = "region", reps = 999, seed = 2 } })
T.check(fr1:pvalue().unemp == fr2:pvalue().unemp, "Rademacher, 2^9 <= 999: enumerated, the seed does not matter")

-- A refit (scenario bootstrap) keeps the cluster-robust V without rerunning the replications.
local rf = fw:refit(P)
T.check(rf.inference == nil and rf:se().unemp == fc:se().unemp, "refit: cluster-robust, no bootstrap")

-- 2SLS: the WRE bootstrap, as fit:wildboot.
do
  local di = sp.read_csv("tests/reference/data/external/ivreg2r_sim_cluster_data.csv"):filter(function(r)
    return r.cluster_id <= 6 end)
  local fiv = sp.ols(di, "y ~ x1 | endo1 ~ z1 + z2", { vcov = { wild = "cluster_id", reps = 64 } })
  local civ = sp.ols(di, "y ~ x1 | endo1 ~ z1 + z2", { vcov = { cluster = "cluster_id" } })
  local w = civ:wildboot { param = "endo1", reps = 64 }
  T.check(fiv:pvalue().endo1 == w.pvalue, "2SLS: the WRE p-value", tostring(fiv:pvalue().endo1))
  T.check(fiv.inference.label:find("WRE", 1, true), "2SLS: labelled WRE")
end

-- ---- errors ----------------------------------------------------------------------------
T.checkerr("vcov: 'reps' must be a positive integer, got 0", sp.ols, P, f, { vcov = { wild = "region", reps = 0 } })
T.checkerr("vcov: unknown weights 'web'.*did you mean 'webb'", sp.ols, P, f, { vcov = { wild = "region", weights = "web" } })
T.checkerr("vcov: unknown option 'cluster'", sp.ols, P, f, { vcov = { wild = "region", cluster = "state" } })
T.checkerr("vcov: wild must name the one cluster variable", sp.ols, P, f, { vcov = { wild = { "region", "year" } } })
T.checkerr("reported by sp.ols and 2SLS fits; use {cluster = ...} here", sp.re, P, "log_gsp ~ log_pcap",
  { vcov = { wild = "region" } })
T.checkerr("unknown cluster variable 'regon'", sp.ols, P, f, { vcov = { wild = "regon" } })

T.done()
