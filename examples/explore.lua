-- explore.lua: a first look at the bundled data.
--   spillover examples/explore.lua
-- Prints the panel summary and the descriptive table of the Chinese
-- provincial panel, then pooled OLS on Produc computed with the matrix
-- primitives, checked against R's lm (tests/reference/ols_produc_classic.json).
local sp = require "spillover"

local cn = sp.read_csv("scenarios/data/cn_province_panel.csv")
cn:panel { entity = "province", time = "year" }
print("Chinese provincial panel")
print(cn:panel_info())
print()
cn:label("digital_finance", "数字普惠金融指数")
print(cn:describe { "digital_finance", "patent_grants", "innovation", "rd_intensity_pct",
  "gdp_per_capita", "urbanization", "industrial_structure", "government_intervention" })
print()

-- Pooled OLS on Produc: b = (X'X)^-1 X'y and V = s^2 (X'X)^-1.
local d = sp.read_csv("scenarios/data/Produc.csv")
local regressors = { "log_pcap", "log_pc", "log_emp", "unemp" }
local X = sp.matrix(d, regressors, { intercept = true })
local y = sp.matrix(d, { "log_gsp" })
local XtXi = X:crossprod():inv()
local b = XtXi * X:crossprod(y)
local e = y - X * b
local n, k = X:nrow(), X:ncol()
local s2 = e:crossprod():get(1, 1) / (n - k)
local se = (XtXi * s2):diag():sqrt()

local ref = sp.json.read("tests/reference/ols_produc_classic.json")
local names = { "(Intercept)", table.unpack(regressors) }
print("Pooled OLS on Produc (816 state-years): log_gsp ~ log_pcap + log_pc + log_emp + unemp")
print(string.format("%-12s %14s %14s %12s", "", "estimate", "std. error", "rel. err vs R"))
local worst = 0
for j, name in ipairs(names) do
  local eb = math.abs(b[j] - ref.coef[name]) / math.abs(ref.coef[name])
  local es = math.abs(se[j] - ref.se[name]) / math.abs(ref.se[name])
  worst = math.max(worst, eb, es)
  print(string.format("%-12s %14.8f %14.8f %12.1e", name, b[j], se[j], math.max(eb, es)))
end
if worst > 1e-10 then error(string.format("matrix OLS differs from R by %.3g (relative)", worst)) end
print(string.format("agrees with R's lm to %.1e relative (coefficients and standard errors)", worst))

-- The same model with the estimator, and two-way fixed effects with clustered errors.
print()
print(sp.ols(d, "log_gsp ~ log_pcap + log_pc + log_emp + unemp | state + year", { vcov = { cluster = "state" } }))
