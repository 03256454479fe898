-- test_xtscc: the stata preset's Driscoll-Kraay standard errors are xtscc's
-- (Hoechle's command, version 1.3 on).  Its xtscc.ado scales the
-- Driscoll-Kraay V by (TT/(TT-1))*((nObs-1)/(nObs-rank)), TT the periods and
-- rank the columns of its regression (slopes and the constant; with fe the
-- within-transformed data and a constant, so the firm effects count once),
-- with t(TT - 1); option ase drops the factor.
--
-- Published Stata output: `xtscc y x, lag(1) ase` on Petersen's simulated
-- panel (500 firms x 10 years, sandwich's PetersenCL, exported to
-- tests/reference/data/PetersenCL.csv): SEs 0.0243573 (_cons) and 0.0281633
-- (x), as quoted by the Stata reference of sandwich's vcovPL tests (and equal
-- to vcovPL(lm(y ~ x), cluster = ~ firm + year, lag = 1, adjust = FALSE)).
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"

local d = sp.read_csv("tests/reference/data/PetersenCL.csv")
d:panel { entity = "firm", time = "year" }
local N, TT = 5000, 10

-- xtscc y x, lag(1) ase: no factor at all (dof and the period factor off).
local ase = sp.ols(d, "y ~ x", { vcov = { driscoll_kraay = 1, dof = "none", gadj = "none" } })
T.near(ase:se()["(Intercept)"], 0.0243573, 5e-6, "xtscc, ase: SE of _cons (published)")
T.near(ase:se().x, 0.0281633, 5e-6, "xtscc, ase: SE of x (published)")

-- xtscc y x, lag(1): the default stata preset, T/(T-1) (N-1)/(N-2), t(T - 1).
local xt = sp.ols(d, "y ~ x", { vcov = { driscoll_kraay = 1 } })
local f = math.sqrt(TT / (TT - 1) * (N - 1) / (N - 2))
T.near(xt:se().x, ase:se().x * f, 1e-12, "xtscc: T/(T-1) (N-1)/(N-k) on x")
T.near(xt:se()["(Intercept)"], ase:se()["(Intercept)"] * f, 1e-12, "xtscc: the same factor on _cons")
T.check(xt.df_resid == TT - 1, "xtscc: t tests with T - 1 df", tostring(xt.df_resid))

-- xtscc y x, fe lag(1): k = the slope + the constant (the 500 firm effects count once).
local fe0 = sp.ols(d, "y ~ x | firm", { vcov = { driscoll_kraay = 1, dof = "none", gadj = "none" } })
local fe = sp.ols(d, "y ~ x | firm", { vcov = { driscoll_kraay = 1 } })
T.near(fe:se().x, fe0:se().x * f, 1e-12, "xtscc, fe: k = slopes + 1, not the firm effects")
T.check(fe.df_resid == TT - 1, "xtscc, fe: t(T - 1)")

-- Other presets keep their convention: plm's vcovSCC has no factor.
local plm = sp.ols(d, "y ~ x", { vcov = { driscoll_kraay = 1 }, compat = "plm" })
T.near(plm:se().x, ase:se().x, 1e-12, "plm preset: vcovSCC without a factor")

-- The C preset is the same table: sp.vcov with compat = "stata" reports the period factor.
local des = sp.design(d, "y ~ x", { extra = { "year" } })
local l = sp.lsfit(des.X, des.y)
local V, info = sp.vcov(des.X, l.resid, l.bread, { type = "driscoll_kraay", time = des:codes("year"), lag = 1,
  compat = "stata" })
T.near(info.period_factor, TT / (TT - 1), 1e-15, "sp.vcov: info.period_factor = T/(T-1)")
T.near(math.sqrt(V:get(2, 2)), xt:se().x, 1e-12, "sp.vcov with compat = stata = sp.ols")
local _, info0 = sp.vcov(des.X, l.resid, l.bread, { type = "driscoll_kraay", time = des:codes("year"), lag = 1 })
T.check(info0.period_factor == 1, "sp.vcov without a preset: no period factor")

T.done()
