-- The reference runner: every case under tests/reference/ of the families
-- this suite covers is run through spillover and every quantity in the file
-- is compared (one PASS/FAIL line each).  Cases of those families that no
-- handler covers are listed at the end with the reason: no silent skips.
--
--   spillover tests/reference/run.lua [name-pattern]
--
-- Handlers live in tests/reference/handlers/*.lua; each returns a table
-- estimator -> function(case, ctx) returning a table of checks
-- {{name, got, want, rtol}, ...} or raising NOT_COVERED .. reason.
package.path = "tests/lua/?.lua;tests/reference/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local json = sp.json

local families = { "ols", "fe", "re", "be", "fd", "ivfe", "ivreg", "test", "sm", "moran", "localmoran", "lmtests", "sar", "sem", "sdm", "fesar", "splm", "threshold", "gmm" }
local pattern = arg and arg[1]

local handlers = {}
local hl = io.popen("ls tests/reference/handlers/*.lua 2>/dev/null")
for path in hl:lines() do
  local h = dofile(path)
  for est, fn in pairs(h) do handlers[est] = fn end
end
hl:close()

local ctx = { data = {} }

--- The dataset of a case, loaded once, with its panel index when it has one.
function ctx.dataset(case)
  local key = case.dataset .. "|" .. tostring(case.entity) .. "|" .. tostring(case.time)
  if not ctx.data[key] then
    local d = sp.read_csv("tests/reference/data/" .. case.dataset)
    if case.entity and case.entity ~= json.null and case.time and case.time ~= json.null then
      d:panel { entity = case.entity, time = case.time }
    end
    ctx.data[key] = d
  end
  return ctx.data[key]
end

ctx.NOT_COVERED = "NOT_COVERED: "

--- Checks for coef/se/tstat|zstat/pvalue/vcov of a fit against the case.
function ctx.fit_checks(case, fit, tol)
  tol = tol or {}
  local checks = {}
  local coef, se, t, p, V = fit:coef(), fit:se(), fit:tstat(), fit:pvalue(), fit:vcov()
  local function add(name, got, want, rtol, atol) checks[#checks + 1] = { name, got, want, rtol, atol } end
  for name, want in pairs(case.coef or {}) do add("coef " .. name, coef[name], want, tol.coef or 1e-9) end
  for name, want in pairs(case.se or {}) do add("se " .. name, se[name], want, tol.se or 1e-9) end
  for name, want in pairs(case.tstat or case.zstat or {}) do add("stat " .. name, t[name], want, tol.stat or 1e-8) end
  for name, want in pairs(case.pvalue or {}) do add("pvalue " .. name, p[name], want, tol.pvalue or 1e-6, 1e-300) end
  for r, row in pairs(case.vcov or {}) do
    for c, want in pairs(row) do
      -- off-diagonal entries are compared relative to the diagonal scale
      local scale = math.sqrt(math.abs(case.vcov[r][r] * case.vcov[c][c]))
      add("vcov " .. r .. "," .. c, V[r] and V[r][c], want, tol.vcov or 1e-9, (tol.vcov or 1e-9) * scale)
    end
  end
  add("nobs", fit.nobs, case.nobs, 0)
  return checks
end

local function compare(case_name, c)
  local name, got, want, rtol, atol = c[1], c[2], c[3], c[4] or 1e-9, c[5] or 0
  local label = case_name .. ": " .. name
  if type(want) == "boolean" or type(want) == "string" then
    T.check(got == want, label, string.format("got %s want %s", tostring(got), tostring(want)))
    return
  end
  if type(got) ~= "number" then
    T.check(false, label, "no value computed (want " .. tostring(want) .. ")")
    return
  end
  local diff = math.abs(got - want)
  local ok = diff <= rtol * math.abs(want) or diff <= atol or (want == 0 and diff <= 1e-300)
  T.check(ok, label, string.format("got %.17g want %.17g (rtol %g)", got, want, rtol))
end

local uncovered = {}
local files = {}
local ls = io.popen("ls tests/reference/*.json")
for path in ls:lines() do files[#files + 1] = path end
ls:close()
for _, path in ipairs(files) do
  local name = path:match("([^/]+)%.json$")
  local fam = name:match("^([a-z]+)_")
  local wanted = false
  for _, f in ipairs(families) do if f == fam then wanted = true end end
  if wanted and (not pattern or name:find(pattern)) then
    local case = json.read(path)
    local h = handlers[case.estimator]
    if not h then
      uncovered[#uncovered + 1] = { name, "no handler for estimator '" .. case.estimator .. "'" }
    else
      local ok, res = pcall(h, case, ctx)
      if not ok then
        local msg = tostring(res)
        local reason = msg:match("NOT_COVERED: (.*)$")
        if reason then
          uncovered[#uncovered + 1] = { name, reason }
        else
          T.check(false, name .. ": runs", msg)
        end
      elseif #res == 0 then
        T.check(false, name .. ": the handler checked something", "it returned no checks")
      else
        for _, c in ipairs(res) do compare(name, c) end
      end
    end
  end
end

if #uncovered > 0 then
  print(string.format("NOT COVERED (%d cases of the covered families):", #uncovered))
  for _, u in ipairs(uncovered) do print("  " .. u[1] .. ": " .. u[2]) end
end
T.done()
