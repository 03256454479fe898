package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"

-- Expected values from R 4.x on the same CSV (ave(), hand-built lags).
local d = sp.read_csv("tests/reference/data/Produc.csv")
local function nan(v) return v ~= v end
local function sum(m) local t = 0; for i = 1, #m do if not nan(m[i]) then t = t + m[i] end end; return t end

T.checkerr("no panel index: call d:panel{entity=, time=} first", d.lag, d, "unemp")
T.check(d:panel_info() == nil, "panel_info: nil without a panel index (not an error)")
T.checkerr("no panel index", d.within_mean, d, "unemp")

T.check(d:panel{entity = "state", time = "year"} == d, "panel returns the frame")
local info = d:panel_info()
T.check(info.N == 48 and info.T == 17 and info.n == 816, "panel_info: N, T, n")
T.check(info.balanced == true and info.Tmin == 17 and info.Tmax == 17 and info.gaps == 0, "panel_info: balanced")
T.check(info.entity == "state" and info.time == "year", "panel_info: index names")
T.check(tostring(info) == "panel: 48 entities (state) x 17 periods (year), 816 rows, balanced; 17 to 17 periods per entity, 0 gaps",
  "panel_info tostring")
T.check(tostring(d):find("(panel index: state x year)", 1, true) ~= nil, "frame tostring mentions the index")

-- ---- shifts ------------------------------------------------------------------------
local lag = d:lag("unemp")
T.check(lag:nrow() == 816 and lag:ncol() == 1, "lag is an n x 1 matrix")
T.check(nan(lag[1]) and lag[2] == 4.7 and nan(lag[18]), "lag: first year of each state missing")
local lag2 = d:lag("unemp", 2)
T.check(nan(lag2[2]) and lag2[3] == 4.7, "lag 2")
local lead = d:lead("unemp")
T.check(lead[1] == 5.2 and nan(lead[17]), "lead")
T.near(d:growth("gsp")[2], 0.033675839256809066, 1e-14, "growth row 2")
T.near(sum(d:growth("gsp")), 23.450961812153199, 1e-12, "growth: sum over rows")
T.near(sum(d:diff("gsp", 2)), 2385982, 1e-13, "diff 2: sum over rows")
local far = d:lead("unemp", math.mininteger)
local all_missing = true
for i = 1, #far do all_missing = all_missing and nan(far[i]) end
T.check(#far == 816 and all_missing, "lead by math.mininteger: all missing, no overflow")
T.checkerr("panel time 't' is infinite in row 2", function()
  sp.frame{id = {1, 1}, t = {1, math.huge}}:panel{entity = "id", time = "t"}
end)
T.checkerr("lag: column 'state' is categorical", d.lag, d, "state")
T.checkerr("unknown column 'unmp' %(did you mean 'unemp'%?%)", d.lag, d, "unmp")

-- ---- within means ----------------------------------------------------------------------
T.near(d:within_mean("unemp")[1], 8.0470588235294116, 1e-14, "within_mean: ALABAMA")
T.near(d:demean("unemp")[20], -2.5294117647058822, 1e-13, "demean row 20")
T.check(math.abs(sum(d:demean("gsp"))) < 1e-6, "demeaned values sum to zero")
local w = sp.frame{id = {"a", "a", "a", "b"}, t = {1, 2, 3, 1}, x = {1, nil, 3, 5}}
w:panel{entity = "id", time = "t"}
local wm, dm = w:within_mean("x"), w:demean("x")
T.check(wm[2] == 2 and wm[4] == 5 and dm[1] == -1 and nan(dm[2]), "within_mean/demean skip missing values")

-- ---- gaps and unbalanced panels ----------------------------------------------------------
local g = d:filter("year ~= 1975")
local gi = g:panel_info()
T.check(gi.n == 768 and gi.gaps == 48 and gi.T == 16, "filter rebuilds the index: one gap per state")
local gl = g:lag("unemp")
T.check(nan(gl[6]) and g.year[6] == 1976, "lag across a gap is missing")
T.check(gl[7] == g.unemp[6], "lag after the gap")
local u = d:filter("not (state == 'OHIO' and year < 1975)")
local ui = u:panel_info()
T.check(ui.balanced == false and ui.Tmin == 12 and ui.Tmax == 17 and ui.n == 811, "unbalanced panel")

-- ---- the index follows row operations -------------------------------------------------------
local s = d:sort{{"year", desc = true}, "state"}
T.check(s:panel_info().N == 48, "sort keeps the index")
local sl = s:lag("unemp")
T.check(s.state[1] == "ALABAMA" and s.year[1] == 1986 and sl[1] == d.unemp[16], "lag on a sorted frame follows time, not rows")
T.check(d:head(20):panel_info().N == 2, "head rebuilds the index")
T.check(d:copy():panel_info().T == 17, "copy keeps the index")
T.check(d:select{"state", "gsp"}:panel_info() == nil, "select without the time column drops the index")
T.check(d:select{"state", "year", "gsp"}:panel_info().N == 48, "select with both index columns keeps it")
local states = sp.read_csv("tests/reference/data/us48_states.csv")
states:rename{produc_name = "state"}
T.check(d:join(states, {on = "state", validate = "m:1"}):panel_info().n == 816, "join keeps the index")
local c = d:copy()
c:rename{state = "province"}
T.check(c:panel_info().entity == "province", "rename updates the index")
c.year = nil
T.check(c:panel_info() == nil, "dropping an index column drops the index")

-- ---- errors building the index -------------------------------------------------------------
local dup = sp.frame{id = {"a", "a", "b"}, t = {1, 1, 1}}
T.checkerr("duplicate panel cell %(id = a, t = 1%) in rows 1 and 2", dup.panel, dup, {entity = "id", time = "t"})
T.checkerr("unknown column 'yr'", d.panel, d, {entity = "state", time = "yr"})
T.checkerr("expected {entity = \"column\", time = \"column\"}", d.panel, d, {entity = "state"})

T.done()
