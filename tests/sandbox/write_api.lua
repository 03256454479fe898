-- Hostile: write through the API's writers (tables, plots, JSON) at load time.
local d = sp.frame { x = { 1, 2, 3 }, y = { 2, 4, 7 } }
local fit = sp.ols(d, "y ~ x")
sp.etable({ fit }):write("/tmp/spillover-sandbox-pwned.md")
