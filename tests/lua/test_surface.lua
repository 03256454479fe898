package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local core = require "spillover.core"

-- sp is a chosen list (init.lua, docs/lua-api.md "What sp exports"), not a copy of core.
for _, k in ipairs{ "frame", "read_csv", "read", "matrix", "design", "lsfit", "absorb", "demean", "vcov", "codes",
                    "sumsq", "rng", "dist", "yaml", "sys", "version", "formula", "fit", "ols", "weights", "moran",
                    "spatial", "threshold", "scenario", "register_estimator", "index", "plot", "json", "placebo", "did", "event_study", "bacon",
                    "disparity", "markov", "convergence", "psm", "synth", "gmm", "dea", "malmquist", "tobit", "ppml",
                    "moran_plot", "coefplot" } do
  T.check(sp[k] ~= nil, "sp." .. k .. " is exported")
end
for _, k in ipairs{ "_weights", "spml_sample", "threshold_fit", "design_stats", "sandbox", "closest", "raise",
                    "frame_version" } do
  T.check(core[k] ~= nil and sp[k] == nil, "core." .. k .. " stays internal")
end
T.check(sp.frame == core.frame and sp.lsfit == core.lsfit, "exported C entries are core's own functions")

T.done()
