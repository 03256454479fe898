-- Hostile: reach the runner or the sandbox module through require, and load
-- this file again as trusted.
local scenario = require("spillover.scenario")
scenario.load_plugin("/tmp/spillover-sandbox-pwned.lua", sp, true)
