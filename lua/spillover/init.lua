-- spillover: the public Lua API.
--
-- The C part (spillover.core) provides the objects and hot loops; this file
-- assembles the one table users see.  Modules written in Lua add themselves
-- here, so a user estimator built on the same primitives is first-class.
local core = require "spillover.core"

-- The C entries users get, each documented (docs/lua-api.md, "What sp
-- exports").  The rest of core (the weights kernels, the spatial sample, the
-- threshold search, the sandbox hooks, vcov presets, design statistics,
-- closest) are internals of the Lua modules, which require "spillover.core"
-- themselves: what is not listed here can change without notice.
local CORE_EXPORTS = {
  "frame", "read_csv", "read", "matrix", "design", "lsfit", "absorb", "demean", "vcov", "codes", "sumsq",
  "rng", "dist", "yaml", "sys", "version",
}

local sp = {}
for _, k in ipairs(CORE_EXPORTS) do sp[k] = core[k] end

sp.formula = require("spillover.formula").parse

local fit = require "spillover.fit"
sp.fit = fit.new
sp.is_fit = fit.is_fit
sp.json = require "spillover.json"
-- Sequences read from YAML encode as JSON arrays, empty ones included.
if core.yaml then sp.json.array_mt = core.yaml.seq_mt end

local linear = require "spillover.linear"
sp.ols = linear.ols
sp.ivreg = require("spillover.iv").ivreg
sp.etable = require("spillover.etable").etable

local panel_models = require "spillover.panel_models"
sp.re = panel_models.re
sp.between = panel_models.between
sp.fd = panel_models.fd

local panel_tests = require "spillover.panel_tests"
sp.pftest = panel_tests.pftest
sp.plmtest = panel_tests.plmtest
sp.hausman = panel_tests.hausman
sp.phtest = panel_tests.phtest
sp.pcdtest = panel_tests.pcdtest

sp.index = require "spillover.index"

local spatial = require "spillover.spatial"
sp.weights = spatial.weights
sp.moran = spatial.moran
sp.local_moran = spatial.local_moran
sp.moran_residuals = spatial.moran_residuals
sp.lm_tests = spatial.lm_tests
sp.moran_by = spatial.moran_by
sp.moran_plot = spatial.moran_plot
sp.spatial = require("spillover.spatial_models").spatial
sp.threshold = require("spillover.threshold").threshold
sp.gmm = require("spillover.gmm").gmm
sp.plot = require "spillover.plot"
sp.coefplot = sp.plot.coef  -- the name Stata users look for (coefplot)
sp.eval = require("spillover.derive").eval
sp.counterfactual = require("spillover.counterfactual").run
sp.scenario = require "spillover.scenario"
sp.register_estimator = sp.scenario.register_estimator

local mechanism = require "spillover.mechanism"
sp.mechanism = mechanism
sp.mediation, sp.moderation, sp.center = mechanism.mediation, mechanism.moderation, mechanism.center
sp.margins, sp.margins_plot, sp.by = mechanism.margins, mechanism.margins_plot, mechanism.by
sp.chow, sp.permutation_test, sp.sur_test = mechanism.chow, mechanism.permutation, mechanism.sur
sp.group_diff = mechanism.group_diff
sp.placebo = require("spillover.placebo").placebo
sp.did = require("spillover.did").did
local did_event = require "spillover.did_event"
sp.event_study, sp.bacon = did_event.event_study, did_event.bacon
sp.disparity = require "spillover.disparity"
sp.markov, sp.convergence = require "spillover.markov", require "spillover.convergence"
sp.psm, sp.synth = require("spillover.psm").psm, require("spillover.synth").synth
sp.dea = require("spillover.dea").dea
sp.malmquist = require "spillover.malmquist"
sp.tobit = require "spillover.tobit"
sp.ppml = require("spillover.ppml").ppml
sp.spec_curve = require("spillover.spec_curve").spec_curve
sp.mpi = require "spillover.mpi"
mechanism.register(sp.scenario)

return sp
